#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include "access.hpp"
#include "dirs.hpp"
#include "fs.hpp"
#include "registry_impl.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"

namespace tfimm {

using Lock = detail::CallLock;

const char* version() noexcept { return TFIMM_VERSION; }

// -- Impl: operations inside a write transaction ------------------------------

void Registry::Impl::set_model(const std::string& name, const std::string& normal_path) {
  const auto now = detail::now_ms();
  store.add_set_history(name, normal_path, now);  // first: it reads the old path
  store.upsert_model(name, normal_path, now);
}

bool Registry::Impl::clear_model(const std::string& name) {
  auto old = store.model_path(name);
  if (!old) return false;
  store.delete_model(name);
  store.add_history("clear", name, old, std::nullopt, detail::now_ms());
  return true;
}

void Registry::Impl::set_dir(const std::string& normal_path) {
  auto old = store.setting(detail::kCacheDirKey);
  if (old == normal_path) return;  // no change, no history row
  store.put_setting(detail::kCacheDirKey, normal_path);
  store.add_history("set_dir", "", old, normal_path, detail::now_ms());
}

void Registry::Impl::unset_dir() {
  auto old = store.setting(detail::kCacheDirKey);
  if (!old) return;
  store.delete_setting(detail::kCacheDirKey);
  store.add_history("unset_dir", "", old, std::nullopt, detail::now_ms());
}

std::optional<std::string> Registry::Impl::stored_dir() {
  if (!store.open(false)) return std::nullopt;
  return store.setting(detail::kCacheDirKey);
}

std::optional<std::string> Registry::Impl::cached_model_path(const std::string& name,
                                                             bool registry_exists) {
  std::optional<std::string> stored;
  if (registry_exists) {
    auto found = store.lookup(name, detail::kCacheDirKey);
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
    : impl_(std::make_unique<Impl>(RegistryLocation{normalize_path(path), RegistrySource::Explicit},
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
  impl_->store.write([&] { impl_->set_dir(normal); });
}

void Registry::unset_dir() {
  Lock lock(impl_->mutex);
  if (!impl_->store.open(false)) return;  // nothing stored, nothing to create
  impl_->store.write([&] { impl_->unset_dir(); });
}

std::optional<std::string> Registry::stored_dir() {
  Lock lock(impl_->mutex);
  return impl_->stored_dir();
}

void Registry::set_model_cache(const std::string& name, const std::string& path) {
  check_name(name);
  const auto normal = normalize_path(path);
  Lock lock(impl_->mutex);
  impl_->store.write([&] { impl_->set_model(name, normal); });
}

bool Registry::clear_model_cache(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  if (!impl_->store.open(false)) return false;
  bool removed = false;
  impl_->store.write([&] { removed = impl_->clear_model(name); });
  return removed;
}

std::vector<std::string> Registry::list_cached_models() {
  Lock lock(impl_->mutex);
  if (!impl_->store.open(false)) return {};
  return impl_->store.model_names();
}

std::vector<Entry> Registry::entries() {
  Lock lock(impl_->mutex);
  if (!impl_->store.open(false)) return {};
  return impl_->store.models();
}

std::optional<Entry> Registry::entry(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  if (!impl_->store.open(false)) return std::nullopt;
  return impl_->store.model(name);
}

std::optional<std::string> Registry::cached_model_path(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  return impl_->cached_model_path(name, impl_->store.open(false));
}

Resolution Registry::resolve(const std::string& name) {
  check_name(name);
  Lock lock(impl_->mutex);
  Resolution r;
  r.name = name;
  std::optional<std::string> stored;
  impl_->store.read([&] {
    r.entry = impl_->store.model(name);
    stored = impl_->store.setting(detail::kCacheDirKey);
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
  impl_->store.write([&] {
    detail::InBody in_body(impl_->mutex);
    body(impl_->transaction);
  });
}

void Registry::lock(const std::string& name, const std::string& reason) {
  check_name(name);
  Lock guard(impl_->mutex);
  const auto missing = [&] {
    return UnknownModel("cannot lock " + name + ": no entry named " + name + " in registry " +
                        path() + "; register it first with `set`");
  };
  if (!impl_->store.open(false)) throw missing();
  impl_->store.write([&] {
    auto current = impl_->store.model(name);
    if (!current) throw missing();
    if (current->locked && current->lock_reason == reason) return;  // no change
    impl_->store.set_lock(name, true, reason);
    impl_->store.add_history("lock", name, current->path, current->path, detail::now_ms());
  });
}

bool Registry::unlock(const std::string& name) {
  check_name(name);
  Lock guard(impl_->mutex);
  const auto missing = [&] {
    return UnknownModel("cannot unlock " + name + ": no entry named " + name + " in registry " +
                        path());
  };
  if (!impl_->store.open(false)) throw missing();
  bool was_locked = false;
  impl_->store.write([&] {
    auto current = impl_->store.model(name);
    if (!current) throw missing();
    was_locked = current->locked;
    if (!was_locked) return;
    impl_->store.set_lock(name, false, "");
    impl_->store.add_history("unlock", name, current->path, current->path, detail::now_ms());
  });
  return was_locked;
}

std::vector<HistoryRecord> Registry::history(const std::optional<std::string>& name,
                                             std::size_t limit) {
  if (name) check_name(*name);
  Lock lock(impl_->mutex);
  if (!impl_->store.open(false)) return {};
  return impl_->store.history(name, limit);
}

namespace {

// "user:group" of a file, by name where the system knows them.
std::string owner_of(const struct stat& st) {
  const passwd* pw = ::getpwuid(st.st_uid);
  const group* gr = ::getgrgid(st.st_gid);
  return (pw ? pw->pw_name : std::to_string(st.st_uid)) + ":" +
         (gr ? gr->gr_name : std::to_string(st.st_gid));
}

std::string mode_of(const struct stat& st) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  return mode;
}

// Whether whoever the mode bits let write the registry `reg` may also write
// `side` (its -wal or -shm file): its owner, its group, everyone.
bool writable_by_registry_writers(const struct stat& reg, const struct stat& side) {
  const bool by_all = (side.st_mode & S_IWOTH) != 0;
  const bool by_group = side.st_gid == reg.st_gid && (side.st_mode & S_IWGRP) != 0;
  const bool by_owner = side.st_uid == reg.st_uid && (side.st_mode & S_IWUSR) != 0;
  const bool owner_ok = (reg.st_mode & S_IWUSR) == 0 || by_owner || by_group || by_all;
  const bool group_ok = (reg.st_mode & S_IWGRP) == 0 || by_group || by_all;
  const bool all_ok = (reg.st_mode & S_IWOTH) == 0 || by_all;
  return owner_ok && group_ok && all_ok;
}

// A warning when the registry's -wal or -shm file cannot be written by some
// user who can write the registry. SQLite makes them with the registry's mode
// when it creates them; ones left by a user who could only read the registry
// then keep everyone else from writing it.
std::optional<std::string> side_file_warning(const std::string& path, const struct stat& st,
                                             const std::string& owner,
                                             const std::string& file_mode) {
  std::vector<std::string> narrower;
  for (const char* suffix : {"-wal", "-shm"}) {
    struct stat side {};
    const std::string file = path + suffix;
    if (::stat(file.c_str(), &side) == 0 && !writable_by_registry_writers(st, side)) {
      narrower.push_back(file);
    }
  }
  if (narrower.empty()) return std::nullopt;
  struct stat side {};
  ::stat(narrower.front().c_str(), &side);
  const bool one = narrower.size() == 1;
  const std::string files = one ? narrower[0] : narrower[0] + " " + narrower[1];
  return files + (one ? " has" : " have") + " owner " + owner_of(side) + " and mode " +
         mode_of(side) + ", but the registry has owner " + owner + " and mode " + file_mode +
         ": some users who can write the registry cannot write " + (one ? "it" : "them") +
         ", and their writes fail with RegistryReadOnly. Give " + (one ? "it" : "them") +
         " the registry's group and mode, as " + (one ? "its" : "their") +
         " owner or root (safe while the registry is in use): chgrp " +
         owner.substr(owner.find(':') + 1) + " " + files + " && chmod " + file_mode + " " + files;
}

}  // namespace

Diagnosis Registry::diagnose() {
  Lock lock(impl_->mutex);
  Diagnosis d;
  d.path = path();
  struct stat st {};
  d.exists = ::stat(d.path.c_str(), &st) == 0;
  d.network_fs = on_network_fs(d.path, &d.fs_type);
  d.write_problem = detail::write_problem(d.path);
  if (d.exists) {
    d.file_mode = mode_of(st);
    d.owner = owner_of(st);
    if (S_ISREG(st.st_mode) && (st.st_mode & S_IWOTH) != 0) {
      d.warnings.push_back("the registry file is writable by every user (mode " + d.file_mode +
                           "); anyone can change where models are loaded from");
    }
    if (auto warning = side_file_warning(d.path, st, d.owner, d.file_mode)) {
      d.warnings.push_back(std::move(*warning));
    }
  } else if (!d.write_problem.empty()) {
    d.warnings.push_back("the registry does not exist, and " + d.write_problem +
                         ": every change will fail until that is fixed");
  }
  std::optional<std::string> stored;
  if (d.exists) {
    try {
      // The schema first, read-only: a registry that needs migrating is
      // reported, not migrated.
      const auto status = detail::inspect_migrations(d.path);
      d.schema = status.current;
      d.pending = status.pending;
      // A connection of its own that only looks: the registry's own one
      // would switch the journal mode to what this process would use.
      detail::Store probe(d.path, std::chrono::milliseconds(5000));
      probe.inspect_only();
      if (d.pending.empty() && probe.open(false)) {
        probe.read([&] {
          d.integrity = probe.integrity_check();
          d.journal_mode = probe.journal_mode();
          d.entries = probe.model_count();
          stored = probe.setting(detail::kCacheDirKey);
        });
        if (d.integrity != "ok") d.warnings.push_back("integrity check failed: " + d.integrity);
      } else if (!d.pending.empty()) {
        d.warnings.push_back(
            "the registry has schema " + std::to_string(d.schema) + " and needs upgrading to " +
            std::to_string(schema_version()) +
            (d.write_problem.empty()
                 ? "; the next command that opens it upgrades it (or `tfimm-cache migrate`)"
                 : ", which this process cannot do: " + d.write_problem +
                       ". Run `tfimm-cache migrate` as a user who can write it"));
      }
    } catch (const RegistryTooNew& e) {
      d.schema = e.found_version();
      d.problem = e.what();
    } catch (const RegistryError& e) {
      d.problem = e.what();
    }
    if (!d.problem.empty()) d.warnings.push_back(d.problem);
    if (d.problem.empty() && !d.write_problem.empty()) {
      d.warnings.push_back("changes to the registry will fail: " + d.write_problem);
    }
  }
  if (d.network_fs) {
    d.warnings.push_back("the registry is on a network file system (" + d.fs_type +
                         "): it uses SQLite's rollback journal instead of WAL, and is only as "
                         "safe as that file system's locks; prefer a local disk");
  }
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

// -- Transaction --------------------------------------------------------------

void Transaction::set_model_cache(const std::string& name, const std::string& path) {
  impl_.mutex.check_in_body("set_model_cache");
  check_name(name);
  impl_.store.defer_set(name, normalize_path(path));
}

bool Transaction::clear_model_cache(const std::string& name) {
  impl_.mutex.check_in_body("clear_model_cache");
  check_name(name);
  return impl_.clear_model(name);
}

void Transaction::set_dir(const std::string& path) {
  impl_.mutex.check_in_body("set_dir");
  impl_.set_dir(normalize_path(path));
}

void Transaction::unset_dir() {
  impl_.mutex.check_in_body("unset_dir");
  impl_.unset_dir();
}

std::optional<std::string> Transaction::cached_model_path(const std::string& name) {
  impl_.mutex.check_in_body("cached_model_path");
  check_name(name);
  return impl_.cached_model_path(name, true);
}

std::vector<std::string> Transaction::list_cached_models() {
  impl_.mutex.check_in_body("list_cached_models");
  return impl_.store.model_names();
}

MigrationStatus migration_status(const std::string& path) {
  const auto normal = normalize_path(path);
  // A call like any Registry's, so that fork() waits for it too: a thread
  // inside SQLite at fork() may hold one of SQLite's process-wide mutexes,
  // and the child would hang on it. Never destroyed: it may be called while
  // static objects are destroyed.
  static detail::CallMutex* const calls = new detail::CallMutex(normal, [] {});
  Lock lock(*calls);
  return detail::inspect_migrations(normal);
}

}  // namespace tfimm
