#include "storage/rules.hpp"

#include <string_view>
#include <unordered_map>

#include "storage/actor.hpp"
#include "storage/name_order.hpp"

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

}  // namespace tfimm::detail
