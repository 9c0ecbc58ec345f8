// The registry: model-specific cache locations and the cache-directory
// setting, kept in one SQLite database shared by every process that opens it.
//
// A Registry owns one connection, opened lazily on first use and reopened
// after fork() in the child. Every member is safe to call from several threads
// (calls are serialised). fork() is safe while other threads are inside calls:
// it waits for the calls running on other threads to return (one waiting for
// another process's lock waits up to the busy timeout), and the child gets a
// working Registry. A child forked inside a transaction body can read the
// registry file but never write it (see transaction()). A child forked inside
// an audit or prune progress callback may use the registry there, but must
// _exit() or exec() before it returns from the callback: the checking threads
// stayed in the parent.
//
// Reads of a registry file that does not exist yet answer as an empty
// registry and create nothing; the first write creates the file and its
// parent directories. If the file is deleted or replaced while a Registry has
// it open, nothing is ever written into the old file: the next write throws
// RegistryError saying so, the next read reopens the path.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tfimm/errors.hpp"

namespace tfimm {

// Version of this library, "MAJOR.MINOR.PATCH".
const char* version() noexcept;

// Newest registry schema version this build knows (the number of the last
// migration embedded in it).
int schema_version() noexcept;

// ---------------------------------------------------------------------------
// Where the registry file lives.

enum class RegistrySource {
  Explicit,      // a file given to Registry or --registry
  EnvRegistry,   // $TFIMM_REGISTRY
  XdgStateHome,  // $XDG_STATE_HOME/tfimm/registry.db
  Default,       // ~/.local/state/tfimm/registry.db
};

// An environment variable ignored because its value is a relative path,
// which would mean a different directory in every working directory (the
// XDG base directory specification calls such values invalid).
struct IgnoredVariable {
  std::string name;   // "XDG_STATE_HOME", "XDG_CACHE_HOME" or "HOME"
  std::string value;  // as set
};

struct RegistryLocation {
  std::string path;  // absolute, normalised
  RegistrySource source;
  std::vector<IgnoredVariable> ignored = {};  // variables the choice passed over
};

// The registry file used when none is given: $TFIMM_REGISTRY, else
// $XDG_STATE_HOME/tfimm/registry.db, else ~/.local/state/tfimm/registry.db.
// $TFIMM_REGISTRY may also be a PostgreSQL URI (is_server_location()).
// A variable set to the empty string counts as unset; a relative
// $XDG_STATE_HOME or $HOME is ignored (listed in `ignored`). Reads the
// environment only; touches no file. Throws InvalidPath naming
// $TFIMM_REGISTRY when it is relative or cannot be expanded, and when no
// home directory is known.
RegistryLocation default_registry_location();

// Whether `location` names a registry on a PostgreSQL server (a
// postgresql:// or postgres:// connection URI, used as given and never
// normalised as a path) rather than a registry file.
bool is_server_location(const std::string& location) noexcept;

// Short human description: "given explicitly (--registry)", "$TFIMM_REGISTRY",
// "$XDG_STATE_HOME/tfimm/registry.db", "default (~/.local/state/...)".
std::string describe(RegistrySource source);

// ---------------------------------------------------------------------------
// Where the cache directory comes from, highest precedence first.

enum class DirSource {
  Override,         // set_dir_override() in this process
  RegistrySetting,  // Registry::set_dir(), stored in the registry
  TfimmHome,        // $TFIMM_HOME
  XdgCacheHome,     // $XDG_CACHE_HOME/tfimm
  Default,          // ~/.cache/tfimm
};

// Short human description: "process override", "registry setting",
// "$TFIMM_HOME", "$XDG_CACHE_HOME", "default".
std::string describe(DirSource source);

struct DirLayer {
  DirSource source;
  std::optional<std::string> path;  // normalised value, or empty if not set
};

struct CacheDir {
  std::string path;  // the directory get_dir() returns
  DirSource source;  // which layer gave it
  // Every layer in precedence order, set or not: what the winner shadows.
  std::vector<DirLayer> layers;
  // A relative $XDG_CACHE_HOME or $HOME, ignored. A relative $TFIMM_HOME
  // is refused (InvalidPath naming it) when it would decide, and listed
  // here when a higher layer is set.
  std::vector<IgnoredVariable> ignored = {};
};

// Process-local override of the cache directory, highest precedence, for
// every Registry in this process and for no other process. The path is
// normalised (see normalize_path); throws InvalidPath. Thread-safe.
void set_dir_override(const std::string& path);
void clear_dir_override() noexcept;
std::optional<std::string> dir_override();

// ---------------------------------------------------------------------------
// Records.

// Milliseconds since the Unix epoch.
using Timestamp = std::int64_t;

struct Entry {
  std::string name;
  std::string path;
  Timestamp created_at = 0;
  Timestamp updated_at = 0;
  bool locked = false;
  std::string lock_reason;
  // When an audit or prune first found the path missing; empty while found.
  std::optional<Timestamp> missing_since;
  // The host whose own file system holds the path: the host that registered
  // it, when the path was on a local (not network) file system there. Empty
  // when the path is on a network file system, or was registered before the
  // registry recorded hosts. An audit or prune on any other host leaves such
  // an entry alone (PathStatus::OtherHost).
  std::string local_to;
};

enum class ResolveSource {
  Entry,     // the model-specific entry
  CacheDir,  // <cache dir>/<name>
  None,      // nothing: the model is not cached
};

// State of one path on disk, as an audit sees it.
enum class PathStatus {
  Ok,             // exists (following symlinks)
  Missing,        // does not exist
  DanglingLink,   // a symlink whose target does not exist
  NotAccessible,  // cannot be checked: permission denied on a parent
  NotADirectory,  // a parent component is a file
  Error,          // another error (I/O, too many symlink levels, ...)
  OtherHost,      // not checked: the path is local to another host (Entry::local_to)
};

// "ok", "missing", "dangling_link", "not_accessible", "not_a_directory",
// "error", "other_host": the spelling used in JSON output.
std::string to_string(PathStatus status);

// Checks one path without changing anything. `detail` gets the system's
// message for NotAccessible and Error, and the link target for symlinks.
PathStatus check_path(const std::string& path, std::string* detail = nullptr);

// A path that certainly no longer exists, so that prune may forget its
// entry: Missing, DanglingLink or NotADirectory.
bool is_stale(PathStatus status) noexcept;

struct Resolution {
  std::string name;
  std::optional<std::string> path;  // what cached_model_path() returns
  ResolveSource source = ResolveSource::None;
  bool exists = false;           // whether `path` exists now: status == Ok
  std::optional<Entry> entry;    // the model-specific entry, if any
  CacheDir cache_dir;            // the cache directory and its origin
  std::string fallback_path;     // <cache dir>/<name>
  bool fallback_exists = false;  // fallback_status == Ok
  // What check_path() found for the entry's path (without an entry: for
  // fallback_path) and for fallback_path, with its detail. NotAccessible and
  // Error mean "could not check", not "does not exist".
  PathStatus status = PathStatus::Missing;
  std::string detail;
  PathStatus fallback_status = PathStatus::Missing;
  std::string fallback_detail;
};

struct AuditItem {
  Entry entry;
  PathStatus status = PathStatus::Ok;
  bool is_symlink = false;  // the registered path itself is a symlink
  std::string detail;
};

struct AuditReport {
  std::vector<AuditItem> items;  // sorted by name
  CacheDir cache_dir;
  PathStatus cache_dir_status = PathStatus::Ok;
  // False when the registry could not record missing-since times (read-only,
  // or a full disk).
  bool recorded = true;
  std::size_t count(PathStatus status) const;
  std::size_t stale() const;  // entries whose path is missing or dangling
};

struct AuditOptions {
  // Paths checked at once; 0 picks a default. Network shares answer slowly,
  // so checks run in parallel.
  unsigned threads = 0;
  // Called from the calling thread as checks complete: (done, total). It may
  // call the Registry being audited; other threads' calls wait meanwhile.
  std::function<void(std::size_t, std::size_t)> progress;
  // Also check the paths local to other hosts, as if they were this host's
  // (for a host whose name changed, such as a container's).
  bool all_hosts = false;
};

struct PruneOptions {
  bool dry_run = false;
  // Forget only entries continuously missing for at least this long.
  std::chrono::milliseconds expire{0};
  AuditOptions audit;
};

struct PruneItem {
  Entry entry;
  PathStatus status = PathStatus::Missing;
};

struct PruneReport {
  std::vector<PruneItem> removed;      // forgotten (or, dry run, to forget)
  std::vector<PruneItem> kept_locked;  // stale but locked
  std::vector<PruneItem> kept_young;   // stale, but not missing long enough
  std::vector<PruneItem> other_host;   // not checked: local to another host
  std::size_t checked = 0;
  bool dry_run = false;
};

// One change, as recorded in the history.
struct HistoryRecord {
  std::int64_t id = 0;
  Timestamp at = 0;
  // set, clear, set_dir, unset_dir, lock, unlock, prune, import; retain (the
  // retention setting: old_path and new_path hold its old and new value, e.g.
  // "90d", none for "forever"); forget (history forgotten: forgot_through,
  // forgot_rows).
  std::string action;
  std::string name;  // model name; empty for cache-dir, retain and forget rows
  std::optional<std::string> old_path;
  std::optional<std::string> new_path;
  std::string user;
  std::string host;
  std::int64_t pid = 0;
  // The change set: the rows one call wrote together (one set, clear,
  // import, prune, lock, transaction, undo). Its id is the id of its first row.
  std::int64_t change_set = 0;
  // Rows written by an undo: the change set it reverted.
  std::optional<std::int64_t> undoes;
  // The entry's lock before and after this change; empty when the change
  // left the lock alone.
  std::optional<bool> old_locked;
  std::optional<std::string> old_lock_reason;
  std::optional<bool> new_locked;
  std::optional<std::string> new_lock_reason;
  // For a row that forgot an entry: since when its path had been missing.
  std::optional<Timestamp> old_missing_since;
  // A forget row: the newest row it forgot, and how many rows it forgot.
  std::optional<std::int64_t> forgot_through;
  std::optional<std::int64_t> forgot_rows;
};

struct UndoOptions {
  // Revert even when a later change set touched the same entries or
  // settings (those later changes are then overwritten).
  bool force = false;
  // Only report what would change: reads the registry, never creates it,
  // needs no write access.
  bool dry_run = false;
};

// One entry or setting an undo restores.
struct UndoChange {
  std::string name;     // model name; empty for a setting
  std::string setting;  // "cache_dir" or "history_retention"; empty for an entry
  // Now, and as the undo leaves it; nothing: no entry (no setting).
  std::optional<std::string> old_path;
  std::optional<std::string> new_path;
  bool old_locked = false;
  std::string old_lock_reason;
  bool new_locked = false;
  std::string new_lock_reason;
};

// A later change set that touched what an undo reverts.
struct UndoConflict {
  std::string name;  // model name; empty for a setting
  std::string setting;
  std::int64_t change_set = 0;
  std::string action;
};

struct UndoReport {
  std::int64_t change_set = 0;  // the change set reverted
  // The change set the undo recorded (0 for a dry run, or when nothing
  // needed changing).
  std::int64_t recorded = 0;
  std::vector<UndoChange> changes;  // in name order, settings last
  // With force: the later changes it overwrites.
  std::vector<UndoConflict> conflicts;
  bool dry_run = false;
};

struct ForgetReport {
  std::size_t rows = 0;       // history rows forgotten (or, dry run, to forget)
  std::int64_t through = 0;   // the newest row forgotten; 0: none
  std::int64_t recorded = 0;  // the id of the forget row; 0 for a dry run or none
  bool dry_run = false;
};

// A backup of the registry's contents (see transfer.hpp for the JSON form).
struct Snapshot {
  struct Model {
    std::string name;
    std::string path;
    bool locked = false;
    std::string lock_reason;
    // When the entry was registered and last changed, and since when its
    // path is missing (export format version 2). An import stores them
    // with the path it adds or changes; without them it uses its own time
    // (and the entry is not missing), as version 1 did.
    std::optional<Timestamp> created_at = std::nullopt;
    std::optional<Timestamp> updated_at = std::nullopt;
    std::optional<Timestamp> missing_since = std::nullopt;
    // The host the path is local to (Entry::local_to; format version 2),
    // stored with the times. Without it an import decides, as a set does.
    std::optional<std::string> local_to = std::nullopt;
  };
  std::vector<Model> models;
  std::optional<std::string> cache_dir;
};

struct ExportOptions {
  bool with_history = false;  // also every history row, oldest first
};

// What an export wrote.
struct ExportSummary {
  std::size_t entries = 0;
  bool cache_dir = false;   // the cache-directory setting was set
  std::size_t history = 0;  // history rows, with ExportOptions::with_history
};

struct ImportOptions {
  bool replace = false;  // make the registry equal to the snapshot
  // Path prefix rewrites applied to every imported path, first match wins:
  // {"/old/disk", "/new/disk"} moves "/old/disk/x" to "/new/disk/x".
  std::vector<std::pair<std::string, std::string>> rewrites;
  // Only report what would change: reads the registry, never creates it,
  // needs no write access.
  bool dry_run = false;
};

// What an import changed or, dry run, would change: the same counts either
// way. Each change of an entry is one history row ("import", "lock",
// "unlock"); a changed cache directory is a "set_dir" or "unset_dir" row.
struct ImportReport {
  std::size_t added = 0;      // entries new to the registry
  std::size_t changed = 0;    // entries whose path, lock or lock reason changed
  std::size_t unchanged = 0;  // entries already exactly as in the snapshot
  std::size_t removed = 0;    // with replace: entries not in the snapshot, forgotten
  std::size_t locked = 0;     // entries locked or given another reason, new ones too
  std::size_t unlocked = 0;   // with replace: entries the snapshot has unlocked
  // Without replace: entries locked here and unlocked in the snapshot, which
  // stay locked (a merge never removes a lock).
  std::size_t locks_kept = 0;
  bool cache_dir_changed = false;
};

struct MigrationStatus {
  std::string path;
  bool exists = false;
  int current = 0;                                 // PRAGMA user_version of the file; 0 for none
  int latest = 0;                                  // schema_version()
  std::vector<std::pair<int, Timestamp>> applied;  // version, when
  std::vector<int> pending;
};

struct Diagnosis {
  std::string path;
  bool exists = false;
  // Why the registry cannot be used at all (not a registry file, written by
  // a newer version, damaged, unreadable); empty when it can. Also among the
  // warnings.
  std::string problem;
  int schema = 0;
  int latest_schema = 0;     // the schema this build writes, for this registry's backend
  std::vector<int> pending;  // migrations the next write applies
  std::string integrity;     // "ok", SQLite's first complaint, or "" when not checked
  std::string journal_mode;  // "wal", or "delete" on a network file system
  std::string file_mode;     // e.g. "0644"
  std::string owner;         // user:group
  // Why a write from this process would fail (a read-only file, directory or
  // file system, a full disk; for a registry that does not exist yet, why it
  // cannot be created); empty when writes can work.
  std::string write_problem;
  bool network_fs = false;
  std::string fs_type;  // e.g. "ext4", "nfs"
  std::size_t entries = 0;
  CacheDir cache_dir;
  PathStatus cache_dir_status = PathStatus::Ok;
  std::vector<std::string> warnings;
  // What only a registry on a server has, in order (label, value): the
  // server's version, the role, its privileges, TLS, the schema. Empty for
  // a registry file, whose facts are the fields above.
  std::vector<std::pair<std::string, std::string>> server_facts;
};

struct RegistryOptions {
  // How long a call waits for another process's write lock before it throws
  // RegistryBusy.
  std::chrono::milliseconds busy_timeout{5000};
};

// ---------------------------------------------------------------------------

class Transaction;

class Registry {
 public:
  // The default registry file (see default_registry_location()).
  explicit Registry(RegistryOptions options = {});
  // An explicit file; "~" and relative paths are normalised.
  explicit Registry(const std::string& path, RegistryOptions options = {});
  ~Registry();
  Registry(Registry&&) noexcept;
  Registry& operator=(Registry&&) noexcept;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The registry file and why it was chosen. Touches nothing.
  const RegistryLocation& location() const noexcept;
  const std::string& path() const noexcept;

