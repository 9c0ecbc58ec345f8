// Standard output that cannot be written: a full disk (/dev/full), a closed
// descriptor, a reader that went away. A write error is an error, reported
// once, and never mistaken for success.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <stdexcept>

#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::Tool;

namespace {

enum class Stdout { Full, Closed };

struct Outcome {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string err;
};

// Runs ARGV with stdin on /dev/null, stdout on /dev/full or closed, and
// stderr captured.
Outcome run_with_stdout(Stdout mode, const std::vector<std::string>& argv) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  tfimm::test::ExecArgs exec_args(argv, {});
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    if (mode == Stdout::Full) {
      const int full = ::open("/dev/full", O_WRONLY);
      ::dup2(full, 1);
    } else {
      ::close(1);
    }
    ::dup2(err_pipe[1], 2);
    ::execve(exec_args.argv()[0], exec_args.argv(), exec_args.envp());
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  Outcome outcome;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(err_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    outcome.err.append(buf, static_cast<std::size_t>(n));
  }
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
  return outcome;
}

// Runs ARGV with stdout on a pipe of which only the first line is read
// before the read end is closed, as `tfimm-cache list | head -1` does.
Outcome run_into_head(const std::vector<std::string>& argv, bool ignore_sigpipe,
                      std::string* first_line) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  tfimm::test::ExecArgs exec_args(argv, {});
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // An ignored signal stays ignored across exec, as under a shell or a
    // service manager that ignores SIGPIPE.
    ::signal(SIGPIPE, ignore_sigpipe ? SIG_IGN : SIG_DFL);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execve(exec_args.argv()[0], exec_args.argv(), exec_args.envp());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  std::string out;
  char c = 0;
  while (::read(out_pipe[0], &c, 1) == 1 && c != '\n') out += c;
  ::close(out_pipe[0]);
  *first_line = out;
  Outcome outcome;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(err_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    outcome.err.append(buf, static_cast<std::size_t>(n));
  }
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
  return outcome;
}

// An export file of `count` entries, to give commands long output.
std::string export_of(std::size_t count, const std::string& dir) {
  std::string json = R"({"format": "tfimm-cache-export", "version": 1, "cache_dir": null, )"
                     R"("models": [)";
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) json += ", ";
    json += R"({"name": "model)" + std::to_string(i) + R"(", "path": ")" + dir + "/model" +
            std::to_string(i) + R"(", "locked": false, "lock_reason": ""})";
  }
  return json + "]}";
}

struct Case {
  std::vector<std::string> args;
  bool writes;  // changes the registry when it succeeds
};

}  // namespace

