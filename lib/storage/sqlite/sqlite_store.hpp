// The SQLite backend: a registry in one SQLite file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tfimm/registry.hpp"

namespace tfimm::detail {

class Store {
 public:
  Store(std::string path, std::chrono::milliseconds busy_timeout);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const noexcept { return path_; }

  // From now on, open() only looks: it never switches the journal mode, and
  // reads a WAL file with nothing beside it as it is on disk, so that no
  // -wal or -shm is even made (doctor).
  void inspect_only() noexcept { inspect_ = true; }

  // Opens the connection if needed (after fork() in a child, a new one) and
  // migrates the schema. Returns false, creating nothing, when the file does
  // not exist and `create` is false. A registry this process can only read
  // as it is on disk (a read-only file system or directory, a full disk) is
  // opened immutable, unless `for_write`. Throws RegistryError kinds.
  bool open(bool create, bool for_write = false);

  // Runs `body` in a read transaction (one consistent snapshot). Returns
  // false without running it when the registry does not exist.
  bool read(const std::function<void()>& body);

  // Runs `body` in a write transaction begun IMMEDIATE. A registry that does
  // not exist is created by the body's first change, so a body that changes
  // nothing creates nothing; reads before that answer as an empty registry.
  // Commits unless `body` throws (then rolls back). Nested calls join the
  // outer transaction.
  void write(const std::function<void()>& body);

  // write() for a change to many entries at once: the page cache grows for
  // the transaction to hold every page it changes, so that none is written
  // to the log twice, and shrinks back after it.
  void bulk_write(const std::function<void()>& body);

  // -- reads (inside read() or write()) --
  // The path of `name`, else the value of setting `setting_key`, read in one
  // statement (one snapshot, one transaction).
  struct Lookup {
    std::optional<std::string> path;
    std::optional<std::string> setting;
  };
  Lookup lookup(const std::string& name, const std::string& setting_key);
  std::optional<std::string> model_path(const std::string& name);
  std::optional<Entry> model(const std::string& name);
  std::vector<Entry> models();
  std::vector<std::string> model_names();
  std::optional<std::string> setting(const std::string& key);
  std::vector<HistoryRecord> history(const std::optional<std::string>& name, std::size_t limit);
  std::size_t model_count();

  // -- writes (inside write()) --
  // Inserts or replaces; keeps created_at and the lock; clears missing_since.
  void upsert_model(const std::string& name, const std::string& path, Timestamp now);
  bool delete_model(const std::string& name);
  void set_lock(const std::string& name, bool locked, const std::string& reason);
  // Sets missing_since to `now` unless already set, for the row still at
  // `path` with `updated_at`; or clears it (now = nullopt).
  void mark_missing(const std::string& name, const std::string& path, Timestamp updated_at,
                    std::optional<Timestamp> now);
  // One model whose path changes, for the set-based writes below. The
  // strings are borrowed for the duration of the call.
  struct PathChange {
    const std::string* name = nullptr;
    const std::string* path = nullptr;
    const std::string* old_path = nullptr;  // nullptr: not registered before
  };
  // upsert_model() for every change, in one statement.
  void upsert_models(const std::vector<PathChange>& changes, Timestamp now);
  // add_history(action, name, old_path, path, now) for every change, in
  // order, in one statement. With OldPaths::Current the old path is each
  // entry's path as stored now (call it before the entries are written), and
  // PathChange::old_path is not read.
  enum class OldPaths { Given, Current };
  void add_histories(const std::string& action, const std::vector<PathChange>& changes,
                     Timestamp now, OldPaths old_paths = OldPaths::Given);
  void put_setting(const std::string& key, const std::string& value);
  bool delete_setting(const std::string& key);
  void add_history(const std::string& action, const std::string& name,
                   const std::optional<std::string>& old_path,
                   const std::optional<std::string>& new_path, Timestamp now);
  // add_history("set", name, <its path now, if any>, new_path, now), for a
  // set about to be written.
  void add_set_history(const std::string& name, const std::string& new_path, Timestamp now);

  // A set inside write(), written later: before any other use of the
  // connection, at the latest before the commit, together with every other
  // deferred set, in two statements (history rows, then entries) in name
  // order. What a transaction of many sets costs then is close to import().
  // A second set of a pending name first writes the pending ones, so that
  // its history row records the path it replaces.
  void defer_set(std::string name, std::string path);

  // -- facts --
  int user_version();
  std::string journal_mode();
  std::string integrity_check();
  bool network_fs() const noexcept { return network_fs_; }
  const std::string& fs_type() const noexcept { return fs_type_; }

 private:
  struct Connection;
  Connection& conn();
  // Connection setup, in one place (connection.cpp).
  std::unique_ptr<Connection> connect(bool create, bool snapshot);
  int check_schema(Connection& c);
  void migrate(Connection& c, int version);
  // Writes to a registry that did not exist when write() began.
  bool read_absent();
  void materialize();
  void begin_write();
  void end_write() noexcept;
  void set_journal_mode(Connection& c);
  bool still_at_path() const;
  bool snapshot_changed() const;
  void write_deferred();
  void drop_deferred() noexcept;
  void check_identity();
  void close_file_handle() noexcept;
  void retire_connection();
  [[noreturn]] void fail(const std::exception& error, const char* operation);

  std::string path_;
  std::chrono::milliseconds busy_timeout_;
  std::unique_ptr<Connection> conn_;
  unsigned long owner_fork_ = 0;  // fork generation that opened conn_
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  int file_fd_ = -1;  // O_PATH handle on the open file (check_identity)
  // Opened immutable, for reading a registry this process cannot write
  // beside (see open()); the file as it was then.
  bool snapshot_ = false;
  off_t snapshot_size_ = 0;
  struct timespec snapshot_mtime_ {};
  // defer_set(): name and path of each pending set (a deque: the strings
  // stay where they are, so the set of names can point into them).
  std::deque<std::pair<std::string, std::string>> deferred_;
  std::unordered_set<std::string_view> deferred_names_;
  bool writing_deferred_ = false;
  int depth_ = 0;  // write() nesting
  // Inside a write() that has not begun writing: there was no registry file
  // (then whether the body has read the empty registry before its first
  // change), or the registry cannot be written by this process (why).
  struct Absent {
    bool read = false;
    std::string blocked;
    bool full = false;  // blocked by a full disk
  };
  std::optional<Absent> absent_;
  bool bulk_ = false;            // inside bulk_write()
  Connection* grown_ = nullptr;  // the connection whose page cache bulk_write grew
  int normal_cache_ = 0;
  bool network_fs_ = false;
  std::string fs_type_;
  bool inspect_ = false;
};

// Reads the schema state of `path` without changing it.
MigrationStatus inspect_migrations(const std::string& path);

}  // namespace tfimm::detail
