#include "call_lock.hpp"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

#include "tfimm/errors.hpp"

namespace tfimm::detail {
namespace {

// The state of every CallMutex is guarded by one mutex: fork() holds it, so
// it sees all of them at rest and the child inherits none of them half-changed.
struct Shared {
  std::mutex mutex;
  std::condition_variable changed;  // a lock was released or a thread began waiting
  std::vector<CallMutex*> live;
  std::vector<std::thread::id> waiting;  // threads blocked in lock(), once per wait
  bool fork_pending = false;
  unsigned long forks = 0;  // fork() children this process has been
};

// Never destroyed: Registry objects with static storage (the default
// registry) may outlive any other static, and the fork handlers run at any time.
Shared& shared() {
  static Shared* const s = new Shared;
  return *s;
}

// Call locks held by this thread, recursion included.
thread_local unsigned held = 0;

std::string misuse_inside_body(const std::string& path, const char* member) {
  return std::string("Registry::") + member +
         " was called inside a transaction() body on registry " + path +
         " by the thread running that body; it was refused and the transaction is unchanged. "
         "Inside the body use the Transaction& passed to it, or call " +
         member + " before or after transaction()";
}

}  // namespace

struct ForkHandlers {
  // Whether no thread but the caller is running inside a call: every lock is
  // free, the caller's, or held by a thread blocked waiting for another lock
  // (it runs no registry code until fork() is over).
  static bool quiet(const Shared& s, std::thread::id self) {
    return std::all_of(s.live.begin(), s.live.end(), [&](const CallMutex* m) {
      return m->depth_ == 0 || m->owner_ == self ||
             std::find(s.waiting.begin(), s.waiting.end(), m->owner_) != s.waiting.end();
    });
  }

  static void prepare() {
    auto& s = shared();
    std::unique_lock<std::mutex> lock(s.mutex);
    s.fork_pending = true;
    const auto self = std::this_thread::get_id();
    s.changed.wait(lock, [&] { return quiet(s, self); });
    lock.release();  // held across fork(); released by parent() and child()
  }

  static void parent() {
    auto& s = shared();
    s.fork_pending = false;
    for (CallMutex* m : s.live) m->free_.notify_all();
    s.mutex.unlock();
  }

  static void child() {
    auto& s = shared();
    // The threads that waited do not exist here: fresh internal locks.
    new (&s.mutex) std::mutex;
    new (&s.changed) std::condition_variable;
    s.waiting.clear();
    s.fork_pending = false;
    ++s.forks;
    const auto self = std::this_thread::get_id();
    for (CallMutex* m : s.live) {
      new (&m->free_) std::condition_variable;
      if (m->depth_ > 0 && m->owner_ != self) {
        // Held by a thread that was blocked waiting: it never comes back.
        m->depth_ = 0;
        m->owner_ = std::thread::id();
        m->in_body_ = false;
        m->inherited_ = true;
      }
    }
  }
};

CallMutex::CallMutex(std::string path, std::function<void()> reset)
    : path_(std::move(path)), reset_(std::move(reset)) {
  static const bool installed =
      ::pthread_atfork(ForkHandlers::prepare, ForkHandlers::parent, ForkHandlers::child) == 0;
  (void)installed;
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.live.push_back(this);
}

CallMutex::~CallMutex() {
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.live.erase(std::find(s.live.begin(), s.live.end(), this));
}

void CallMutex::lock(const char* member) {
  auto& s = shared();
  std::unique_lock<std::mutex> lock(s.mutex);
  const auto self = std::this_thread::get_id();
  if (depth_ > 0 && owner_ == self) {
    if (in_body_) throw TransactionMisuse(misuse_inside_body(path_, member));
    ++depth_;
    ++held;
    return;
  }
  // A thread that holds another registry's lock goes ahead of a pending
  // fork(): fork() waits for it to let go, and it may need this one first.
  const auto may_enter = [&] { return depth_ == 0 && !(s.fork_pending && held == 0); };
  if (!may_enter()) {
    s.waiting.push_back(self);
    s.changed.notify_all();
    free_.wait(lock, may_enter);
    s.waiting.erase(std::find(s.waiting.begin(), s.waiting.end(), self));
  }
  owner_ = self;
  depth_ = 1;
  ++held;
  if (inherited_) {
    inherited_ = false;
    lock.unlock();
    reset_();
  }
}

void CallMutex::unlock() noexcept {
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mutex);
  --held;
  if (--depth_ > 0) return;
  owner_ = std::thread::id();
  free_.notify_all();
  if (s.fork_pending) s.changed.notify_all();
}

void CallMutex::enter_body() noexcept {
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mutex);
  in_body_ = true;
  body_fork_ = s.forks;
}

void CallMutex::leave_body() noexcept {
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mutex);
  in_body_ = false;
}

void CallMutex::check_in_body(const char* member) const {
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!(in_body_ && depth_ > 0 && owner_ == std::this_thread::get_id())) {
    throw TransactionMisuse(
        std::string("Transaction::") + member +
        " was called outside its transaction() body on registry " + path_ +
        " (after the body returned, or from another thread than the body's); it was refused "
        "and nothing was changed. Use a Transaction only inside the body it is passed to, on "
        "the thread running it");
  }
  if (body_fork_ != s.forks) {
    throw TransactionMisuse(
        std::string("Transaction::") + member +
        " was called in a process forked inside a transaction() body on registry " + path_ +
        "; the transaction belongs to the parent process, which commits or rolls it back. It "
        "was refused and this process changed nothing. It can still read the registry through "
        "the Registry after transaction() returns");
  }
}

}  // namespace tfimm::detail