TEST_CASE("every command with stdout on /dev/full or closed exits 2 with one line naming it",
          "[cli][stdout]") {
  Tool tool;
  const std::string models = tool.make_dir("models");
  tool.ok({"set", "resnet18", models});
  tool.ok({"set", "gone", tool.path("gone")});
  tool.ok({"lock", "gone"});
  // The time "gone" was first found missing, recorded once here: an export
  // carries it, and the audits below only find it recorded.
  tool.run({"audit"});
  const std::string backup = tool.path("backup.json");
  tfimm::test::write_file(backup, export_of(3, models));

  const std::vector<Case> cases = {
      {{"--help"}, false},
      {{"--version"}, false},
      {{"list", "--help"}, false},
      {{"where"}, false},
      {{"list"}, false},
      {{"list", "--json"}, false},
      {{"path", "resnet18"}, false},
      {{"path", "resnet18", "--explain"}, false},
      {{"dir"}, false},
      {{"dir", "--show-origin"}, false},
      {{"history"}, false},
      {{"history", "--json"}, false},
      {{"export"}, false},
      {{"export", "-"}, false},
      {{"migrate", "--status"}, false},
      {{"doctor"}, false},
      {{"prune", "--dry-run"}, false},
      {{"import", backup, "--dry-run"}, false},
      // audit records when a path was first found missing: bookkeeping, not
      // a change of what the registry says.
      {{"audit"}, false},
      {{"audit", "--json"}, false},
      {{"migrate"}, false},
      {{"du"}, false},
      {{"du", "--json"}, false},
      {{"set", "vit", models}, true},
      {{"clear", "resnet18"}, true},
      {{"set-dir", models}, true},
      {{"unset-dir"}, true},
      {{"lock", "vit"}, true},
      {{"unlock", "gone"}, true},
      {{"prune"}, true},
      {{"import", backup}, true},
  };
  for (Stdout mode : {Stdout::Full, Stdout::Closed}) {
    for (const auto& c : cases) {
      std::vector<std::string> argv{TFIMM_TOOL, "--registry", tool.registry()};
      argv.insert(argv.end(), c.args.begin(), c.args.end());
      const std::string before = tool.snapshot();
      INFO((mode == Stdout::Full ? "stdout on /dev/full: " : "stdout closed: ")
           << Catch::Detail::stringify(c.args));
      const Outcome r = run_with_stdout(mode, argv);
      INFO("stderr: " << r.err);
      CHECK(r.exit_code == 2);
      CHECK(r.signal == 0);
      REQUIRE(lines(r.err).size() == 1);
      CHECK(r.err.rfind("tfimm-cache: error: cannot write to standard output: ", 0) == 0);
      if (mode == Stdout::Full) {
        CHECK(r.err.find("No space left on device") != std::string::npos);
        if (c.writes) {
          CHECK(r.err.find("any change it made to the registry stands, only its report was "
                           "lost") != std::string::npos);
        }
      } else {
        // Checked before anything else runs: nothing was changed.
        CHECK(r.err.find("nothing was changed") != std::string::npos);
        CHECK(tool.snapshot() == before);
      }
      if (!c.writes) CHECK(tool.snapshot() == before);
    }
  }
}

TEST_CASE("a write error in the middle of a long listing stops it with one error line",
          "[cli][stdout]") {
  Tool tool;
  const std::string models = tool.make_dir("models");
  const std::string backup = tool.path("backup.json");
  tfimm::test::write_file(backup, export_of(3000, models));
  tool.ok({"import", backup});

  for (std::vector<std::string> args : {std::vector<std::string>{"list"},
                                        {"list", "--json"},
                                        {"export"},
                                        {"history"},
                                        {"history", "--json"}}) {
    INFO(Catch::Detail::stringify(args));
    std::vector<std::string> argv{TFIMM_TOOL, "--registry", tool.registry()};
    argv.insert(argv.end(), args.begin(), args.end());
    const Outcome r = run_with_stdout(Stdout::Full, argv);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(lines(r.err).size() == 1);
    CHECK(r.err.find("cannot write to standard output: No space left on device") !=
          std::string::npos);
  }
}

TEST_CASE("`list | head -1` ends quietly when the reader goes away", "[cli][stdout]") {
  Tool tool;
  const std::string models = tool.make_dir("models");
  const std::string backup = tool.path("backup.json");
  tfimm::test::write_file(backup, export_of(3000, models));
  tool.ok({"import", backup});
  std::vector<std::string> argv{TFIMM_TOOL, "--registry", tool.registry(), "list"};

  SECTION("SIGPIPE at its default: the tool dies of it and prints nothing") {
    std::string first;
    const Outcome r = run_into_head(argv, false, &first);
    CHECK(first.rfind("NAME", 0) == 0);
    CHECK(r.signal == SIGPIPE);
    CHECK(r.err.empty());
  }
  SECTION("SIGPIPE ignored by the parent: one error line, exit 2") {
    std::string first;
    const Outcome r = run_into_head(argv, true, &first);
    CHECK(first.rfind("NAME", 0) == 0);
    CHECK(r.exit_code == 2);
    CHECK(r.err == "tfimm-cache: error: cannot write to standard output: Broken pipe\n");
  }
}

TEST_CASE("export FILE with stdout on /dev/full writes the file and says only the report was lost",
          "[cli][stdout]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  const std::string file = tool.path("backup.json");
  const Outcome r =
      run_with_stdout(Stdout::Full, {TFIMM_TOOL, "--registry", tool.registry(), "export", file});
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err == "tfimm-cache: error: cannot write to standard output: No space left on device; " +
                     file + " was written, only this report was lost\n");
  CHECK(tfimm::test::read_file(file) == tool.snapshot());
}
