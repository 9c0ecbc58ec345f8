#include "storage/postgres/postgres_store.hpp"

#include <libpq-fe.h>

#include <cstring>

#include "fs.hpp"
#include "postgres_migrations_embedded.hpp"
#include "storage/actor.hpp"
#include "storage/fork.hpp"
#include "storage/postgres/pq.hpp"
#include "tfimm/errors.hpp"

namespace tfimm::detail {
namespace {

using pq::Params;
using pq::Type;

constexpr const char* kDefaultSchema = "tfimm_cache";

// What libpq gets beside the location unless the location or the
// environment says otherwise: nothing waits for ever on a server that is
// gone (connect_timeout, keepalives, tcp_user_timeout on TCP).
const std::vector<std::pair<std::string, std::string>>& connection_defaults() {
  static const std::vector<std::pair<std::string, std::string>> defaults{
      {"connect_timeout", "10"},           {"keepalives", "1"},       {"keepalives_idle", "10"},
      {"keepalives_interval", "5"},        {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"},
      {"application_name", "tfimm-cache"},
  };
  return defaults;
}

// "-- oldest compatible schema: N" in a migration, else its own version:
// which older code may still use a registry at this version.
int oldest_compatible(const pg::Migration& m) {
  static constexpr std::string_view kTag = "-- oldest compatible schema: ";
  const auto at = m.sql.find(kTag);
  if (at == std::string_view::npos) return m.version;
  return std::atoi(std::string(m.sql.substr(at + kTag.size(), 8)).c_str());
}

int latest_version() { return pg::kMigrations.back().version; }

constexpr const char* kModelColumns =
    "SELECT name, path, created_at, updated_at, locked, lock_reason, missing_since, local_to "
    "FROM models ";

Entry entry_from(const pq::Result& r, int row) {
  Entry e;
  e.name = r.bytes(row, 0);
  e.path = r.bytes(row, 1);
  e.created_at = r.int8(row, 2);
  e.updated_at = r.int8(row, 3);
  e.locked = r.boolean(row, 4);
  e.lock_reason = r.bytes(row, 5);
  if (!r.null(row, 6)) e.missing_since = r.int8(row, 6);
  e.local_to = r.bytes(row, 7);
  return e;
}

std::vector<const std::string*> names_of(const std::vector<PathChange>& changes) {
  std::vector<const std::string*> out;
  out.reserve(changes.size());
  for (const auto& c : changes) out.push_back(c.name);
  return out;
}

}  // namespace

std::string registry_schema(const std::string& options) {
  // -csearch_path=NAME or -c search_path=NAME (the first schema of the list).
  for (const char* key : {"search_path=", "search_path ="}) {
    const auto at = options.find(key);
    if (at == std::string::npos) continue;
    std::string rest = options.substr(at + std::strlen(key));
    rest = rest.substr(0, rest.find_first_of(", "));
    if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') {
      rest = rest.substr(1, rest.size() - 2);
    }
    if (!rest.empty()) return rest;
  }
  return kDefaultSchema;
}

PostgresStore::PostgresStore(std::string location, std::chrono::milliseconds busy_timeout)
    : location_(std::move(location)),
      display_(shown_location(location_)),
      schema_(kDefaultSchema),
      password_(pq::password_of(location_)),
      busy_timeout_(busy_timeout) {}

PostgresStore::~PostgresStore() { drop_connection(); }

void PostgresStore::drop_connection() noexcept {
  if (conn_ && owner_fork_ != fork_generation()) conn_->abandon();
  conn_.reset();
  checked_ = false;
}

pq::Connection& PostgresStore::connection() {
  if (conn_ && (owner_fork_ != fork_generation() || conn_->broken())) {
    // A child after fork() never touches the parent's session; a lost
    // connection is made again.
    drop_connection();
    depth_ = 0;
  }
  if (conn_) return *conn_;
  try {
    auto c = std::make_unique<pq::Connection>(location_, connection_defaults());
    // The options the session got, from the location or from what libpq
    // adds to it (a service file, PGOPTIONS), say the schema.
    schema_ = registry_schema(c->option("options"));
    // The registry's schema first in the search path, quoted by the server;
    // the busy timeout as the wait for any lock.
    c->exec(
        "SELECT set_config('search_path', quote_ident($1), false), "
        "set_config('lock_timeout', $2, false)",
        Params()
            .bytes(schema_, Type::Text)
            .bytes(std::to_string(busy_timeout_.count()) + "ms", Type::Text));
    owner_fork_ = fork_generation();
    conn_ = std::move(c);
    checked_ = false;
  } catch (const pq::Error& e) {
    fail(e, "connect to");
  }
  return *conn_;
}

PostgresStore::Version PostgresStore::read_version(pq::Connection& c) {
  Version v;
  // One statement, one snapshot: another process's migration committing in
  // between cannot look like tables without a registry.
  auto tables = c.exec(
      "SELECT count(*) FILTER (WHERE tablename = 'schema_migrations'), count(*) "
      "FROM pg_tables WHERE schemaname = $1",
      Params().bytes(schema_, Type::Text));
  if (tables.int8(0, 0) == 0) {
    if (tables.int8(0, 1) > 0) {
      throw NotARegistry(display_, "schema " + schema_ + " of " + display_ +
                                       " holds tables but no tfimm-cache registry; it was "
                                       "left unchanged. Choose another schema "
                                       "(options=-csearch_path=NAME in the URL)");
    }
    return v;
  }
  auto r = c.exec(
      "SELECT version, oldest_compatible FROM schema_migrations ORDER BY version DESC LIMIT 1");
  v.current = 0;
  if (r.rows() > 0) {
    v.current = r.int4(0, 0);
    v.oldest_compatible = r.int4(0, 1);
  }
  return v;
}

bool PostgresStore::open(bool create) {
  auto& c = connection();
  if (checked_) return true;
  try {
    // Most opens find a registry: its version in one statement, without the
    // catalog views read_version() needs to tell no registry from a schema
    // of other tables. Outside a transaction a failed statement costs
    // nothing more.
    Version v;
    try {
      auto r = c.exec(
          "SELECT version, oldest_compatible FROM schema_migrations "
          "ORDER BY version DESC LIMIT 1");
      v.current = 0;
      if (r.rows() > 0) {
        v.current = r.int4(0, 0);
        v.oldest_compatible = r.int4(0, 1);
      }
    } catch (const pq::Error& e) {
      if (e.sqlstate() != "42P01") throw;  // undefined_table: look closer
      v = read_version(c);
    }
    if (v.current < 0 && !create) return false;
    if (v.current > latest_version() && v.oldest_compatible > latest_version()) {
      throw RegistryTooNew(display_,
                           "registry " + display_ + " was written by a newer tfimm-cache (schema " +
                               std::to_string(v.current) + "); this build knows schema " +
                               std::to_string(latest_version()) +
                               ". Upgrade tfimm-cache; the registry was left unchanged",
                           v.current, latest_version());
    }
    if (v.current < latest_version()) migrate(c, v.current);
    checked_ = true;
  } catch (const pq::Error& e) {
    fail(e, "open");
  }
  return true;
}

void PostgresStore::migrate(pq::Connection& c, int from) {
  const std::string lock_key = "tfimm_cache migrate " + schema_;
  for (const auto& m : pg::kMigrations) {
    if (m.version <= from) continue;
    // One transaction per migration, under an advisory lock: of many
    // processes opening a new or old registry at once, one migrates and the
    // others find it done.
    c.run("BEGIN");
    try {
      c.exec("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
             Params().bytes(lock_key, Type::Text));
      const Version now = read_version(c);
      if (now.current < m.version) {
        if (now.current < 0) {
          char* quoted = PQescapeIdentifier(c.get(), schema_.data(), schema_.size());
          if (quoted == nullptr) throw pq::Error(PQerrorMessage(c.get()), "", c.broken());
          const std::string sql = std::string("CREATE SCHEMA IF NOT EXISTS ") + quoted;
          PQfreemem(quoted);
          c.run(sql);
        }
        c.run(std::string(m.sql));
        c.exec(
            "INSERT INTO schema_migrations(version, applied_at, oldest_compatible) "
            "VALUES($1::int8::int4, $2, $3::int8::int4)",
            Params().int8(m.version).int8(now_ms()).int8(oldest_compatible(m)));
      }
      c.run("COMMIT");
    } catch (...) {
      c.rollback_quietly();
      throw;
    }
  }
}

bool PostgresStore::read(const std::function<void(Reader&)>& body, Consistency consistency) {
  if (depth_ > 0) {
    body(*this);
    return true;
  }
  if (!open(false)) return false;
  if (consistency == Consistency::PerCall) {
    body(*this);
    return true;
  }
  auto& c = *conn_;
  try {
    c.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  } catch (const pq::Error& e) {
    fail(e, "read");
  }
  try {
    body(*this);
    c.run("COMMIT");
  } catch (const pq::Error& e) {
    c.rollback_quietly();
    fail(e, "read");
  } catch (...) {
    if (conn_ && owner_fork_ == fork_generation()) conn_->rollback_quietly();
    throw;
  }
  return true;
}

void PostgresStore::begin_write(const std::string* only_name) {
  auto& c = *conn_;
  const std::string registry_key = "tfimm_cache write " + schema_;
  try {
    c.run("BEGIN");
    // Locks held for the whole transaction, each waited for up to
    // lock_timeout (the busy timeout), then 55P03: RegistryBusy. A write of
    // one entry shares the registry's lock and takes the entry's own, so
    // that writers of different entries commit at the same time and two
    // writers of one entry still queue (each history row names the path it
    // replaced); any other write takes the registry's lock alone.
    if (only_name != nullptr) {
      c.exec(
          "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0)), "
          "pg_advisory_xact_lock(hashtextextended($1 || ' entry ' || encode($2, 'hex'), 0))",
          Params().bytes(registry_key, Type::Text).bytes(*only_name, Type::Bytea));
    } else {
      c.exec("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
             Params().bytes(registry_key, Type::Text));
    }
  } catch (const pq::Error& e) {
    c.rollback_quietly();
    fail(e, "start a write to");
  }
}

void PostgresStore::commit() {
  try {
    conn_->run("COMMIT");
  } catch (const pq::Error& e) {
    if (e.connection_lost()) {
      // The server may have committed before the connection went.
      throw RegistryError(display_,
                          "the connection to registry " + display_ +
                              " was lost while committing a change, so whether it was stored is "
                              "unknown; read the registry (list, history) before retrying it");
    }
    fail(e, "commit a change to");
  }
}

bool PostgresStore::commit_write(const std::function<void(Writer&)>& body, WriteMode mode) {
  if (depth_ > 0) {
    body(*this);
    return true;
  }
  const bool exists = open(false);
  if (!exists && mode.missing == WriteMode::Missing::ExistingOnly) return false;
  only_name_ = mode.only_name;
  if (exists) {
    begin_write(only_name_);
  } else {
    absent_ = Absent{};
  }
  const unsigned long generation = fork_generation();
  ++depth_;
  change_set_.reset();  // one write, one change set
  // A child forked inside `body`: the transaction and its connection are
  // the parent's; here they are left untouched.
  const auto end = [&]() noexcept {
    depth_ = 0;
    absent_.reset();
    if (conn_ && owner_fork_ == fork_generation()) {
      conn_->rollback_quietly();
    } else {
      drop_connection();
    }
  };
  try {
    body(*this);
    if (fork_generation() != generation) {
      throw TransactionMisuse("this process was forked inside a transaction() body on registry " +
                              display_ +
                              "; the transaction belongs to the parent process, which commits "
                              "or rolls it back, and this process wrote nothing. It can still "
                              "read the registry; write from the parent");
    }
    --depth_;
    if (absent_) {
      absent_.reset();  // nothing changed: nothing to create
      return true;
    }
    commit();
    return true;
  } catch (const pq::Error& e) {
    end();
    fail(e, "write to");
  } catch (...) {
    end();
    throw;
  }
}

bool PostgresStore::read_absent() {
  if (!absent_) return false;
  absent_->read = true;
  return true;
}

void PostgresStore::materialize() {
  const Absent absent = *absent_;
  absent_.reset();
  open(true);
  begin_write(only_name_);
  if (!absent.read) return;
  // What the body read before this point was an empty registry; if another
  // process created it and wrote to it meanwhile, those reads are out of date.
  // A body of one entry read only that entry.
  try {
    auto r =
        only_name_ != nullptr
            ? conn_->exec("SELECT EXISTS(SELECT 1 FROM models WHERE name = $1)",
                          Params().bytes(*only_name_))
            : conn_->exec("SELECT EXISTS(SELECT 1 FROM models) OR EXISTS(SELECT 1 FROM settings)");
    if (r.boolean(0, 0)) {
      throw RegistryBusy(display_, "registry " + display_ +
                                       " was created by another process while this change "
                                       "read it as empty; nothing was written. Retry");
    }
  } catch (const pq::Error& e) {
    fail(e, "read");
  }
}

// -- reads --------------------------------------------------------------------

std::optional<std::string> PostgresStore::model_path(const std::string& name) {
  if (read_absent()) return std::nullopt;
  try {
    auto r = conn_->exec("SELECT path FROM models WHERE name = $1", Params().bytes(name));
    if (r.rows() == 0) return std::nullopt;
    return r.bytes(0, 0);
  } catch (const pq::Error& e) {
    fail(e, "look up a model in");
  }
}

std::vector<std::optional<std::string>> PostgresStore::model_paths(
    const std::vector<PathChange>& changes) {
  std::vector<std::optional<std::string>> out(changes.size());
  if (changes.empty() || read_absent()) return out;
  try {
    auto r = conn_->exec(
        "SELECT m.path FROM unnest($1::bytea[]) WITH ORDINALITY AS c(name, i) "
        "LEFT JOIN models m ON m.name = c.name ORDER BY c.i",
        Params().bytea_array(names_of(changes)));
    for (int i = 0; i < r.rows(); ++i) {
      if (!r.null(i, 0)) out[static_cast<std::size_t>(i)] = r.bytes(i, 0);
    }
    return out;
  } catch (const pq::Error& e) {
    fail(e, "look up models in");
  }
}

Lookup PostgresStore::lookup(const std::string& name, const std::string& setting_key) {
  if (read_absent()) return {};
  try {
    // One statement: the entry and the setting of one snapshot.
    auto r = conn_->exec(
        "SELECT (SELECT path FROM models WHERE name = $1), "
        "(SELECT value FROM settings WHERE key = $2)",
        Params().bytes(name).bytes(setting_key, Type::Text));
    Lookup found;
    if (!r.null(0, 0)) {
      found.path = r.bytes(0, 0);
    } else if (!r.null(0, 1)) {
      found.setting = r.bytes(0, 1);
    }
    return found;
  } catch (const pq::Error& e) {
    fail(e, "look up a model in");
  }
}

std::optional<Entry> PostgresStore::model(const std::string& name) {
  if (read_absent()) return std::nullopt;
  try {
    auto r = conn_->exec(std::string(kModelColumns) + "WHERE name = $1", Params().bytes(name));
    if (r.rows() == 0) return std::nullopt;
    return entry_from(r, 0);
  } catch (const pq::Error& e) {
    fail(e, "read an entry of");
  }
}

std::vector<Entry> PostgresStore::models() {
  if (read_absent()) return {};
  try {
    auto r = conn_->exec(std::string(kModelColumns) + "ORDER BY name");
    std::vector<Entry> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(entry_from(r, i));
    return out;
  } catch (const pq::Error& e) {
    fail(e, "list the entries of");
  }
}

std::vector<Entry> PostgresStore::models_after(const std::optional<std::string>& after,
                                               std::size_t limit) {
  if (read_absent()) return {};
  try {
    // Keyset pages inside the body's one snapshot: each page is a seek on
    // the primary key, and only one page is held at a time (two statements:
    // a generic plan of "$1 IS NULL OR name > $1" scans the whole table).
    Params p;
    if (after) p.bytes(*after);
    p.int8(static_cast<std::int64_t>(limit));
    auto r =
        conn_->exec(after ? std::string(kModelColumns) + "WHERE name > $1 ORDER BY name LIMIT $2"
                          : std::string(kModelColumns) + "ORDER BY name LIMIT $1",
                    p);
    std::vector<Entry> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(entry_from(r, i));
    return out;
  } catch (const pq::Error& e) {
    fail(e, "list the entries of");
  }
}

std::vector<std::optional<Entry>> PostgresStore::models_named(
    const std::vector<const std::string*>& names) {
  std::vector<std::optional<Entry>> out(names.size());
  if (names.empty() || read_absent()) return out;
  try {
    auto r = conn_->exec(
        "SELECT m.name, m.path, m.created_at, m.updated_at, m.locked, m.lock_reason, "
        "m.missing_since, c.i FROM unnest($1::bytea[]) WITH ORDINALITY AS c(name, i) "
        "JOIN models m ON m.name = c.name",
        Params().bytea_array(names));
    for (int i = 0; i < r.rows(); ++i) {
      out[static_cast<std::size_t>(r.int8(i, 7) - 1)] = entry_from(r, i);
    }
    return out;
  } catch (const pq::Error& e) {
    fail(e, "look up models in");
  }
}

std::vector<std::string> PostgresStore::model_names() {
  if (read_absent()) return {};
  try {
    auto r = conn_->exec("SELECT name FROM models ORDER BY name");
    std::vector<std::string> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.bytes(i, 0));
    return out;
  } catch (const pq::Error& e) {
    fail(e, "list the entries of");
  }
}

