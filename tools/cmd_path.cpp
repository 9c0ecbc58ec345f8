#include "cmd_path.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

namespace {

// Why a path could not be checked: "not_accessible, Permission denied".
std::string unchecked(PathStatus status, const std::string& detail) {
  return to_string(status) + (detail.empty() ? "" : ", " + detail);
}

// "exists", "does not exist", or, when the path could not be checked,
// "could not check: not_accessible, Permission denied".
std::string exists_words(PathStatus status, const std::string& detail) {
  if (status == PathStatus::Ok) return "exists";
  if (is_stale(status)) return "does not exist";
  return "could not check: " + unchecked(status, detail);
}

// The cache directory, its layer, and every lower layer that is set (what
// it shadows).
void explain_cache_dir(const CacheDir& dir) {
  std::cout << "cache dir: " << printable(dir.path) << " (" << describe(dir.source) << ")\n";
  bool below = false;
  for (const auto& layer : dir.layers) {
    if (layer.source == dir.source) {
      below = true;
    } else if (below && layer.path) {
      std::cout << "  shadows: " << printable(*layer.path) << " (" << describe(layer.source)
                << ")\n";
    }
  }
}

}  // namespace

void setup_path(CLI::App& app, Program& program) {
  auto options = std::make_shared<PathOptions>();
  auto* sub = app.add_subcommand("path", "Print where a model is cached (cached_model_path)");
  sub->add_option("NAME", options->name, "Model name")->required();
  sub->add_flag("--explain", options->explain,
                "Also say which source answered and what it shadows");
  sub->footer(
      "Prints the model-specific entry's path when there is one, else\n"
      "<cache dir>/NAME when that exists. When the model is not cached, prints\n"
      "nothing and exits with 1.\n\n"
      "Example:\n  tfimm-cache path resnet18\n  tfimm-cache path resnet18 --explain\n"
      "  dir=$(tfimm-cache path resnet18) || echo \"not cached\"");
  bind_command(sub, program, options, run_path);
}

int run_path(const GlobalOptions& global, const PathOptions& options) {
  Registry registry = open_registry(global);
  if (!options.explain) {
    std::optional<std::string> path = registry.cached_model_path(options.name);
    if (!path) {
      // Not cached as far as cached_model_path() can tell; say so when that
      // is only because <cache dir>/NAME could not be checked.
      Resolution r = registry.resolve(options.name);
      if (r.source == ResolveSource::None && !is_stale(r.fallback_status)) {
        std::cerr << "tfimm-cache: note: could not check " << printable(r.fallback_path) << " ("
                  << unchecked(r.fallback_status, r.fallback_detail) << "); `tfimm-cache path "
                  << printable(options.name)
                  << " --explain` shows where the model was looked for\n";
      }
      return kExitNegative;
    }
    std::cout << *path << '\n';  // exactly as the library gives it, for scripts
    return kExitOk;
  }

  Resolution r = registry.resolve(options.name);
  if (r.path) {
    std::cout << "path:      " << printable(*r.path) << " (" << exists_words(r.status, r.detail)
              << ")\n";
  } else {
    std::cout << "path:      none: " << printable(options.name) << " is not cached\n";
  }
  switch (r.source) {
    case ResolveSource::Entry:
      std::cout << "source:    model-specific entry";
      if (r.entry) {
        std::cout << " (set " << iso_time(r.entry->updated_at)
                  << (r.entry->locked ? ", locked" : "") << ")";
      }
      std::cout << '\n';
      std::cout << "shadows:   " << printable(r.fallback_path) << " (<cache dir>/<name>, "
                << exists_words(r.fallback_status, r.fallback_detail) << ")\n";
      break;
    case ResolveSource::CacheDir:
      std::cout << "source:    cache directory (" << describe(r.cache_dir.source)
                << "); no model-specific entry\n";
      break;
    case ResolveSource::None:
      std::cout << "source:    none: no model-specific entry, and " << printable(r.fallback_path)
                << (is_stale(r.fallback_status)
                        ? " does not exist"
                        : " could not be checked (" +
                              unchecked(r.fallback_status, r.fallback_detail) + ")")
                << '\n';
      break;
  }
  explain_cache_dir(r.cache_dir);
  return r.path ? kExitOk : kExitNegative;
}

}  // namespace tfimm::tool
