// What makes a commit the library acknowledges survive a power loss, not
// only a killed process: every connection syncs at each commit, never uses
// a journal mode that loses commits, and checkpoints only while it holds
// the write lock (SQLite's WAL-reset bug, see durability.cpp); directories
// the library creates are synced with their parents.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <system_error>

struct sqlite3;

namespace SQLite {
class Database;
}

namespace tfimm::detail {

// SQLite's busy handler signature, to restore a connection's own handler.
using BusyHandler = int (*)(void*, int);

// Sets up a connection the library just opened (before it writes): turns
// SQLite's automatic checkpoints off and checkpoints itself after commits
// instead (see manage_checkpoints in durability.cpp), restoring `busy` /
// `busy_arg` as the connection's busy handler after each checkpoint. When
// `migrating` (the connection writes the schema next), require_durable();
// otherwise each write checks on its own (reads need no check). Throws
// RegistryError.
void prepare_connection(SQLite::Database& db, const std::string& path, bool migrating,
                        BusyHandler busy, void* busy_arg);

// Throws RegistryError, naming `path`, the setting and the next step, unless
// the connection commits durably: PRAGMA synchronous FULL (or EXTRA) and a
// journal mode that keeps commits across a crash (wal, delete, truncate,
// persist; never memory or off). Reads two pragmas; touches no file.
void require_durable(SQLite::Database& db, const std::string& path);

// std::filesystem::create_directories(), and each directory it creates is
// synced with its parent before it returns, so that a power loss cannot take
// away a directory under a registry that a returned call wrote to. Reports
// errors in `ec` as create_directories() does.
void create_directories_durably(const std::filesystem::path& dir, std::error_code& ec);

// Commits after which the WAL holds at least this many frames (pages)
// start a checkpoint: SQLite's default automatic-checkpoint threshold.
inline constexpr int kCheckpointFrames = 1000;

// Tests only (the power-loss harness; never set by the library):
// - checkpoint_frames, when > 0, replaces kCheckpointFrames, so that a short
//   workload goes through many checkpoints and WAL restarts;
// - after_prepare, when set, runs on every connection after
//   prepare_connection(), and skip_durability_check turns require_durable()
//   off: the harness's negative controls set PRAGMA synchronous=NORMAL past
//   the check, to prove that the harness sees the losses that follow.
struct TestingHooks {
  int checkpoint_frames = 0;
  void (*after_prepare)(sqlite3* db) = nullptr;
  bool skip_durability_check = false;
};
TestingHooks& testing_hooks() noexcept;

}  // namespace tfimm::detail