std::size_t PostgresStore::model_count() {
  if (read_absent()) return 0;
  try {
    return static_cast<std::size_t>(conn_->exec("SELECT count(*) FROM models").int8(0, 0));
  } catch (const pq::Error& e) {
    fail(e, "count the entries of");
  }
}

std::optional<std::string> PostgresStore::setting(const std::string& key) {
  if (read_absent()) return std::nullopt;
  try {
    auto r =
        conn_->exec("SELECT value FROM settings WHERE key = $1", Params().bytes(key, Type::Text));
    if (r.rows() == 0) return std::nullopt;
    return r.bytes(0, 0);
  } catch (const pq::Error& e) {
    fail(e, "read a setting of");
  }
}

std::vector<HistoryRecord> PostgresStore::history(const HistoryQuery& q) {
  if (read_absent()) return {};
  try {
    Params p;
    p.int8(!q.ascending && q.from == 0 ? INT64_MAX : q.from);
    if (q.limit == 0) {
      p.null(Type::Int8);  // LIMIT NULL: all
    } else {
      p.int8(static_cast<std::int64_t>(q.limit));
    }
    // The filter is chosen here from fixed text; every value is bound.
    std::string where;
    if (q.name) {
      p.bytes(*q.name);
      where += "name = $" + std::to_string(p.size()) + " AND ";
    }
    auto r = conn_->exec(
        "SELECT id, at, action, name, old_path, new_path, \"user\", host, pid, "
        "COALESCE(change_set, id), undoes, old_locked, old_lock_reason, new_locked, "
        "new_lock_reason, old_missing_since, forgot_through, forgot_rows FROM history WHERE " +
            where +
            (q.ascending ? "id > $1 ORDER BY id LIMIT $2" : "id < $1 ORDER BY id DESC LIMIT $2"),
        p);
    std::vector<HistoryRecord> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    const auto int8_or = [&](int i, int col) -> std::optional<std::int64_t> {
      if (r.null(i, col)) return std::nullopt;
      return r.int8(i, col);
    };
    const auto bytes_or = [&](int i, int col) -> std::optional<std::string> {
      if (r.null(i, col)) return std::nullopt;
      return r.bytes(i, col);
    };
    for (int i = 0; i < r.rows(); ++i) {
      HistoryRecord h;
      h.id = r.int8(i, 0);
      h.at = r.int8(i, 1);
      h.action = r.bytes(i, 2);
      h.name = r.bytes(i, 3);
      h.old_path = bytes_or(i, 4);
      h.new_path = bytes_or(i, 5);
      h.user = r.bytes(i, 6);
      h.host = r.bytes(i, 7);
      h.pid = r.int8(i, 8);
      h.change_set = r.int8(i, 9);
      h.undoes = int8_or(i, 10);
      if (!r.null(i, 11)) h.old_locked = r.boolean(i, 11);
      h.old_lock_reason = bytes_or(i, 12);
      if (!r.null(i, 13)) h.new_locked = r.boolean(i, 13);
      h.new_lock_reason = bytes_or(i, 14);
      h.old_missing_since = int8_or(i, 15);
      h.forgot_through = int8_or(i, 16);
      h.forgot_rows = int8_or(i, 17);
      out.push_back(std::move(h));
    }
    return out;
  } catch (const pq::Error& e) {
    fail(e, "read the history of");
  }
}

