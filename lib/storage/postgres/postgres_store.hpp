// The PostgreSQL backend: a registry in one schema of a PostgreSQL
// database (tfimm_cache unless the location's options set search_path),
// reached by a libpq connection URI.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/store.hpp"

namespace tfimm::detail {

namespace pq {
class Connection;
class Error;
}  // namespace pq

// The schema a registry lives in, from the connection's options: the first
// entry of search_path when they set one (options=-csearch_path=NAME in
// the location, a service file or PGOPTIONS), else "tfimm_cache".
std::string registry_schema(const std::string& options);

// Only the Reader& and Writer& given to a body reach the rows.
class PostgresStore final : public Store, private Writer {
 public:
  PostgresStore(std::string location, std::chrono::milliseconds busy_timeout);
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  // The URL without its password.
  const std::string& display_name() const noexcept override { return display_; }

  // Snapshot: one REPEATABLE READ, READ ONLY transaction. PerCall: each
  // statement in its own.
  bool read(const std::function<void(Reader&)>& body, Consistency consistency) override;
  MigrationStatus migration_status() override;
  void diagnose(Diagnosis& d, const std::function<void(Reader&)>& also_read) override;

 protected:
  // One transaction holding the registry's write lock (an advisory lock,
  // waited for up to the busy timeout): writers take turns, as on SQLite,
  // so that each history row records the path its change replaced.
  bool commit_write(const std::function<void(Writer&)>& body, WriteMode mode) override;

 private:
  // -- Reader and Writer --
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
  // After rows with ids first..last were inserted: the first write's rows
  // make the change set (its id is their first id).
  void join_change_set(std::int64_t first, std::int64_t last);

  // The connection, made (again) when there is none, it was lost, or it
  // was inherited from a parent process. Throws RegistryError kinds.
  pq::Connection& connection();
  // Connects and checks (and migrates) the schema. Returns false, creating
  // nothing, when the registry does not exist and `create` is false.
  bool open(bool create);
  // The highest applied migration, and the oldest schema it lets use it;
  // -1 when there is no registry in the schema.
  struct Version {
    int current = -1;
    int oldest_compatible = -1;
  };
  Version read_version(pq::Connection& c);
  void migrate(pq::Connection& c, int from);
  void begin_write(const std::string* only_name);
  void commit();
  bool read_absent();
  void materialize();
  void drop_connection() noexcept;
  // Throws the RegistryError kind for `error` (error.cpp).
  [[noreturn]] void fail(const pq::Error& error, const char* operation);

  std::string location_;  // with the password: only ever given to libpq
  std::string display_;
  std::string schema_;    // known once connected (registry_schema())
  std::string password_;  // scrubbed from every message
  std::chrono::milliseconds busy_timeout_;
  std::unique_ptr<pq::Connection> conn_;
  unsigned long owner_fork_ = 0;
  bool checked_ = false;                    // the schema was checked on conn_
  int depth_ = 0;                           // write() nesting
  const std::string* only_name_ = nullptr;  // WriteMode::only_name of the write in progress
  std::optional<std::int64_t> change_set_;  // of the write in progress
  // Inside a write() to a registry that did not exist when it began:
  // whether the body has read the empty registry before its first change.
  struct Absent {
    bool read = false;
  };
  std::optional<Absent> absent_;
};

}  // namespace tfimm::detail
