// Audit and prune: check every registered path, record since when paths are
// missing, and forget stale entries.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "dirs.hpp"
#include "fs.hpp"
#include "registry_impl.hpp"
#include "storage/actor.hpp"
#include "storage/rules.hpp"

namespace tfimm {
namespace {

using Lock = detail::CallLock;

unsigned pick_threads(unsigned wanted, std::size_t items) {
  // Checks mostly wait on the file system (slow network shares), not on the
  // CPU, so more threads than cores pay off.
  unsigned n = wanted != 0 ? wanted : 16;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(n, items)));
}

// A piece of work for one thread: the entries `members`, all directly in
// `dir` when it is not empty.
struct Unit {
  std::string_view dir;
  std::vector<std::size_t> members;
};

// Entries that share a parent directory are checked by listing it once when
// there are at least this many (models usually live in one cache directory).
constexpr std::size_t kListAtLeast = 8;

std::vector<Unit> plan(const std::vector<AuditItem>& items) {
  std::unordered_map<std::string_view, std::vector<std::size_t>> by_dir;
  std::vector<Unit> units;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].status == PathStatus::OtherHost) continue;  // not ours to check
    const std::string_view path = items[i].entry.path;
    const auto slash = path.rfind('/');
    if (slash == 0 || slash == std::string_view::npos || slash + 1 == path.size()) {
      units.push_back({{}, {i}});
    } else {
      by_dir[path.substr(0, slash)].push_back(i);
    }
  }
  for (auto& [dir, members] : by_dir) {
    if (members.size() >= kListAtLeast) {
      units.push_back({dir, std::move(members)});
    } else {
      for (const std::size_t i : members) units.push_back({{}, {i}});
    }
  }
  return units;
}

void record(AuditItem& item, detail::PathCheck&& check) {
  item.status = check.status;
  item.is_symlink = check.is_symlink;
  item.detail = std::move(check.detail);
}

// Checks units of entries on several threads and reports progress from the
// calling thread.
class Checker {
 public:
  Checker(std::vector<AuditItem>& items, const AuditOptions& options)
      : items_(items), options_(options) {
    for (const auto& item : items_) done_ += item.status == PathStatus::OtherHost;
  }

  // Checks every item: first by unit (a listing per crowded directory), then
  // each path a listing did not show, with a lookup of its own.
  void check_all() {
    run(plan(items_));
    std::vector<Unit> lookups;
    lookups.reserve(unlisted_.size());
    for (const std::size_t i : unlisted_) lookups.push_back({{}, {i}});
    run(lookups);
  }

 private:
  void check_unit(const Unit& unit) {
    if (!unit.dir.empty()) {
      std::vector<std::string_view> names;
      names.reserve(unit.members.size());
      for (const std::size_t i : unit.members) {
        names.push_back(std::string_view(items_[i].entry.path).substr(unit.dir.size() + 1));
      }
      std::vector<detail::PathCheck> checks;
      std::vector<std::size_t> unlisted;
      if (detail::inspect_in_directory(std::string(unit.dir), names, checks, unlisted)) {
        std::vector<bool> listed(unit.members.size(), true);
        for (const std::size_t k : unlisted) listed[k] = false;
        for (std::size_t k = 0; k < unit.members.size(); ++k) {
          if (listed[k]) record(items_[unit.members[k]], std::move(checks[k]));
        }
        if (!unlisted.empty()) {
          std::lock_guard<std::mutex> lock(m_);
          for (const std::size_t k : unlisted) unlisted_.push_back(unit.members[k]);
        }
        done_ += unit.members.size() - unlisted.size();
        return;
      }
    }
    for (const std::size_t i : unit.members) {
      record(items_[i], detail::inspect_path(items_[i].entry.path));
    }
    done_ += unit.members.size();
  }

  void run(const std::vector<Unit>& units) {
    if (units.empty()) return;
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> finished{0};
    const auto work = [&] {
      for (std::size_t u; (u = next.fetch_add(1)) < units.size();) {
        check_unit(units[u]);
        if (finished.fetch_add(1) + 1 == units.size()) {
          std::lock_guard<std::mutex> lock(m_);
          cv_.notify_all();
        }
      }
    };
    const unsigned n = pick_threads(options_.threads, units.size());
    std::vector<std::thread> workers;
    for (unsigned t = 1; t < n; ++t) workers.emplace_back(work);
    if (!options_.progress) {
      work();
    } else {
      std::unique_lock<std::mutex> lock(m_);
      while (true) {
        // Read in this order: a unit counts its items before it counts as
        // finished, so the last report of a run includes all of them.
        const bool all = finished.load() == units.size();
        const std::size_t now = done_.load();
        if (now != reported_) {
          options_.progress(now, items_.size());
          reported_ = now;
        }
        if (all) break;
        if (n == 1) {
          lock.unlock();
          work();
          lock.lock();
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(100));
        }
      }
    }
    for (auto& w : workers) w.join();
  }

  std::vector<AuditItem>& items_;
  const AuditOptions& options_;
  std::atomic<std::size_t> done_{0};  // items with their final status
  std::size_t reported_ = static_cast<std::size_t>(-1);
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::size_t> unlisted_;  // guarded by m_
};

