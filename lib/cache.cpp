// tfimm's free functions on the default registry of this process.
#include "tfimm/cache.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>

namespace tfimm {
namespace {

// The variables default_registry_location() reads, in a fixed order.
constexpr const char* kLocationVariables[] = {"TFIMM_REGISTRY", "XDG_STATE_HOME", "HOME"};
constexpr std::size_t kVariableCount = std::size(kLocationVariables);

// The environment one default registry was chosen for. A value is
// std::nullopt for an unset variable.
struct Choice {
  std::optional<std::string> values[kVariableCount];
  Registry* registry = nullptr;

  // Whether the environment still holds exactly these values: a getenv()
  // and a comparison per variable, no allocation; about 0.1 us of a 3 us
  // lookup (tests/bench/python_bench.py measures it from Python).
  bool current() const {
    for (std::size_t i = 0; i < kVariableCount; ++i) {
      const char* now = std::getenv(kLocationVariables[i]);
      if (now == nullptr ? values[i].has_value() : !values[i] || *values[i] != now) return false;
    }
    return true;
  }
};

// Every registry the environment has named in this process, by file, and
// every choice made: kept for the life of the process, since a caller may
// still hold a reference from default_registry() when the environment
// changes, and going back to a file reuses its open connection.
struct Registries {
  std::mutex mutex;  // guards the containers; held only to look up and insert
  std::map<std::string, std::unique_ptr<Registry>> by_path;
  std::deque<Choice> choices;
  std::atomic<const Choice*> last{nullptr};
};

Registries& registries() {
  static Registries all;
  return all;
}

// fork() while another thread holds the mutex would leave the child a mutex
// that nobody unlocks. The mutex is held only around container operations,
// never while waiting for anything else, so holding it across fork() cannot
// deadlock.
const bool registries_fork_safe =
    ::pthread_atfork([] { registries().mutex.lock(); }, [] { registries().mutex.unlock(); },
                     [] { new (&registries().mutex) std::mutex; }) == 0;

}  // namespace

Registry& default_registry() {
  auto& all = registries();
  const Choice* last = all.last.load(std::memory_order_acquire);
  if (last != nullptr && last->current()) return *last->registry;

  Choice choice;
  for (std::size_t i = 0; i < kVariableCount; ++i) {
    if (const char* value = std::getenv(kLocationVariables[i])) choice.values[i] = value;
  }
  // Made outside the mutex: the constructor reads the environment again
  // (read after `choice`, so a change in between only makes the next call
  // choose again), may throw InvalidPath, and takes the call locks' mutex.
  // A registry this one duplicates dies after the mutex is released.
  auto fresh = std::make_unique<Registry>();
  const std::string path = fresh->path();

  std::lock_guard<std::mutex> lock(all.mutex);
  auto& registry = all.by_path[path];
  if (!registry) registry = std::move(fresh);
  choice.registry = registry.get();
  // An environment seen before reuses its record, so that switching back
  // and forth adds nothing.
  const Choice* chosen = nullptr;
  for (const auto& seen : all.choices) {
    if (seen.registry == choice.registry &&
        std::equal(std::begin(seen.values), std::end(seen.values), std::begin(choice.values))) {
      chosen = &seen;
    }
  }
  if (chosen == nullptr) chosen = &all.choices.emplace_back(std::move(choice));
  all.last.store(chosen, std::memory_order_release);
  return *chosen->registry;
}

std::string get_dir() { return default_registry().get_dir(); }

CacheDir get_dir_origin() { return default_registry().cache_dir(); }

void set_dir(const std::string& path) { default_registry().set_dir(path); }

void unset_dir() { default_registry().unset_dir(); }

void set_model_cache(const std::string& name, const std::string& path) {
  default_registry().set_model_cache(name, path);
}

void clear_model_cache(const std::string& name) { default_registry().clear_model_cache(name); }

std::vector<std::string> list_cached_models() { return default_registry().list_cached_models(); }

std::optional<std::string> cached_model_path(const std::string& name) {
  return default_registry().cached_model_path(name);
}

}  // namespace tfimm
