// Writing a whole output file (what `export FILE` writes) without
// destroying what FILE is: a symlink stays a symlink, a file keeps its mode,
// owner and group, and a device, FIFO or /dev/fd/N is written to, never
// replaced.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace tfimm::tool {

// Whether `file` is this process's standard output (the same open file, as
// /dev/stdout or /dev/fd/1 is): then write to std::cout instead, so that
// nothing else printed there overwrites it. Touches no file; false when
// standard output is closed or `file` does not exist.
bool is_standard_output(const std::string& file);

// Writes `content` to `file`:
// - a regular file, or a symlink (chain) that ends at one, is replaced
//   atomically beside the final target: a temporary file with the target's
//   mode, owner and group, fsynced, renamed over the target, and the
//   directory fsynced; a reader sees the old file or the whole new one. A
//   regular file reached through a /proc link (/dev/fd/N) is truncated and
//   written in place, since its name is only a handle;
// - a path that does not exist becomes a new file (mode 0666 & ~umask), the
//   same way;
// - a FIFO or a character device is opened and written to, never replaced.
// Throws UsageError naming the file and the reason, with nothing changed,
// for a dangling symlink, a directory, a block device, a missing parent
// directory, a file whose owner this user could not keep, and any failed
// write (then the old file is intact, except for a device or FIFO, which
// has no old content to keep).
void write_output_file(const std::string& file, const std::string& content);

// The same, with the content written by `produce` as it goes (an export of
// any size, never held whole). What `produce` throws propagates, with the
// old file intact (except for a device or FIFO).
using OutputProducer = std::function<void(std::ostream&)>;
void write_output_file(const std::string& file, const OutputProducer& produce);

}  // namespace tfimm::tool
