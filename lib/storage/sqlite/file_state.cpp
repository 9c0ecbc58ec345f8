#include "storage/sqlite/file_state.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

namespace tfimm::detail {

// Too little room to create SQLite's -wal and -shm files (the -shm alone takes
// 32 KiB) and write a little.
bool nearly_full(const std::string& path) {
  struct statvfs vfs {};
  if (::statvfs(path.c_str(), &vfs) != 0) return false;
  constexpr unsigned long long kRoom = 128 << 10;
  return vfs.f_favail == 0 || static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize < kRoom;
}

bool has_changes_beside(const std::string& path) {
  struct stat st {};
  // A -wal with frames holds committed changes not yet in the file; a
  // -journal may be a hot one, whose transaction must be rolled back first.
  return (::stat((path + "-wal").c_str(), &st) == 0 && st.st_size > 0) ||
         ::stat((path + "-journal").c_str(), &st) == 0;
}

// Whether the registry at `path` (an existing file with header `h`) is to
// be read as it is on disk, as SQLite's immutable: a WAL file with nothing
// beside it, that this process could not have SQLite create or use the -wal
// and -shm files for (`cannot_write`: a read-only file system or directory,
// a file it cannot write; or a full disk). Such a file holds every committed change itself, so
// reading it so is exact; SQLite's normal open would fail there, or leave
// -wal and -shm files owned by this process behind. Never a file in
// rollback-journal mode: its writers change the file in place, which an
// immutable reader, taking no locks, could see half done.
bool only_readable_as_is(const std::string& path, const Header& h,
                         const std::string& cannot_write) {
  if (!h.wal || has_changes_beside(path)) return false;
  return !cannot_write.empty() || nearly_full(path);
}

// A WAL file with neither -wal nor -journal beside it: no connection has it
// open, and the file holds everything. Read as it is, it is read exactly and
// nothing is made beside it.
bool untouched(const std::string& path, const Header& h) {
  return h.wal && ::access((path + "-wal").c_str(), F_OK) != 0 &&
         ::access((path + "-journal").c_str(), F_OK) != 0;
}

// An SQLite URI for `path` with `query`: every byte that could end the path
// part of a URI ('?', '#', '%', ...) percent-encoded.
std::string sqlite_uri(const std::string& path, const char* query) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string uri = "file:";
  for (const char ch : path) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || std::strchr("/-._~", ch) != nullptr) {
      uri += ch;
    } else {
      uri += '%';
      uri += kHex[c >> 4];
      uri += kHex[c & 0xF];
    }
  }
  return uri + "?" + query;
}

}  // namespace tfimm::detail
