// The storage interface: the one thing the domain code (registry.cpp,
// audit.cpp, transfer.cpp) talks to. A backend only stores and fetches rows;
// the registry's rules (storage/rules.hpp) are written once, above it.
// Backends live in storage/<backend>/; open_store() picks one by location.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tfimm/registry.hpp"

namespace tfimm::detail {

// One model whose path changes, for the set-based writes. The strings are
// borrowed for the duration of the call.
struct PathChange {
  const std::string* name = nullptr;
  const std::string* path = nullptr;
  const std::string* old_path = nullptr;  // nullptr: not registered before
  // The path is on a local file system of this host (host_local()): the
  // entry is stored as local to this host (Entry::local_to).
  bool host_local = false;
};

// The path of a name, else the value of a setting, read in one snapshot.
struct Lookup {
  std::optional<std::string> path;
  std::optional<std::string> setting;
};

// Which history rows to read: one page of them, by id.
struct HistoryQuery {
  std::optional<std::string> name;  // only the rows of this model
  bool ascending = false;           // oldest first; else newest first
  // Ascending: rows with id > `from`; descending: rows with id < `from`
  // (0: from the newest).
  std::int64_t from = 0;
  std::size_t limit = 0;  // 0: all
};

// What may be called inside Store::read(). Every call reads the snapshot of
// the transaction it is in; it throws RegistryError kinds.
class Reader {
 public:
  // The path of `name`, else the value of setting `setting_key`.
  virtual Lookup lookup(const std::string& name, const std::string& setting_key) = 0;
  virtual std::optional<std::string> model_path(const std::string& name) = 0;
  // The stored path of each change's name (nullopt: none), in order.
  virtual std::vector<std::optional<std::string>> model_paths(
      const std::vector<PathChange>& changes) = 0;
  virtual std::optional<Entry> model(const std::string& name) = 0;
  virtual std::vector<Entry> models() = 0;  // in name order
  // At most `limit` entries whose names come after `after` (all, without
  // it), in name order: a page of a scan that holds one page at a time.
  virtual std::vector<Entry> models_after(const std::optional<std::string>& after,
                                          std::size_t limit) = 0;
  // The entry of each name (nullopt: none), in order.
  virtual std::vector<std::optional<Entry>> models_named(
      const std::vector<const std::string*>& names) = 0;
  virtual std::vector<std::string> model_names() = 0;
  virtual std::size_t model_count() = 0;
  virtual std::optional<std::string> setting(const std::string& key) = 0;
  // The rows `query` asks for, in its order.
  virtual std::vector<HistoryRecord> history(const HistoryQuery& query) = 0;

 protected:
  ~Reader() = default;
};

// What may be called inside Store::write(): reads see the writes made
// before them in the same transaction. Writes store exactly the values
// given; none reads or decides anything.
class Writer : public Reader {
 public:
  // The body is about to change the registry: creates it now if it does not
  // exist yet, so that what the body reads next is the registry it changes.
  // (Without it, the first change creates the registry, and refuses with
  // RegistryBusy when another process created it after the body read it as
  // empty.)
  virtual void begin_change() = 0;
  // Stores each change's path, updated_at = `now`, missing_since =
  // `missing_since` and local_to = this process's host when the change is
  // host_local, else empty; a new row is created at `now`, unlocked.
  // Created_at and the lock of an existing row are kept.
  virtual void put_paths(const std::vector<PathChange>& changes, Timestamp now,
                         std::optional<Timestamp> missing_since) = 0;
  // Stores each entry exactly as given (every column), replacing any row
  // of its name: what an import of a full record writes.
  virtual void put_entries(const std::vector<const Entry*>& entries) = 0;
  // Returns whether there was such a row.
  virtual bool delete_model(const std::string& name) = 0;
  // No row, no change.
  virtual void set_lock(const std::string& name, bool locked, const std::string& reason) = 0;
  // Stores missing_since = `value` in the row of `seen` if it still has
  // seen's path and updated_at, and, with `only_if_unset`, no missing_since.
  virtual void set_missing(const Entry& seen, std::optional<Timestamp> value,
                           bool only_if_unset) = 0;
  virtual void put_setting(const std::string& key, const std::string& value) = 0;
  virtual bool delete_setting(const std::string& key) = 0;  // whether it was there
  // One history row by this process's actor, at `now`, as `row` gives it
  // (its id, at, user, host, pid and change_set are ignored). Every row of
  // one write transaction belongs to one change set, whose id is that of the
  // transaction's first row.
  virtual void add_row(const HistoryRecord& row, Timestamp now) = 0;
  // A row with only an action, a name and paths.
  void add_history(const std::string& action, const std::string& name,
                   const std::optional<std::string>& old_path,
                   const std::optional<std::string>& new_path, Timestamp now) {
    HistoryRecord row;
    row.action = action;
    row.name = name;
    row.old_path = old_path;
    row.new_path = new_path;
    add_row(row, now);
  }
  // add_history(action, *name, old_path, path, now) for every change, in
  // order, in one statement.
  virtual void add_histories(const std::string& action, const std::vector<PathChange>& changes,
                             Timestamp now) = 0;
  // Adds each record (every field but its id, which the registry gives)
  // unless a row with the same fields is already there, in order: the
  // history of another registry, restored.
  virtual void restore_history(const std::vector<HistoryRecord>& records) = 0;
  // The change set this transaction's rows belong to; nothing before its
  // first row.
  virtual std::optional<std::int64_t> change_set() = 0;
  // Stores `entry` whole (path, lock, reason, missing_since), updated_at =
  // `now`; a new row is created at entry.created_at.
  virtual void put_entry(const Entry& entry, Timestamp now) = 0;
  // Deletes the history rows with id <= `through`; how many went.
  virtual std::size_t forget_history(std::int64_t through) = 0;

