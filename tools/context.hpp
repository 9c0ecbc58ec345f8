// What every subcommand of tfimm-cache shares: the global options, the exit
// codes, the one tool-level error kind, and how the registry is opened.
//
// The tool decides nothing about the registry itself: validation,
// resolution, audit and prune rules all live in the library (tfimm::cache).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "tfimm/registry.hpp"

namespace tfimm::tool {

// Exit codes, documented in the program's --help footer and tools/README.md.
enum ExitCode : int {
  kExitOk = 0,        // success
  kExitNegative = 1,  // a negative answer: not cached, stale entries, problems found
  kExitUsage = 2,     // bad usage or bad input; nothing was changed
  kExitRegistry = 3,  // the registry cannot be used
};

// Options given before the subcommand.
struct GlobalOptions {
  std::optional<std::string> registry;       // --registry; else $TFIMM_REGISTRY or default
  std::optional<std::string> cache_dir;      // --cache-dir: process-local override
  std::optional<std::int64_t> busy_timeout;  // --busy-timeout, milliseconds
};

// Bad input the library never sees, such as an unreadable import file or an
// export destination that cannot be written. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The parsed command line: global options, and the subcommand to run once
// parsing has finished (set by the subcommand's CLI11 callback).
struct Program {
  GlobalOptions global;
  std::function<int()> command;
};

// Makes `sub`, when given on the command line, run `run(global, *options)`
// after the whole command line has been parsed.
template <class Options, class Run>
void bind_command(CLI::App* sub, Program& program, std::shared_ptr<Options> options, Run run) {
  sub->callback([&program, options, run] {
    program.command = [&program, options, run] { return run(program.global, *options); };
  });
}

// A CLI11 check for a count: digits only, so "-1" or "1.5" is refused with
// a plain message instead of wrapping around.
CLI::Validator whole_number();

// The registry chosen by the global options: --registry FILE, else the
// library's default location ($TFIMM_REGISTRY, $XDG_STATE_HOME, ~/.local/state).
// Touches no file (the library opens it lazily). Throws InvalidPath.
Registry open_registry(const GlobalOptions& global);

}  // namespace tfimm::tool
