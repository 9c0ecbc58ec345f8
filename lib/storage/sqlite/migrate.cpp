// The schema of an SQLite registry: checked before use, migrated in
// numbered steps (migrations/sqlite/, embedded at build time), inspected
// without a change.
#include <SQLiteCpp/Statement.h>

#include "access.hpp"
#include "fs.hpp"
#include "migrations_embedded.hpp"
#include "storage/sqlite/connection.hpp"
#include "storage/sqlite/file_state.hpp"
#include "storage/sqlite/header.hpp"

namespace tfimm {

int schema_version() noexcept { return detail::kMigrations.back().version; }

namespace detail {

int SqliteStore::check_schema(Connection& c) {
  auto& db = c.db;
  // Look before writing anything: a foreign or damaged file is refused here.
  // One snapshot, so that another process's migration committing in between
  // cannot look like tables without our application id.
  int app_id = 0;
  int version = 0;
  int tables = 0;
  db.exec("BEGIN");
  try {
    app_id = db.execAndGet("PRAGMA application_id").getInt();
    version = db.execAndGet("PRAGMA user_version").getInt();
    tables = db.execAndGet("SELECT count(*) FROM sqlite_master").getInt();
    db.exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  if (app_id != kApplicationId && (app_id != 0 || tables > 0)) {
    throw foreign_database(path_, app_id);
  }
  if (version > schema_version()) {
    throw RegistryTooNew(path_,
                         "registry " + path_ + " was written by a newer tfimm-cache (schema " +
                             std::to_string(version) + "); this build knows schema " +
                             std::to_string(schema_version()) +
                             ". Upgrade tfimm-cache; the file was left unchanged",
                         version, schema_version());
  }
  return version;
}

void SqliteStore::migrate(Connection& c, int version) {
  auto& db = c.db;
  const bool read_only = sqlite3_db_readonly(db.getHandle(), "main") == 1;
  if (read_only) {
    throw RegistryReadOnly(path_, "registry " + path_ + " has schema " + std::to_string(version) +
                                      " and needs upgrading to " +
                                      std::to_string(schema_version()) +
                                      ", but it is read-only for this process. Migrate it "
                                      "as a user who can write it");
  }
  for (const auto& m : kMigrations) {
    if (m.version <= version) continue;
    db.exec("BEGIN IMMEDIATE");
    try {
      // Another process may have migrated while this one waited for the lock.
      version = db.execAndGet("PRAGMA user_version").getInt();
      if (version < m.version) {
        db.exec(std::string(m.sql));
        db.exec("PRAGMA application_id=" + std::to_string(kApplicationId));
        db.exec("PRAGMA user_version=" + std::to_string(m.version));
        SQLite::Statement record(db,
                                 "INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)");
        record.bind(1, m.version);
        record.bind(2, static_cast<std::int64_t>(now_ms()));
        record.exec();
        version = m.version;
      }
      db.exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
}

MigrationStatus inspect_migrations(const std::string& path) {
  MigrationStatus status;
  status.path = path;
  status.latest = schema_version();
  status.exists = registry_exists(path);
  if (status.exists) {
    const Header header = check_header(path);
    try {
      // With no -wal beside it no connection has the file open, and the
      // file holds everything: read it as it is, creating nothing. Otherwise
      // the -wal and -shm are there already; a read-write connection (the
      // file is never written by these reads) removes them again when it
      // closes last, which a read-only one cannot.
      const bool as_is =
          only_readable_as_is(path, header, permission_problem(path)) || untouched(path, header);
      SQLite::Database db(
          as_is ? sqlite_uri(path, "immutable=1") : path,
          as_is ? SQLite::OPEN_READONLY | SQLite::OPEN_URI : SQLite::OPEN_READWRITE);
      status.current = db.execAndGet("PRAGMA user_version").getInt();
      const int app_id = db.execAndGet("PRAGMA application_id").getInt();
      const int tables = db.execAndGet("SELECT count(*) FROM sqlite_master").getInt();
      if (app_id != kApplicationId && (app_id != 0 || tables > 0)) {
        throw foreign_database(path, app_id);
      }
      if (status.current > 0 && db.tableExists("schema_migrations")) {
        SQLite::Statement q(db,
                            "SELECT version, applied_at FROM schema_migrations ORDER BY version");
        while (q.executeStep()) {
          status.applied.emplace_back(q.getColumn(0).getInt(), q.getColumn(1).getInt64());
        }
      }
    } catch (const SQLite::Exception& e) {
      throw RegistryError(path, "cannot read the schema of registry " + path + ": " + e.what() +
                                    "; nothing was changed");
    }
  }
  for (const auto& m : kMigrations) {
    if (m.version > status.current) status.pending.push_back(m.version);
  }
  return status;
}

}  // namespace detail
}  // namespace tfimm
