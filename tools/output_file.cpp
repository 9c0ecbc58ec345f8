#include "output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <streambuf>
#include <vector>

#include "context.hpp"
#include "output.hpp"

namespace tfimm::tool {

namespace {

std::string errno_text(int error) { return std::strerror(error); }

std::string dir_of(const std::string& file) {
  auto slash = file.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return file.substr(0, slash);
}

[[noreturn]] void refuse(const std::string& file, const std::string& why) {
  throw UsageError("cannot write " + printable(file) + ": " + why + "; nothing was changed");
}

// A stream buffer over a descriptor that keeps the errno of the first
// failed write (the stream then fails, and nothing more is written).
class FdBuf final : public std::streambuf {
 public:
  explicit FdBuf(int fd) : fd_(fd), buf_(65536) { setp(buf_.data(), buf_.data() + buf_.size()); }
  int error() const noexcept { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (drain() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() == 0 ? 0 : -1; }

 private:
  int drain() {
    if (error_ == 0) {
      const std::size_t n = static_cast<std::size_t>(pptr() - pbase());
      std::size_t written = 0;
      while (written < n) {
        const ssize_t w = ::write(fd_, pbase() + written, n - written);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          error_ = errno;
          break;
        }
        written += static_cast<std::size_t>(w);
      }
    }
    setp(buf_.data(), buf_.data() + buf_.size());
    return error_;
  }
  int fd_;
  std::vector<char> buf_;
  int error_ = 0;
};

// Runs `produce` into `fd`; 0, or the errno of the first failed write.
int write_all(int fd, const OutputProducer& produce) {
  FdBuf buf(fd);
  std::ostream out(&buf);
  produce(out);
  out.flush();
  return buf.error();
}

std::string read_link(const std::string& file, const std::string& link) {
  std::vector<char> buf(PATH_MAX + 1);
  const ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size());
  if (n < 0)
    refuse(file, "cannot read the symbolic link " + printable(link) + ": " + errno_text(errno));
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

// Whether `dir` is inside /proc, where a link such as /proc/self/fd/3 is a
// handle on an open file and its text may name no file at all.
bool in_proc(const std::string& dir) {
  char* real = ::realpath(dir.c_str(), nullptr);
  if (real == nullptr) return false;
  const bool proc = std::strncmp(real, "/proc/", 6) == 0;
  std::free(real);
  return proc;
}

struct Target {
  std::string path;  // the file the chain of symbolic links from `file` ends at
  bool handle;       // reached through a /proc link: write in place, never rename
};

// Follows symbolic links from `file`, a name of an existing regular file,
// to the file itself, so that the link survives and its target is updated.
Target final_target(const std::string& file) {
  std::string path = file;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) refuse(file, errno_text(errno));
    if (!S_ISLNK(st.st_mode)) return {path, false};
    if (in_proc(dir_of(path))) return {path, true};
    std::string link = read_link(file, path);
    if (link.empty() || link.front() != '/') link = dir_of(path) + "/" + link;
    path = link;
  }
  refuse(file, errno_text(ELOOP));
}

// Writes into an existing file that must not be replaced: a FIFO, a
// character device, a file reached through /proc. `flags` adds O_TRUNC for
// a regular file.
void write_in_place(const std::string& file, const OutputProducer& content, int flags) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | flags);
  if (fd < 0) refuse(file, errno_text(errno));
  int error = 0;
  try {
    error = write_all(fd, content);
  } catch (...) {
    ::close(fd);
    throw;
  }
  // A FIFO or a terminal cannot be synced (EINVAL); there is no file to keep.
  if (error == 0 && ::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) error = errno;
  if (::close(fd) != 0 && error == 0 && errno != EINTR) error = errno;
  if (error != 0) {
    throw UsageError("cannot write " + printable(file) + ": " + errno_text(error));
  }
}

