// The registry file before SQLite opens it: whether it exists, and what its
// 100-byte SQLite header says, so that a file that is not ours is refused
// untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tfimm/errors.hpp"

namespace tfimm::detail {

// PRAGMA application_id of a tfimm-cache registry: "tfim" in ASCII.
inline constexpr std::int32_t kApplicationId = 0x7466696D;

struct Header {
  bool sqlite = false;
  bool wal = false;  // the file says it is in WAL mode (write and read version 2)
  std::int32_t application_id = 0;
  std::int32_t user_version = 0;
  std::size_t size = 0;
};

// The refusal of an SQLite database of another application.
NotARegistry foreign_database(const std::string& path, std::int32_t app_id);

// Reads the header of `path`; throws NotARegistry for a file that is not an
// empty file or a registry, RegistryTooNew for a newer schema.
Header check_header(const std::string& path);

// Whether a registry file is at `path` (see header.cpp for what is an error).
bool registry_exists(const std::string& path);

}  // namespace tfimm::detail
