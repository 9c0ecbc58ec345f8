#include "storage/sqlite/durability.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "tfimm/errors.hpp"

namespace tfimm::detail {

TestingHooks& testing_hooks() noexcept {
  static TestingHooks hooks;
  return hooks;
}

namespace {

int checkpoint_frames() {
  const int frames = testing_hooks().checkpoint_frames;
  return frames > 0 ? frames : kCheckpointFrames;
}

// SQLite's WAL-reset bug (https://sqlite.org/wal.html#walresetbug, present
// from 3.7.0, fixed in 3.51.3; Debian 12 ships 3.40.1): a checkpoint
// completes, a second checkpoint starts, and while it starts a third
// connection commits a transaction that resets the WAL to its beginning;
// the second checkpoint misses the reset, and a later checkpoint skips
// frames of a committed transaction: the database is corrupt. Many writers
// each checkpointing automatically (SQLite's default, PASSIVE, which takes
// no write lock) is exactly that pattern.
//
// The mitigation: no connection of the library checkpoints without holding
// the write lock, so no commit can reset the WAL under a checkpoint.
// Automatic checkpoints are off (the WAL hook below replaces SQLite's), and
// after a commit that leaves the WAL at checkpoint_frames() or more, the
// committing connection runs a FULL checkpoint, which takes the write lock
// first. A FULL checkpoint that cannot have the write lock in time would go
// on as PASSIVE without it; the busy handler below interrupts it instead,
// before it copies a page, and the next commit tries again.
struct CheckpointPolicy {
  BusyHandler busy = nullptr;  // the connection's own, restored afterwards
  void* busy_arg = nullptr;
  int next_try = 0;  // WAL frames at which the next checkpoint is tried
};

// How long a checkpoint waits for the write lock (and for readers of older
// snapshots) before it gives up until a later commit. It holds the write
// lock while it waits for readers, so the wait is short.
constexpr auto kCheckpointWait = std::chrono::milliseconds(20);

struct CheckpointWait {
  sqlite3* db;
  std::chrono::steady_clock::time_point deadline;
};

int wait_for_checkpoint(void* arg, int attempt) {
  auto& wait = *static_cast<CheckpointWait*>(arg);
  if (std::chrono::steady_clock::now() >= wait.deadline) {
    // Returning 0 alone would let a FULL checkpoint without the write lock
    // carry on as a PASSIVE one: stop it before it copies anything.
    sqlite3_interrupt(wait.db);
    return 0;
  }
  std::this_thread::sleep_for(
      std::chrono::microseconds(std::min(1000, 100 << std::min(attempt, 4))));
  return 1;
}

int after_commit(void* arg, sqlite3* db, const char* schema, int frames) {
  auto& policy = *static_cast<CheckpointPolicy*>(arg);
  if (frames < policy.next_try) return SQLITE_OK;
  CheckpointWait wait{db, std::chrono::steady_clock::now() + kCheckpointWait};
  sqlite3_busy_handler(db, &wait_for_checkpoint, &wait);
  const int rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_FULL, nullptr, nullptr);
  sqlite3_busy_handler(db, policy.busy, policy.busy_arg);
  // Done: the next writer starts the WAL over. Not done (the lock was busy,
  // or a reader still needs older frames): try again a little later.
  policy.next_try =
      rc == SQLITE_OK ? checkpoint_frames() : frames + std::max(1, checkpoint_frames() / 4);
  // The commit stands whatever the checkpoint did: never report it failed.
  return SQLITE_OK;
}

void no_op(sqlite3_context* context, int, sqlite3_value**) { sqlite3_result_null(context); }

void manage_checkpoints(sqlite3* db, BusyHandler busy, void* busy_arg) {
  auto* policy = new CheckpointPolicy{busy, busy_arg, checkpoint_frames()};
  // The policy lives as long as the connection: SQLite destroys a
  // function's user data when the connection closes (or the function is
  // registered again), and a WAL hook has no destructor of its own.
  const int rc = sqlite3_create_function_v2(
      db, "tfimm_checkpoint_policy", 0, SQLITE_UTF8, policy, &no_op, nullptr, nullptr,
      [](void* p) { delete static_cast<CheckpointPolicy*>(p); });
  if (rc != SQLITE_OK) throw SQLite::Exception(db, rc);
  sqlite3_wal_hook(db, &after_commit, policy);
}

const char* synchronous_name(int level) {
  switch (level) {
    case 0:
      return "OFF";
    case 1:
      return "NORMAL";
    case 2:
      return "FULL";
    default:
      return "EXTRA";
  }
}

void sync_directory(const std::filesystem::path& dir, std::error_code& ec) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) ec.assign(errno, std::generic_category());
  if (fd >= 0) ::close(fd);
}

}  // namespace

void prepare_connection(SQLite::Database& db, const std::string& path, bool migrating,
                        BusyHandler busy, void* busy_arg) {
  manage_checkpoints(db.getHandle(), busy, busy_arg);
  if (migrating) require_durable(db, path);
  if (testing_hooks().after_prepare != nullptr) testing_hooks().after_prepare(db.getHandle());
}

void require_durable(SQLite::Database& db, const std::string& path) {
  const int synchronous = db.execAndGet("PRAGMA synchronous").getInt();
  const std::string mode = db.execAndGet("PRAGMA journal_mode").getString();
  std::string problem;
  if (synchronous < 2) {
    problem = std::string("PRAGMA synchronous is ") + synchronous_name(synchronous) +
              " on its connection although tfimm-cache set it to FULL";
  } else if (mode != "wal" && mode != "delete" && mode != "truncate" && mode != "persist") {
    problem = "its journal mode is " + mode + ", which tfimm-cache did not ask for";
  }
  if (problem.empty() || testing_hooks().skip_durability_check) return;
  throw RegistryError(path, "refusing to write to registry " + path + ": " + problem +
                                ", so a change reported as done could be lost or corrupt the "
                                "file in a power failure; nothing was changed. Use a build of "
                                "SQLite that keeps PRAGMA synchronous=FULL and the journal mode "
                                "(no extension that changes them)");
}

void create_directories_durably(const std::filesystem::path& dir, std::error_code& ec) {
  ec.clear();
  // The missing directories, outermost first.
  std::vector<std::filesystem::path> missing;
  for (auto p = dir; !p.empty() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  if (ec) return;
  std::filesystem::create_directories(dir, ec);
  if (ec) return;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    sync_directory(*it, ec);
    if (!ec) sync_directory(it->has_parent_path() ? it->parent_path() : ".", ec);
    if (ec) return;
  }
}

}  // namespace tfimm::detail
