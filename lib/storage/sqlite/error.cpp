// SQLite's error codes, mapped to the storage layer's neutral kinds
// (storage/errors.hpp).
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <SQLiteCpp/Exception.h>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "access.hpp"
#include "storage/errors.hpp"
#include "storage/sqlite/connection.hpp"

namespace tfimm::detail {
namespace {

// Why SQLite could not open `path`, in words, with the next step. SQLite
// keeps no system error for a failed open, so the file and its directory are
// asked again.
std::string open_problem(const std::string& path) {
  const auto dir = std::filesystem::path(path).parent_path().string();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return "its directory " + dir + " cannot be reached (" + std::strerror(errno) +
           "); check that it exists and is accessible";
  }
  if (::access(path.c_str(), R_OK) != 0 && errno != ENOENT) {
    const int err = errno;
    return std::string("the file cannot be read (") + std::strerror(err) + "); " +
           (err == EACCES || err == EPERM ? "ask its owner for read access"
                                          : "check the path and the file");
  }
  const std::string wal = path + "-wal";
  const std::string shm = path + "-shm";
  if (::access(shm.c_str(), F_OK) != 0 && ::access(dir.c_str(), W_OK | X_OK) != 0) {
    return "SQLite needs to create " + shm + " beside it to read a registry that has " + wal +
           ", and this process cannot create files in " + dir + " (" + std::strerror(errno) +
           "); let a user who can write " + dir +
           " open it once (any command does), or give read-only users an exported copy";
  }
  return "check that the file and its directory are accessible to this process";
}

}  // namespace

void SqliteStore::fail(const std::exception& error, const char* operation) {
  // Only SQLite's errors are translated; the library's own and anything
  // thrown by a caller's transaction body pass through unchanged.
  const auto* sq = dynamic_cast<const SQLite::Exception*>(&error);
  if (sq == nullptr) throw;
  int code = sq->getErrorCode() & 0xFF;
  // A full disk, a quota or a file-size limit can surface as an I/O error.
  const int os_error = conn_ ? sqlite3_system_errno(conn_->db.getHandle()) : 0;
  if (code == SQLITE_IOERR && (os_error == ENOSPC || os_error == EDQUOT || os_error == EFBIG)) {
    code = SQLITE_FULL;
  }
  // An error while opening keeps no system error at all; on a disk with no
  // space left the disk is the likely cause, and the one to name.
  struct statvfs vfs {};
  if ((code == SQLITE_IOERR || code == SQLITE_CANTOPEN) && os_error == 0 &&
      ::statvfs(path_.c_str(), &vfs) == 0 && vfs.f_bavail == 0) {
    code = SQLITE_FULL;
  }
  Failure f;
  f.where = path_;
  f.operation = operation;
  f.detail = error.what();
  f.busy_timeout = busy_timeout_;
  switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      f.kind = Failure::Kind::Busy;
      break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
      f.kind = read_only_file_system(path_) ? Failure::Kind::ReadOnlyFileSystem
                                            : Failure::Kind::ReadOnly;
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      f.kind = Failure::Kind::Corrupt;
      break;
    case SQLITE_FULL:
      f.kind = Failure::Kind::Full;
      break;
    case SQLITE_CANTOPEN:
      if (read_only_file_system(path_)) {
        f.kind = Failure::Kind::ReadOnlyFileSystem;
      } else {
        f.kind = Failure::Kind::CannotOpen;
        f.detail = open_problem(path_);
      }
      break;
    case SQLITE_IOERR: {
      // SQLite does not always keep the system's reason (a file-size limit
      // reads as a plain write error), so name the likely ones. Anything but
      // a read may be a write that did not fit: of the log, of the -shm (made
      // and grown when a connection opens), of the file.
      const int extended = sq->getExtendedErrorCode();
      const bool writing = extended != SQLITE_IOERR_READ && extended != SQLITE_IOERR_SHORT_READ;
      f.detail += std::string(writing ? " (the disk may be full, or a quota or "
                                        "file-size limit reached)"
                                      : "") +
                  "; nothing was changed";
      break;
    }
    default:
      break;
  }
  raise(f);
}

}  // namespace tfimm::detail
