// One SQLite connection to a registry file, with its kept statements.
#pragma once

#include <sqlite3.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "storage/sqlite/sqlite_store.hpp"

namespace tfimm::detail {

struct SqliteStore::Connection {
  Connection(const std::string& path, int flags, std::chrono::milliseconds busy)
      : db(path, flags), busy_timeout(busy) {
    wait_when_busy(true);
  }
  SQLite::Database db;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> statements;

  // The value of one setting as last read outside a write, and the data
  // version it was read at (SqliteStore::lookup).
  struct CachedSetting {
    bool valid = false;
    std::string key;
    std::optional<std::string> value;
    unsigned version = 0;
  } cached_setting;

  // SQLite's counter of changes to the file as this connection has seen
  // them: it moves with every commit, by this connection or any other, in
  // this process or another (unlike PRAGMA data_version, which ignores this
  // connection's own). Read without running a statement.
  unsigned data_version() {
    unsigned version = 0;
    sqlite3_file_control(db.getHandle(), "main", SQLITE_FCNTL_DATA_VERSION, &version);
    return version;
  }
  std::chrono::milliseconds busy_timeout;
  std::chrono::steady_clock::time_point busy_since;

  // While another connection holds the lock, retry for up to busy_timeout
  // (busy.cpp). Off: fail at once with SQLITE_BUSY.
  void wait_when_busy(bool on);
  static int on_busy(void* self, int attempt);

  // A prepared statement, kept for the life of the connection.
  SQLite::Statement& prepare(const char* sql) {
    auto& slot = statements[sql];
    if (!slot) slot = std::make_unique<SQLite::Statement>(db, sql);
    return *slot;
  }
};

}  // namespace tfimm::detail
