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

// lstat/stat of `path`, without following anything more than stat does.
PathCheck inspect_path(const std::string& path);

// inspect_path() of dir + "/" + names[i] for every i, by listing `dir` once
// instead of an lstat per path: a name absent from the listing is Missing, a
// symlink (or an entry of unknown type) is checked with inspect_path. Returns
// false, with `checks` unspecified, when the listing cannot answer for the
// children (e.g. `dir` is searchable but not readable); the caller then
// checks each path itself.
bool inspect_in_directory(const std::string& dir, const std::vector<std::string_view>& names,
                          std::vector<PathCheck>& checks);

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
