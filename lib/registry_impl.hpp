// Registry's private state, shared by registry.cpp and audit.cpp.
#pragma once

#include <mutex>

#include "storage.hpp"
#include "tfimm/registry.hpp"

namespace tfimm {

struct Registry::Impl {
  Impl(RegistryLocation where, RegistryOptions options)
      : location(std::move(where)), store(location.path, options.busy_timeout) {}

  RegistryLocation location;
  detail::Store store;
  std::recursive_mutex mutex;  // one connection, calls serialised

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
