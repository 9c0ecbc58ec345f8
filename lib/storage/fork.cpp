#include "storage/fork.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>

namespace tfimm::detail {

namespace {

// fork() children seen by this process, counted in the child by an atfork
// handler: a Store notices it runs in a child without a getpid() system
// call on every lookup.
std::atomic<unsigned long> forks{0};
std::atomic<pid_t> cached_pid{0};

void count_fork() noexcept {
  forks.fetch_add(1, std::memory_order_relaxed);
  cached_pid.store(::getpid(), std::memory_order_relaxed);
}

}  // namespace

unsigned long fork_generation() {
  static const bool installed = ::pthread_atfork(nullptr, nullptr, count_fork) == 0;
  (void)installed;
  return forks.load(std::memory_order_relaxed);
}

pid_t current_pid() {
  fork_generation();
  pid_t pid = cached_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = ::getpid();
    cached_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

}  // namespace tfimm::detail
