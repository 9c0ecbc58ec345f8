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
  std::optional<std::string> model_path(const std::string& name);
};

namespace detail {
inline constexpr const char* kCacheDirKey = "cache_dir";
}

}  // namespace tfimm