  // -- the cache directory ---------------------------------------------------

  // The cache directory by precedence: process override, registry setting,
  // $TFIMM_HOME, $XDG_CACHE_HOME/tfimm, ~/.cache/tfimm. Reads the registry.
  std::string get_dir();
  // The same, with the layer that won and those it shadows.
  CacheDir cache_dir();
  // Stores `path` (normalised) as the cache directory for every process.
  // Throws InvalidPath, RegistryError. Durable when it returns.
  void set_dir(const std::string& path);
  // Removes the stored setting so precedence falls back to the environment.
  // No error when none is stored.
  void unset_dir();
  // The stored setting, if any.
  std::optional<std::string> stored_dir();

  // -- model-specific entries ------------------------------------------------

  // Registers `path` (normalised) for `name`, replacing any previous path.
  // Throws InvalidName, InvalidPath, RegistryError; on a throw nothing
  // changed. Durable when it returns.
  void set_model_cache(const std::string& name, const std::string& path);
  // Forgets the entry for `name`; no error when there is none. Never touches
  // files. Returns whether an entry was removed. Throws InvalidName.
  bool clear_model_cache(const std::string& name);
  // Names of the model-specific entries, sorted. Never scans the cache dir.
  std::vector<std::string> list_cached_models();
  // Full entries, sorted by name.
  std::vector<Entry> entries();
  // The entry for `name`, or nothing. Throws InvalidName.
  std::optional<Entry> entry(const std::string& name);
  // The model-specific path as registered, else <cache dir>/<name> if that
  // exists, else nothing. Throws InvalidName.
  std::optional<std::string> cached_model_path(const std::string& name);
  // The same answer with its source and what it shadowed.
  Resolution resolve(const std::string& name);

