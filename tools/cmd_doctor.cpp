#include "cmd_doctor.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

void setup_doctor(CLI::App& app, Program& program) {
  auto options = std::make_shared<DoctorOptions>();
  auto* sub = app.add_subcommand("doctor", "Check the registry file and its surroundings");
  sub->footer(
      "Reads only. Checks integrity, schema version, journal mode, file mode and\n"
      "owner, network file system, and the cache directory. Exits with 1 when the\n"
      "integrity check fails or there are warnings.\n\n"
      "Example:\n  tfimm-cache doctor");
  bind_command(sub, program, options, run_doctor);
}

int run_doctor(const GlobalOptions& global, const DoctorOptions& /*options*/) {
  Registry registry = open_registry(global);
  Diagnosis d = registry.diagnose();
  Style style(stdout_wants_colour());
  const bool integrity_ok = !d.exists || d.integrity == "ok";

  std::cout << "registry:    " << printable(d.path) << '\n';
  std::cout << "source:      " << describe(registry.location().source) << '\n';
  std::cout << "exists:      " << (d.exists ? "yes" : "no (created on the first change)") << '\n';
  if (d.exists) {
    std::cout << "schema:      version " << d.schema << " (this build knows " << schema_version()
              << ")\n";
    std::cout << "integrity:   "
              << style.paint(d.integrity, integrity_ok ? Style::Colour::Green : Style::Colour::Red)
              << '\n';
    std::cout << "journal:     " << d.journal_mode << '\n';
    std::cout << "file:        mode " << d.file_mode << ", owner " << d.owner << '\n';
  }
  std::cout << "file system: " << (d.fs_type.empty() ? "unknown" : d.fs_type)
            << (d.network_fs ? " (network)" : " (local)") << '\n';
  std::cout << "entries:     " << d.entries << '\n';
  std::cout << "cache dir:   " << printable(d.cache_dir.path) << " ("
            << describe(d.cache_dir.source) << "): "
            << style.paint(to_string(d.cache_dir_status), status_colour(d.cache_dir_status))
            << '\n';
  for (const auto& warning : d.warnings) {
    std::cout << style.paint("warning:", Style::Colour::Yellow) << "     " << warning << '\n';
  }
  bool healthy = integrity_ok && d.warnings.empty();
  std::cout << (healthy ? style.paint("no problems found", Style::Colour::Green)
                        : style.paint("problems found", Style::Colour::Red))
            << '\n';
  return healthy ? kExitOk : kExitNegative;
}

}  // namespace tfimm::tool
