// tfimm-cache: administer the tfimm model cache registry.
//
// main() builds the command line (one setup_... per subcommand), runs the
// chosen subcommand, and is the one place where exceptions become messages
// and exit codes.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "advice.hpp"
#include "cmd_audit.hpp"
#include "cmd_dir.hpp"
#include "cmd_doctor.hpp"
#include "cmd_du.hpp"
#include "cmd_entries.hpp"
#include "cmd_history.hpp"
#include "cmd_list.hpp"
#include "cmd_lock.hpp"
#include "cmd_migrate.hpp"
#include "cmd_path.hpp"
#include "cmd_prune.hpp"
#include "cmd_retention.hpp"
#include "cmd_transfer.hpp"
#include "cmd_undo.hpp"
#include "cmd_where.hpp"
#include "context.hpp"
#include "output.hpp"
#include "output_file.hpp"
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
    "     problems found (doctor), incomplete counts (du)\n"
    "  2  bad usage or bad input (invalid name, path, duration or import file,\n"
    "     unknown model); nothing was changed. Also: standard output could not\n"
    "     be written (a change already made stands; the message says so)\n"
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
    {"where", setup_where},
    {"set", setup_set},
    {"clear", setup_clear},
    {"list", setup_list},
    {"path", setup_path},
    {"dir", setup_dir},
    {"set-dir", setup_set_dir},
    {"unset-dir", setup_unset_dir},
    {"audit", setup_audit},
    {"prune", setup_prune},
    {"lock", setup_lock},
    {"unlock", setup_unlock},
    {"history", setup_history},
    {"undo", setup_undo},
    {"forget-history", setup_forget_history},
    {"retain-history", setup_retain_history},
    {"export", setup_export},
    {"import", setup_import},
    {"migrate", setup_migrate},
    {"doctor", setup_doctor},
    {"du", setup_du},
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

// "tfimm-cache set --help" for the subcommand being parsed, if any.
std::string help_hint(const CLI::App& app) {
  std::string command = "tfimm-cache";
  auto subs = app.get_subcommands();
  if (!subs.empty()) command += " " + subs.front()->get_name();
  return " (see `" + command + " --help`)";
}

// Where the subcommand's name is in argv: the first word after the global
// options and their values; 0 when there is none or an option in front of
// it is not a global one (--help, --version, a mistake).
int command_index(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.empty() || arg == "-" || arg == "--") return 0;
    if (arg[0] != '-') return i;
    const auto eq = arg.find('=');
    const CLI::Option* option = app.get_option_no_throw(arg.substr(0, eq));
    if (option == nullptr || option->get_items_expected_min() == 0) return 0;
    if (eq == std::string::npos) ++i;  // its value is the next argument
  }
  return 0;
}

// Edit distance between two short words, a swap of neighbours counting as
// one edit (for "did you mean").
std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// "unknown command 'lsit'; did you mean 'list'?", or nothing when `word`
// is a command.
std::optional<std::string> unknown_command(const std::string& word) {
  const Subcommand* nearest = nullptr;
  std::size_t best = 3;  // at most two edits away
  for (const auto& sub : kSubcommands) {
    if (word == sub.name) return std::nullopt;
    const std::size_t d = distance(word, sub.name);
    if (d < best) {
      best = d;
      nearest = &sub;
    }
  }
  std::string message = "unknown command '" + printable(word) + "'";
  if (nearest != nullptr) message += std::string("; did you mean '") + nearest->name + "'?";
  return message + " (see `tfimm-cache --help` for the commands)";
}

