#include "tool_test.hpp"

#include <fcntl.h>
#include <pty.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <sstream>
#include <stdexcept>

namespace tfimm::tooltest {

bool memory_is_sanitizers() {
#ifdef TOOL_TESTS_SANITIZED
  WARN("skipped: peak memory under sanitizers is theirs, not the program's");
  return true;
#else
  return false;
#endif
}

long peak_rss_kib(const std::string& registry, std::vector<std::string> args) {
  args.insert(args.begin(), {TFIMM_TOOL, "--registry", registry});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  REQUIRE(::wait4(pid, &status, 0, &usage) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return usage.ru_maxrss;
}

Tool::Tool() : registry_(test::registry_location(ctx_, "state/registry.db")) {}

ProcessResult Tool::run(const std::vector<std::string>& args, const std::string& input,
                        const Env& env) const {
  std::vector<std::string> argv{TFIMM_TOOL, "--registry", registry_};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run_process(argv, input, env);
}

ProcessResult Tool::run_bare(const std::vector<std::string>& args, const std::string& input,
                             const Env& env) const {
  std::vector<std::string> argv{TFIMM_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run_process(argv, input, env);
}

std::string Tool::ok(const std::vector<std::string>& args, const std::string& input) const {
  ProcessResult r = run(args, input);
  INFO("tfimm-cache " << Catch::Detail::stringify(args) << "\nstdout: " << r.out
                      << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

nlohmann::json Tool::json(const std::vector<std::string>& args, int code) const {
  ProcessResult r = run(args);
  INFO("tfimm-cache " << Catch::Detail::stringify(args) << "\nstdout: " << r.out
                      << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == code);
  return nlohmann::json::parse(r.out);
}

std::string Tool::snapshot() const { return ok({"export", "-"}); }

std::string Tool::make_dir(const std::string& child) const {
  std::string dir = ctx_.path(child);
  test::make_dirs(dir);
  return dir;
}

void require_error(const ProcessResult& result, int code) {
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  REQUIRE(result.exit_code == code);
  CHECK(result.out.empty());
  CHECK(result.err.rfind("tfimm-cache: error: ", 0) == 0);
  CHECK(lines(result.err).size() == 1);
}

std::string run_in_terminal(const std::vector<std::string>& argv, const Env& env) {
  tfimm::test::ExecArgs exec_args(argv, env);  // built before fork: the child only execs
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) throw std::runtime_error("forkpty failed");
  if (pid == 0) {
    ::execve(exec_args.argv()[0], exec_args.argv(), exec_args.envp());
    ::_exit(127);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO once the child has exited and closed the terminal
    }
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

bool has_escape(const std::string& text) { return text.find('\x1b') != std::string::npos; }

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) result.push_back(line);
  return result;
}

}  // namespace tfimm::tooltest
