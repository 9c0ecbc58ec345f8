// What the files of a registry say about how it may be opened: room left on
// the disk, changes waiting beside it, whether it is read as it is on disk.
#pragma once

#include <string>

#include "storage/sqlite/header.hpp"

namespace tfimm::detail {

// Too little room to create SQLite's -wal and -shm files and write a little.
bool nearly_full(const std::string& path);
// A non-empty -wal or a -journal beside `path`.
bool has_changes_beside(const std::string& path);
// Whether the existing registry `path` with header `h` is read as SQLite's
// immutable (see file_state.cpp).
bool only_readable_as_is(const std::string& path, const Header& h, const std::string& cannot_write);
// A WAL file with neither -wal nor -journal beside it.
bool untouched(const std::string& path, const Header& h);
// An SQLite URI for `path` with `query`.
std::string sqlite_uri(const std::string& path, const char* query);

}  // namespace tfimm::detail
