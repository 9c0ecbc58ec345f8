// The neutral error taxonomy of the storage layer: each backend's error.cpp
// maps its native codes to a Failure, and raise() turns that into the
// library's RegistryError kinds, with one wording for every backend. The
// advice that names the tool's options is added by the tool.
#pragma once

#include <chrono>
#include <string>

namespace tfimm::detail {

struct Failure {
  enum class Kind {
    Busy,                // another writer held the lock past the busy timeout
    ReadOnly,            // this process may not write the registry
    ReadOnlyFileSystem,  // nobody may write it where it is
    Corrupt,             // the stored registry is damaged
    Full,                // a write did not fit (disk, quota, size limit)
    CannotOpen,          // the registry could not be reached or opened
    Other,               // anything else, with the backend's words
  };
  Kind kind = Kind::Other;
  std::string where;      // the store's display name
  std::string operation;  // a phrase before "in <where>": "record history in"
  std::string detail;     // the backend's words (why it cannot open, its error text)
  std::chrono::milliseconds busy_timeout{0};  // for Busy
};

// Throws the RegistryError kind for `failure`; nothing was changed.
[[noreturn]] void raise(const Failure& failure);

}  // namespace tfimm::detail
