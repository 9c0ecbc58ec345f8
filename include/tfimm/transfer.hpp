// The JSON backup format of a registry (`tfimm-cache export` / `import`),
// version 2, keys in this order (the order export writes them):
//
//   {
//     "format": "tfimm-cache-export",
//     "version": 2,
//     "cache_dir": "/data/cache" | null,
//     "history": [ {"id": 1, "at": 1764600000000, "action": "set", "name": "resnet18",
//                   "old_path": null, "new_path": "/data/w/resnet18", "user": "ann",
//                   "host": "vm", "pid": 4242}, ... ],          (only with history)
//     "models": [ {"name": "resnet18", "path": "/data/w/resnet18", "locked": false,
//                  "lock_reason": "", "created_at": 1764600000000,
//                  "updated_at": 1764600000000, "missing_since": null}, ... ]
//   }
//
// Times are milliseconds since the Unix epoch. Every string that is not
// valid UTF-8 (JSON text is UTF-8) is written as its key + "_hex" with its
// bytes in hex instead ("path_hex", "lock_reason_hex", "cache_dir_hex",
// "user_hex", ...), so it survives byte for byte. Version 1 had only
// "format", "version", "cache_dir", "models" and, in a model, "name",
// "path", "locked", "lock_reason"; both versions are read. "locked",
// "lock_reason" and the three times are optional on input (the times go
// together: without them, the import's time).
#pragma once

#include <string>
#include <string_view>

#include "tfimm/registry.hpp"

namespace tfimm {

// Version of the export format written by to_json().
inline constexpr int kExportFormatVersion = 2;

// The snapshot as an export file, models sorted by name; a model without
// times gets the current time.
std::string to_json(const Snapshot& snapshot);

// Parses an export file of version 1 or 2 (its history, if any, is
// checked and left out). Throws InvalidInput naming the first problem (not
// JSON, wrong format or version, a record without a name, a bad name or
// path, a duplicate name). Paths are normalised.
Snapshot parse_snapshot(std::string_view text);

}  // namespace tfimm
