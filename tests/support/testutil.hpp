// Test helpers: a private temporary directory and environment per test, and
// real child processes.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tfimm::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
// when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& child) const { return path_ + "/" + child; }

 private:
  std::string path_;
};

// Sets (or, with nullopt, unsets) environment variables for its lifetime
// and restores the previous values afterwards.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  void set(const std::string& name, const std::optional<std::string>& value);

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// A test context: a TempDir with HOME, XDG_* and TFIMM_* pointing inside it
// (HOME = <tmp>/home, nothing else set), so that no test touches the real
// home or the real default registry. Restores everything on destruction.
class TestContext {
 public:
  TestContext();
  const std::string& root() const { return dir_.path(); }
  std::string home() const { return dir_ / "home"; }
  std::string path(const std::string& child) const { return dir_ / child; }
  ScopedEnv& env() { return env_; }

 private:
  TempDir dir_;
  ScopedEnv env_;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// argv and envp for execve(), built before fork() so that the child only
// execs: the current environment plus `env` overrides (nullopt removes one).
class ExecArgs {
 public:
  ExecArgs(const std::vector<std::string>& argv,
           const std::map<std::string, std::optional<std::string>>& env);
  char* const* argv() { return argp_.data(); }
  char* const* envp() { return envp_.data(); }

 private:
  std::vector<std::string> args_, env_strings_;
  std::vector<char*> argp_, envp_;
};

// Runs `argv` (argv[0] is a path or a name looked up in PATH) in a real
// child process with the current environment plus `env` overrides
// (nullopt removes a variable), feeding `input` on stdin; waits for it.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input = {},
                          const std::map<std::string, std::optional<std::string>>& env = {});

// Writes `content` to `path`, creating or truncating it.
void write_file(const std::string& path, const std::string& content);
// The whole content of `path`; throws if it cannot be read.
std::string read_file(const std::string& path);
void make_dirs(const std::string& path);
bool exists(const std::string& path);

// The conformance suite: tests tagged [conformance] hold for every backend,
// and ctest runs them twice. Their registry is at registry_location(ctx):
// the file `file` in the test's directory, or, when $TFIMM_TEST_BACKEND is
// "postgresql", a fresh schema of its own on the test server (see
// postgres_server.hpp), dropped when the process exits.
std::string registry_location(const TestContext& ctx, const std::string& file = "registry.db");
// Whether registry_location() gives PostgreSQL locations.
bool on_postgresql();

}  // namespace tfimm::test
