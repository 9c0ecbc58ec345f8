#include "cmd_migrate.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

namespace {

void print_status(const MigrationStatus& status) {
  std::cout << "registry: " << printable(status.path) << '\n';
  if (!status.exists) {
    std::cout << "schema:   none yet; the file is created at version " << status.latest
              << " on the first change\n";
    return;
  }
  std::cout << "schema:   version " << status.current << " of " << status.latest
            << (status.pending.empty() ? " (up to date)" : "") << '\n';
  if (status.applied.empty()) {
    std::cout << "applied:  none\n";
  }
  bool first = true;
  for (const auto& [version, at] : status.applied) {
    std::cout << (first ? "applied:  " : "          ") << version << "  " << iso_time(at) << '\n';
    first = false;
  }
  if (status.pending.empty()) {
    std::cout << "pending:  none\n";
  } else {
    std::cout << "pending: ";
    for (int version : status.pending) std::cout << ' ' << version;
    std::cout << "  (run `tfimm-cache migrate`)\n";
  }
}

}  // namespace

void setup_migrate(CLI::App& app, Program& program) {
  auto options = std::make_shared<MigrateOptions>();
  auto* sub = app.add_subcommand("migrate", "Bring the registry file to this version's schema");
  sub->add_flag("--status", options->status_only,
                "Only show applied (with time) and pending migrations; change nothing");
  sub->footer(
      "Every tfimm-cache command migrates the registry when it opens it; this\n"
      "command does it on purpose and shows the result. A registry written by a\n"
      "newer version is refused (exit 3) and left untouched.\n\n"
      "Example:\n  tfimm-cache migrate --status\n  tfimm-cache migrate");
  bind_command(sub, program, options, run_migrate);
}

int run_migrate(const GlobalOptions& global, const MigrateOptions& options) {
  Registry registry = open_registry(global);
  MigrationStatus before = registry.migration_status();
  if (options.status_only || !before.exists || before.pending.empty()) {
    print_status(before);
    return kExitOk;
  }
  (void)registry.entries();  // opening for a read applies pending migrations
  MigrationStatus after = registry.migration_status();
  std::cout << "migrated from version " << before.current << " to " << after.current << '\n';
  print_status(after);
  return kExitOk;
}

}  // namespace tfimm::tool
