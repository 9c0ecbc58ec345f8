#include "access.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace tfimm::detail {
namespace {

std::string parent_of(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "/" : parent;
}

// The nearest of `path` and its parents that exists; `path` itself when
// nothing can be looked at.
std::string nearest_existing(std::string path) {
  struct stat st {};
  while (::stat(path.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR) && path != "/") {
    path = parent_of(path);
  }
  return path;
}

// Problems of the existing directory `dir` for creating files in it.
std::string existing_directory_problem(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return dir + " cannot be looked at (" + std::strerror(errno) + ")";
  }
  if (!S_ISDIR(st.st_mode)) return dir + " is not a directory";
  if (read_only_file_system(dir)) return dir + " is on a read-only file system";
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    return "this process cannot create files in " + dir + " (" + std::strerror(errno) + ")";
  }
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0 && vfs.f_bavail == 0) {
    return "the disk holding " + dir + " is full";
  }
  return {};
}

}  // namespace

bool read_only_file_system(const std::string& path) {
  struct statvfs vfs {};
  const std::string probe = nearest_existing(path);
  return ::statvfs(probe.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY) != 0;
}

std::string permission_problem(const std::string& path) {
  if (read_only_file_system(path)) return "it is on a read-only file system";
  // Effective ids: what the open itself will be judged by.
  if (::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0) {
    return std::string("this process cannot write it (") + std::strerror(errno) + ")";
  }
  // SQLite writes a registry through a -wal (or -journal) file beside it,
  // which it must be able to create when there is none.
  const std::string dir = parent_of(path);
  const bool sides_exist =
      ::access((path + "-wal").c_str(), F_OK) == 0 && ::access((path + "-shm").c_str(), F_OK) == 0;
  if (!sides_exist && ::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    return "this process cannot create the -wal and -shm files SQLite needs in " + dir + " (" +
           std::strerror(errno) + ")";
  }
  return {};
}

std::string write_problem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) {
      return path + " cannot be looked at (" + std::strerror(errno) + ")";
    }
    const std::string holder = nearest_existing(parent_of(path));
    const std::string problem = existing_directory_problem(holder);
    return problem.empty() ? problem : "it cannot be created: " + problem;
  }
  if (!S_ISREG(st.st_mode)) return "it is not a regular file";
  if (auto problem = permission_problem(path); !problem.empty()) return problem;
  struct statvfs vfs {};
  if (::statvfs(path.c_str(), &vfs) == 0 && vfs.f_bavail == 0) {
    return "the disk holding it is full";
  }
  return {};
}

std::string directory_problem(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return existing_directory_problem(dir);
  if (errno != ENOENT && errno != ENOTDIR)
    return dir + " cannot be looked at (" + std::strerror(errno) + ")";
  const std::string problem = existing_directory_problem(nearest_existing(parent_of(dir)));
  return problem.empty() ? problem : "it cannot be created: " + problem;
}

}  // namespace tfimm::detail