// -- writes -------------------------------------------------------------------

void PostgresStore::put_entries(const std::vector<const Entry*>& entries) {
  if (entries.empty()) return;
  if (absent_) materialize();
  try {
    std::vector<const std::string*> names, paths, reasons, hosts;
    std::vector<std::optional<std::int64_t>> created, updated, locked, missing;
    for (const Entry* e : entries) {
      names.push_back(&e->name);
      paths.push_back(&e->path);
      reasons.push_back(&e->lock_reason);
      hosts.push_back(&e->local_to);
      created.emplace_back(e->created_at);
      updated.emplace_back(e->updated_at);
      locked.emplace_back(e->locked ? 1 : 0);
      missing.push_back(e->missing_since);
    }
    conn_->exec(
        "INSERT INTO models(name, path, created_at, updated_at, locked, lock_reason, "
        "missing_since, local_to) SELECT n, p, c, u, l <> 0, r, m, h "
        "FROM unnest($1::bytea[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[], "
        "$6::bytea[], $7::int8[], $8::bytea[]) AS e(n, p, c, u, l, r, m, h) "
        "ON CONFLICT (name) DO UPDATE SET path = excluded.path, "
        "created_at = excluded.created_at, updated_at = excluded.updated_at, "
        "locked = excluded.locked, lock_reason = excluded.lock_reason, "
        "missing_since = excluded.missing_since, local_to = excluded.local_to",
        Params()
            .bytea_array(names)
            .bytea_array(paths)
            .int8_array(created)
            .int8_array(updated)
            .int8_array(locked)
            .bytea_array(reasons)
            .int8_array(missing)
            .bytea_array(hosts));
  } catch (const pq::Error& e) {
    fail(e, "register models in");
  }
}

