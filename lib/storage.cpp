#include "storage.hpp"

#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <array>
#include <boost/filesystem.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "fs.hpp"
#include "migrations_embedded.hpp"

namespace tfimm {

int schema_version() noexcept { return detail::kMigrations.back().version; }

namespace detail {
namespace {

constexpr const char* kModelColumns =
    "name, path, created_at, updated_at, locked, lock_reason, missing_since";

// Connections a child process inherited from its parent through fork(). SQLite
// forbids using (or closing) them in the child, so they are kept here,
// untouched and reachable, for the life of the process.
std::mutex abandoned_mutex;
std::vector<void*> abandoned;

Entry entry_from_row(SQLite::Statement& st) {
  Entry e;
  e.name = st.getColumn(0).getString();
  e.path = st.getColumn(1).getString();
  e.created_at = st.getColumn(2).getInt64();
  e.updated_at = st.getColumn(3).getInt64();
  e.locked = st.getColumn(4).getInt() != 0;
  e.lock_reason = st.getColumn(5).getString();
  if (!st.getColumn(6).isNull()) e.missing_since = st.getColumn(6).getInt64();
  return e;
}

// Resets a cached statement when the use ends, so that no read transaction
// stays open between calls.
class Use {
 public:
  explicit Use(SQLite::Statement& st) : st_(st) {}
  ~Use() {
    st_.tryReset();
    st_.clearBindings();
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  SQLite::Statement* operator->() { return &st_; }
  SQLite::Statement& operator*() { return st_; }

 private:
  SQLite::Statement& st_;
};

struct Header {
  bool sqlite = false;
  std::int32_t application_id = 0;
  std::int32_t user_version = 0;
  std::size_t size = 0;
};

std::int32_t big_endian32(const unsigned char* p) {
  return static_cast<std::int32_t>((std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                   (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]});
}

std::string hex(std::int32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(value));
  return buf;
}

NotARegistry foreign_database(const std::string& path, std::int32_t app_id) {
  return NotARegistry(path, "refusing to use " + path +
                                ": it is an SQLite database of another application (" +
                                (app_id != 0 ? "application_id " + hex(app_id)
                                             : std::string("tables but no registry schema")) +
                                "); it was left unchanged. Choose another file with --registry");
}

// Reads the 100-byte SQLite header without opening the file with SQLite, so
// a file that is not ours is refused before SQLite could touch it.
Header read_header(const std::string& path) {
  Header h;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw RegistryError(path, "cannot read registry " + path + ": " + std::strerror(errno));
  }
  std::array<unsigned char, 100> buf{};
  in.read(reinterpret_cast<char*>(buf.data()), buf.size());
  h.size = static_cast<std::size_t>(in.gcount());
  static constexpr char kMagic[] = "SQLite format 3";
  h.sqlite = h.size == buf.size() && std::memcmp(buf.data(), kMagic, sizeof kMagic) == 0;
  if (h.sqlite) {
    h.user_version = big_endian32(&buf[60]);
    h.application_id = big_endian32(&buf[68]);
  }
  return h;
}

void check_header(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw NotARegistry(path, "registry path " + path +
                                 " is a directory, not a registry file; point --registry or "
                                 "$TFIMM_REGISTRY at a file");
  }
  const Header h = read_header(path);
  if (h.size == 0) return;  // an empty file: a new registry
  if (!h.sqlite) {
    throw NotARegistry(path, "refusing to use " + path +
                                 ": it is not an SQLite database, so not a tfimm-cache "
                                 "registry; it was left unchanged. Move it aside or choose "
                                 "another file with --registry");
  }
  if (h.application_id != 0 && h.application_id != kApplicationId) {
    throw foreign_database(path, h.application_id);
  }
  if (h.user_version > schema_version()) {
    throw RegistryTooNew(path,
                         "registry " + path + " was written by a newer tfimm-cache (schema " +
                             std::to_string(h.user_version) + "); this build knows schema " +
                             std::to_string(schema_version()) +
                             ". Upgrade tfimm-cache; the file was left unchanged",
                         h.user_version, schema_version());
  }
}

}  // namespace

