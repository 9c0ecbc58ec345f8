// The JSON backup format of a registry (`tfimm-cache export` / `import`):
//
//   {
//     "format": "tfimm-cache-export",
//     "version": 1,
//     "cache_dir": "/data/cache" | null,
//     "models": [ {"name": "resnet18", "path": "/data/w/resnet18",
//                  "locked": false, "lock_reason": ""}, ... ]
//   }
//
// "locked" and "lock_reason" are optional on input. A path that is not valid
// UTF-8 is written as "path_hex" (or "cache_dir_hex"), its bytes in hex,
// instead of "path", so that every path survives the round trip byte for byte.
#pragma once

#include <string>
#include <string_view>

#include "tfimm/registry.hpp"

namespace tfimm {

// Version of the export format written by to_json().
inline constexpr int kExportFormatVersion = 1;

// The snapshot as pretty-printed JSON, models sorted by name.
std::string to_json(const Snapshot& snapshot);

// Parses an export file. Throws InvalidInput naming the first problem (not
// JSON, wrong format or version, a record without a name, a bad name or
// path, a duplicate name). Paths are normalised.
Snapshot parse_snapshot(std::string_view text);

}  // namespace tfimm
