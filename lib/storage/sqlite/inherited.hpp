// Connections a child process inherited through fork(): never used, never
// closed, kept for the life of the process.
#pragma once

#include <sqlite3.h>

#include <string>

namespace tfimm::detail {

// Keeps `connection` (owning `handle`) untouched for ever, noting a write
// lock it holds on `path`.
void abandon(void* connection, sqlite3* handle, const std::string& path);

// Whether this process keeps a write lock on `path` through a connection it
// abandoned: then it can never write that file.
bool write_locked_here(const std::string& path);

}  // namespace tfimm::detail