void PostgresStore::restore_history(const std::vector<HistoryRecord>& records) {
  if (records.empty()) return;
  if (absent_) materialize();
  try {
    std::vector<std::optional<std::int64_t>> at, pid;
    std::vector<const std::string*> action, name, old_path, new_path, user, host;
    for (const HistoryRecord& r : records) {
      at.emplace_back(r.at);
      pid.emplace_back(r.pid);
      action.push_back(&r.action);
      name.push_back(&r.name);
      old_path.push_back(r.old_path ? &*r.old_path : nullptr);
      new_path.push_back(r.new_path ? &*r.new_path : nullptr);
      user.push_back(&r.user);
      host.push_back(&r.host);
    }
    // In the order given, so that ids follow it; a row already there (every
    // field alike, NULL paths included) is not added twice. Each restored
    // row is a change set of its own, as rows from before change sets are.
    auto added = conn_->exec(
        "WITH added AS (INSERT INTO history(at, action, name, old_path, new_path, \"user\", host, "
        "pid) "
        "SELECT a, convert_from(ac, 'UTF8'), n, o, p, us, h, pd "
        "FROM unnest($1::int8[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], "
        "$6::bytea[], $7::bytea[], $8::int8[]) WITH ORDINALITY AS c(a, ac, n, o, p, us, h, pd, i) "
        "WHERE NOT EXISTS (SELECT 1 FROM history x WHERE x.name = c.n AND x.at = c.a "
        "AND x.action = convert_from(c.ac, 'UTF8') AND x.old_path IS NOT DISTINCT FROM c.o "
        "AND x.new_path IS NOT DISTINCT FROM c.p AND x.\"user\" = c.us AND x.host = c.h "
        "AND x.pid = c.pd) ORDER BY i RETURNING id) SELECT min(id), max(id) FROM added",
        Params()
            .int8_array(at)
            .bytea_array(action)
            .bytea_array(name)
            .bytea_array(old_path)
            .bytea_array(new_path)
            .bytea_array(user)
            .bytea_array(host)
            .int8_array(pid));
    // Under the registry's write lock: no other writer adds rows meanwhile.
    if (!added.null(0, 0)) {
      conn_->exec(
          "UPDATE history SET change_set = id WHERE id BETWEEN $1 AND $2 AND change_set IS NULL",
          Params().int8(added.int8(0, 0)).int8(added.int8(0, 1)));
    }
  } catch (const pq::Error& e) {
    fail(e, "restore history in");
  }
}

