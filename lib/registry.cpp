#include <sys/stat.h>

#include <algorithm>

#include "access.hpp"
#include "dirs.hpp"
#include "fs.hpp"
#include "registry_impl.hpp"
#include "storage/fork.hpp"
#include "storage/rules.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"

namespace tfimm {

using Lock = detail::CallLock;

const char* version() noexcept { return TFIMM_VERSION; }

// -- Impl: operations inside a write transaction ------------------------------

using detail::Reader;
using detail::Writer;
using Missing = detail::WriteMode::Missing;
using Consistency = detail::Store::Consistency;

void Registry::Impl::write_pending() {
  if (pending.empty()) return;
  struct Clear {
    detail::WriteBatch& batch;
    ~Clear() { batch.clear(); }
  } clear{pending};
  detail::write_batch(*writer, pending, detail::now_ms());
}

void Registry::Impl::set_model(Writer& w, const std::string& name, const std::string& normal_path) {
  detail::set_model(w, name, normal_path, detail::now_ms());
}

bool Registry::Impl::clear_model(Writer& w, const std::string& name) {
  auto current = w.model(name);
  if (!current) return false;
  detail::forget_model(w, "clear", *current, detail::now_ms());
  return true;
}

void Registry::Impl::set_dir(Writer& w, const std::string& normal_path) {
  auto old = w.setting(detail::kCacheDirKey);
  if (old == normal_path) return;  // no change, no history row
  w.put_setting(detail::kCacheDirKey, normal_path);
  w.add_history("set_dir", "", old, normal_path, detail::now_ms());
}

void Registry::Impl::unset_dir(Writer& w) {
  auto old = w.setting(detail::kCacheDirKey);
  if (!old) return;
  w.delete_setting(detail::kCacheDirKey);
  w.add_history("unset_dir", "", old, std::nullopt, detail::now_ms());
}

std::optional<std::string> Registry::Impl::stored_dir() {
  std::optional<std::string> dir;
  store->read([&](Reader& r) { dir = r.setting(detail::kCacheDirKey); }, Consistency::PerCall);
  return dir;
}

std::optional<std::string> Registry::Impl::cached_model_path(const std::string& name, Reader* r) {
  std::optional<std::string> stored;
  if (r != nullptr) {
    auto found = r->lookup(name, detail::kCacheDirKey);
    if (found.path) return std::move(found.path);
    stored = std::move(found.setting);
  }
  auto fallback = join_path(detail::cache_dir_path(stored), name);
  struct stat st {};
  if (::stat(fallback.c_str(), &st) == 0) return fallback;
  return std::nullopt;
}

// -- Registry -----------------------------------------------------------------

Registry::Registry(RegistryOptions options)
    : impl_(std::make_unique<Impl>(default_registry_location(), options)) {}

Registry::Registry(const std::string& path, RegistryOptions options)
    : impl_(std::make_unique<Impl>(
          RegistryLocation{detail::names_server(path) ? path : normalize_path(path),
                           RegistrySource::Explicit},
          options)) {}

Registry::~Registry() = default;
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;

const RegistryLocation& Registry::location() const noexcept { return impl_->location; }
const std::string& Registry::path() const noexcept { return impl_->location.path; }

std::string Registry::get_dir() { return cache_dir().path; }

CacheDir Registry::cache_dir() {
  Lock lock(impl_->mutex);
  return detail::resolve_cache_dir(impl_->stored_dir());
}

void Registry::set_dir(const std::string& path) {
  const auto normal = normalize_path(path);
  Lock lock(impl_->mutex);
  impl_->store->write([&](Writer& w) { impl_->set_dir(w, normal); }, {});
}

void Registry::unset_dir() {
  Lock lock(impl_->mutex);
  // Nothing stored, nothing to create.
  impl_->store->write([&](Writer& w) { impl_->unset_dir(w); }, {Missing::ExistingOnly});
}

std::optional<std::string> Registry::stored_dir() {
  Lock lock(impl_->mutex);
  return impl_->stored_dir();
}

namespace {

// The WriteMode of a write that reads and changes only entry `name`.
detail::WriteMode one_entry(const std::string& name, Missing missing = Missing::ExistingOnly) {
  detail::WriteMode mode{missing};
  mode.only_name = &name;
  return mode;
}

}  // namespace

void Registry::set_model_cache(const std::string& name, const std::string& path) {
  check_name(name);
  const auto normal = normalize_path(path);
  Lock lock(impl_->mutex);
  impl_->store->write([&](Writer& w) { impl_->set_model(w, name, normal); },
                      one_entry(name, Missing::Create));
}

bool Registry::clear_model_cache(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  bool removed = false;
  impl_->store->write([&](Writer& w) { removed = impl_->clear_model(w, name); }, one_entry(name));
  return removed;
}

std::vector<std::string> Registry::list_cached_models() {
  Lock lock(impl_->mutex);
  std::vector<std::string> names;
  impl_->store->read([&](Reader& r) { names = r.model_names(); }, Consistency::PerCall);
  return names;
}

std::vector<Entry> Registry::entries() {
  Lock lock(impl_->mutex);
  std::vector<Entry> all;
  impl_->store->read([&](Reader& r) { all = r.models(); }, Consistency::PerCall);
  return all;
}

std::optional<Entry> Registry::entry(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  std::optional<Entry> found;
  impl_->store->read([&](Reader& r) { found = r.model(name); }, Consistency::PerCall);
  return found;
}

std::optional<std::string> Registry::cached_model_path(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  // The hot path: a body capturing one reference fits in std::function's
  // own storage, so a lookup allocates nothing for it.
  struct Query {
    Impl& impl;
    const std::string& name;
    std::optional<std::string> found;
  } q{*impl_, name, std::nullopt};
  const bool exists = impl_->store->read(
      [&q](Reader& r) { q.found = q.impl.cached_model_path(q.name, &r); }, Consistency::PerCall);
  return exists ? std::move(q.found) : impl_->cached_model_path(name, nullptr);
}

Resolution Registry::resolve(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  Resolution r;
  r.name = name;
  std::optional<std::string> stored;
  impl_->store->read([&](Reader& reader) {
    r.entry = reader.model(name);
    stored = reader.setting(detail::kCacheDirKey);
  });
  r.cache_dir = detail::resolve_cache_dir(stored);
  r.fallback_path = join_path(r.cache_dir.path, name);
  r.fallback_status = check_path(r.fallback_path, &r.fallback_detail);
  r.fallback_exists = r.fallback_status == PathStatus::Ok;
  r.status = r.fallback_status;
  r.detail = r.fallback_detail;
  if (r.entry) {
    r.path = r.entry->path;
    r.source = ResolveSource::Entry;
    r.status = check_path(r.entry->path, &r.detail);
  } else if (r.fallback_exists) {
    r.path = r.fallback_path;
    r.source = ResolveSource::CacheDir;
  }
  r.exists = r.status == PathStatus::Ok;
  return r;
}

void Registry::transaction(const std::function<void(Transaction&)>& body) {
  Lock lock(impl_->mutex);
  auto& impl = *impl_;
  impl.store->write(
      [&](Writer& w) {
        detail::InBody in_body(impl.mutex);
        impl.writer = &w;
        struct Done {
          Impl& impl;
          ~Done() {
            impl.writer = nullptr;
            impl.pending.clear();  // nothing, unless the body threw
          }
        } done{impl};
        const unsigned long generation = detail::fork_generation();
        body(impl.transaction);
        // In a child forked inside the body, nothing is written: the
        // transaction is the parent's, and the store refuses it here.
        if (detail::fork_generation() == generation) impl.write_pending();
      },
      {});
}

void Registry::lock(const std::string& name, const std::string& reason) {
  check_name(name);
  Lock guard(impl_->mutex);
  const auto missing = [&] {
    return UnknownModel("cannot lock " + name + ": no entry named " + name + " in registry " +
                        impl_->store->display_name() + "; register it first with `set`");
  };
  const bool exists = impl_->store->write(
      [&](Writer& w) {
        auto current = w.model(name);
        if (!current) throw missing();
        if (current->locked && current->lock_reason == reason) return;  // no change
        detail::change_lock(w, *current, true, reason, detail::now_ms());
      },
      one_entry(name));
  if (!exists) throw missing();
}

bool Registry::unlock(const std::string& name) {
  check_name(name);
  Lock guard(impl_->mutex);
  const auto missing = [&] {
    return UnknownModel("cannot unlock " + name + ": no entry named " + name + " in registry " +
                        impl_->store->display_name());
  };
  bool was_locked = false;
  const bool exists = impl_->store->write(
      [&](Writer& w) {
        auto current = w.model(name);
        if (!current) throw missing();
        was_locked = current->locked;
        if (!was_locked) return;
        detail::change_lock(w, *current, false, "", detail::now_ms());
      },
      one_entry(name));
  if (!exists) throw missing();
  return was_locked;
}

std::vector<HistoryRecord> Registry::history(const std::optional<std::string>& name,
                                             std::size_t limit) {
  std::vector<HistoryRecord> rows;
  history(name, limit, [&](const HistoryRecord& row) { rows.push_back(row); });
  return rows;
}

void Registry::history(const std::optional<std::string>& name, std::size_t limit,
                       const std::function<void(const HistoryRecord&)>& row) {
  if (name) check_name(*name);
  // Pages by id, newest first: each page is read whole and then handed out,
  // so that no statement stays open while `row` runs, and rows recorded
  // meanwhile (newer ids) never show up in the middle of the listing.
  static constexpr std::size_t kPage = 512;
  detail::HistoryQuery q;
  q.name = name;
  std::size_t given = 0;
  for (;;) {
    q.limit = limit == 0 ? kPage : std::min(kPage, limit - given);
    std::vector<HistoryRecord> page;
    {
      Lock lock(impl_->mutex);
      impl_->store->read([&](Reader& r) { page = r.history(q); }, Consistency::PerCall);
    }
    for (const auto& record : page) row(record);
    given += page.size();
    if (page.size() < q.limit || (limit != 0 && given >= limit)) return;
    q.from = page.back().id;
  }
}

Diagnosis Registry::diagnose() {
  Lock lock(impl_->mutex);
  Diagnosis d;
  d.path = impl_->store->display_name();
  d.latest_schema = schema_version();  // a backend with a numbering of its own sets its own
  std::optional<std::string> stored;
  impl_->store->diagnose(d, [&](detail::Reader& r) { stored = r.setting(detail::kCacheDirKey); });
  d.cache_dir = detail::resolve_cache_dir(stored);
  d.cache_dir_status = check_path(d.cache_dir.path);
  // A cache directory that does not exist yet is normal: the first download
  // creates it. One that is not a directory, or that the first download
  // could not create or write into, is a problem.
  if (auto problem = detail::directory_problem(d.cache_dir.path); !problem.empty()) {
    d.warnings.push_back("the cache directory " + d.cache_dir.path +
                         " cannot hold downloads: " + problem);
  } else if (d.cache_dir_status != PathStatus::Ok && d.cache_dir_status != PathStatus::Missing) {
    d.warnings.push_back("the cache directory " + d.cache_dir.path + " is " +
                         to_string(d.cache_dir_status));
  }
  return d;
}

MigrationStatus Registry::migration_status() {
  Lock lock(impl_->mutex);
  return impl_->store->migration_status();
}

// -- Transaction --------------------------------------------------------------

void Transaction::set_model_cache(const std::string& name, const std::string& path) {
  impl_.mutex.check_in_body("set_model_cache");
  check_name(name);
  auto normal = normalize_path(path);
  if (impl_.pending.must_write_before(name)) impl_.write_pending();
  impl_.pending.set(name, std::move(normal));
}

bool Transaction::clear_model_cache(const std::string& name) {
  impl_.mutex.check_in_body("clear_model_cache");
  check_name(name);
  impl_.write_pending();
  return impl_.clear_model(*impl_.writer, name);
}

void Transaction::set_dir(const std::string& path) {
  impl_.mutex.check_in_body("set_dir");
  const auto normal = normalize_path(path);
  impl_.write_pending();
  impl_.set_dir(*impl_.writer, normal);
}

void Transaction::unset_dir() {
  impl_.mutex.check_in_body("unset_dir");
  impl_.write_pending();
  impl_.unset_dir(*impl_.writer);
}

std::optional<std::string> Transaction::cached_model_path(const std::string& name) {
  impl_.mutex.check_in_body("cached_model_path");
  check_name(name);
  impl_.write_pending();
  return impl_.cached_model_path(name, impl_.writer);
}

std::vector<std::string> Transaction::list_cached_models() {
  impl_.mutex.check_in_body("list_cached_models");
  impl_.write_pending();
  return impl_.writer->model_names();
}

MigrationStatus migration_status(const std::string& path) {
  const auto normal = detail::names_server(path) ? path : normalize_path(path);
  // A call like any Registry's, so that fork() waits for it too: a thread
  // inside SQLite at fork() may hold one of SQLite's process-wide mutexes,
  // and the child would hang on it. Never destroyed: it may be called while
  // static objects are destroyed.
  static detail::CallMutex* const calls =
      new detail::CallMutex(detail::shown_location(normal), [] {});
  Lock lock(*calls);
  return detail::open_store(normal, std::chrono::milliseconds(5000))->migration_status();
}

}  // namespace tfimm
