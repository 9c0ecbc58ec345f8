#include "storage/rules.hpp"

#include <string_view>
#include <unordered_map>

#include "storage/actor.hpp"
#include "storage/name_order.hpp"
#include "tfimm/errors.hpp"

namespace tfimm::detail {
namespace {

// A registered path is there: a re-registered entry is no longer missing.
constexpr std::optional<Timestamp> kNotMissing = std::nullopt;

// Whether paths are on a local file system of this host, asked once per
// parent directory (an import of many models in one directory asks once).
// The parent decides: a model directory that is itself a network mount
// counts as local, which only keeps other hosts from judging it.
class HostLocality {
 public:
  bool operator()(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string_view parent = slash == std::string::npos || slash == 0
                                        ? std::string_view("/")
                                        : std::string_view(path).substr(0, slash);
    // Paths come in name order, mostly from one directory: the last answer
    // usually holds, without a lookup.
    if (last_ != nullptr && parent == last_->first) return last_->second;
    auto [it, fresh] = by_parent_.try_emplace(std::string(parent), false);
    if (fresh) it->second = !on_network_fs(it->first);
    last_ = &*it;
    return it->second;
  }

 private:
  std::unordered_map<std::string, bool> by_parent_;
  const std::pair<const std::string, bool>* last_ = nullptr;
};

}  // namespace

std::string local_to_of(const std::string& path) {
  return HostLocality()(path) ? actor_base().host : std::string();
}

void set_model(Writer& w, const std::string& name, const std::string& path, Timestamp now) {
  w.begin_change();
  const auto old = w.model_path(name);  // before the write: the path it replaces
  const std::vector<PathChange> change{{&name, &path, old ? &*old : nullptr, HostLocality()(path)}};
  w.add_histories("set", change, now);
  w.put_paths(change, now, kNotMissing);
}

void write_batch(Writer& w, const WriteBatch& batch, Timestamp now) {
  const auto& sets = batch.sets();
  if (sets.empty()) return;
  std::vector<PathChange> changes;
  changes.reserve(sets.size());
  HostLocality host_local;
  for (const auto& [key, i] :
       name_order(sets, [](const auto& set) -> const std::string& { return set.first; })) {
    changes.push_back({&sets[i].first, &sets[i].second, nullptr, host_local(sets[i].second)});
  }
  // The paths they replace, read before anything is written.
  w.begin_change();
  const auto old = w.model_paths(changes);
  for (std::size_t i = 0; i < changes.size(); ++i) {
    if (old[i]) changes[i].old_path = &*old[i];
  }
  w.add_histories("set", changes, now);
  w.put_paths(changes, now, kNotMissing);
}

void set_models(Writer& w, const std::string& action, const std::vector<PathChange>& changes,
                Timestamp now) {
  w.add_histories(action, changes, now);
  std::vector<PathChange> located = changes;
  HostLocality host_local;
  for (auto& c : located) c.host_local = host_local(*c.path);
  w.put_paths(located, now, kNotMissing);
}

void mark_missing(Writer& w, const Entry& seen, Timestamp now) {
  w.set_missing(seen, now, /*only_if_unset=*/true);
}

void mark_found(Writer& w, const Entry& seen) {
  w.set_missing(seen, std::nullopt, /*only_if_unset=*/false);
}

void forget_model(Writer& w, const std::string& action, const Entry& current, Timestamp now) {
  w.delete_model(current.name);
  HistoryRecord row;
  row.action = action;
  row.name = current.name;
  row.old_path = current.path;
  row.old_locked = current.locked;
  row.old_lock_reason = current.lock_reason;
  row.old_missing_since = current.missing_since;
  w.add_row(row, now);
}

void change_lock(Writer& w, const Entry& current, bool locked, const std::string& reason,
                 Timestamp now) {
  w.set_lock(current.name, locked, reason);
  HistoryRecord row;
  row.action = locked ? "lock" : "unlock";
  row.name = current.name;
  row.old_path = current.path;
  row.new_path = current.path;
  row.old_locked = current.locked;
  row.old_lock_reason = current.lock_reason;
  row.new_locked = locked;
  row.new_lock_reason = reason;
  w.add_row(row, now);
}

std::string format_duration(std::chrono::milliseconds age) {
  std::int64_t seconds = age.count() / 1000;
  static constexpr std::pair<const char*, std::int64_t> kUnits[] = {
      {"w", 7 * 24 * 3600}, {"d", 24 * 3600}, {"h", 3600}, {"m", 60}};
  for (const auto& [unit, size] : kUnits) {
    if (seconds > 0 && seconds % size == 0) return std::to_string(seconds / size) + unit;
  }
  return std::to_string(seconds) + "s";
}

std::size_t forget_rows(Writer& w, std::int64_t through) {
  const std::size_t gone = w.forget_history(through);
  if (gone == 0) return 0;
  // An undo of a change set older than this can then say it was forgotten,
  // rather than that there never was one.
  const auto before = w.setting(kForgottenKey);
  if (!before || std::stoll(*before) < through)
    w.put_setting(kForgottenKey, std::to_string(through));
  return gone;
}

void apply_retention(Writer& w, Timestamp now) {
  const auto current = w.change_set();
  if (!current) return;  // recorded nothing: the history did not grow
  const auto retain = w.setting(kRetentionKey);
  if (!retain) return;
  Timestamp cutoff = 0;
  try {
    cutoff = now - parse_duration(*retain).count();
  } catch (const InvalidInput&) {
    return;  // not a value this build wrote: keep everything rather than guess
  }
  HistoryQuery oldest;
  oldest.ascending = true;
  oldest.limit = Registry::kRetentionBatch;
  std::int64_t through = 0;
  // The oldest rows, up to the first one young enough to keep: history is
  // always forgotten from its start, so that what remains has no gaps.
  for (const auto& row : w.history(oldest)) {
    if (row.at >= cutoff || row.change_set >= *current) break;
    through = row.id;
  }
  if (through > 0) forget_rows(w, through);
}

}  // namespace tfimm::detail
