#include "fs.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "quote.hpp"
#include "tfimm/paths.hpp"

namespace tfimm {
namespace detail {

PathStatus status_from_errno(int err) {
  switch (err) {
    case ENOENT:
      return PathStatus::Missing;
    case EACCES:
    case EPERM:
      return PathStatus::NotAccessible;
    case ENOTDIR:
      return PathStatus::NotADirectory;
    default:
      return PathStatus::Error;
  }
}

namespace {

struct KnownFs {
  unsigned long magic;
  const char* name;
  bool network;
};

// Magic numbers from linux/magic.h and the file systems' own headers.
constexpr KnownFs kKnownFs[] = {
    {0xEF53, "ext4", false},      {0x58465342, "xfs", false},     {0x9123683E, "btrfs", false},
    {0x01021994, "tmpfs", false}, {0x794C7630, "overlay", false}, {0x2FC12FC1, "zfs", false},
    {0x4D44, "vfat", false},      {0x5346544E, "ntfs", false},    {0xF2F52010, "f2fs", false},
    {0x858458F6, "ramfs", false}, {0x6969, "nfs", true},          {0x517B, "smb", true},
    {0xFF534D42, "cifs", true},   {0xFE534D42, "smb2", true},     {0x0BD00BD0, "lustre", true},
    {0x00C36400, "ceph", true},   {0x47504653, "gpfs", true},     {0x01021997, "9p", true},
    {0x5346414F, "afs", true},    {0x6B414653, "kafs", true},     {0x73757245, "coda", true},
    {0x564C, "ncp", true},        {0x7461636F, "ocfs2", true},    {0x01161970, "gfs2", true},
    {0x65735546, "fuse", true},   {0x19830326, "beegfs", true},   {0xAAD7AAEA, "panfs", true},
    {0x013111A8, "ibrix", true},
};

}  // namespace

PathCheck inspect_path(const std::string& path) {
  PathCheck check;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    check.status = status_from_errno(err);
    if (check.status != PathStatus::Missing) check.detail = std::strerror(err);
    return check;
  }
  if (!S_ISLNK(st.st_mode)) return check;
  check.is_symlink = true;
  std::string target(4096, '\0');
  const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
  if (n >= 0) target.resize(static_cast<std::size_t>(n));
  check.detail = n >= 0 ? target : "";
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    check.status = err == ENOENT ? PathStatus::DanglingLink : status_from_errno(err);
    if (err != ENOENT) {
      check.detail +=
          (check.detail.empty() ? "" : " ") + std::string("(") + std::strerror(err) + ")";
    }
  }
  return check;
}

bool inspect_in_directory(const std::string& dir, const std::vector<std::string_view>& names,
                          std::vector<PathCheck>& checks, std::vector<std::size_t>& unlisted) {
  checks.assign(names.size(), PathCheck{});
  unlisted.clear();
  // Even a missing directory is left to a lookup of each path: on an
  // automount or a flaky share the directory's own error says nothing
  // certain about a child.
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return false;
  std::unordered_map<std::string_view, std::vector<std::size_t>> wanted;
  wanted.reserve(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) wanted[names[i]].push_back(i);
  std::vector<bool> found(names.size(), false);
  int err = 0;
  while (true) {
    errno = 0;
    const dirent* entry = ::readdir(listing);
    if (entry == nullptr) {
      err = errno;
      break;
    }
    const auto it = wanted.find(entry->d_name);
    if (it == wanted.end()) continue;
    for (const std::size_t i : it->second) {
      found[i] = true;
      if (entry->d_type == DT_LNK || entry->d_type == DT_UNKNOWN) {
        checks[i] = inspect_path(dir + "/" + std::string(names[i]));
      }
    }
  }
  ::closedir(listing);
  if (err != 0) return false;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!found[i]) unlisted.push_back(i);
  }
  return true;
}

FsType filesystem_type(const std::string& path) {
  std::string probe = path;
  struct statfs sf {};
  while (::statfs(probe.c_str(), &sf) != 0) {
    if (probe == "/" || probe.empty()) return {"unknown", false};
    const auto slash = probe.find_last_of('/');
    probe = slash == 0 || slash == std::string::npos ? "/" : probe.substr(0, slash);
  }
  const auto magic = static_cast<unsigned long>(sf.f_type) & 0xFFFFFFFFul;
  for (const auto& fs : kKnownFs) {
    if (fs.magic == magic) return {fs.name, fs.network};
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%lx", magic);
  return {buf, false};
}

Timestamp now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace detail

std::string to_string(PathStatus status) {
  switch (status) {
    case PathStatus::Ok:
      return "ok";
    case PathStatus::Missing:
      return "missing";
    case PathStatus::DanglingLink:
      return "dangling_link";
    case PathStatus::NotAccessible:
      return "not_accessible";
    case PathStatus::NotADirectory:
      return "not_a_directory";
    case PathStatus::Error:
      return "error";
    case PathStatus::OtherHost:
      return "other_host";
  }
  return "error";
}

PathStatus check_path(const std::string& path, std::string* detail) {
  auto check = detail::inspect_path(path);
  if (detail != nullptr) *detail = check.detail;
  return check.status;
}

bool is_stale(PathStatus status) noexcept {
  return status == PathStatus::Missing || status == PathStatus::DanglingLink ||
         status == PathStatus::NotADirectory;
}

bool on_network_fs(const std::string& path, std::string* fs_type) {
  const auto type = detail::filesystem_type(path);
  if (fs_type != nullptr) *fs_type = type.name;
  const char* forced = std::getenv("TFIMM_NETWORK_FS");
  if (forced != nullptr && *forced != '\0') {
    const std::string value = forced;
    if (value == "1" || value == "yes" || value == "true") return true;
    if (value == "0" || value == "no" || value == "false") return false;
  }
  return type.network;
}

std::chrono::milliseconds parse_duration(const std::string& text) {
  const auto refuse = [&](const std::string& why) {
    return InvalidInput("invalid duration " + detail::quote(text) + ": " + why +
                        " (examples: 30s, 15m, 12h, 7d, 2w)");
  };
  if (text.empty()) throw refuse("it is empty");
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) throw refuse("it must start with a whole number");
  if (digits > 9) throw refuse("the number is too large");
  if (digits == text.size()) throw refuse("a unit is missing");
  const std::string unit = text.substr(digits);
  const long long n = std::stoll(text.substr(0, digits));
  long long seconds_per_unit = 0;
  if (unit == "s") {
    seconds_per_unit = 1;
  } else if (unit == "m") {
    seconds_per_unit = 60;
  } else if (unit == "h") {
    seconds_per_unit = 3600;
  } else if (unit == "d") {
    seconds_per_unit = 86400;
  } else if (unit == "w") {
    seconds_per_unit = 7 * 86400;
  } else {
    throw refuse("unknown unit " + detail::quote(unit));
  }
  return std::chrono::milliseconds(n * seconds_per_unit * 1000);
}

}  // namespace tfimm
