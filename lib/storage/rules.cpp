#include "storage/rules.hpp"

#include "storage/name_order.hpp"
#include "tfimm/errors.hpp"

namespace tfimm::detail {

// A registered path is there: a re-registered entry is no longer missing.
constexpr std::optional<Timestamp> kNotMissing = std::nullopt;

void set_model(Writer& w, const std::string& name, const std::string& path, Timestamp now) {
  w.begin_change();
  const auto old = w.model_path(name);  // before the write: the path it replaces
  const std::vector<PathChange> change{{&name, &path, old ? &*old : nullptr}};
  w.add_histories("set", change, now);
  w.put_paths(change, now, kNotMissing);
}

void write_batch(Writer& w, const WriteBatch& batch, Timestamp now) {
  const auto& sets = batch.sets();
  if (sets.empty()) return;
  std::vector<PathChange> changes;
  changes.reserve(sets.size());
  for (const auto& [key, i] :
       name_order(sets, [](const auto& set) -> const std::string& { return set.first; })) {
    changes.push_back({&sets[i].first, &sets[i].second, nullptr});
  }
  // The paths they replace, read before anything is written.
  w.begin_change();
  const auto old = w.model_paths(changes);
  for (std::size_t i = 0; i < changes.size(); ++i) {
    if (old[i]) changes[i].old_path = &*old[i];
  }
  set_models(w, "set", changes, now);
}

void set_models(Writer& w, const std::string& action, const std::vector<PathChange>& changes,
                Timestamp now) {
  w.add_histories(action, changes, now);
  w.put_paths(changes, now, kNotMissing);
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