// Checks every entry's path in parallel; reports progress from this thread.
// A path local to another host is not checked: here it may be absent, or
// another file system at the same path, and says nothing about the entry.
std::vector<AuditItem> check_all(std::vector<Entry> entries, const AuditOptions& options) {
  std::vector<AuditItem> items(entries.size());
  const std::string& here = detail::actor_base().host;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    items[i].entry = std::move(entries[i]);
    const std::string& owner = items[i].entry.local_to;
    if (!options.all_hosts && !owner.empty() && owner != here) {
      items[i].status = PathStatus::OtherHost;
    }
  }
  if (items.empty()) return items;
  Checker(items, options).check_all();
  return items;
}

}  // namespace

std::size_t AuditReport::count(PathStatus status) const {
  return static_cast<std::size_t>(std::count_if(
      items.begin(), items.end(), [&](const AuditItem& i) { return i.status == status; }));
}

std::size_t AuditReport::stale() const {
  return static_cast<std::size_t>(std::count_if(
      items.begin(), items.end(), [](const AuditItem& i) { return is_stale(i.status); }));
}

AuditReport Registry::audit(const AuditOptions& options) {
  Lock lock(impl_->mutex);
  AuditReport report;
  std::vector<Entry> entries;
  std::optional<std::string> stored;
  impl_->store->read([&](detail::Reader& r) {
    entries = r.models();
    stored = r.setting(detail::kCacheDirKey);
  });
  report.cache_dir = detail::resolve_cache_dir(stored);
  report.cache_dir_status = check_path(report.cache_dir.path);
  report.items = check_all(std::move(entries), options);

  // Record since when each path is missing; clear it for paths found again.
  const auto now = detail::now_ms();
  bool needed = false;
  for (const auto& item : report.items) {
    needed |= is_stale(item.status)
                  ? !item.entry.missing_since.has_value()
                  : item.entry.missing_since.has_value() && item.status == PathStatus::Ok;
  }
  if (!needed) return report;
  try {
    // Only an existing registry: recording creates nothing.
    impl_->store->write(
        [&](detail::Writer& w) {
          for (auto& item : report.items) {
            auto& e = item.entry;
            if (is_stale(item.status) && !e.missing_since) {
              detail::mark_missing(w, e, now);
              e.missing_since = now;
            } else if (item.status == PathStatus::Ok && e.missing_since) {
              detail::mark_found(w, e);
              e.missing_since.reset();
            }
          }
        },
        {detail::WriteMode::Missing::ExistingOnly});
  } catch (const RegistryError& e) {
    // What could not be recorded is only bookkeeping: the answer stands.
    if (dynamic_cast<const RegistryReadOnly*>(&e) == nullptr &&
        dynamic_cast<const RegistryFull*>(&e) == nullptr) {
      throw;
    }
    report.recorded = false;
    for (auto& item : report.items) {
      if (is_stale(item.status) && !item.entry.missing_since) item.entry.missing_since = now;
    }
  }
  return report;
}

std::vector<AuditItem> Registry::check_entries(const AuditOptions& options) {
  Lock lock(impl_->mutex);
  std::vector<Entry> entries;
  impl_->store->read([&](detail::Reader& r) { entries = r.models(); });
  return check_all(std::move(entries), options);
}

PruneReport Registry::prune(const PruneOptions& options) {
  Lock lock(impl_->mutex);
  PruneReport report;
  report.dry_run = options.dry_run;
  std::vector<Entry> entries;
  impl_->store->read([&](detail::Reader& r) { entries = r.models(); });
  const auto items = check_all(std::move(entries), options.audit);
  report.checked = items.size();
  for (const auto& item : items) {
    if (item.status == PathStatus::OtherHost)
      report.other_host.push_back({item.entry, item.status});
  }
  const auto now = detail::now_ms();
  const auto expire = static_cast<Timestamp>(options.expire.count());

  // Decides one stale entry as it is now; returns true when it is to go.
  const auto decide = [&](const Entry& current, PathStatus status) {
    const Timestamp since = current.missing_since.value_or(now);
    PruneItem item{current, status};
    item.entry.missing_since = since;
    if (current.locked) {
      report.kept_locked.push_back(std::move(item));
      return false;
    }
    if (now - since < expire) {
      report.kept_young.push_back(std::move(item));
      return false;
    }
    report.removed.push_back(std::move(item));
    return true;
  };

  bool any = false;
  for (const auto& item : items) {
    any |= is_stale(item.status) || (item.status == PathStatus::Ok && item.entry.missing_since);
  }
  if (!any) return report;
  // A dry run decides exactly as a real one, and its changes are discarded.
  detail::WriteMode mode;
  mode.missing = detail::WriteMode::Missing::ExistingOnly;
  if (options.dry_run) mode.outcome = detail::WriteMode::Outcome::DryRun;
  impl_->store->write(
      [&](detail::Writer& w) {
        for (const auto& item : items) {
          const auto& seen = item.entry;
          if (!is_stale(item.status)) {
            if (item.status == PathStatus::Ok && seen.missing_since) detail::mark_found(w, seen);
            continue;
          }
          // Re-read inside the transaction: an entry re-registered or
          // changed after the check is left alone.
          auto current = w.model(seen.name);
          if (!current || current->path != seen.path || current->updated_at != seen.updated_at) {
            continue;
          }
          if (!current->missing_since) detail::mark_missing(w, seen, now);
          if (decide(*current, item.status)) {
            detail::forget_model(w, "prune", *current, now);
          }
        }
      },
      mode);
  return report;
}

}  // namespace tfimm
