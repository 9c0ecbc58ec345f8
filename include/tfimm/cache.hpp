// tfimm's cache functions, made persistent: the same names and meaning as
// tfimm.utils.cache, on the default registry shared by every process.
//
// The default registry (see default_registry_location()) follows the
// environment on every call; each file it names is opened lazily,
// once per process, and reopened in a child after fork(). Every function is
// safe to call from several threads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tfimm/registry.hpp"

namespace tfimm {

// The registry the environment names now (see default_registry_location()),
// created on first use; the reference stays valid for the life of the process.
Registry& default_registry();

// The cache directory: the process override, else the registry setting, else
// $TFIMM_HOME, else $XDG_CACHE_HOME/tfimm, else ~/.cache/tfimm.
std::string get_dir();

// The same, with the layer that won (like `git config --show-origin`).
CacheDir get_dir_origin();

// Stores the cache directory in the registry, for every process.
void set_dir(const std::string& path);

// Removes the stored cache directory; precedence falls back to the
// environment.
void unset_dir();

// Registers a model-specific location: `name` is looked up at `path`.
void set_model_cache(const std::string& name, const std::string& path);

// Forgets the model-specific location of `name`; no error if there is none;
// never deletes files.
void clear_model_cache(const std::string& name);

// Names given to set_model_cache(), sorted.
std::vector<std::string> list_cached_models();

// The model-specific path first, else <get_dir()>/<name> if it exists, else
// nothing.
std::optional<std::string> cached_model_path(const std::string& name);

}  // namespace tfimm