  // Applies every operation in `body` all-or-nothing: an exception thrown
  // inside rolls all of them back and propagates; no other process ever sees
  // part of it. Operations are validated as they are called. Inside the body
  // the registry is changed and read only through the Transaction& passed to
  // it: a call of any member of this Registry (a nested transaction()
  // included) from the thread running the body throws TransactionMisuse and
  // changes nothing; calls from other threads wait until the transaction
  // ends. In a process forked inside the body the transaction stays the
  // parent's: there, transaction() throws TransactionMisuse when the body
  // returns, and SQLite keeps the parent's write lock for the life of the
  // child, so its writes to this file throw RegistryBusy at once (reads work).
  void transaction(const std::function<void(Transaction&)>& body);

  // -- administration --------------------------------------------------------

  // Marks an entry so prune never forgets it. Throws UnknownModel.
  void lock(const std::string& name, const std::string& reason = {});
  // Throws UnknownModel. Returns whether it was locked.
  bool unlock(const std::string& name);

  // Checks every registered path (in parallel) and the cache directory,
  // and records when each path was first found missing (cleared when found
  // again). Never changes or deletes files.
  AuditReport audit(const AuditOptions& options = {});
  // The checks of audit(), the same way (in parallel, progress on the
  // calling thread), for every entry, sorted by name; records nothing and
  // never writes, so it works on a registry this process can only read.
  std::vector<AuditItem> check_entries(const AuditOptions& options = {});

