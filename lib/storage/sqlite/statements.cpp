// The SQL of the SQLite backend: every read and write of rows.
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <type_traits>

#include "storage/actor.hpp"
#include "storage/fork.hpp"
#include "storage/sqlite/changes_table.hpp"
#include "storage/sqlite/connection.hpp"

namespace tfimm::detail {
namespace {

constexpr const char* kModelColumns =
    "name, path, created_at, updated_at, locked, lock_reason, missing_since, local_to";

Entry entry_from_row(SQLite::Statement& st) {
  Entry e;
  e.name = st.getColumn(0).getString();
  e.path = st.getColumn(1).getString();
  e.created_at = st.getColumn(2).getInt64();
  e.updated_at = st.getColumn(3).getInt64();
  e.locked = st.getColumn(4).getInt() != 0;
  e.lock_reason = st.getColumn(5).getString();
  if (!st.getColumn(6).isNull()) e.missing_since = st.getColumn(6).getInt64();
  e.local_to = st.getColumn(7).getString();
  return e;
}

// Resets a cached statement when the use ends, so that no read transaction
// stays open between calls. Every use binds every parameter before it steps,
// and text is bound without a copy (bindNoCopy): the caller's strings outlive
// the step, and nothing reads a binding after the reset.
class Use {
 public:
  explicit Use(SQLite::Statement& st) : st_(st) {}
  ~Use() { st_.tryReset(); }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  SQLite::Statement* operator->() { return &st_; }
  SQLite::Statement& operator*() { return st_; }