Actor current_actor() {
  static const Actor base = [] {
    Actor a;
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found) {
      a.user = pw.pw_name;
    } else {
      a.user = std::to_string(::geteuid());
    }
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) a.host = host;
    return a;
  }();
  Actor a = base;
  a.pid = ::getpid();
  return a;
}

struct Store::Connection {
  Connection(const std::string& path, int flags, int busy_ms) : db(path, flags, busy_ms) {}
  SQLite::Database db;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> statements;

  // A prepared statement, kept for the life of the connection.
  SQLite::Statement& prepare(const char* sql) {
    auto& slot = statements[sql];
    if (!slot) slot = std::make_unique<SQLite::Statement>(db, sql);
    return *slot;
  }
};

Store::Store(std::string path, std::chrono::milliseconds busy_timeout)
    : path_(std::move(path)), busy_timeout_(busy_timeout) {}

Store::~Store() {
  if (conn_ && owner_pid_ != ::getpid()) {
    std::lock_guard<std::mutex> lock(abandoned_mutex);
    abandoned.push_back(conn_.release());
  }
}

void Store::fail(const std::exception& error, const char* operation) {
  // Only SQLite's errors are translated; the library's own and anything
  // thrown by a caller's transaction body pass through unchanged.
  const auto* sq = dynamic_cast<const SQLite::Exception*>(&error);
  if (sq == nullptr) throw;
  const int code = sq->getErrorCode() & 0xFF;
  const std::string what = std::string(operation) + " " + path_ + ": " + error.what();
  switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw RegistryBusy(path_, "registry " + path_ + " is busy: another process held it for " +
                                    std::to_string(busy_timeout_.count()) +
                                    " ms (while trying to " + operation +
                                    "); nothing was changed. Retry, or raise the busy timeout");
    case SQLITE_READONLY:
    case SQLITE_PERM:
      throw RegistryReadOnly(path_, "registry " + path_ +
                                        " is read-only for this process (file or directory "
                                        "permissions, or a read-only file system); could not " +
                                        operation +
                                        ", nothing was changed. Ask its owner for write "
                                        "access, or use another registry with --registry");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      throw RegistryCorrupt(path_, "registry " + path_ + " is damaged (" + error.what() +
                                       "); nothing was changed. Restore it from a backup made "
                                       "with `tfimm-cache export`, or move it aside");
    case SQLITE_FULL:
      throw RegistryError(path_, "the disk holding registry " + path_ + " is full; could not " +
                                     operation + ", nothing was changed. Free space and retry");
    case SQLITE_CANTOPEN:
      throw RegistryError(path_, "cannot open registry " + path_ + " (" + error.what() +
                                     "); check that its directory exists and is accessible");
    default:
      throw RegistryError(path_, "could not " + what);
  }
}

bool Store::open(bool create) {
  if (conn_ && owner_pid_ != ::getpid()) {
    // A child after fork(): never touch the parent's connection.
    std::lock_guard<std::mutex> lock(abandoned_mutex);
    abandoned.push_back(conn_.release());
    depth_ = 0;
  }
  if (conn_) {
    check_identity();
    if (conn_) return true;
  }
  struct stat st {};
  const bool exists = ::stat(path_.c_str(), &st) == 0;
  if (!exists && !create) return false;
  if (exists) {
    check_header(path_);
  } else {
    boost::system::error_code ec;
    const auto parent = boost::filesystem::path(path_).parent_path();
    boost::filesystem::create_directories(parent, ec);
    if (ec) {
      throw RegistryError(path_, "cannot create the directory " + parent.string() +
                                     " for registry " + path_ + ": " + ec.message());
    }
  }
  const auto type = filesystem_type(path_);
  fs_type_ = type.name;
  network_fs_ = on_network_fs(path_);
  try {
    int flags = SQLite::OPEN_READWRITE;
    if (create) flags |= SQLite::OPEN_CREATE;
    auto c = std::make_unique<Connection>(path_, flags, static_cast<int>(busy_timeout_.count()));
    owner_pid_ = ::getpid();
    migrate(*c);
    conn_ = std::move(c);
    depth_ = 0;
  } catch (const std::exception& e) {
    fail(e, "open");
  }
  if (::stat(path_.c_str(), &st) == 0) {
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }
  return true;
}