// `args` as a command line a shell reads back unchanged.
std::string shell_line(const std::vector<std::string>& args) {
  std::string line = "tfimm-cache";
  for (const auto& arg : args) {
    line += ' ';
    const bool plain = !arg.empty() && arg.find_first_not_of(
                                           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_=./,:+@%") == std::string::npos;
    if (plain) {
      line += printable(arg);
      continue;
    }
    line += '\'';
    for (char c : printable(arg)) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += '\'';
  }
  return line;
}

// A sentence a person can act on for an option after the subcommand that
// the subcommand does not have: a global option in the wrong place (and
// the corrected command line), or an unknown option (and, when it may be a
// name, how to pass it). Nothing when every option there is known.
std::optional<std::string> misplaced_option(const CLI::App& app, int argc, char** argv) {
  const int at = command_index(app, argc, argv);
  if (at == 0 || unknown_command(argv[at])) return std::nullopt;
  const CLI::App* sub = app.get_subcommand(argv[at]);  // a known command: never throws
  const std::string command = std::string("tfimm-cache ") + argv[at];
  for (int i = at + 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    if (const CLI::Option* own = sub->get_option_no_throw(name)) {
      if (own->get_items_expected_min() > 0 && eq == std::string::npos) ++i;
      continue;
    }
    if (const CLI::Option* global = app.get_option_no_throw(name)) {
      // The corrected order: the option (and its value) before the subcommand.
      const bool has_value = global->get_items_expected_min() > 0 && eq == std::string::npos;
      std::vector<std::string> moved(argv + 1, argv + at);
      moved.push_back(arg);
      if (has_value && i + 1 < argc) moved.push_back(argv[i + 1]);
      for (int k = at; k < argc; ++k) {
        if (k == i || (has_value && k == i + 1)) continue;
        moved.push_back(argv[k]);
      }
      return "the global option " + name + " goes before the subcommand: " + shell_line(moved);
    }
    std::string message = "unknown option '" + printable(name) + "' for `" + command + "`";
    if (!sub->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty()) {
      std::vector<std::string> fixed(argv + 1, argv + at + 1);
      fixed.push_back("--");
      fixed.insert(fixed.end(), argv + at + 1, argv + argc);
      message += "; if '" + printable(arg) +
                 "' is a name or a path, put -- before it: " + shell_line(fixed);
    }
    return message + " (see `" + command + " --help`)";
  }
  return std::nullopt;
}

// "tfimm-cache set NAME PATH": the subcommand and its arguments.
std::string usage(const CLI::App& sub) {
  std::string line = "tfimm-cache " + sub.get_name();
  for (const CLI::Option* arg :
       sub.get_options([](const CLI::Option* o) { return o->get_positional(); })) {
    std::string name = arg->get_name();
    if (arg->get_items_expected_max() > 1) name += "...";
    line += arg->get_required() ? " " + name : " [" + name + "]";
  }
  return line;
}

// A CLI11 refusal in words a person can act on. `app` has every subcommand.
std::string explain_parse_error(const CLI::App& app, const CLI::ParseError& error, int argc,
                                char** argv) {
  if (const int at = command_index(app, argc, argv)) {
    if (auto message = unknown_command(argv[at])) return *message;
  }
  if (auto message = misplaced_option(app, argc, argv)) return *message;
  const auto subs = app.get_subcommands();
  const std::string what = error.what();
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&error) != nullptr) {
    // "--registry: 1 required FILE missing"
    const std::string name = what.substr(0, what.find(':'));
    const CLI::Option* option = subs.empty() ? nullptr : subs.front()->get_option_no_throw(name);
    if (option == nullptr) option = app.get_option_no_throw(name);
    if (option != nullptr && option->get_items_expected_min() > 0) {
      return "option " + name + " needs a value: " + name + " " + option->get_type_name() +
             help_hint(app);
    }
  }
  if (subs.empty()) {
    if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr) {
      return "a command is required, such as `tfimm-cache list` (see `tfimm-cache --help` for "
             "the commands)";
    }
    return what + help_hint(app);
  }
  const CLI::App& sub = *subs.front();
  const std::string hint = "; usage: " + usage(sub) + help_hint(app);
  if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr && what.size() > 12 &&
      what.compare(what.size() - 12, 12, " is required") == 0) {
    return "missing argument " + what.substr(0, what.size() - 12) + hint;
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
    const auto colon = what.find(": ");
    const std::string extra = colon == std::string::npos ? what : what.substr(colon + 2);
    return "unexpected argument '" + printable(extra) + "'" + hint;
  }
  // A global option's refusal points at the program's help, not the
  // subcommand's.
  const std::string name = what.substr(0, what.find(':'));
  if (app.get_option_no_throw(name) != nullptr && sub.get_option_no_throw(name) == nullptr) {
    return printable(what) + " (see `tfimm-cache --help`)";
  }
  return printable(what) + help_hint(app);
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
      ->check(whole_number())
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{24} * 3600 * 1000));
  app.require_subcommand(1);
  app.footer(kFooter);
}

