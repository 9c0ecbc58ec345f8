#include "dirs.hpp"

#include <pthread.h>

#include <cstdlib>
#include <mutex>
#include <new>

#include "quote.hpp"
#include "storage/store.hpp"
#include "tfimm/errors.hpp"
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

namespace {

// Whether `value` would be taken against the working directory, and so name
// a different place in every process. "~" and "~/..." mean the same
// everywhere.
bool relative(const std::string& value) { return value.front() != '/' && value.front() != '~'; }

// A relative $HOME, which home_dir() ignores, when `used` is a value that
// expands "~".
void note_home(const std::string& used, std::vector<IgnoredVariable>& ignored) {
  if (used.front() != '~') return;
  auto home = env_value("HOME");
  if (home && home->front() != '/') ignored.push_back({"HOME", *home});
}

// $NAME, an XDG base directory, when set; a relative value is invalid by
// the XDG base directory specification and is ignored (added to `ignored`).
std::optional<std::string> base_dir(const char* name, std::vector<IgnoredVariable>* ignored) {
  auto value = env_value(name);
  if (!value || !relative(*value)) return value;
  if (ignored != nullptr) ignored->push_back({name, *value});
  return std::nullopt;
}

// $NAME normalised, for our own variables that name one file or directory:
// every process must agree on it, so a relative value is refused rather
// than silently ignored. Throws InvalidPath naming the variable.
std::optional<std::string> own_path(const char* name) {
  auto value = env_value(name);
  if (!value) return std::nullopt;
  const std::string variable = std::string("$") + name;
  if (relative(*value)) {
    throw InvalidPath(variable + " is " + quote(*value) +
                      ", a relative path, which would name a different place in every working "
                      "directory; set " +
                      variable + " to an absolute path");
  }
  try {
    return normalize_path(*value);
  } catch (const InvalidPath& e) {
    throw InvalidPath(variable + ": " + e.what());
  }
}

}  // namespace

CacheDir resolve_cache_dir(const std::optional<std::string>& stored) {
  CacheDir dir;
  dir.layers.push_back({DirSource::Override, dir_override()});
  dir.layers.push_back({DirSource::RegistrySetting, stored});
  std::optional<std::string> tfimm_home;
  if (dir.layers[0].path || stored) {
    // Shadowed: a relative value decides nothing here, so it is only noted.
    try {
      tfimm_home = own_path("TFIMM_HOME");
    } catch (const InvalidPath&) {
      dir.ignored.push_back({"TFIMM_HOME", *env_value("TFIMM_HOME")});
    }
  } else {
    tfimm_home = own_path("TFIMM_HOME");
  }
  dir.layers.push_back({DirSource::TfimmHome, tfimm_home});
  std::optional<std::string> xdg = base_dir("XDG_CACHE_HOME", &dir.ignored);
  if (xdg) note_home(*xdg, dir.ignored);
  dir.layers.push_back(
      {DirSource::XdgCacheHome, xdg ? std::optional(normalize_path(*xdg + "/tfimm")) : xdg});
  dir.layers.push_back({DirSource::Default, normalize_path("~/.cache/tfimm")});
  note_home("~", dir.ignored);
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
  if (auto home = own_path("TFIMM_HOME")) return *std::move(home);
  if (auto xdg = base_dir("XDG_CACHE_HOME", nullptr)) return normalize_path(*xdg + "/tfimm");
  return normalize_path("~/.cache/tfimm");
}

}  // namespace detail

bool is_server_location(const std::string& location) noexcept {
  return detail::names_server(location);
}

RegistryLocation default_registry_location() {
  if (auto value = detail::env_value("TFIMM_REGISTRY"); value && detail::names_server(*value)) {
    return {*std::move(value), RegistrySource::EnvRegistry, {}};
  }
  if (auto file = detail::own_path("TFIMM_REGISTRY")) {
    std::vector<IgnoredVariable> ignored;
    detail::note_home(*detail::env_value("TFIMM_REGISTRY"), ignored);
    return {*std::move(file), RegistrySource::EnvRegistry, std::move(ignored)};
  }
  std::vector<IgnoredVariable> ignored;
  if (auto state = detail::base_dir("XDG_STATE_HOME", &ignored)) {
    detail::note_home(*state, ignored);
    return {normalize_path(*state + "/tfimm/registry.db"), RegistrySource::XdgStateHome,
            std::move(ignored)};
  }
  detail::note_home("~", ignored);
  return {normalize_path("~/.local/state/tfimm/registry.db"), RegistrySource::Default,
          std::move(ignored)};
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
