// SQLite's errors, mapped to the library's kinds of RegistryError.
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <SQLiteCpp/Exception.h>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "access.hpp"
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
           " run any tfimm-cache command on it once, or "
           "give read-only users a copy made with `tfimm-cache export`";
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
  // Every operation reads as a phrase with the registry's path after it:
  // "could not record history in /srv/registry.db".
  const std::string doing = std::string(operation) + " " + path_;
  const auto on_read_only_file_system = [&] {
    return RegistryReadOnly(path_, "registry " + path_ +
                                       " is on a read-only file system; could not " + doing +
                                       ", nothing was changed. To change it, use a copy on a "
                                       "writable file system");
  };
  switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw RegistryBusy(path_, "registry " + path_ +
                                    " is busy: another process held its lock for longer than "
                                    "the busy timeout of " +
                                    std::to_string(busy_timeout_.count()) + " ms, so this " +
                                    "process could not " + doing +
                                    "; nothing was changed. Retry, or raise the busy timeout");
    case SQLITE_READONLY:
    case SQLITE_PERM:
      if (read_only_file_system(path_)) throw on_read_only_file_system();
      throw RegistryReadOnly(path_, "registry " + path_ +
                                        " is read-only for this process (file or directory "
                                        "permissions); could not " +
                                        doing +
                                        ", nothing was changed. Ask its owner for write "
                                        "access, or use another registry with --registry");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      throw RegistryCorrupt(path_, "registry " + path_ + " is damaged (" + error.what() +
                                       "); could not " + doing +
                                       ", nothing was changed. Restore it from a backup made "
                                       "with `tfimm-cache export`, or move it aside");
    case SQLITE_FULL:
      throw RegistryFull(path_, "the disk holding registry " + path_ +
                                    " is full (or a quota or file-size limit was reached); "
                                    "could not " +
                                    doing + ", nothing was changed. Free space and retry");
    case SQLITE_CANTOPEN:
      if (read_only_file_system(path_)) throw on_read_only_file_system();
      throw RegistryError(path_, "cannot open registry " + path_ + ": " + open_problem(path_));
    case SQLITE_IOERR: {
      // SQLite does not always keep the system's reason (a file-size limit
      // reads as a plain write error), so name the likely ones.
      const int extended = sq->getExtendedErrorCode();
      // Anything but a read may be a write that did not fit: of the log, of
      // the -shm (made and grown when a connection opens), of the file.
      const bool writing = extended != SQLITE_IOERR_READ && extended != SQLITE_IOERR_SHORT_READ;
      throw RegistryError(path_, "could not " + doing + ": " + error.what() +
                                     (writing ? " (the disk may be full, or a quota or "
                                                "file-size limit reached)"
                                              : "") +
                                     "; nothing was changed");
    }
    default:
      throw RegistryError(path_, "could not " + doing + ": " + error.what());
  }
}

}  // namespace tfimm::detail
