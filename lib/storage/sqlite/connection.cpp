#include "storage/sqlite/connection.hpp"

#include <thread>

#include "storage/sqlite/changes_table.hpp"
#include "storage/sqlite/durability.hpp"
#include "storage/sqlite/file_state.hpp"
#include "tfimm/paths.hpp"

namespace tfimm::detail {

// Connection setup, in one place: every connection to a registry is made
// here, and is set up completely before it is used. Opens the file (as it is
// on disk when `snapshot`), installs the busy handler and the tfimm_changes
// table, refuses a foreign or newer file, makes every commit durable
// (synchronous=FULL, checked before any write; checkpoints only under the
// write lock: durability.hpp), migrates an older schema and sets the journal mode.
std::unique_ptr<SqliteStore::Connection> SqliteStore::connect(bool create, bool snapshot) {
  // Registry serialises every use of a connection (one mutex per Registry),
  // so SQLite's own per-connection mutex is redundant: without it each
  // sqlite3_* call skips a lock/unlock pair.
  int flags = SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX;
  if (create) flags |= SQLite::OPEN_CREATE;
  if (snapshot) flags = SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX | SQLite::OPEN_URI;
  auto c = std::make_unique<Connection>(snapshot ? sqlite_uri(path_, "immutable=1") : path_, flags,
                                        busy_timeout_);
  static const sqlite3_module module = changes_module();
  sqlite3_create_module(c->db.getHandle(), "tfimm_changes", &module, nullptr);
  const int version = check_schema(*c);
  c->db.exec("PRAGMA synchronous=FULL");
  const bool read_only = sqlite3_db_readonly(c->db.getHandle(), "main") == 1;
  prepare_connection(c->db, path_, !read_only && version < schema_version(), &Connection::on_busy,
                     c.get());
  if (version < schema_version()) {
    migrate(*c, version);
    set_journal_mode(*c);
  } else if (!read_only && !inspect_) {
    set_journal_mode(*c);
  }
  return c;
}

void SqliteStore::set_journal_mode(Connection& c) {
  auto& db = c.db;
  const std::string wanted = network_fs_ ? "delete" : "wal";
  if (db.execAndGet("PRAGMA journal_mode").getString() == wanted) return;
  // Changing the journal mode needs an exclusive lock, and SQLite's busy
  // handler would wait for it while holding a shared lock, which can
  // deadlock with another process doing the same or committing a migration.
  // So: no busy handler here, and short retries holding nothing in between.
  const auto deadline = std::chrono::steady_clock::now() + busy_timeout_;
  const std::string pragma = "PRAGMA journal_mode=" + wanted;
  c.wait_when_busy(false);
  std::string mode;
  for (unsigned attempt = 0;; ++attempt) {
    try {
      mode = db.execAndGet(pragma).getString();
    } catch (const SQLite::Exception& e) {
      if ((e.getErrorCode() & 0xFF) != SQLITE_BUSY && (e.getErrorCode() & 0xFF) != SQLITE_LOCKED) {
        c.wait_when_busy(true);
        throw;
      }
    }
    if (mode == wanted || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::microseconds(500 + (attempt % 8) * 700));
  }
  c.wait_when_busy(true);
  // Past the deadline the registry keeps its current journal mode, which is
  // safe, only less concurrent; `tfimm-cache doctor` shows it.
}

}  // namespace tfimm::detail
