#include "storage/sqlite/inherited.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

namespace tfimm::detail {

namespace {

// Connections a child process inherited from its parent through fork(). SQLite
// forbids using (or closing) them in the child, so they are kept here,
// untouched and reachable, for the life of the process.
std::mutex abandoned_mutex;
std::vector<void*> abandoned;
// Registry files whose write transaction was open in a connection abandoned
// here (a child forked inside a transaction). SQLite keeps that lock in its
// bookkeeping of this process for as long as the connection exists, that is
// for ever: this process can still read the file, but never write it.
std::vector<std::string> write_locked;
std::atomic<bool> any_write_locked{false};

}  // namespace

// Moves an inherited connection to `abandoned`, noting a write lock it holds
// (sqlite3_txn_state reads the connection's memory only).
void abandon(void* connection, sqlite3* handle, const std::string& path) {
  std::lock_guard<std::mutex> lock(abandoned_mutex);
  if (sqlite3_txn_state(handle, "main") == SQLITE_TXN_WRITE) {
    write_locked.push_back(path);
    any_write_locked = true;
  }
  abandoned.push_back(connection);
}

bool write_locked_here(const std::string& path) {
  if (!any_write_locked) return false;
  std::lock_guard<std::mutex> lock(abandoned_mutex);
  return std::find(write_locked.begin(), write_locked.end(), path) != write_locked.end();
}

}  // namespace tfimm::detail