 protected:
  ~Writer() = default;
};

// What a write does when the registry does not exist, and whether it lasts.
struct WriteMode {
  enum class Missing {
    Create,  // created by the body's first change: a body that changes nothing creates nothing
    ExistingOnly,  // the body does not run; write() returns false
  };
  enum class Outcome {
    Commit,  // all the body's changes, or none when it throws
    DryRun,  // the body reads as usual; its changes are discarded, nothing is ever created
  };
  Missing missing = Missing::Create;
  Outcome outcome = Outcome::Commit;
  // The body changes many entries: the backend may prepare for a large
  // transaction.
  bool bulk = false;
  // The body reads and changes only this entry (and adds its history rows),
  // nothing else: a backend that locks per entry lets writers to other
  // entries run at the same time. Null: the body may touch anything.
  const std::string* only_name = nullptr;
};

class Store {
 public:
  virtual ~Store() = default;

  // The file path, or a URL without its password: for messages.
  virtual const std::string& display_name() const noexcept = 0;

  // How the reads of a body see the registry.
  enum class Consistency {
    Snapshot,  // all in one read transaction: one consistent snapshot
    PerCall,   // each call is its own snapshot (a body of one call: no transaction needed)
  };

  // Runs `body`'s reads as `consistency` says, opening (and migrating) the
  // registry first. Returns false without running it when the registry does
  // not exist; creates nothing. Inside a write's body, runs it in that
  // write. Throws RegistryError kinds; what `body` throws passes through.
  virtual bool read(const std::function<void(Reader&)>& body,
                    Consistency consistency = Consistency::Snapshot) = 0;

  // Runs `body` in one write transaction, as `mode` says. Returns false when
  // the body did not run (ExistingOnly, and no registry). Inside a write's
  // body, runs it in that write. Throws RegistryError kinds; what `body`
  // throws passes through, after the transaction was rolled back.
  bool write(const std::function<void(Writer&)>& body, WriteMode mode);

  // The schema: applied and pending migrations, read without a change.
  virtual MigrationStatus migration_status() = 0;

  // What `doctor` shows about the stored registry: the backend's facts
  // (schema, integrity, journal mode, entries, ...) and warnings, filled
  // into `d` (whose path is set). `also_read` runs in the same look when the
  // registry can be read. Looks without changing or migrating anything.
  virtual void diagnose(Diagnosis& d, const std::function<void(Reader&)>& also_read) = 0;

 protected:
  // write() with Outcome::Commit.
  virtual bool commit_write(const std::function<void(Writer&)>& body, WriteMode mode) = 0;
};

// Whether `location` names a PostgreSQL server (a postgresql:// or
// postgres:// URI) rather than an SQLite file: such a location is used as
// it is, never normalised as a path.
bool names_server(const std::string& location) noexcept;

// `location` as it may be shown: a URI without its password.
std::string shown_location(const std::string& location);

// The store for `location`: a PostgreSQL URI, else an SQLite file path.
// Opens nothing yet; throws RegistryError for a URI when this build has
// no PostgreSQL backend.
std::unique_ptr<Store> open_store(const std::string& location,
                                  std::chrono::milliseconds busy_timeout);

}  // namespace tfimm::detail
