// File-system facts the registry needs: path status, file system type.
#pragma once

#include <string>

#include "tfimm/registry.hpp"

namespace tfimm::detail {

struct PathCheck {
  PathStatus status = PathStatus::Ok;
  bool is_symlink = false;
  std::string detail;
};

// lstat/stat of `path`, without following anything more than stat does.
PathCheck inspect_path(const std::string& path);

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
