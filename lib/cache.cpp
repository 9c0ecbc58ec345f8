// tfimm's free functions on the default registry of this process.
#include "tfimm/cache.hpp"

#include <mutex>

namespace tfimm {

Registry& default_registry() {
  // Created once; Registry itself reopens its connection after fork().
  static Registry registry;
  return registry;
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