void Store::check_identity() {
  if (depth_ > 0) return;  // inside a transaction: the file is locked
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) return;
  // Deleted or replaced while open: drop the connection to the old file so
  // that nothing is ever written into an unlinked file.
  conn_.reset();
}

void Store::migrate(Connection& c) {
  auto& db = c.db;
  const bool read_only = sqlite3_db_readonly(db.getHandle(), "main") == 1;
  // Look before writing anything: a foreign or damaged file is refused here.
  const int app_id = db.execAndGet("PRAGMA application_id").getInt();
  int version = db.execAndGet("PRAGMA user_version").getInt();
  const int tables = db.execAndGet("SELECT count(*) FROM sqlite_master").getInt();
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
  if (!read_only) {
    db.exec(network_fs_ ? "PRAGMA journal_mode=DELETE" : "PRAGMA journal_mode=WAL");
  }
  db.exec("PRAGMA synchronous=FULL");
  if (version == schema_version()) return;
  if (read_only) {
    throw RegistryReadOnly(path_, "registry " + path_ + " has schema " + std::to_string(version) +
                                      " and needs upgrading to " +
                                      std::to_string(schema_version()) +
                                      ", but it is read-only for this process. Run "
                                      "`tfimm-cache migrate` as a user who can write it");
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

Store::Connection& Store::conn() {
  if (!conn_) throw std::logic_error("tfimm: registry used before Store::open()");
  return *conn_;
}

bool Store::read(const std::function<void()>& body) {
  if (depth_ > 0) {
    body();
    return true;
  }
  if (!open(false)) return false;
  auto& db = conn_->db;
  try {
    db.exec("BEGIN");
  } catch (const std::exception& e) {
    fail(e, "read");
  }
  try {
    body();
    db.exec("COMMIT");
  } catch (const std::exception& e) {
    sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    fail(e, "read");
  } catch (...) {
    sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return true;
}

void Store::write(const std::function<void()>& body, bool commit) {
  if (depth_ > 0) {
    body();
    return;
  }
  if (conn_) {
    if (owner_pid_ != ::getpid()) open(true);
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
      conn_.reset();
      throw RegistryError(path_, "registry " + path_ +
                                     " was deleted or replaced while this process had it "
                                     "open; nothing was written. Check what happened to the "
                                     "file and retry: the next call opens the file now at "
                                     "that path");
    }
  }
  open(true);
  auto& db = conn_->db;
  try {
    db.exec("BEGIN IMMEDIATE");
  } catch (const std::exception& e) {
    fail(e, "start a write");
  }
  ++depth_;
  try {
    body();
    --depth_;
    if (commit) {
      db.exec("COMMIT");
    } else {
      db.exec("ROLLBACK");
    }
  } catch (const SQLite::Exception& e) {
    depth_ = 0;
    if (!sqlite3_get_autocommit(db.getHandle())) {
      sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    fail(e, "write");
  } catch (...) {
    depth_ = 0;
    if (!sqlite3_get_autocommit(db.getHandle())) {
      sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    throw;
  }
}

// -- reads --------------------------------------------------------------------

std::optional<std::string> Store::model_path(const std::string& name) {
  try {
    Use st(conn().prepare("SELECT path FROM models WHERE name = ?"));
    st->bind(1, name);
    if (!st->executeStep()) return std::nullopt;
    return st->getColumn(0).getString();
  } catch (const std::exception& e) {
    fail(e, "look up a model in");
  }
}

std::optional<Entry> Store::model(const std::string& name) {
  try {
    static const std::string sql =
        std::string("SELECT ") + kModelColumns + " FROM models WHERE name = ?";
    Use st(conn().prepare(sql.c_str()));
    st->bind(1, name);
    if (!st->executeStep()) return std::nullopt;
    return entry_from_row(*st);
  } catch (const std::exception& e) {
    fail(e, "read an entry of");
  }
}

std::vector<Entry> Store::models() {
  try {
    static const std::string sql =
        std::string("SELECT ") + kModelColumns + " FROM models ORDER BY name";
    Use st(conn().prepare(sql.c_str()));
    std::vector<Entry> out;
    while (st->executeStep()) out.push_back(entry_from_row(*st));
    return out;
  } catch (const std::exception& e) {
    fail(e, "list the entries of");
  }
}

std::vector<std::string> Store::model_names() {
  try {
    Use st(conn().prepare("SELECT name FROM models ORDER BY name"));
    std::vector<std::string> out;
    while (st->executeStep()) out.push_back(st->getColumn(0).getString());
    return out;
  } catch (const std::exception& e) {
    fail(e, "list the entries of");
  }
}

std::size_t Store::model_count() {
  try {
    Use st(conn().prepare("SELECT count(*) FROM models"));
    st->executeStep();
    return static_cast<std::size_t>(st->getColumn(0).getInt64());
  } catch (const std::exception& e) {
    fail(e, "count the entries of");
  }
}

std::optional<std::string> Store::setting(const std::string& key) {
  try {
    Use st(conn().prepare("SELECT value FROM settings WHERE key = ?"));
    st->bind(1, key);
    if (!st->executeStep()) return std::nullopt;
    return st->getColumn(0).getString();
  } catch (const std::exception& e) {
    fail(e, "read a setting of");
  }
}

std::vector<HistoryRecord> Store::history(const std::optional<std::string>& name,
                                          std::size_t limit) {
  try {
    const char* sql =
        name ? "SELECT id, at, action, name, old_path, new_path, user, host, pid FROM history "
               "WHERE name = ?1 ORDER BY id DESC LIMIT ?2"
             : "SELECT id, at, action, name, old_path, new_path, user, host, pid FROM history "
               "ORDER BY id DESC LIMIT ?2";
    Use st(conn().prepare(sql));
    if (name) st->bind(1, *name);
    st->bind(2, limit == 0 ? std::int64_t{-1} : static_cast<std::int64_t>(limit));
    std::vector<HistoryRecord> out;
    while (st->executeStep()) {
      HistoryRecord r;
      r.id = st->getColumn(0).getInt64();
      r.at = st->getColumn(1).getInt64();
      r.action = st->getColumn(2).getString();
      r.name = st->getColumn(3).getString();
      if (!st->getColumn(4).isNull()) r.old_path = st->getColumn(4).getString();
      if (!st->getColumn(5).isNull()) r.new_path = st->getColumn(5).getString();
      r.user = st->getColumn(6).getString();
      r.host = st->getColumn(7).getString();
      r.pid = st->getColumn(8).getInt64();
      out.push_back(std::move(r));
    }
    return out;
  } catch (const std::exception& e) {
    fail(e, "read the history of");
  }
}

// -- writes -------------------------------------------------------------------

void Store::upsert_model(const std::string& name, const std::string& path, Timestamp now) {
  try {
    Use st(conn().prepare(
        "INSERT INTO models(name, path, created_at, updated_at) VALUES(?1, ?2, ?3, ?3) "
        "ON CONFLICT(name) DO UPDATE SET path = excluded.path, "
        "updated_at = excluded.updated_at, missing_since = NULL"));
    st->bind(1, name);
    st->bind(2, path);
    st->bind(3, static_cast<std::int64_t>(now));
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "register a model in");
  }
}

bool Store::delete_model(const std::string& name) {
  try {
    Use st(conn().prepare("DELETE FROM models WHERE name = ?"));
    st->bind(1, name);
    return st->exec() > 0;
  } catch (const std::exception& e) {
    fail(e, "remove an entry from");
  }
}

void Store::set_lock(const std::string& name, bool locked, const std::string& reason) {
  try {
    Use st(conn().prepare("UPDATE models SET locked = ?2, lock_reason = ?3 WHERE name = ?1"));
    st->bind(1, name);
    st->bind(2, locked ? 1 : 0);
    st->bind(3, reason);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "lock an entry in");
  }
}

void Store::mark_missing(const std::string& name, const std::string& path, Timestamp updated_at,
                         std::optional<Timestamp> now) {
  try {
    Use st(
        conn().prepare("UPDATE models SET missing_since = CASE WHEN ?4 IS NULL THEN NULL "
                       "ELSE coalesce(missing_since, ?4) END "
                       "WHERE name = ?1 AND path = ?2 AND updated_at = ?3"));
    st->bind(1, name);
    st->bind(2, path);
    st->bind(3, static_cast<std::int64_t>(updated_at));
    if (now) {
      st->bind(4, static_cast<std::int64_t>(*now));
    } else {
      st->bind(4);
    }
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "record missing paths in");
  }
}

void Store::put_setting(const std::string& key, const std::string& value) {
  try {
    Use st(
        conn().prepare("INSERT INTO settings(key, value) VALUES(?1, ?2) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    st->bind(1, key);
    st->bind(2, value);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "store a setting in");
  }
}

bool Store::delete_setting(const std::string& key) {
  try {
    Use st(conn().prepare("DELETE FROM settings WHERE key = ?"));
    st->bind(1, key);
    return st->exec() > 0;
  } catch (const std::exception& e) {
    fail(e, "remove a setting from");
  }
}

void Store::add_history(const std::string& action, const std::string& name,
                        const std::optional<std::string>& old_path,
                        const std::optional<std::string>& new_path, Timestamp now) {
  try {
    const Actor who = current_actor();
    Use st(
        conn().prepare("INSERT INTO history(at, action, name, old_path, new_path, user, host, pid) "
                       "VALUES(?, ?, ?, ?, ?, ?, ?, ?)"));
    st->bind(1, static_cast<std::int64_t>(now));
    st->bind(2, action);
    st->bind(3, name);
    if (old_path) {
      st->bind(4, *old_path);
    } else {
      st->bind(4);
    }
    if (new_path) {
      st->bind(5, *new_path);
    } else {
      st->bind(5);
    }
    st->bind(6, who.user);
    st->bind(7, who.host);
    st->bind(8, who.pid);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "record history in");
  }
}

// -- facts --------------------------------------------------------------------

int Store::user_version() {
  try {
    return conn().db.execAndGet("PRAGMA user_version").getInt();
  } catch (const std::exception& e) {
    fail(e, "read the schema version of");
  }
}

std::string Store::journal_mode() {
  try {
    return conn().db.execAndGet("PRAGMA journal_mode").getString();
  } catch (const std::exception& e) {
    fail(e, "read the journal mode of");
  }
}

std::string Store::integrity_check() {
  try {
    return conn().db.execAndGet("PRAGMA integrity_check").getString();
  } catch (const std::exception& e) {
    fail(e, "check the integrity of");
  }
}

MigrationStatus inspect_migrations(const std::string& path) {
  MigrationStatus status;
  status.path = path;
  status.latest = schema_version();
  struct stat st {};
  status.exists = ::stat(path.c_str(), &st) == 0;
  if (status.exists) {
    check_header(path);
    try {
      SQLite::Database db(path, SQLite::OPEN_READONLY);
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
      throw RegistryError(path, "cannot read the schema of registry " + path + ": " + e.what());
    }
  }
  for (const auto& m : kMigrations) {
    if (m.version > status.current) status.pending.push_back(m.version);
  }
  return status;
}

}  // namespace detail
}  // namespace tfimm
