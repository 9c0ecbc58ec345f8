#include "cmd_where.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

void setup_where(CLI::App& app, Program& program) {
  auto options = std::make_shared<WhereOptions>();
  auto* sub = app.add_subcommand("where", "Show the registry file in use and why it was chosen");
  sub->footer(
      "The registry is --registry FILE, else $TFIMM_REGISTRY, else\n"
      "$XDG_STATE_HOME/tfimm/registry.db, else ~/.local/state/tfimm/registry.db.\n"
      "A relative $XDG_STATE_HOME or $HOME is ignored (with a note); a relative\n"
      "$TFIMM_REGISTRY is refused.\n\n"
      "Example:\n  tfimm-cache where\n  tfimm-cache --registry /shared/registry.db where");
  bind_command(sub, program, options, run_where);
}

int run_where(const GlobalOptions& global, const WhereOptions& /*options*/) {
  Registry registry = open_registry(global);
  const RegistryLocation& location = registry.location();
  std::string detail;
  // A registry on a server is asked; a file is looked at. A server that
  // cannot be asked leaves the answer unknown: where it is still holds.
  PathStatus status = PathStatus::Error;
  if (is_server_location(location.path)) {
    try {
      status = registry.migration_status().exists ? PathStatus::Ok : PathStatus::Missing;
    } catch (const RegistryError& e) {
      detail = e.what();
    }
  } else {
    status = check_path(location.path, &detail);
  }
  note_ignored(location.ignored);

  std::cout << "registry: " << printable(location.path) << '\n';
  std::cout << "source:   " << describe(location.source) << '\n';
  if (location.source == RegistrySource::Explicit) {
    // What --registry shadows: the file the library would pick without it.
    // Only a remark; without a home directory there is nothing to show.
    std::optional<RegistryLocation> fallback;
    try {
      fallback = default_registry_location();
    } catch (const InvalidPath&) {
    }
    if (fallback && fallback->path != location.path) {
      std::cout << "shadows:  " << describe(fallback->source) << ": " << printable(fallback->path)
                << '\n';
    }
  }
  std::cout << "exists:   ";
  if (status == PathStatus::Ok) {
    std::cout << "yes\n";
  } else if (status == PathStatus::Missing) {
    std::cout << "no (created on the first change)\n";
  } else if (is_server_location(location.path)) {
    std::cout << "unknown (" << printable(detail) << ")\n";
  } else {
    std::cout << "no (" << to_string(status) << (detail.empty() ? "" : ": " + printable(detail))
              << ")\n";
  }
  return kExitOk;
}

}  // namespace tfimm::tool