// Every subcommand, or only `only`: building all the others is most of
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
  if (stdout_error() != 0) {
    // std::cerr flushes std::cout first; that must not throw again.
    std::cout.exceptions(std::ios::goodbit);
  } else {
    try {
      std::cout.flush();  // what was printed before the error comes first
    } catch (const std::ios_base::failure&) {
      // The error being reported matters more than output that is lost.
    }
  }
  std::cerr << "tfimm-cache: error: " << one_line(message) << '\n';
  return code;
}

// Subcommands that change what the registry says when they succeed (unless
// run with --dry-run).
bool changes_registry(const CLI::App& app) {
  static const char* const kWriters[] = {"set",  "clear",          "set-dir",       "unset-dir",
                                         "lock", "unlock",         "prune",         "import",
                                         "undo", "forget-history", "retain-history"};
  auto subs = app.get_subcommands();
  if (subs.empty()) return false;
  const std::string name = subs.front()->get_name();
  for (const char* writer : kWriters) {
    if (name == writer) {
      const CLI::Option* dry_run = subs.front()->get_option_no_throw("--dry-run");
      return dry_run == nullptr || dry_run->count() == 0;
    }
  }
  return false;
}

// A failed write to standard output. A change to the registry is committed
// before its report is printed, so it stands; the message says so.
int output_failed(const CLI::App& app) {
  std::string message =
      std::string("cannot write to standard output: ") + std::strerror(stdout_error());
  if (changes_registry(app)) {
    message += "; any change it made to the registry stands, only its report was lost";
  }
  // `export FILE` reports after the file is in place.
  const auto subs = app.get_subcommands();
  if (!subs.empty() && subs.front()->get_name() == "export") {
    const CLI::Option* file = subs.front()->get_option_no_throw("FILE");
    if (file != nullptr && file->count() > 0 && file->results().front() != "-" &&
        !is_standard_output(file->results().front())) {
      message += "; " + printable(file->results().front()) + " was written, only this report " +
                 "was lost";
    }
  }
  return fail(kExitUsage, message);
}

int run(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) reached by a write would otherwise kill
  // the program without a word; ignored, the write fails with EFBIG and the
  // library says which file could not be written.
  std::signal(SIGXFSZ, SIG_IGN);
  check_stdout_writes();
  // Refused before anything runs, so that nothing is changed by a command
  // whose report could not be printed at all.
  if (const int error = stdout_unusable()) {
    return fail(kExitUsage, std::string("cannot write to standard output: ") +
                                std::strerror(error) + "; nothing was changed");
  }
  const int code = run(argc, argv);
  // The exit-time flush of std::cout must not throw: every error has been
  // reported by now.
  std::cout.exceptions(std::ios::goodbit);
  return code;
}

namespace {

int run(int argc, char** argv) {
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
    const int code = program.command();
    std::cout.flush();
    return code;
  } catch (const CLI::Success& e) {  // --help, --version
    try {
      const int code = app->exit(e);
      std::cout.flush();
      return code;
    } catch (const std::ios_base::failure&) {
      return output_failed(*app);
    }
  } catch (const std::ios_base::failure& e) {
    if (stdout_error() != 0) return output_failed(*app);
    return fail(kExitRegistry, std::string("unexpected error: ") + e.what());
  } catch (const CLI::ParseError& e) {
    return fail(kExitUsage, explain_parse_error(*app, e, argc, argv));
  } catch (const UsageError& e) {
    return fail(kExitUsage, e.what());
  } catch (const tfimm::RegistryError& e) {
    std::string message = e.what();
    if (!e.path().empty() && message.find(e.path()) == std::string::npos) {
      message += " (registry " + printable(e.path()) + ")";
    }
    return fail(kExitRegistry, with_advice(e, std::move(message)));
  } catch (const tfimm::Error& e) {  // InvalidName, InvalidPath, InvalidInput, UnknownModel
    return fail(kExitUsage, e.what());
  } catch (const std::exception& e) {
    return fail(kExitRegistry, std::string("unexpected error: ") + e.what());
  }
}

}  // namespace
