// A VFS that passes every call through to SQLite's own "unix" VFS and logs,
// after each real call returns, what a power loss could undo: every write
// and truncate by file and offset, every successful sync, file creation and
// deletion, and directory syncs (SQLite's, through the unix VFS's
// openDirectory system call). The model of SQLite's src/test6.c crash
// simulation and RocksDB's FaultInjectionTestFS, but as a log replayed
// offline (crash_states.hpp) instead of a crash at run time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace powerloss {

enum class OpKind : std::uint8_t {
  Write,     // file (inode), offset, bytes
  Truncate,  // file (inode), new size in `offset`
  Sync,      // file (inode): everything written to it before is durable
  Create,    // name, file (a new inode)
  Delete,    // name
  DirSync,   // the directory: every create and delete before is durable
  Begin,     // the workload's thread `file` starts API call `offset`
  Ack,       // API call `offset` of thread `file` returned: acknowledged
};
constexpr int kOpKinds = 8;
const char* to_string(OpKind kind);

struct Op {
  OpKind kind;
  std::uint32_t file = 0;  // inode number (Write, Truncate, Sync, Create)
  std::uint32_t name = 0;  // index into Log::names (Create, Delete)
  std::int64_t offset = 0;
  std::uint32_t length = 0;
  std::size_t data = 0;  // offset of the written bytes in Log::bytes
};

struct Log {
  std::vector<Op> ops;
  std::vector<unsigned char> bytes;
  std::vector<std::string> names;  // base names of the files in the directory
  std::uint32_t inodes = 0;
  std::size_t count(OpKind kind) const;
};

// Registers the recording VFS as the default VFS (before anything opens a
// database). Only files in `directory` are logged; everything else passes
// through unlogged.
void install(const std::string& directory);

// Starts a new, empty log for files in `directory` (which must be empty) and
// returns the previous one.
Log restart(const std::string& directory);

// Workload events, in the same order as the I/O: call `call` of thread
// `group` begins (Begin) or returned (Ack).
void log_event(OpKind kind, std::int64_t call, std::uint32_t group = 0);

// While true, SQLite's directory syncs are skipped (the openDirectory
// system call fails, which SQLite takes as a file system without directory
// sync): a negative control.
void suppress_directory_syncs(bool on);

}  // namespace powerloss