void PostgresStore::put_paths(const std::vector<PathChange>& changes, Timestamp now,
                              std::optional<Timestamp> missing_since) {
  if (changes.empty()) return;
  if (absent_) materialize();
  try {
    Params p;
    std::vector<const std::string*> paths;
    std::string local;  // one '1' or '0' per change: whether it is host_local
    paths.reserve(changes.size());
    local.reserve(changes.size());
    for (const auto& c : changes) {
      paths.push_back(c.path);
      local.push_back(c.host_local ? '1' : '0');
    }
    p.bytea_array(names_of(changes)).bytea_array(paths).int8(now);
    if (missing_since) {
      p.int8(*missing_since);
    } else {
      p.null(Type::Int8);
    }
    p.bytes(actor_base().host).bytes(local, Type::Text);
    conn_->exec(
        "INSERT INTO models(name, path, created_at, updated_at, missing_since, local_to) "
        "SELECT n, p, $3, $3, $4, CASE WHEN substr($6, i::int, 1) = '1' THEN $5 ELSE ''::bytea END "
        "FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS c(n, p, i) "
        "ON CONFLICT (name) DO UPDATE SET path = excluded.path, "
        "updated_at = excluded.updated_at, missing_since = excluded.missing_since, "
        "local_to = excluded.local_to",
        p);
  } catch (const pq::Error& e) {
    fail(e, changes.size() == 1 ? "register a model in" : "register models in");
  }
}

