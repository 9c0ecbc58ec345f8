#include "storage/rules.hpp"

#include "storage/name_order.hpp"

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

}  // namespace tfimm::detail
