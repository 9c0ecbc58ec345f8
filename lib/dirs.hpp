// Precedence rules for the cache directory and the registry file.
#pragma once

#include <optional>
#include <string>

#include "tfimm/registry.hpp"

namespace tfimm::detail {

// The cache directory from the process override, the registry's stored
// setting `stored` (already normalised), and the environment.
CacheDir resolve_cache_dir(const std::optional<std::string>& stored);

// Only the path resolve_cache_dir(stored) would choose, without looking at
// (or normalising) the layers below the winner: the lookup fast path.
std::string cache_dir_path(const std::optional<std::string>& stored);

// $NAME when set and not empty.
std::optional<std::string> env_value(const char* name);

}  // namespace tfimm::detail
