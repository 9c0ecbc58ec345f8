#include "storage/sqlite/header.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tfimm/registry.hpp"

namespace tfimm::detail {

namespace {

std::int32_t big_endian32(const unsigned char* p) {
  return static_cast<std::int32_t>((std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                   (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]});
}

std::string hex(std::int32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(value));
  return buf;
}

// What kind of file a mode is, for a refusal: "a directory", "a FIFO", ...
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Reads the 100-byte SQLite header without opening the file with SQLite, so
// a file that is not ours is refused before SQLite could touch it. Only a
// regular file is read: opening a FIFO would wait for a writer forever, and
// a device is never a registry. O_NONBLOCK makes that open return at once;
// the kind is then taken from the open file itself, not from an earlier
// look at the path.
Header read_header(const std::string& path) {
  Header h;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  struct stat st {};
  if (fd < 0) {
    // A socket cannot be opened at all (ENXIO): say what it is.
    const int err = errno;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      throw NotARegistry(path, "registry path " + path + " is " + file_kind(st.st_mode) +
                                   ", not a registry file; it was left unchanged. Use a "
                                   "regular file as the registry");
    }
    throw RegistryError(path, "cannot read registry " + path + ": " + std::strerror(err) +
                                  "; nothing was read or changed. Check the file's permissions "
                                  "and those of its directories");
  }
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const mode_t mode = st.st_mode;
    ::close(fd);
    throw NotARegistry(path, "registry path " + path + " is " + file_kind(mode) +
                                 ", not a registry file; it was left unchanged. Use a "
                                 "regular file as the registry");
  }
  std::array<unsigned char, 100> buf{};
  while (h.size < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + h.size, buf.size() - h.size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw RegistryError(path, "cannot read registry " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    h.size += static_cast<std::size_t>(n);
  }
  ::close(fd);
  static constexpr char kMagic[] = "SQLite format 3";
  h.sqlite = h.size == buf.size() && std::memcmp(buf.data(), kMagic, sizeof kMagic) == 0;
  if (h.sqlite) {
    h.wal = buf[18] == 2 && buf[19] == 2;
    h.user_version = big_endian32(&buf[60]);
    h.application_id = big_endian32(&buf[68]);
  }
  return h;
}

}  // namespace

NotARegistry foreign_database(const std::string& path, std::int32_t app_id) {
  return NotARegistry(path, "refusing to use " + path +
                                ": it is an SQLite database of another application (" +
                                (app_id != 0 ? "application_id " + hex(app_id)
                                             : std::string("tables but no registry schema")) +
                                "); it was left unchanged. Choose another file for the registry");
}

Header check_header(const std::string& path) {
  const Header h = read_header(path);
  if (h.size == 0) return h;  // an empty file: a new registry
  if (!h.sqlite) {
    throw NotARegistry(path, "refusing to use " + path +
                                 ": it is not an SQLite database, so not a tfimm-cache "
                                 "registry; it was left unchanged. Move it aside or choose "
                                 "another file for the registry");
  }
  if (h.application_id != 0 && h.application_id != kApplicationId) {
    throw foreign_database(path, h.application_id);
  }
  if (h.user_version > schema_version()) {
    throw RegistryTooNew(path,
                         "registry " + path + " was written by a newer tfimm-cache (schema " +
                             std::to_string(h.user_version) + "); this build knows schema " +
                             std::to_string(schema_version()) +
                             ". Upgrade tfimm-cache; the file was left unchanged",
                         h.user_version, schema_version());
  }
  return h;
}

// Whether a registry file is at `path`. Only a path that certainly names
// nothing answers no: a missing file or a parent that is not a directory.
// Anything else that stops the look (a directory that cannot be searched, a
// symlink loop) is an error, not an empty registry; so is a symbolic link to
// nothing, which is what an unmounted share under a link looks like.
bool registry_exists(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return true;
  const int err = errno;
  if (err == ENOENT && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    std::string target(4096, '\0');
    const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    target.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    throw RegistryError(path, "registry path " + path + " is a symbolic link to " + target +
                                  ", which does not exist (a share that is not mounted?); "
                                  "nothing was read or created. Create the file it points to, "
                                  "or use the registry's own path");
  }
  if (err == ENOENT || err == ENOTDIR) return false;
  throw RegistryError(path, "cannot look at registry " + path + ": " + std::strerror(err) +
                                "; nothing was read or changed. Check that this process can "
                                "search every directory above it");
}

}  // namespace tfimm::detail