void PostgresStore::add_histories(const std::string& action, const std::vector<PathChange>& changes,
                                  Timestamp now) {
  if (changes.empty()) return;
  if (absent_) materialize();
  try {
    const Actor& who = actor_base();
    std::vector<const std::string*> olds;
    std::vector<const std::string*> paths;
    olds.reserve(changes.size());
    paths.reserve(changes.size());
    for (const auto& c : changes) {
      olds.push_back(c.old_path);
      paths.push_back(c.path);
    }
    Params p;
    p.int8(now)
        .bytes(action, Type::Text)
        .bytea_array(names_of(changes))
        .bytea_array(olds)
        .bytea_array(paths)
        .bytes(who.user)
        .bytes(who.host)
        .int8(current_pid());
    if (change_set_) {
      p.int8(*change_set_);
    } else {
      p.null(Type::Int8);
    }
    // In the order given, so that ids follow it.
    auto r = conn_->exec(
        "WITH added AS (INSERT INTO history(at, action, name, old_path, new_path, \"user\", "
        "host, pid, change_set) "
        "SELECT $1, $2, n, o, p, $6, $7, $8, $9 "
        "FROM unnest($3::bytea[], $4::bytea[], $5::bytea[]) WITH ORDINALITY AS c(n, o, p, i) "
        "ORDER BY i RETURNING id) SELECT min(id), max(id) FROM added",
        p);
    join_change_set(r.int8(0, 0), r.int8(0, 1));
  } catch (const pq::Error& e) {
    fail(e, "record history in");
  }
}

void PostgresStore::join_change_set(std::int64_t first, std::int64_t last) {
  if (change_set_) return;
  // Under the registry's write lock: the rows just added are this write's
  // first, and no other writer adds rows meanwhile.
  change_set_ = first;
  conn_->exec("UPDATE history SET change_set = $1 WHERE id BETWEEN $1 AND $2",
              Params().int8(first).int8(last));
}