  // Forgets entries whose path is missing or a dangling link, unless locked
  // or, with `expire`, missing for less than that. One transaction; an entry
  // re-registered after the check is kept. Never deletes files.
  PruneReport prune(const PruneOptions& options = {});

  // Changes, newest first; only those of `name` when given; at most `limit`
  // (0: all).
  std::vector<HistoryRecord> history(const std::optional<std::string>& name = {},
                                     std::size_t limit = 0);
  // The same rows, one at a time to `row`, never holding more than a page of
  // them: memory does not grow with the history. `row` runs on the calling
  // thread between reads (it may call this Registry); what it throws passes
  // through and stops the listing.
  void history(const std::optional<std::string>& name, std::size_t limit,
               const std::function<void(const HistoryRecord&)>& row);

  // Reverts change set `id` (or the change set of the history row `id`) in
  // one transaction: every entry and setting it touched gets the state it
  // had before it, and the undo is recorded as a change set of its own
  // (rows with `undoes` = the reverted id), so undoing it redoes. Throws
  // InvalidInput for an unknown or forgotten id, a change set that cannot
  // be reverted (a forget), and, without `force`, when a later change set
  // touched any of the same entries or settings (naming them); nothing
  // changed then. A dry run reports the same and changes nothing.
  UndoReport undo(std::int64_t id, const UndoOptions& options = {});

