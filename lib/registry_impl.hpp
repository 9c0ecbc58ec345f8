// Registry's private state, shared by registry.cpp and audit.cpp.
#pragma once

#include <new>

#include "call_lock.hpp"
#include "storage/sqlite/sqlite_store.hpp"
#include "tfimm/registry.hpp"

namespace tfimm {

struct Registry::Impl {
  Impl(RegistryLocation where, RegistryOptions options)
      : location(std::move(where)),
        busy_timeout(options.busy_timeout),
        mutex(location.path, [this] { forget_store(); }),
        store(location.path, busy_timeout),
        transaction(*this) {}

  RegistryLocation location;
  std::chrono::milliseconds busy_timeout;
  detail::CallMutex mutex;  // one connection, calls serialised (see call_lock.hpp)
  detail::Store store;
  // The one Transaction passed to every body: it lives as long as the
  // Registry, so one kept past its body is refused, not a dangling reference.
  Transaction transaction;

  // A child after fork(), where the thread that held this registry does not
  // exist: its connection and pending state belong to the parent.
  void forget_store() noexcept {
    store.~Store();
    new (&store) detail::Store(location.path, busy_timeout);
  }

  // Operations that assume a write transaction is open (see Store::write).
  void set_model(const std::string& name, const std::string& normal_path);
  bool clear_model(const std::string& name);
  void set_dir(const std::string& normal_path);
  void unset_dir();

  // Reads that work whether or not the registry file exists.
  std::optional<std::string> stored_dir();
  // The entry's path, else <cache dir>/<name> if it exists; reads the store
  // only when `registry_exists` (the connection is open).
  std::optional<std::string> cached_model_path(const std::string& name, bool registry_exists);
};

namespace detail {
inline constexpr const char* kCacheDirKey = "cache_dir";
}

}  // namespace tfimm