 private:
  SQLite::Statement& st_;
};

constexpr const char* kHistoryColumns =
    "id, at, action, name, old_path, new_path, user, host, pid, COALESCE(change_set, id), "
    "undoes, old_locked, old_lock_reason, new_locked, new_lock_reason, old_missing_since, "
    "forgot_through, forgot_rows";

std::optional<std::int64_t> optional_int(SQLite::Statement& st, int column) {
  if (st.getColumn(column).isNull()) return std::nullopt;
  return st.getColumn(column).getInt64();
}

std::optional<std::string> optional_text(SQLite::Statement& st, int column) {
  if (st.getColumn(column).isNull()) return std::nullopt;
  return st.getColumn(column).getString();
}

HistoryRecord history_from_row(SQLite::Statement& st) {
  HistoryRecord r;
  r.id = st.getColumn(0).getInt64();
  r.at = st.getColumn(1).getInt64();
  r.action = st.getColumn(2).getString();
  r.name = st.getColumn(3).getString();
  r.old_path = optional_text(st, 4);
  r.new_path = optional_text(st, 5);
  r.user = st.getColumn(6).getString();
  r.host = st.getColumn(7).getString();
  r.pid = st.getColumn(8).getInt64();
  r.change_set = st.getColumn(9).getInt64();
  r.undoes = optional_int(st, 10);
  if (auto v = optional_int(st, 11)) r.old_locked = *v != 0;
  r.old_lock_reason = optional_text(st, 12);
  if (auto v = optional_int(st, 13)) r.new_locked = *v != 0;
  r.new_lock_reason = optional_text(st, 14);
  r.old_missing_since = optional_int(st, 15);
  r.forgot_through = optional_int(st, 16);
  r.forgot_rows = optional_int(st, 17);
  return r;
}

template <typename T>
void bind_optional(SQLite::Statement& st, int index, const std::optional<T>& value) {
  if (!value) {
    st.bind(index);
  } else if constexpr (std::is_same_v<T, std::string>) {
    st.bindNoCopy(index, *value);
  } else {
    st.bind(index, static_cast<std::int64_t>(*value));
  }
}

}  // namespace

// -- reads --------------------------------------------------------------------

std::optional<std::string> SqliteStore::model_path(const std::string& name) {
  return text_by_key("SELECT path FROM models WHERE name = ?", name, "look up a model in");
}

std::optional<std::string> SqliteStore::text_by_key(const char* sql, const std::string& key,
                                                    const char* operation) {
  if (read_absent()) return {};
  try {
    Use st(conn().prepare(sql));
    st->bindNoCopy(1, key);
    if (!st->executeStep()) return std::nullopt;
    return st->getColumn(0).getString();
  } catch (const std::exception& e) {
    fail(e, operation);
  }
}

std::vector<std::optional<std::string>> SqliteStore::model_paths(
    const std::vector<PathChange>& changes) {
  std::vector<std::optional<std::string>> out(changes.size());
  if (changes.empty() || read_absent()) return out;
  if (changes.size() == 1) {
    // One name (a transaction that reads after each set): the kept
    // statement, not a set-based one prepared anew.
    out[0] = model_path(*changes[0].name);
    return out;
  }
  try {
    std::size_t i = 0;
    run_with_changes(conn().db.getHandle(),
                     "SELECT (SELECT path FROM models WHERE name = c.name) "
                     "FROM tfimm_changes(?1) AS c",
                     changes, nullptr, [&](sqlite3_stmt* st) {
                       if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
                         out[i].emplace(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                                        static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
                       }
                       ++i;
                     });
    return out;
  } catch (const std::exception& e) {
    fail(e, "look up models in");
  }
}

Lookup SqliteStore::lookup(const std::string& name, const std::string& setting_key) {
  if (read_absent()) return {};
  try {
    auto& c = conn();
    Lookup found;
    {
      Use st(c.prepare("SELECT path FROM models WHERE name = ?1"));
      st->bindNoCopy(1, name);
      if (st->executeStep()) {
        found.path = st->getColumn(0).getString();
        return found;
      }
    }
    // Not registered: the caller needs the setting as of that same snapshot.
    // The value read last is still the one in it when nothing has been
    // committed since, by any connection: the data version is unchanged.
    // Never reused or kept inside a write, which may yet roll back.
    auto& cached = c.cached_setting;
    if (depth_ == 0 && cached.valid && cached.key == setting_key &&
        cached.version == c.data_version()) {
      found.setting = cached.value;
      return found;
    }
    // Otherwise the entry and the setting again, in one statement and so in
    // one snapshot; LIMIT 1 skips the setting when the entry now exists.
    Use st(
        c.prepare("SELECT 1, path FROM models WHERE name = ?1 UNION ALL "
                  "SELECT 0, value FROM settings WHERE key = ?2 LIMIT 1"));
    st->bindNoCopy(1, name);
    st->bindNoCopy(2, setting_key);
    if (st->executeStep()) {
      (st->getColumn(0).getInt() == 1 ? found.path : found.setting) = st->getColumn(1).getString();
    }
    if (depth_ == 0 && !found.path) cached = {true, setting_key, found.setting, c.data_version()};
    return found;
  } catch (const std::exception& e) {
    fail(e, "look up a model in");
  }
}

std::optional<Entry> SqliteStore::model(const std::string& name) {
  if (read_absent()) return {};
  try {
    static const std::string sql =
        std::string("SELECT ") + kModelColumns + " FROM models WHERE name = ?";
    Use st(conn().prepare(sql.c_str()));
    st->bindNoCopy(1, name);
    if (!st->executeStep()) return std::nullopt;
    return entry_from_row(*st);
  } catch (const std::exception& e) {
    fail(e, "read an entry of");
  }
}

std::vector<Entry> SqliteStore::models() {
  if (read_absent()) return {};
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

std::vector<Entry> SqliteStore::models_after(const std::optional<std::string>& after,
                                             std::size_t limit) {
  if (read_absent()) return {};
  try {
    // Names are compared as SQLite compares them everywhere (bytes, BINARY):
    // the order of models() and of the primary key, so each page is one
    // seek and a walk along it (two statements: "?1 IS NULL OR name > ?1"
    // would scan the whole table for every page).
    static const std::string first =
        std::string("SELECT ") + kModelColumns + " FROM models ORDER BY name LIMIT ?2";
    static const std::string next = std::string("SELECT ") + kModelColumns +
                                    " FROM models WHERE name > ?1 ORDER BY name LIMIT ?2";
    Use st(conn().prepare(after ? next.c_str() : first.c_str()));
    if (after) st->bindNoCopy(1, *after);
    st->bind(2, static_cast<std::int64_t>(limit));
    std::vector<Entry> out;
    out.reserve(limit);
    while (st->executeStep()) out.push_back(entry_from_row(*st));
    return out;
  } catch (const std::exception& e) {
    fail(e, "list the entries of");
  }
}

std::vector<std::optional<Entry>> SqliteStore::models_named(
    const std::vector<const std::string*>& names) {
  std::vector<std::optional<Entry>> out(names.size());
  if (names.empty() || read_absent()) return out;
  // One kept statement per name: on SQLite a lookup is a function call,
  // not a round trip.
  for (std::size_t i = 0; i < names.size(); ++i) out[i] = model(*names[i]);
  return out;
}

std::vector<std::string> SqliteStore::model_names() {
  if (read_absent()) return {};
  try {
    Use st(conn().prepare("SELECT name FROM models ORDER BY name"));
    std::vector<std::string> out;
    while (st->executeStep()) out.push_back(st->getColumn(0).getString());
    return out;
  } catch (const std::exception& e) {
    fail(e, "list the entries of");
  }
}

std::size_t SqliteStore::model_count() {
  if (read_absent()) return {};
  try {
    Use st(conn().prepare("SELECT count(*) FROM models"));
    st->executeStep();
    return static_cast<std::size_t>(st->getColumn(0).getInt64());
  } catch (const std::exception& e) {
    fail(e, "count the entries of");
  }
}

std::optional<std::string> SqliteStore::setting(const std::string& key) {
  return text_by_key("SELECT value FROM settings WHERE key = ?", key, "read a setting of");
}

std::vector<HistoryRecord> SqliteStore::history(const HistoryQuery& q) {
  if (read_absent()) return {};
  try {
    // One of a few fixed statements, each using its index: the filter is
    // chosen here, every value is bound.
    // Kept statements are known by their text's address: one string each.
    static const std::vector<std::string> statements = [] {
      std::vector<std::string> all;
      for (int variant = 0; variant < 4; ++variant) {
        std::string sql = std::string("SELECT ") + kHistoryColumns + " FROM history WHERE ";
        if (variant & 1) sql += "name = ?1 AND ";
        sql += (variant & 2) ? "id > ?3 ORDER BY id LIMIT ?4" : "id < ?3 ORDER BY id DESC LIMIT ?4";
        all.push_back(std::move(sql));
      }
      return all;
    }();
    const int variant = (q.name ? 1 : 0) | (q.ascending ? 2 : 0);
    Use st(conn().prepare(statements[static_cast<std::size_t>(variant)].c_str()));
    if (q.name) st->bindNoCopy(1, *q.name);
    st->bind(3, static_cast<std::int64_t>(!q.ascending && q.from == 0 ? INT64_MAX : q.from));
    st->bind(4, q.limit == 0 ? std::int64_t{-1} : static_cast<std::int64_t>(q.limit));
    std::vector<HistoryRecord> out;
    while (st->executeStep()) out.push_back(history_from_row(*st));
    return out;
  } catch (const std::exception& e) {
    fail(e, "read the history of");
  }
}

// -- writes -------------------------------------------------------------------

void SqliteStore::put_entries(const std::vector<const Entry*>& entries) {
  if (entries.empty()) return;
  if (absent_) materialize();
  try {
    Use st(conn().prepare(
        "INSERT INTO models(name, path, created_at, updated_at, locked, lock_reason, "
        "missing_since, local_to) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
        "ON CONFLICT(name) DO UPDATE SET path = excluded.path, created_at = excluded.created_at, "
        "updated_at = excluded.updated_at, locked = excluded.locked, "
        "lock_reason = excluded.lock_reason, missing_since = excluded.missing_since, "
        "local_to = excluded.local_to"));
    for (const Entry* e : entries) {
      st->bindNoCopy(1, e->name);
      st->bindNoCopy(2, e->path);
      st->bind(3, static_cast<std::int64_t>(e->created_at));
      st->bind(4, static_cast<std::int64_t>(e->updated_at));
      st->bind(5, e->locked ? 1 : 0);
      st->bindNoCopy(6, e->lock_reason);
      if (e->missing_since) {
        st->bind(7, static_cast<std::int64_t>(*e->missing_since));
      } else {
        st->bind(7);
      }
      st->bindNoCopy(8, e->local_to);
      st->exec();
      st->reset();
    }
  } catch (const std::exception& e) {
    fail(e, "register models in");
  }
}

void SqliteStore::restore_history(const std::vector<HistoryRecord>& records) {
  if (records.empty()) return;
  if (absent_) materialize();
  try {
    // IS compares NULL paths as equal; the name index finds the candidates.
    // Each restored row is a change set of its own, as rows from before
    // change sets are: its change_set is the id it gets (the largest plus
    // one, under the write lock).
    Use st(conn().prepare(
        "INSERT INTO history(at, action, name, old_path, new_path, user, host, pid, change_set) "
        "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT COALESCE(max(id), 0) + 1 FROM history) "
        "WHERE NOT EXISTS (SELECT 1 FROM history "
        "WHERE name = ?3 AND at = ?1 AND action = ?2 AND old_path IS ?4 AND new_path IS ?5 "
        "AND user = ?6 AND host = ?7 AND pid = ?8)"));
    for (const HistoryRecord& r : records) {
      st->bind(1, static_cast<std::int64_t>(r.at));
      st->bindNoCopy(2, r.action);
      st->bindNoCopy(3, r.name);
      if (r.old_path) {
        st->bindNoCopy(4, *r.old_path);
      } else {
        st->bind(4);
      }
      if (r.new_path) {
        st->bindNoCopy(5, *r.new_path);
      } else {
        st->bind(5);
      }
      st->bindNoCopy(6, r.user);
      st->bindNoCopy(7, r.host);
      st->bind(8, static_cast<std::int64_t>(r.pid));
      st->exec();
      st->reset();
    }
  } catch (const std::exception& e) {
    fail(e, "restore history in");
  }
}

void SqliteStore::put_paths(const std::vector<PathChange>& changes, Timestamp now,
                            std::optional<Timestamp> missing_since) {
  if (changes.empty()) return;
  if (absent_) materialize();
  const std::string& host = actor_base().host;
  try {
    if (changes.size() == 1) {
      // One set: the kept statement.
      Use st(conn().prepare(
          "INSERT INTO models(name, path, created_at, updated_at, missing_since, local_to) "
          "VALUES(?1, ?2, ?3, ?3, ?4, ?5) "
          "ON CONFLICT(name) DO UPDATE SET path = excluded.path, "
          "updated_at = excluded.updated_at, missing_since = excluded.missing_since, "
          "local_to = excluded.local_to"));
      st->bindNoCopy(1, *changes[0].name);
      st->bindNoCopy(2, *changes[0].path);
      st->bind(3, static_cast<std::int64_t>(now));
      if (missing_since) {
        st->bind(4, static_cast<std::int64_t>(*missing_since));
      } else {
        st->bind(4);
      }
      static const std::string kNoHost;
      st->bindNoCopy(5, changes[0].host_local ? host : kNoHost);
      st->exec();
      return;
    }
    run_with_changes(conn().db.getHandle(),
                     "INSERT INTO models(name, path, created_at, updated_at, missing_since, "
                     "local_to) "
                     "SELECT name, path, ?2, ?2, ?3, CASE WHEN host_local THEN ?4 ELSE '' END "
                     "FROM tfimm_changes(?1) WHERE true "
                     "ON CONFLICT(name) DO UPDATE SET path = excluded.path, "
                     "updated_at = excluded.updated_at, missing_since = excluded.missing_since, "
                     "local_to = excluded.local_to",
                     changes, [&](sqlite3_stmt* st) {
                       sqlite3_bind_int64(st, 2, now);
                       if (missing_since) {
                         sqlite3_bind_int64(st, 3, *missing_since);
                       } else {
                         sqlite3_bind_null(st, 3);
                       }
                       sqlite3_bind_text(st, 4, host.data(), static_cast<int>(host.size()),
                                         SQLITE_STATIC);
                     });
  } catch (const std::exception& e) {
    fail(e, changes.size() == 1 ? "register a model in" : "register models in");
  }
}

void SqliteStore::add_histories(const std::string& action, const std::vector<PathChange>& changes,
                                Timestamp now) {
  if (changes.empty()) return;
  if (changes.size() == 1) {
    // One set: the kept statement.
    const auto& c = changes[0];
    HistoryRecord row;
    row.action = action;
    row.name = *c.name;
    if (c.old_path) row.old_path = *c.old_path;
    row.new_path = *c.path;
    add_row(row, now);
    return;
  }
  if (absent_) materialize();
  try {
    const Actor& who = actor_base();
    const std::int64_t change_set = next_change_set();
    const char* sql =
        "INSERT INTO history(at, action, name, old_path, new_path, user, host, pid, change_set) "
        "SELECT ?2, ?3, name, old_path, path, ?4, ?5, ?6, ?7 FROM tfimm_changes(?1)";
    run_with_changes(conn().db.getHandle(), sql, changes, [&](sqlite3_stmt* st) {
      sqlite3_bind_int64(st, 7, change_set);
      sqlite3_bind_int64(st, 2, now);
      sqlite3_bind_text(st, 3, action.data(), static_cast<int>(action.size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 4, who.user.data(), static_cast<int>(who.user.size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 5, who.host.data(), static_cast<int>(who.host.size()), SQLITE_STATIC);
      sqlite3_bind_int64(st, 6, current_pid());
    });
  } catch (const std::exception& e) {
    fail(e, "record history in");
  }
}

bool SqliteStore::delete_model(const std::string& name) {
  return delete_row(
      "DELETE FROM models WHERE name = ?", name, [&] { return model_path(name).has_value(); },
      "remove an entry from");
}

void SqliteStore::set_lock(const std::string& name, bool locked, const std::string& reason) {
  if (read_absent()) return;  // no such row
  if (absent_) materialize();
  try {
    Use st(conn().prepare("UPDATE models SET locked = ?2, lock_reason = ?3 WHERE name = ?1"));
    st->bindNoCopy(1, name);
    st->bind(2, locked ? 1 : 0);
    st->bindNoCopy(3, reason);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "lock an entry in");
  }
}

void SqliteStore::set_missing(const Entry& seen, std::optional<Timestamp> value,
                              bool only_if_unset) {
  if (read_absent()) return;  // no such row
  if (absent_) materialize();
  try {
    Use st(
        conn().prepare("UPDATE models SET missing_since = ?4 "
                       "WHERE name = ?1 AND path = ?2 AND updated_at = ?3 "
                       "AND (?5 = 0 OR missing_since IS NULL)"));
    st->bindNoCopy(1, seen.name);
    st->bindNoCopy(2, seen.path);
    st->bind(3, static_cast<std::int64_t>(seen.updated_at));
    if (value) {
      st->bind(4, static_cast<std::int64_t>(*value));
    } else {
      st->bind(4);
    }
    st->bind(5, only_if_unset ? 1 : 0);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "record missing paths in");
  }
}

void SqliteStore::put_setting(const std::string& key, const std::string& value) {
  if (absent_) materialize();
  try {
    Use st(
        conn().prepare("INSERT INTO settings(key, value) VALUES(?1, ?2) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    st->bindNoCopy(1, key);
    st->bindNoCopy(2, value);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "store a setting in");
  }
}

bool SqliteStore::delete_setting(const std::string& key) {
  return delete_row(
      "DELETE FROM settings WHERE key = ?", key, [&] { return setting(key).has_value(); },
      "remove a setting from");
}

bool SqliteStore::delete_row(const char* sql, const std::string& key,
                             const std::function<bool()>& exists, const char* operation) {
  if (read_absent()) return false;  // no such row
  // A registry this process cannot write: no row to delete is no change, not a refusal.
  if (absent_ && !exists()) return false;
  if (absent_) materialize();
  try {
    Use st(conn().prepare(sql));
    st->bindNoCopy(1, key);
    return st->exec() > 0;
  } catch (const std::exception& e) {
    fail(e, operation);
  }
}

std::int64_t SqliteStore::next_change_set() {
  if (change_set_) return *change_set_;
  // Inside the write lock the next row gets the largest id plus one (ids are
  // never reused: history is forgotten from its start, never its end).
  Use st(conn().prepare("SELECT COALESCE(max(id), 0) + 1 FROM history"));
  st->executeStep();
  change_set_ = st->getColumn(0).getInt64();
  return *change_set_;
}

void SqliteStore::add_row(const HistoryRecord& row, Timestamp now) {
  if (absent_) materialize();
  try {
    const Actor& who = actor_base();
    const std::int64_t change_set = next_change_set();
    Use st(conn().prepare(
        "INSERT INTO history(at, action, name, old_path, new_path, user, host, pid, change_set, "
        "undoes, old_locked, old_lock_reason, new_locked, new_lock_reason, old_missing_since, "
        "forgot_through, forgot_rows) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"));
    st->bind(1, static_cast<std::int64_t>(now));
    st->bindNoCopy(2, row.action);
    st->bindNoCopy(3, row.name);
    bind_optional(*st, 4, row.old_path);
    bind_optional(*st, 5, row.new_path);
    st->bindNoCopy(6, who.user);
    st->bindNoCopy(7, who.host);
    st->bind(8, static_cast<std::int64_t>(current_pid()));
    st->bind(9, change_set);
    bind_optional(*st, 10, row.undoes);
    bind_optional(*st, 11, row.old_locked);
    bind_optional(*st, 12, row.old_lock_reason);
    bind_optional(*st, 13, row.new_locked);
    bind_optional(*st, 14, row.new_lock_reason);
    bind_optional(*st, 15, row.old_missing_since);
    bind_optional(*st, 16, row.forgot_through);
    bind_optional(*st, 17, row.forgot_rows);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "record history in");
  }
}

void SqliteStore::put_entry(const Entry& entry, Timestamp now) {
  if (absent_) materialize();
  try {
    Use st(conn().prepare(
        "INSERT INTO models(name, path, created_at, updated_at, locked, lock_reason, "
        "missing_since, local_to) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
        "ON CONFLICT(name) DO UPDATE SET path = excluded.path, updated_at = excluded.updated_at, "
        "locked = excluded.locked, lock_reason = excluded.lock_reason, "
        "missing_since = excluded.missing_since, local_to = excluded.local_to"));
    st->bindNoCopy(1, entry.name);
    st->bindNoCopy(2, entry.path);
    st->bind(3, static_cast<std::int64_t>(entry.created_at));
    st->bind(4, static_cast<std::int64_t>(now));
    st->bind(5, entry.locked ? 1 : 0);
    st->bindNoCopy(6, entry.lock_reason);
    bind_optional(*st, 7, entry.missing_since);
    st->bindNoCopy(8, entry.local_to);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "register a model in");
  }
}

std::size_t SqliteStore::forget_history(std::int64_t through) {
  if (read_absent()) return 0;
  try {
    Use st(conn().prepare("DELETE FROM history WHERE id <= ?1"));
    st->bind(1, static_cast<std::int64_t>(through));
    return static_cast<std::size_t>(st->exec());
  } catch (const std::exception& e) {
    fail(e, "forget history in");
  }
}

// -- facts --------------------------------------------------------------------

std::string SqliteStore::journal_mode() {
  // SQLite reports "delete" for a file it reads as immutable, whatever the
  // file's own mode.
  if (snapshot_) return "wal";  // only a WAL file is read as it is
  try {
    return conn().db.execAndGet("PRAGMA journal_mode").getString();
  } catch (const std::exception& e) {
    fail(e, "read the journal mode of");
  }
}

std::string SqliteStore::integrity_check() {
  try {
    return conn().db.execAndGet("PRAGMA integrity_check").getString();
  } catch (const std::exception& e) {
    fail(e, "check the integrity of");
  }
}

}  // namespace tfimm::detail
