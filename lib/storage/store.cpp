#include "storage/store.hpp"

#include "fs.hpp"
#include "storage/rules.hpp"
#include "storage/sqlite/sqlite_store.hpp"
#include "tfimm/errors.hpp"
#ifdef TFIMM_HAVE_POSTGRESQL
#include "storage/postgres/postgres_store.hpp"
#endif

namespace tfimm::detail {
namespace {

// The Writer of a dry run: reads go to the registry as it is, changes go
// nowhere. Written once, above the backends, so that no backend's dry run
// can create or change a registry.
class DiscardingWriter final : public Writer {
 public:
  explicit DiscardingWriter(Reader& reader) : reader_(reader) {}

  Lookup lookup(const std::string& name, const std::string& setting_key) override {
    return reader_.lookup(name, setting_key);
  }
  std::optional<std::string> model_path(const std::string& name) override {
    return reader_.model_path(name);
  }
  std::vector<std::optional<std::string>> model_paths(
      const std::vector<PathChange>& changes) override {
    return reader_.model_paths(changes);
  }
  std::optional<Entry> model(const std::string& name) override { return reader_.model(name); }
  std::vector<Entry> models() override { return reader_.models(); }
  std::vector<Entry> models_after(const std::optional<std::string>& after,
                                  std::size_t limit) override {
    return reader_.models_after(after, limit);
  }
  std::vector<std::optional<Entry>> models_named(
      const std::vector<const std::string*>& names) override {
    return reader_.models_named(names);
  }
  std::vector<std::string> model_names() override { return reader_.model_names(); }
  std::size_t model_count() override { return reader_.model_count(); }
  std::optional<std::string> setting(const std::string& key) override {
    return reader_.setting(key);
  }
  std::vector<HistoryRecord> history(const HistoryQuery& query) override {
    return reader_.history(query);
  }

  void begin_change() override {}
  void put_paths(const std::vector<PathChange>&, Timestamp, std::optional<Timestamp>) override {}
  void put_entries(const std::vector<const Entry*>&) override {}
  bool delete_model(const std::string& name) override { return model_path(name).has_value(); }
  void set_lock(const std::string&, bool, const std::string&) override {}
  void set_missing(const Entry&, std::optional<Timestamp>, bool) override {}
  void put_setting(const std::string&, const std::string&) override {}
  bool delete_setting(const std::string& key) override { return setting(key).has_value(); }
  void add_row(const HistoryRecord&, Timestamp) override {}
  void add_histories(const std::string&, const std::vector<PathChange>&, Timestamp) override {}
  void restore_history(const std::vector<HistoryRecord>&) override {}
  std::optional<std::int64_t> change_set() override { return std::nullopt; }
  void put_entry(const Entry&, Timestamp) override {}
  std::size_t forget_history(std::int64_t) override { return 0; }

 private:
  Reader& reader_;
};

// An empty registry, for a dry run on one that does not exist.
class EmptyReader final : public Reader {
 public:
  Lookup lookup(const std::string&, const std::string&) override { return {}; }
  std::optional<std::string> model_path(const std::string&) override { return std::nullopt; }
  std::vector<std::optional<std::string>> model_paths(
      const std::vector<PathChange>& changes) override {
    return std::vector<std::optional<std::string>>(changes.size());
  }
  std::optional<Entry> model(const std::string&) override { return std::nullopt; }
  std::vector<Entry> models() override { return {}; }
  std::vector<Entry> models_after(const std::optional<std::string>&, std::size_t) override {
    return {};
  }
  std::vector<std::optional<Entry>> models_named(
      const std::vector<const std::string*>& names) override {
    return std::vector<std::optional<Entry>>(names.size());
  }
  std::vector<std::string> model_names() override { return {}; }
  std::size_t model_count() override { return 0; }
  std::optional<std::string> setting(const std::string&) override { return std::nullopt; }
  std::vector<HistoryRecord> history(const HistoryQuery&) override { return {}; }
};

}  // namespace

bool Store::write(const std::function<void(Writer&)>& body, WriteMode mode) {
  if (mode.outcome == WriteMode::Outcome::Commit) {
    // Every write that records history also forgets what the retention
    // setting says is too old, a bounded amount at a time.
    return commit_write(
        [&](Writer& w) {
          body(w);
          apply_retention(w, now_ms());
        },
        mode);
  }
  // A dry run is a read: it needs no write access and creates nothing.
  const bool found = read([&](Reader& reader) {
    DiscardingWriter writer(reader);
    body(writer);
  });
  if (found || mode.missing == WriteMode::Missing::ExistingOnly) return found;
  EmptyReader empty;
  DiscardingWriter writer(empty);
  body(writer);
  return true;
}

bool names_server(const std::string& location) noexcept {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

std::string shown_location(const std::string& location) {
  // Plain string work, in every build: a build without the PostgreSQL
  // backend must not show the password either when it refuses the URI.
  if (!names_server(location)) return location;
  std::string s = location;
  // user:password@ in the authority (which ends at the first / or ?).
  const std::size_t start = s.find("://") + 3;
  std::size_t end = s.find_first_of("/?", start);
  if (end == std::string::npos) end = s.size();
  const std::size_t at = end > start ? s.rfind('@', end - 1) : std::string::npos;
  if (at != std::string::npos && at >= start) {
    const std::size_t colon = s.find(':', start);
    if (colon != std::string::npos && colon < at) s.erase(colon, at - colon);
  }
  // password=... among the query parameters.
  const std::size_t q = s.find('?');
  if (q == std::string::npos) return s;
  std::string kept;
  std::size_t pos = q + 1;
  while (pos <= s.size()) {
    std::size_t amp = s.find('&', pos);
    if (amp == std::string::npos) amp = s.size();
    const std::string param = s.substr(pos, amp - pos);
    if (!param.empty() && param.rfind("password=", 0) != 0) {
      kept += (kept.empty() ? "" : "&") + param;
    }
    pos = amp + 1;
  }
  return s.substr(0, q) + (kept.empty() ? "" : "?" + kept);
}

std::unique_ptr<Store> open_store(const std::string& location,
                                  std::chrono::milliseconds busy_timeout) {
  // A backend is picked by the location's scheme; everything else is an
  // SQLite file path.
  if (names_server(location)) {
#ifdef TFIMM_HAVE_POSTGRESQL
    return std::make_unique<PostgresStore>(location, busy_timeout);
#else
    const std::string shown = shown_location(location);
    throw RegistryError(shown, "registry " + shown +
                                   " is a PostgreSQL server, but this build of tfimm-cache "
                                   "has no PostgreSQL backend (built with "
                                   "TFIMM_WITH_POSTGRESQL=OFF); nothing was changed");
#endif
  }
  return std::make_unique<SqliteStore>(location, busy_timeout);
}

}  // namespace tfimm::detail