  // -- history retention -----------------------------------------------------

  // Forgets the history rows older than `age` (whole change sets, oldest
  // first: the rows up to the newest change set older than that) and
  // records a `forget` row saying so. Entries and their timestamps are never
  // touched. A dry run counts without changing anything.
  ForgetReport forget_history(std::chrono::milliseconds age, bool dry_run = false);
  // The stored retention: after each change, history older than this is
  // forgotten, at most kRetentionBatch rows per change. Nothing: keep
  // everything (the default). Throws InvalidInput for less than one second.
  void set_history_retention(std::optional<std::chrono::milliseconds> age);
  std::optional<std::chrono::milliseconds> history_retention();
  static constexpr std::size_t kRetentionBatch = 1000;

  // The whole registry contents.
  Snapshot snapshot();
  // Checks every record of `snapshot` first (names, paths, duplicates), then
  // applies all of it in one transaction or nothing, and records each change
  // in the history. Throws InvalidInput naming the first bad record.
  ImportReport import(const Snapshot& snapshot, const ImportOptions& options = {});

  // Writes the registry as an export file (transfer.hpp) to `out`, from one
  // consistent snapshot, a page of entries at a time: memory does not grow
  // with the registry. Stops at the first failed write to `out` (the caller
  // sees `out` failed). Throws RegistryError kinds.
  ExportSummary export_json(std::ostream& out, const ExportOptions& options = {});
  // Imports an export file of version 1 or 2 read from `in`, applying it
  // in batches as it is read, inside one transaction: all of it or nothing
  // (a bad record rolls it back). Memory does not grow with the file. Into
  // a registry that does not exist yet, every record is checked first
  // without the registry (so that a bad file creates nothing) and `in` is
  // read again (`in` that cannot seek, a pipe, is copied to an unnamed
  // temporary file in $TMPDIR as it is checked). History rows in the file
  // are added unless the same row (every field but its id) is there.
  // Throws InvalidInput naming the first problem, RegistryError kinds.
  ImportReport import_json(std::istream& in, const ImportOptions& options = {});

