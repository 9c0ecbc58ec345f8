// File-system facts the registry needs: path status, file system type.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tfimm/registry.hpp"

namespace tfimm::detail {

struct PathCheck {
  PathStatus status = PathStatus::Ok;
  bool is_symlink = false;
  std::string detail;
};

// The status a failed lookup with `err` proves: only ENOENT is Missing;
// EACCES and EPERM are NotAccessible, ENOTDIR NotADirectory, the rest Error.
PathStatus status_from_errno(int err);

// lstat/stat of `path`, without following anything more than stat does.
PathCheck inspect_path(const std::string& path);

// inspect_path() of dir + "/" + names[i] for every i, by listing `dir` once
// instead of an lstat per path. A listing can prove that a name exists, never
// that it does not: a case-insensitive share lists "ResNet18" for "resnet18",
// an automount directory lists nothing. So the indices of names the listing
// does not show go to `unlisted`, their checks unspecified, for the caller to
// look up with inspect_path(). A symlink (or an entry of unknown type) is
// checked with inspect_path here. Returns false, with `checks` and `unlisted`
// unspecified, when `dir` cannot be listed (missing, unreadable, an I/O
// error); the caller then looks up each path itself.
bool inspect_in_directory(const std::string& dir, const std::vector<std::string_view>& names,
                          std::vector<PathCheck>& checks, std::vector<std::size_t>& unlisted);

// The file system type name of `path` or its nearest existing parent
// ("ext4", "nfs", ...; "0x..." when unknown) and whether it is a network
// file system, ignoring $TFIMM_NETWORK_FS.
struct FsType {
  std::string name;
  bool network = false;
};
FsType filesystem_type(const std::string& path);

// Milliseconds since the Unix epoch, from the system clock.
Timestamp now_ms();

}  // namespace tfimm::detail
