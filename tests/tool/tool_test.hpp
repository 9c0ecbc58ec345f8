// Helpers for the tfimm-cache program tests: each test gets a Tool, which
// owns a fresh temporary directory and environment (HOME inside it, no
// TFIMM_* or XDG_* variables) and a registry file inside it, and runs the
// real program as a child process.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "testutil.hpp"

namespace tfimm::tooltest {

using test::ProcessResult;
using Env = std::map<std::string, std::optional<std::string>>;

class Tool {
 public:
  Tool();

  // The registry file every run() uses (inside the test's directory).
  const std::string& registry() const { return registry_; }
  // A path inside the test's directory.
  std::string path(const std::string& child) const { return ctx_.path(child); }
  std::string home() const { return ctx_.home(); }
  // The environment of this test process, inherited by every run.
  test::ScopedEnv& env() { return ctx_.env(); }

  // tfimm-cache --registry <registry()> ARGS...
  ProcessResult run(const std::vector<std::string>& args, const std::string& input = {},
                    const Env& env = {}) const;
  // tfimm-cache ARGS... without --registry.
  ProcessResult run_bare(const std::vector<std::string>& args, const std::string& input = {},
                         const Env& env = {}) const;
  // run(ARGS) that must exit 0; its standard output.
  std::string ok(const std::vector<std::string>& args, const std::string& input = {}) const;
  // run(ARGS) that must exit with `code` and print JSON; the parsed output.
  nlohmann::json json(const std::vector<std::string>& args, int code = 0) const;
  // `export -`: the whole registry contents, to compare before and after.
  std::string snapshot() const;
  // Creates a directory (and parents) inside the test's directory; its path.
  std::string make_dir(const std::string& child) const;

 private:
  test::TestContext ctx_;
  std::string registry_;
};

// Requires the result of a refused command: exit code `code`, nothing on
// stdout, and exactly one line on stderr starting "tfimm-cache: error: ".
void require_error(const ProcessResult& result, int code);

// Runs ARGV with stdin, stdout and stderr on a new pseudo-terminal, the way
// a person at a terminal runs it; all it printed.
std::string run_in_terminal(const std::vector<std::string>& argv, const Env& env = {});

// Whether `text` contains an ANSI escape sequence (colour, cursor control).
bool has_escape(const std::string& text);

// True, after a warning, in a build under sanitizers, where a program's
// peak memory is the sanitizer's: a memory test then returns early.
bool memory_is_sanitizers();

// Runs tfimm-cache --registry REGISTRY ARGS... with its output thrown away
// and returns its peak resident memory in KiB (ru_maxrss from wait4 for
// that one child); requires exit 0.
long peak_rss_kib(const std::string& registry, std::vector<std::string> args);

// The lines of `text`, without their newlines.
std::vector<std::string> lines(const std::string& text);

}  // namespace tfimm::tooltest
