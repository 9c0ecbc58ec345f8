#include "child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "testutil.hpp"

namespace tfimm::reliability {
namespace {

using Clock = std::chrono::steady_clock;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Appends what `fd` has to `to`; closes it at end of file.
void read_some(int& fd, std::string& to) {
  char buf[65536];
  while (fd >= 0) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      to.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      close_fd(fd);
    } else if (errno == EAGAIN) {
      return;
    }
  }
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace

std::vector<std::string> Exit::lines() const {
  std::vector<std::string> result;
  std::size_t start = 0;
  for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1) {
    result.push_back(out.substr(start, nl - start));
  }
  return result;
}

std::string Exit::describe() const {
  std::string what = timed_out     ? "timed out"
                     : signal != 0 ? "signal " + std::to_string(signal)
                                   : "exit " + std::to_string(code);
  return what + "; stdout: " + out.substr(0, 2000) + "; stderr: " + err.substr(0, 2000);
}

Child::Child(const std::vector<std::string>& argv, const Env& env) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  test::ExecArgs exec_args(argv, env);  // built before fork: the child only execs
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execve(exec_args.argv()[0], exec_args.argv(), exec_args.envp());
    const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_ = in[1];
  out_ = out[0];
  err_ = err[0];
  ::fcntl(out_, F_SETFL, O_NONBLOCK);
  ::fcntl(err_, F_SETFL, O_NONBLOCK);
}

Child::Child(Child&& other) noexcept
    : pid_(other.pid_),
      in_(other.in_),
      out_(other.out_),
      err_(other.err_),
      consumed_(other.consumed_),
      reaped_(other.reaped_),
      exit_(std::move(other.exit_)) {
  other.pid_ = -1;
  other.in_ = other.out_ = other.err_ = -1;
  other.reaped_ = true;
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  close_fd(in_);
  close_fd(out_);
  close_fd(err_);
}

void Child::pump(int ms) {
  pollfd fds[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
  if (out_ < 0 && err_ < 0) return;
  if (::poll(fds, 2, ms) <= 0) return;
  if (fds[0].revents != 0) read_some(out_, exit_.out);
  if (fds[1].revents != 0) read_some(err_, exit_.err);
}

bool Child::reap(bool block) {
  if (reaped_) return true;
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r != pid_) return false;
  reaped_ = true;
  if (WIFEXITED(status)) exit_.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit_.signal = WTERMSIG(status);
  return true;
}

std::optional<std::string> Child::read_line(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto nl = exit_.out.find('\n', consumed_);
    if (nl != std::string::npos) {
      std::string line = exit_.out.substr(consumed_, nl - consumed_);
      consumed_ = nl + 1;
      return line;
    }
    if (out_ < 0) return std::nullopt;
    const int left = remaining_ms(deadline);
    if (left == 0) return std::nullopt;
    pump(left);
  }
}

void Child::write_line(const std::string& line) {
  const std::string data = line + "\n";
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(in_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("cannot write to the child's stdin");
    done += static_cast<std::size_t>(n);
  }
}

void Child::close_stdin() { close_fd(in_); }

void Child::kill(int signal) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signal);
}

Exit Child::wait(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!reap(false) || out_ >= 0 || err_ >= 0) {
    const int left = remaining_ms(deadline);
    if (left == 0) {
      exit_.timed_out = !reaped_;
      ::kill(pid_, SIGKILL);
      reap(true);
      pump(100);
      break;
    }
    pump(reaped_ ? left : std::min(left, 10));
  }
  close_stdin();
  return exit_;
}

std::vector<Exit> wait_all(std::vector<Child>& children, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    std::vector<pollfd> fds;
    bool running = false;
    for (auto& c : children) {
      running |= !c.reap(false);
      if (c.out_ >= 0) fds.push_back({c.out_, POLLIN, 0});
      if (c.err_ >= 0) fds.push_back({c.err_, POLLIN, 0});
    }
    if (!running && fds.empty()) break;
    if (remaining_ms(deadline) == 0) {
      for (auto& c : children) {
        if (!c.reaped_) {
          c.exit_.timed_out = true;
          ::kill(c.pid_, SIGKILL);
          c.reap(true);
        }
      }
      for (auto& c : children) c.pump(50);
      break;
    }
    if (::poll(fds.data(), fds.size(), std::min(remaining_ms(deadline), 10)) > 0) {
      for (auto& c : children) {
        if (c.out_ >= 0) read_some(c.out_, c.exit_.out);
        if (c.err_ >= 0) read_some(c.err_, c.exit_.err);
      }
    }
  }
  std::vector<Exit> result;
  for (auto& c : children) {
    c.close_stdin();
    result.push_back(c.exit_);
  }
  return result;
}

long long epoch_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace tfimm::reliability
