// tfimm-cache: administer the tfimm model cache registry.
//
// main() builds the command line (one setup_... per subcommand), runs the
// chosen subcommand, and is the one place where exceptions become messages
// and exit codes.
#include <iostream>
#include <memory>
#include <string>

#include "cmd_audit.hpp"
#include "cmd_dir.hpp"
#include "cmd_doctor.hpp"
#include "cmd_entries.hpp"
#include "cmd_history.hpp"
#include "cmd_list.hpp"
#include "cmd_lock.hpp"
#include "cmd_migrate.hpp"
#include "cmd_path.hpp"
#include "cmd_prune.hpp"
#include "cmd_transfer.hpp"
#include "cmd_where.hpp"
#include "context.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace {

using namespace tfimm::tool;

constexpr const char* kDescription = "Inspect and administer the tfimm model cache registry.";

constexpr const char* kFooter =
    "Environment:\n"
    "  TFIMM_REGISTRY   registry file when --registry is not given\n"
    "  XDG_STATE_HOME   registry in $XDG_STATE_HOME/tfimm/registry.db\n"
    "  TFIMM_HOME       cache directory, below --cache-dir and the registry setting\n"
    "  XDG_CACHE_HOME   cache directory $XDG_CACHE_HOME/tfimm\n"
    "  NO_COLOR         set and not empty: never colour the output\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  negative answer: model not cached (path), stale entries (audit),\n"
    "     problems found (doctor)\n"
    "  2  bad usage or bad input (invalid name, path, duration or import file,\n"
    "     unknown model); nothing was changed\n"
    "  3  the registry cannot be used (not a registry, too new, corrupt, busy,\n"
    "     read-only)\n"
    "\n"
    "Example:\n"
    "  tfimm-cache set resnet18 ~/models/resnet18\n"
    "  tfimm-cache path resnet18 --explain\n"
    "  tfimm-cache --registry /shared/registry.db audit";

// The subcommands, in the order --help lists them.
struct Subcommand {
  const char* name;
  void (*setup)(CLI::App&, Program&);
};
constexpr Subcommand kSubcommands[] = {
    {"where", setup_where},     {"set", setup_set},
    {"clear", setup_clear},     {"list", setup_list},
    {"path", setup_path},       {"dir", setup_dir},
    {"set-dir", setup_set_dir}, {"unset-dir", setup_unset_dir},
    {"audit", setup_audit},     {"prune", setup_prune},
    {"lock", setup_lock},       {"unlock", setup_unlock},
    {"history", setup_history}, {"export", setup_export},
    {"import", setup_import},   {"migrate", setup_migrate},
    {"doctor", setup_doctor},
};

// The subcommand a command line names, when it is certain: global options
// of `app` with their values, then a known subcommand name. Anything else
// (--help, --version, an unknown option or word, no subcommand) gives nullptr.
const Subcommand* named_subcommand(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.empty() || arg == "-" || arg == "--") return nullptr;
    if (arg[0] != '-') {
      for (const auto& sub : kSubcommands) {
        if (arg == sub.name) return &sub;
      }
      return nullptr;
    }
    const auto eq = arg.find('=');
    const CLI::Option* option = app.get_option_no_throw(arg.substr(0, eq));
    if (option == nullptr || option->get_items_expected_min() == 0) return nullptr;
    if (eq == std::string::npos) ++i;  // its value is the next argument
  }
  return nullptr;
}

// The options given before the subcommand.
void setup_globals(CLI::App& app, Program& program) {
  app.set_version_flag("--version", [] {
    return std::string("tfimm-cache ") + tfimm::version() + " (registry schema " +
           std::to_string(tfimm::schema_version()) + ")";
  });
  app.add_option_function<std::string>(
         "--registry", [&program](const std::string& file) { program.global.registry = file; },
         "Registry file (default: $TFIMM_REGISTRY, else ~/.local/state/tfimm/registry.db)")
      ->type_name("FILE");
  app.add_option_function<std::string>(
         "--cache-dir", [&program](const std::string& dir) { program.global.cache_dir = dir; },
         "Cache directory for this run only (a process override; stores nothing)")
      ->type_name("DIR");
  app.add_option_function<std::int64_t>(
         "--busy-timeout", [&program](std::int64_t ms) { program.global.busy_timeout = ms; },
         "Milliseconds to wait for another process's write lock (default 5000)")
      ->type_name("MS")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{24} * 3600 * 1000));
  app.require_subcommand(1);
  app.footer(kFooter);
}

// Every subcommand, or only `only`: building the other sixteen is most of
// the work CLI11 does for a one-line answer.
void setup_subcommands(CLI::App& app, Program& program, const Subcommand* only) {
  for (const auto& sub : kSubcommands) {
    if (only == nullptr || only == &sub) sub.setup(app, program);
  }
}

// One line: newlines in a message would break "one line on stderr".
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

int fail(int code, const std::string& message) {
  std::cout.flush();
  std::cerr << "tfimm-cache: error: " << one_line(message) << '\n';
  return code;
}

// "tfimm-cache set --help" for the subcommand being parsed, if any.
std::string help_hint(const CLI::App& app) {
  std::string command = "tfimm-cache";
  auto subs = app.get_subcommands();
  if (!subs.empty()) command += " " + subs.front()->get_name();
  return " (see `" + command + " --help`)";
}

}  // namespace

int main(int argc, char** argv) {
  Program program;
  auto app = std::make_unique<CLI::App>(kDescription, "tfimm-cache");
  setup_globals(*app, program);
  const Subcommand* only = named_subcommand(*app, argc, argv);
  setup_subcommands(*app, program, only);

  try {
    try {
      app->parse(argc, argv);
    } catch (const CLI::ParseError&) {
      if (only == nullptr) throw;
      // Refused with one subcommand built: parse again with all of them, so
      // that what the user sees is exactly what the whole command line says.
      program = Program{};
      app = std::make_unique<CLI::App>(kDescription, "tfimm-cache");
      setup_globals(*app, program);
      setup_subcommands(*app, program, nullptr);
      app->parse(argc, argv);
    }
    if (!program.command) return fail(kExitUsage, "a subcommand is required" + help_hint(*app));
    if (program.global.cache_dir) tfimm::set_dir_override(*program.global.cache_dir);
    return program.command();
  } catch (const CLI::Success& e) {  // --help, --version
    return app->exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(kExitUsage, e.what() + help_hint(*app));
  } catch (const UsageError& e) {
    return fail(kExitUsage, e.what());
  } catch (const tfimm::RegistryError& e) {
    std::string message = e.what();
    if (!e.path().empty() && message.find(e.path()) == std::string::npos) {
      message += " (registry " + e.path() + ")";
    }
    return fail(kExitRegistry, message);
  } catch (const tfimm::Error& e) {  // InvalidName, InvalidPath, InvalidInput, UnknownModel
    return fail(kExitUsage, e.what());
  } catch (const std::exception& e) {
    return fail(kExitRegistry, std::string("unexpected error: ") + e.what());
  }
}
