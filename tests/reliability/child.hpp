// Real child processes for the reliability tests: started with pipes on
// stdin, stdout and stderr, read line by line while they run, killed at any
// moment, and always reaped with a deadline so that a test never hangs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tfimm::reliability {

using Env = std::map<std::string, std::optional<std::string>>;
using std::chrono::milliseconds;

struct Exit {
  int code = -1;  // exit status; -1 when killed by a signal or never reaped
  int signal = 0;
  bool timed_out = false;  // killed by wait() because the deadline passed
  std::string out;
  std::string err;
  // Every complete line of `out`.
  std::vector<std::string> lines() const;
  // "exit 3" / "signal 9" / "timed out", with stderr, for failure messages.
  std::string describe() const;
};

class Child {
 public:
  // Starts `argv` (argv[0] is a path) with the current environment plus
  // `env` overrides (nullopt removes a variable). Throws std::runtime_error
  // when it cannot be started.
  explicit Child(const std::vector<std::string>& argv, const Env& env = {});
  // Kills (SIGKILL) and reaps the process if it is still running.
  ~Child();
  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // The next complete line on stdout, waiting at most `timeout`; nothing
  // on end of file or timeout.
  std::optional<std::string> read_line(milliseconds timeout);
  void write_line(const std::string& line);
  void close_stdin();
  void kill(int signal);

  // Waits for the process to end, reading its output, at most `timeout`;
  // then kills it (timed_out). The result holds all of stdout and stderr.
  Exit wait(milliseconds timeout);

 private:
  friend std::vector<Exit> wait_all(std::vector<Child>& children, milliseconds timeout);
  // Reads what is available on stdout and stderr, waiting at most `ms`.
  void pump(int ms);
  bool reap(bool block);

  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  int err_ = -1;
  std::size_t consumed_ = 0;  // bytes of out already returned by read_line
  bool reaped_ = false;
  Exit exit_;
};

// Waits for every child with one shared deadline, reading all their output.
std::vector<Exit> wait_all(std::vector<Child>& children, milliseconds timeout);

// Milliseconds since the Unix epoch: a start time shared by several
// processes (see the worker's --start-at).
long long epoch_ms();

}  // namespace tfimm::reliability