// Replaces the regular file `target` (or creates it, when `existing` is
// null) with `content`, atomically: a temporary file beside it with the
// same mode, owner and group, synced, renamed over it, and the directory
// synced. `file` is the name the user gave, for messages.
void replace_atomically(const std::string& file, const std::string& target,
                        const struct stat* existing, const OutputProducer& content) {
  const std::string dir = dir_of(target);
  std::string temp = target + ".tmp-XXXXXX";
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      refuse(file, "the directory " + printable(dir) + " does not exist");
    }
    refuse(file, "cannot create a file in " + printable(dir) + ": " + errno_text(error));
  }
  temp = name.data();
  const auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(temp.c_str());
    refuse(file, why);
  };
  mode_t mode = 0;
  if (existing != nullptr) {
    struct stat made {};
    if (::fstat(fd, &made) != 0) fail(errno_text(errno));
    if ((made.st_uid != existing->st_uid || made.st_gid != existing->st_gid) &&
        ::fchown(fd, existing->st_uid, existing->st_gid) != 0) {
      fail("it belongs to uid " + std::to_string(existing->st_uid) + ", gid " +
           std::to_string(existing->st_gid) +
           ", which a new file written by this user cannot keep (" + errno_text(errno) +
           "); `tfimm-cache export > FILE` writes into the file in place");
    }
    mode = existing->st_mode & 07777;
  } else {
    // mkstemp makes the file 0600; give it the mode a new file would get.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    mode = 0666 & ~mask;
  }
  // After fchown, which clears the set-user-ID and set-group-ID bits.
  if (::fchmod(fd, mode) != 0) fail("chmod: " + errno_text(errno));
  int write_error = 0;
  try {
    write_error = write_all(fd, content);
  } catch (...) {
    // What the producer threw (the registry could not be read): the old
    // file stays as it was.
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  if (write_error != 0) fail(errno_text(write_error));
  if (::fsync(fd) != 0) fail("fsync: " + errno_text(errno));
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    refuse(file, "close: " + errno_text(error));
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    refuse(file, errno_text(error));
  }
  // Until the directory is synced the rename may not survive a crash.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0 || ::fsync(dir_fd) != 0) {
    const int error = errno;
    if (dir_fd >= 0) ::close(dir_fd);
    throw UsageError("cannot write " + printable(file) + ": the new file is in place but " +
                     printable(dir) + " could not be synced to disk (" + errno_text(error) + ")");
  }
  ::close(dir_fd);
}

}  // namespace

bool is_standard_output(const std::string& file) {
  struct stat out {};
  struct stat st {};
  if (::fstat(STDOUT_FILENO, &out) != 0 || ::stat(file.c_str(), &st) != 0) return false;
  return out.st_dev == st.st_dev && out.st_ino == st.st_ino;
}

void write_output_file(const std::string& file, const std::string& content) {
  write_output_file(file, [&](std::ostream& out) { out << content; });
}

void write_output_file(const std::string& file, const OutputProducer& content) {
  if (file.empty()) {
    throw UsageError(
        "cannot export to an empty file name; give a file name, or - for standard "
        "output");
  }
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    const int error = errno;
    struct stat link {};
    if (error == ENOENT && ::lstat(file.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      refuse(file, "it is a symbolic link to " + printable(read_link(file, file)) +
                       ", which does not exist");
    }
    if (error != ENOENT) refuse(file, errno_text(error));
    replace_atomically(file, file, nullptr, content);
    return;
  }
  if (S_ISDIR(st.st_mode)) refuse(file, "it is a directory; give a file name");
  if (S_ISBLK(st.st_mode)) refuse(file, "it is a block device");
  if (!S_ISREG(st.st_mode)) {
    write_in_place(file, content, 0);  // a FIFO, a terminal, /dev/null
    return;
  }
  const Target target = final_target(file);
  if (target.handle) {
    write_in_place(file, content, O_TRUNC);
    return;
  }
  replace_atomically(file, target.path, &st, content);
}

}  // namespace tfimm::tool
