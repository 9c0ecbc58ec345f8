// Whether the file open is still the one at the registry's path: deleted,
// replaced or (read as it is on disk) changed since it was opened.
#include <sys/stat.h>
#include <unistd.h>

#include "storage/sqlite/connection.hpp"
#include "storage/sqlite/durability.hpp"
#include "storage/sqlite/file_state.hpp"

namespace tfimm::detail {

// Whether a registry opened as immutable may have changed since: another
// process with write access may have written it through another mount or
// as another user (then a -wal file appears, or the file itself changes).
bool SqliteStore::snapshot_changed() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_ ||
      st.st_size != snapshot_size_ || st.st_mtim.tv_sec != snapshot_mtime_.tv_sec ||
      st.st_mtim.tv_nsec != snapshot_mtime_.tv_nsec) {
    return true;
  }
  return has_changes_beside(path_);
}

bool SqliteStore::still_at_path() const {
  struct stat st {};
  return ::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
}

void SqliteStore::check_identity() {
  if (depth_ > 0) return;  // inside a transaction: the file is locked
  // Before each read: has the open file been deleted or had another file
  // renamed over it? Either takes its last name away, which one fstat of the
  // handle shows, for about a third of the cost of a stat by path. Network
  // file systems cache attributes, so there the path is asked.
  struct stat st {};
  if (!network_fs_ && file_fd_ >= 0 && ::fstat(file_fd_, &st) == 0) {
    if (st.st_nlink > 0) return;
  } else if (still_at_path()) {
    return;
  }
  retire_connection();
}

void SqliteStore::close_file_handle() noexcept {
  if (file_fd_ >= 0) ::close(file_fd_);
  file_fd_ = -1;
}

void SqliteStore::retire_connection() {
  // Deleted or replaced while open: drop the connection to the old file so
  // that nothing is ever written into an unlinked file. First move what the
  // old file's write-ahead log holds into that old file and empty the log:
  // the log is found by name, and a next opener would otherwise lay the old
  // file's log over the file now at the path.
  // Only under the write lock, as every checkpoint of the library
  // (durability.hpp): one that went on without it while another connection
  // commits is the WAL-reset bug's pattern. If another writer holds the lock
  // past the busy timeout, nothing is copied and the log stays as it is.
  checkpoint_under_write_lock(conn_->db.getHandle(), "main", SQLITE_CHECKPOINT_TRUNCATE,
                              busy_timeout_, &Connection::on_busy, conn_.get());
  conn_.reset();
  close_file_handle();
}

}  // namespace tfimm::detail