void PostgresStore::add_row(const HistoryRecord& row, Timestamp now) {
  if (absent_) materialize();
  try {
    const Actor& who = actor_base();
    Params p;
    p.int8(now)
        .bytes(row.action, Type::Text)
        .bytes(row.name)
        .optional_bytes(row.old_path ? &*row.old_path : nullptr)
        .optional_bytes(row.new_path ? &*row.new_path : nullptr)
        .bytes(who.user)
        .bytes(who.host)
        .int8(current_pid());
    const auto int8_or_null = [&](const std::optional<std::int64_t>& v) {
      if (v) {
        p.int8(*v);
      } else {
        p.null(Type::Int8);
      }
    };
    const auto bool_or_null = [&](const std::optional<bool>& v) {
      int8_or_null(v ? std::optional<std::int64_t>(*v ? 1 : 0) : std::nullopt);
    };
    int8_or_null(change_set_);
    int8_or_null(row.undoes);
    bool_or_null(row.old_locked);
    p.optional_bytes(row.old_lock_reason ? &*row.old_lock_reason : nullptr);
    bool_or_null(row.new_locked);
    p.optional_bytes(row.new_lock_reason ? &*row.new_lock_reason : nullptr);
    int8_or_null(row.old_missing_since);
    int8_or_null(row.forgot_through);
    int8_or_null(row.forgot_rows);
    auto r = conn_->exec(
        "INSERT INTO history(at, action, name, old_path, new_path, \"user\", host, pid, "
        "change_set, undoes, old_locked, old_lock_reason, new_locked, new_lock_reason, "
        "old_missing_since, forgot_through, forgot_rows) "
        "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::int8 <> 0, $12, $13::int8 <> 0, "
        "$14, $15, $16, $17) RETURNING id",
        p);
    const std::int64_t id = r.int8(0, 0);
    join_change_set(id, id);
  } catch (const pq::Error& e) {
    fail(e, "record history in");
  }
}

void PostgresStore::put_entry(const Entry& entry, Timestamp now) {
  if (absent_) materialize();
  try {
    Params p;
    p.bytes(entry.name)
        .bytes(entry.path)
        .int8(entry.created_at)
        .int8(now)
        .int8(entry.locked ? 1 : 0)
        .bytes(entry.lock_reason);
    if (entry.missing_since) {
      p.int8(*entry.missing_since);
    } else {
      p.null(Type::Int8);
    }
    p.bytes(entry.local_to);
    conn_->exec(
        "INSERT INTO models(name, path, created_at, updated_at, locked, lock_reason, "
        "missing_since, local_to) VALUES($1, $2, $3, $4, $5::int8 <> 0, $6, $7, $8) "
        "ON CONFLICT (name) DO UPDATE SET path = excluded.path, "
        "updated_at = excluded.updated_at, locked = excluded.locked, "
        "lock_reason = excluded.lock_reason, missing_since = excluded.missing_since, "
        "local_to = excluded.local_to",
        p);
  } catch (const pq::Error& e) {
    fail(e, "register a model in");
  }
}

std::size_t PostgresStore::forget_history(std::int64_t through) {
  if (read_absent()) return 0;
  try {
    return static_cast<std::size_t>(
        conn_->exec("DELETE FROM history WHERE id <= $1", Params().int8(through)).affected());
  } catch (const pq::Error& e) {
    fail(e, "forget history in");
  }
}

bool PostgresStore::delete_model(const std::string& name) {
  if (read_absent()) return false;  // no such row
  try {
    return conn_->exec("DELETE FROM models WHERE name = $1", Params().bytes(name)).affected() > 0;
  } catch (const pq::Error& e) {
    fail(e, "remove an entry from");
  }
}

void PostgresStore::set_lock(const std::string& name, bool locked, const std::string& reason) {
  if (read_absent()) return;  // no such row
  try {
    conn_->exec("UPDATE models SET locked = $2::int8 <> 0, lock_reason = $3 WHERE name = $1",
                Params().bytes(name).int8(locked ? 1 : 0).bytes(reason));
  } catch (const pq::Error& e) {
    fail(e, "lock an entry in");
  }
}

void PostgresStore::set_missing(const Entry& seen, std::optional<Timestamp> value,
                                bool only_if_unset) {
  if (read_absent()) return;  // no such row
  try {
    Params p;
    p.bytes(seen.name).bytes(seen.path).int8(seen.updated_at);
    if (value) {
      p.int8(*value);
    } else {
      p.null(Type::Int8);
    }
    p.int8(only_if_unset ? 1 : 0);
    conn_->exec(
        "UPDATE models SET missing_since = $4 "
        "WHERE name = $1 AND path = $2 AND updated_at = $3 "
        "AND ($5 = 0 OR missing_since IS NULL)",
        p);
  } catch (const pq::Error& e) {
    fail(e, "record missing paths in");
  }
}

