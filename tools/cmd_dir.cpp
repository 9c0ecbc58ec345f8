#include "cmd_dir.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

namespace {

// "now /x (default)", after a change.
void print_effective(Registry& registry) {
  CacheDir dir = registry.cache_dir();
  std::cout << "cache directory is now " << printable(dir.path) << " (" << describe(dir.source)
            << ")\n";
}

}  // namespace

void setup_dir(CLI::App& app, Program& program) {
  auto options = std::make_shared<DirOptions>();
  auto* sub = app.add_subcommand("dir", "Print the cache directory (get_dir)");
  sub->add_flag("--show-origin", options->show_origin,
                "Show every layer in precedence order and mark the one in use");
  sub->footer(
      "Precedence: --cache-dir (process override), the registry setting (set-dir),\n"
      "$TFIMM_HOME, $XDG_CACHE_HOME/tfimm, ~/.cache/tfimm. A relative\n"
      "$XDG_CACHE_HOME or $HOME is ignored (with a note); a relative $TFIMM_HOME\n"
      "is refused.\n\n"
      "Example:\n  tfimm-cache dir\n  tfimm-cache dir --show-origin");
  bind_command(sub, program, options, run_dir);
}

int run_dir(const GlobalOptions& global, const DirOptions& options) {
  Registry registry = open_registry(global);
  CacheDir dir = registry.cache_dir();
  note_ignored(dir.ignored);
  if (!options.show_origin) {
    std::cout << dir.path << '\n';
    return kExitOk;
  }
  Style style(stdout_wants_colour());
  Table table({"", "SOURCE", "PATH"});
  for (const auto& layer : dir.layers) {
    bool used = layer.source == dir.source;
    table.add({used ? "*" : "",
               {describe(layer.source), used ? Style::Colour::Bold : Style::Colour::None},
               {layer.path ? *layer.path : "-", used ? Style::Colour::None : Style::Colour::Dim}});
  }
  table.print(std::cout, style);
  return kExitOk;
}

void setup_set_dir(CLI::App& app, Program& program) {
  auto options = std::make_shared<SetDirOptions>();
  auto* sub = app.add_subcommand("set-dir", "Store the cache directory in the registry");
  sub->add_option("PATH", options->path, "The cache directory (stored absolute and normalised)")
      ->required();
  sub->footer(
      "Applies to every process using this registry, above $TFIMM_HOME and\n"
      "$XDG_CACHE_HOME. Creates no directory.\n\n"
      "Example:\n  tfimm-cache set-dir /data/tfimm-cache");
  bind_command(sub, program, options, run_set_dir);
}

int run_set_dir(const GlobalOptions& global, const SetDirOptions& options) {
  Registry registry = open_registry(global);
  registry.set_dir(options.path);
  std::optional<std::string> stored = registry.stored_dir();
  std::cout << "stored cache directory: " << printable(stored ? *stored : options.path) << '\n';
  print_effective(registry);
  return kExitOk;
}

void setup_unset_dir(CLI::App& app, Program& program) {
  auto options = std::make_shared<UnsetDirOptions>();
  auto* sub = app.add_subcommand("unset-dir", "Remove the stored cache directory setting");
  sub->footer(
      "The cache directory falls back to $TFIMM_HOME, $XDG_CACHE_HOME/tfimm or\n"
      "~/.cache/tfimm. Not an error when nothing is stored. Deletes no files.\n\n"
      "Example:\n  tfimm-cache unset-dir");
  bind_command(sub, program, options, run_unset_dir);
}

int run_unset_dir(const GlobalOptions& global, const UnsetDirOptions& /*options*/) {
  Registry registry = open_registry(global);
  std::optional<std::string> before = registry.stored_dir();
  registry.unset_dir();
  if (before) {
    std::cout << "removed stored cache directory " << printable(*before) << '\n';
  } else {
    std::cout << "no cache directory was stored\n";
  }
  print_effective(registry);
  return kExitOk;
}

}  // namespace tfimm::tool
