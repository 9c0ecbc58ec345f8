#include "dirs.hpp"

#include <pthread.h>

#include <cstdlib>
#include <mutex>
#include <new>

#include "tfimm/paths.hpp"

namespace tfimm {
namespace {

std::mutex override_mutex;
std::optional<std::string> override_dir;

// fork() while another thread holds override_mutex would leave the child a
// mutex that nobody unlocks: it is held across fork(), as glibc's malloc does
// with its locks. Installed while the library loads, before any Registry
// installs its own handlers, so that this prepare handler runs after theirs:
// a registry call in flight may still need the mutex.
const bool override_fork_safe =
    ::pthread_atfork([] { override_mutex.lock(); }, [] { override_mutex.unlock(); },
                     [] { new (&override_mutex) std::mutex; }) == 0;

}  // namespace

namespace detail {

std::optional<std::string> env_value(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

CacheDir resolve_cache_dir(const std::optional<std::string>& stored) {
  CacheDir dir;
  dir.layers.push_back({DirSource::Override, dir_override()});
  dir.layers.push_back({DirSource::RegistrySetting, stored});
  const auto from_env = [](const char* name, const char* suffix) -> std::optional<std::string> {
    auto value = env_value(name);
    if (!value) return std::nullopt;
    return normalize_path(*value + suffix);
  };
  dir.layers.push_back({DirSource::TfimmHome, from_env("TFIMM_HOME", "")});
  dir.layers.push_back({DirSource::XdgCacheHome, from_env("XDG_CACHE_HOME", "/tfimm")});
  dir.layers.push_back({DirSource::Default, normalize_path("~/.cache/tfimm")});
  for (const auto& layer : dir.layers) {
    if (layer.path) {
      dir.path = *layer.path;
      dir.source = layer.source;
      break;
    }
  }
  return dir;
}

std::string cache_dir_path(const std::optional<std::string>& stored) {
  if (auto over = dir_override()) return *std::move(over);
  if (stored) return *stored;
  if (auto home = env_value("TFIMM_HOME")) return normalize_path(*home);
  if (auto xdg = env_value("XDG_CACHE_HOME")) return normalize_path(*xdg + "/tfimm");
  return normalize_path("~/.cache/tfimm");
}

}  // namespace detail

RegistryLocation default_registry_location() {
  if (auto file = detail::env_value("TFIMM_REGISTRY")) {
    return {normalize_path(*file), RegistrySource::EnvRegistry};
  }
  if (auto state = detail::env_value("XDG_STATE_HOME")) {
    return {normalize_path(*state + "/tfimm/registry.db"), RegistrySource::XdgStateHome};
  }
  return {normalize_path("~/.local/state/tfimm/registry.db"), RegistrySource::Default};
}

std::string describe(RegistrySource source) {
  switch (source) {
    case RegistrySource::Explicit:
      return "given explicitly (--registry)";
    case RegistrySource::EnvRegistry:
      return "$TFIMM_REGISTRY";
    case RegistrySource::XdgStateHome:
      return "$XDG_STATE_HOME/tfimm/registry.db";
    case RegistrySource::Default:
      return "default (~/.local/state/tfimm/registry.db)";
  }
  return "unknown";
}

std::string describe(DirSource source) {
  switch (source) {
    case DirSource::Override:
      return "process override";
    case DirSource::RegistrySetting:
      return "registry setting";
    case DirSource::TfimmHome:
      return "$TFIMM_HOME";
    case DirSource::XdgCacheHome:
      return "$XDG_CACHE_HOME";
    case DirSource::Default:
      return "default";
  }
  return "unknown";
}

void set_dir_override(const std::string& path) {
  auto normal = normalize_path(path);
  std::lock_guard<std::mutex> lock(override_mutex);
  override_dir = std::move(normal);
}

void clear_dir_override() noexcept {
  std::lock_guard<std::mutex> lock(override_mutex);
  override_dir.reset();
}

std::optional<std::string> dir_override() {
  std::lock_guard<std::mutex> lock(override_mutex);
  return override_dir;
}

}  // namespace tfimm
