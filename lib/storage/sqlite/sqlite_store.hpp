// The SQLite backend: a registry in one SQLite file, with its -wal and -shm
// files beside it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/store.hpp"

namespace tfimm::detail {

// Only the Reader& and Writer& given to a body reach the rows: the row
// operations are private.
class SqliteStore final : public Store, private Writer {
 public:
  SqliteStore(std::string path, std::chrono::milliseconds busy_timeout);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  const std::string& display_name() const noexcept override { return path_; }

  // Snapshot: a read transaction (BEGIN). PerCall: no transaction; each
  // statement reads the file as it is then.
  bool read(const std::function<void(Reader&)>& body, Consistency consistency) override;

  MigrationStatus migration_status() override;
  void diagnose(Diagnosis& d, const std::function<void(Reader&)>& also_read) override;

 protected:
  // A write transaction begun IMMEDIATE. A registry that does not exist is
  // created by the body's first change; reads before that answer as an
  // empty registry. With `mode.bulk` the page cache grows for the
  // transaction to hold every page it changes, so that none is written to
  // the log twice, and shrinks back after it.
  bool commit_write(const std::function<void(Writer&)>& body, WriteMode mode) override;

 private:
  // -- Reader and Writer (statements.cpp) --
  Lookup lookup(const std::string& name, const std::string& setting_key) override;
  std::optional<std::string> model_path(const std::string& name) override;
  std::vector<std::optional<std::string>> model_paths(
      const std::vector<PathChange>& changes) override;
  std::optional<Entry> model(const std::string& name) override;
  std::vector<Entry> models() override;
  std::vector<Entry> models_after(const std::optional<std::string>& after,
                                  std::size_t limit) override;
  std::vector<std::optional<Entry>> models_named(
      const std::vector<const std::string*>& names) override;
  std::vector<std::string> model_names() override;
  std::size_t model_count() override;
  std::optional<std::string> setting(const std::string& key) override;
  std::vector<HistoryRecord> history(const HistoryQuery& query) override;
  void begin_change() override {
    if (absent_) materialize();
  }
  void put_paths(const std::vector<PathChange>& changes, Timestamp now,
                 std::optional<Timestamp> missing_since) override;
  void put_entries(const std::vector<const Entry*>& entries) override;
  bool delete_model(const std::string& name) override;
  void set_lock(const std::string& name, bool locked, const std::string& reason) override;
  void set_missing(const Entry& seen, std::optional<Timestamp> value, bool only_if_unset) override;
  void put_setting(const std::string& key, const std::string& value) override;
  bool delete_setting(const std::string& key) override;
  void add_row(const HistoryRecord& row, Timestamp now) override;
  void add_histories(const std::string& action, const std::vector<PathChange>& changes,
                     Timestamp now) override;
  void restore_history(const std::vector<HistoryRecord>& records) override;
  std::optional<std::int64_t> change_set() override { return change_set_; }
  void put_entry(const Entry& entry, Timestamp now) override;
  std::size_t forget_history(std::int64_t through) override;
  // The change set of this write's rows, chosen before its first row.
  std::int64_t next_change_set();
  // The text in the first column of `sql`'s first row with ?1 = `key`.
  std::optional<std::string> text_by_key(const char* sql, const std::string& key,
                                         const char* operation);
  // DELETE `sql` with ?1 = `key`; whether a row went. `exists` asks first
  // when the registry does not exist yet.
  bool delete_row(const char* sql, const std::string& key, const std::function<bool()>& exists,
                  const char* operation);
  // Facts for diagnose().
  std::string journal_mode();
  std::string integrity_check();

  // Opens the connection if needed and migrates the schema. Returns false,
  // creating nothing, when the file does not exist and `create` is false. A
  // registry this process can only read as it is on disk (a read-only file
  // system or directory, a full disk) is opened immutable, unless
  // `for_write`. Throws RegistryError kinds.
  bool open(bool create, bool for_write = false);

  struct Connection;
  Connection& conn();
  // Connection setup, in one place (connection.cpp).
  std::unique_ptr<Connection> connect(bool create, bool snapshot);
  int check_schema(Connection& c);
  void migrate(Connection& c, int version);
  void set_journal_mode(Connection& c);
  // The commit of a write transaction, in one place.
  void commit();
  // Inside a write to a registry that did not exist when it began: true
  // when the read answers as an empty registry.
  bool read_absent();
  // The body's first change: creates the registry, or refuses the write.
  void materialize();
  void begin_write();
  void end_write() noexcept;
  bool still_at_path() const;
  bool snapshot_changed() const;
  void check_identity();
  void close_file_handle() noexcept;
  void retire_connection();
  // Throws the RegistryError kind for `error` (error.cpp).
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
  int depth_ = 0;                           // write() nesting
  std::optional<std::int64_t> change_set_;  // of the write in progress
  // Inside a write() that has not begun writing: there was no registry file
  // (then whether the body has read the empty registry before its first
  // change), or the registry cannot be written by this process (why).
  struct Absent {
    bool read = false;
    std::string blocked;
    bool full = false;  // blocked by a full disk
  };
  std::optional<Absent> absent_;
  bool bulk_ = false;            // inside a bulk write
  Connection* grown_ = nullptr;  // the connection whose page cache a bulk write grew
  int normal_cache_ = 0;
  bool network_fs_ = false;
  std::string fs_type_;
  // open() only looks: it never switches the journal mode, and reads a WAL
  // file with nothing beside it as it is on disk, so that no -wal or -shm is
  // even made (diagnose).
  bool inspect_ = false;
};

// Reads the schema state of `path` without changing it.
MigrationStatus inspect_migrations(const std::string& path);

}  // namespace tfimm::detail