void PostgresStore::put_setting(const std::string& key, const std::string& value) {
  if (absent_) materialize();
  try {
    conn_->exec(
        "INSERT INTO settings(key, value) VALUES($1, $2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        Params().bytes(key, Type::Text).bytes(value));
  } catch (const pq::Error& e) {
    fail(e, "store a setting in");
  }
}

bool PostgresStore::delete_setting(const std::string& key) {
  if (read_absent()) return false;
  try {
    return conn_->exec("DELETE FROM settings WHERE key = $1", Params().bytes(key, Type::Text))
               .affected() > 0;
  } catch (const pq::Error& e) {
    fail(e, "remove a setting from");
  }
}

// -- schema and facts ---------------------------------------------------------

MigrationStatus PostgresStore::migration_status() {
  MigrationStatus status;
  status.path = display_;
  status.latest = latest_version();
  auto& c = connection();
  try {
    const Version v = read_version(c);
    status.exists = v.current >= 0;
    status.current = v.current < 0 ? 0 : v.current;
    if (status.exists) {
      auto r = c.exec("SELECT version::int8, applied_at FROM schema_migrations ORDER BY version");
      for (int i = 0; i < r.rows(); ++i) {
        status.applied.emplace_back(static_cast<int>(r.int8(i, 0)), r.int8(i, 1));
      }
    }
  } catch (const pq::Error& e) {
    fail(e, "read the schema of");
  }
  for (const auto& m : pg::kMigrations) {
    if (m.version > status.current) status.pending.push_back(m.version);
  }
  return status;
}

void PostgresStore::diagnose(Diagnosis& d, const std::function<void(Reader&)>& also_read) {
  d.latest_schema = latest_version();
  try {
    const auto status = migration_status();
    d.exists = status.exists;
    d.schema = status.current;
    d.pending = status.pending;
    auto& c = *conn_;
    // What this role may do with the registry (or, before it exists, in
    // the database that would hold it).
    auto r = c.exec(
        "SELECT current_user::text, "
        "has_database_privilege(current_database(), 'CREATE'), "
        "COALESCE(has_table_privilege(to_regclass(quote_ident($1) || '.models'), 'SELECT'), "
        "false), "
        "COALESCE(has_table_privilege(to_regclass(quote_ident($1) || '.models'), "
        "'INSERT, UPDATE, DELETE'), false)",
        Params().bytes(schema_, Type::Text));
    const std::string role = r.bytes(0, 0);
    const bool can_create = r.boolean(0, 1);
    const bool can_read = r.boolean(0, 2);
    const bool can_write = r.boolean(0, 3);
    std::string privileges;
    if (!d.exists) {
      privileges = can_create ? "may create the registry" : "may not create the registry";
      if (!can_create) {
        d.write_problem = "role " + role + " may not create schema " + schema_ + " in database " +
                          c.parameter("database");
      }
    } else {
      privileges = can_write ? "read and write" : can_read ? "read only" : "none";
      if (!can_write) d.write_problem = "role " + role + " may not change the registry";
    }
    d.server_facts = {
        {"server", "PostgreSQL " + c.parameter("server_version")},
        {"role", role},
        {"privileges", privileges},
        {"TLS", c.ssl_in_use() ? "yes (" + c.ssl_protocol() + ")" : "no"},
        {"schema", schema_},
    };
    if (d.exists && d.pending.empty()) {
      read(
          [&](Reader& reader) {
            d.entries = reader.model_count();
            also_read(reader);
          },
          Consistency::Snapshot);
    } else if (d.exists) {
      d.warnings.push_back("the registry has schema " + std::to_string(d.schema) +
                           " and needs upgrading to " + std::to_string(latest_version()) +
                           "; the next command that opens it upgrades it");
    } else if (!d.write_problem.empty()) {
      d.warnings.push_back("the registry does not exist, and " + d.write_problem +
                           ": every change will fail until that is fixed");
    }
  } catch (const RegistryTooNew& e) {
    d.schema = e.found_version();
    d.problem = e.what();
  } catch (const RegistryError& e) {
    d.problem = e.what();
  } catch (const pq::Error& e) {
    try {
      fail(e, "inspect");
    } catch (const RegistryError& mapped) {
      d.problem = mapped.what();
    }
  }
  if (!d.problem.empty()) d.warnings.push_back(d.problem);
  if (d.problem.empty() && d.exists && !d.write_problem.empty()) {
    d.warnings.push_back("changes to the registry will fail: " + d.write_problem);
  }
}

}  // namespace tfimm::detail
