#include "cmd_doctor.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

void setup_doctor(CLI::App& app, Program& program) {
  auto options = std::make_shared<DoctorOptions>();
  auto* sub = app.add_subcommand("doctor", "Check the registry file and its surroundings");
  sub->footer(
      "Reads only: never migrates or creates anything. Checks that the registry\n"
      "can be used and written by this process (or created, when it does not exist\n"
      "yet), its integrity, schema version, journal mode, file mode and owner,\n"
      "network file system, and that the cache directory can hold downloads.\n"
      "Exits with 1 when there are warnings; a registry that cannot be used at all\n"
      "is a warning too, not an error.\n\n"
      "Example:\n  tfimm-cache doctor");
  bind_command(sub, program, options, run_doctor);
}

int run_doctor(const GlobalOptions& global, const DoctorOptions& /*options*/) {
  Registry registry = open_registry(global);
  Diagnosis d = registry.diagnose();
  Style style(stdout_wants_colour());
  const bool integrity_ok = d.integrity.empty() || d.integrity == "ok";

  std::cout << "registry:    " << printable(d.path) << '\n';
  std::cout << "source:      " << describe(registry.location().source) << '\n';
  std::cout << "exists:      "
            << (d.exists                  ? "yes"
                : d.write_problem.empty() ? "no (created on the first change)"
                                          : "no (and cannot be created; see below)")
            << '\n';
  if (d.exists) {
    if (d.schema > 0 || d.problem.empty()) {
      std::cout << "schema:      version " << d.schema << " (this build knows " << d.latest_schema
                << ")\n";
    }
    if (!d.problem.empty()) {
      std::cout << "usable:      " << style.paint("no", Style::Colour::Red) << '\n';
    } else if (!d.integrity.empty()) {
      std::cout << "integrity:   "
                << style.paint(d.integrity,
                               integrity_ok ? Style::Colour::Green : Style::Colour::Red)
                << '\n';
      std::cout << "journal:     " << d.journal_mode << '\n';
    } else if (d.server_facts.empty()) {
      std::cout << "integrity:   not checked (the schema needs upgrading first)\n";
    }
    if (d.server_facts.empty()) {
      std::cout << "file:        mode " << d.file_mode << ", owner " << d.owner << '\n';
    }
    std::cout << "writable:    "
              << (d.write_problem.empty() ? std::string("yes, by this process")
                                          : "no: " + printable(d.write_problem))
              << '\n';
  }
  for (const auto& [label, value] : d.server_facts) {
    std::cout << label << ':' << std::string(label.size() < 12 ? 12 - label.size() : 1, ' ')
              << printable(value) << '\n';
  }
  if (d.server_facts.empty()) {
    std::cout << "file system: " << (d.fs_type.empty() ? "unknown" : d.fs_type)
              << (d.network_fs ? " (network)" : " (local)") << '\n';
  }
  if (d.problem.empty() && d.pending.empty()) std::cout << "entries:     " << d.entries << '\n';
  std::cout << "cache dir:   " << printable(d.cache_dir.path) << " ("
            << describe(d.cache_dir.source) << "): "
            << style.paint(to_string(d.cache_dir_status), status_colour(d.cache_dir_status))
            << '\n';
  for (const auto& warning : d.warnings) {
    std::cout << style.paint("warning:", Style::Colour::Yellow) << "     " << printable(warning)
              << '\n';
  }
  bool healthy = integrity_ok && d.warnings.empty();
  std::cout << (healthy ? style.paint("no problems found", Style::Colour::Green)
                        : style.paint("problems found", Style::Colour::Red))
            << '\n';
  return healthy ? kExitOk : kExitNegative;
}

}  // namespace tfimm::tool
