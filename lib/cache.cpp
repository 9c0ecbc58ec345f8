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
// changes, and going back to a file reuses its open connection. Never
// destroyed: see Closer.
struct Registries {
  std::mutex mutex;  // guards the containers; held only to look up and insert
  std::map<std::string, std::unique_ptr<Registry>> by_path;
  std::deque<Choice> choices;
  std::atomic<const Choice*> last{nullptr};
  std::atomic<int> calls{0};  // free functions running now
};

Registries& registries() {
  static Registries* const all = new Registries;
  return *all;
}

// At exit, closes the registries (SQLite then checkpoints and removes the
// write-ahead log) unless a thread is still inside a call: a Python daemon
// thread, a detached thread. Then they are left to the operating system,
// which closes their files; the next open recovers the write-ahead log, so
// nothing committed is lost. The containers themselves stay, for a thread
// that reads them while the process exits.
struct Closer {
  ~Closer() {
    auto& all = registries();
    if (all.calls.load() != 0) return;
    std::lock_guard<std::mutex> lock(all.mutex);
    all.last.store(nullptr);  // a later call chooses, and opens, anew
    for (auto& entry : all.by_path) entry.second.reset();
  }
} closer;

// fork() while another thread holds the mutex would leave the child a mutex
// that nobody unlocks. The mutex is held only around container operations,
// never while waiting for anything else, so holding it across fork() cannot
// deadlock.
// In the child only the forking thread runs, and it is in no call.
const bool registries_fork_safe =
    ::pthread_atfork([] { registries().mutex.lock(); }, [] { registries().mutex.unlock(); },
                     [] {
                       new (&registries().mutex) std::mutex;
                       registries().calls.store(0);
                     }) == 0;

// Runs `call` on the default registry, counted in Registries::calls.
template <class Call>
auto on_default(Call&& call) {
  struct Counted {
    std::atomic<int>& calls;
    explicit Counted(std::atomic<int>& c) : calls(c) { calls.fetch_add(1); }
    ~Counted() { calls.fetch_sub(1); }
  } counted(registries().calls);
  return call(default_registry());
}

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

std::string get_dir() {
  return on_default([](Registry& r) { return r.get_dir(); });
}

CacheDir get_dir_origin() {
  return on_default([](Registry& r) { return r.cache_dir(); });
}

void set_dir(const std::string& path) {
  on_default([&](Registry& r) { r.set_dir(path); });
}

void unset_dir() {
  on_default([](Registry& r) { r.unset_dir(); });
}

void set_model_cache(const std::string& name, const std::string& path) {
  on_default([&](Registry& r) { r.set_model_cache(name, path); });
}

void clear_model_cache(const std::string& name) {
  on_default([&](Registry& r) { r.clear_model_cache(name); });
}

std::vector<std::string> list_cached_models() {
  return on_default([](Registry& r) { return r.list_cached_models(); });
}

std::optional<std::string> cached_model_path(const std::string& name) {
  return on_default([&](Registry& r) { return r.cached_model_path(name); });
}

}  // namespace tfimm