  // Integrity check and facts for `tfimm-cache doctor`. Reads only, never
  // migrates or creates anything. A registry that cannot be used is reported
  // (Diagnosis::problem), not thrown.
  Diagnosis diagnose();

  // The schema of this registry: applied and pending migrations, read
  // without a change (as the free migration_status(), for any location,
  // a server URI with its password included).
  MigrationStatus migration_status();

 private:
  friend class Transaction;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Operations inside Registry::transaction(). Same contracts as the Registry
// members of the same names, except that nothing is durable before the
// transaction commits; reads see the transaction's own changes. Usable only
// inside the body it is passed to, on the thread running it: a call after the
// body returned, from another thread, or in a process forked inside the body
// throws TransactionMisuse and changes nothing. The object lives as long as
// its Registry.
class Transaction {
 public:
  void set_model_cache(const std::string& name, const std::string& path);
  bool clear_model_cache(const std::string& name);
  void set_dir(const std::string& path);
  void unset_dir();
  std::optional<std::string> cached_model_path(const std::string& name);
  std::vector<std::string> list_cached_models();

 private:
  friend struct Registry::Impl;
  explicit Transaction(Registry::Impl& impl) : impl_(impl) {}
  Registry::Impl& impl_;
};

// Schema state of a registry file without changing it. Throws RegistryError
// for a file that is not a registry.
MigrationStatus migration_status(const std::string& path);

// Whether the file system holding `path` (or its nearest existing parent) is
// a network file system (NFS, CIFS/SMB, Lustre, Ceph, GPFS, 9p, AFS, ...),
// where SQLite's WAL and POSIX locks are unsafe. $TFIMM_NETWORK_FS=1 or 0
// overrides the detection. `fs_type` gets the file system's name.
bool on_network_fs(const std::string& path, std::string* fs_type = nullptr);

// Parses a duration like "30s", "15m", "12h", "7d", "2w". Throws InvalidInput.
std::chrono::milliseconds parse_duration(const std::string& text);
// The duration in the largest unit that divides it exactly ("90d", "12h",
// "45s"; whole seconds), as parse_duration() reads it.
std::string format_duration(std::chrono::milliseconds age);

}  // namespace tfimm
