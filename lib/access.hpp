// What this process may do with a file or directory, in words: the problems
// a write would run into, found before it is tried (for `doctor`).
#pragma once

#include <string>

namespace tfimm::detail {

// Whether the file system holding `path`, or its nearest existing parent, is
// mounted read-only.
bool read_only_file_system(const std::string& path);

// Why this process may not change the existing file `path`: a read-only
// file system, the file's permissions, or (when SQLite's -wal and -shm files
// are not there) a directory it cannot create them in. Empty when it may.
std::string permission_problem(const std::string& path);

// Why this process could not change the file `path` (or, when it does not
// exist yet, create it with its parent directories): a read-only file system,
// file or directory permissions, a parent that is not a directory, a full
// disk. Empty when nothing stands in the way. Looks only; creates nothing.
std::string write_problem(const std::string& path);

// Why this process could not use `dir` as a directory to create files in: it
// is not a directory, cannot be entered or written, sits on a read-only file
// system or a full disk. A directory that does not exist yet is judged by
// its nearest existing parent, which would have to hold it. Empty when none.
std::string directory_problem(const std::string& dir);

}  // namespace tfimm::detail
