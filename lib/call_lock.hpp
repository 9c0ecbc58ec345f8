// The lock that serialises the calls on one Registry. Besides a recursive
// mutex it keeps two promises a mutex cannot:
//
// - fork() never leaves a child with a lock held by a thread it does not
//   have. Before fork() every live CallMutex is made quiet: calls running on
//   other threads are waited for (as glibc's malloc does with its arenas),
//   new ones wait until fork() returns. In the child the internal locks are
//   fresh, the forking thread keeps what it held, and a registry held by a
//   thread that was blocked waiting for another one is handed back with its
//   connection state forgotten (reset hook).
// - The thread running a transaction body cannot call its own Registry (the
//   call would join, and then break, the transaction), and a Transaction is
//   usable only by that thread, inside the body, in the process that began it.
#pragma once

#include <condition_variable>
#include <functional>
#include <string>
#include <thread>

namespace tfimm::detail {

class CallMutex {
 public:
  // `path` names the registry in messages. `reset` forgets the state a
  // thread that does not exist any more (after fork()) left behind; it runs
  // on the next lock in the child, with the lock held.
  CallMutex(std::string path, std::function<void()> reset);
  ~CallMutex();
  CallMutex(const CallMutex&) = delete;
  CallMutex& operator=(const CallMutex&) = delete;

  // Waits for the calls of other threads (and for a fork() in progress).
  // Recursive, except that the thread running a transaction body is refused
  // with TransactionMisuse naming `member`.
  void lock(const char* member);
  void unlock() noexcept;

  // Marks the body of a transaction as running on the calling thread, which
  // holds the lock.
  void enter_body() noexcept;
  void leave_body() noexcept;
  // Throws TransactionMisuse naming `member` unless the calling thread runs
  // a transaction body of this registry, begun in this process.
  void check_in_body(const char* member) const;

 private:
  friend struct ForkHandlers;
  const std::string path_;
  const std::function<void()> reset_;
  // Guarded by the one process-wide mutex in call_lock.cpp, so that fork()
  // can hold it and see every CallMutex at rest.
  std::condition_variable free_;
  std::thread::id owner_;
  unsigned depth_ = 0;
  bool in_body_ = false;
  unsigned long body_fork_ = 0;  // fork() count when the body began
  bool inherited_ = false;       // reset_ is due (a child after fork())
};

// The guard of one Registry call; `member` defaults to the calling function's
// name, for the refusal message.
class CallLock {
 public:
  explicit CallLock(CallMutex& mutex, const char* member = __builtin_FUNCTION()) : mutex_(mutex) {
    mutex_.lock(member);
  }
  ~CallLock() { mutex_.unlock(); }
  CallLock(const CallLock&) = delete;
  CallLock& operator=(const CallLock&) = delete;

 private:
  CallMutex& mutex_;
};

// A transaction body running on this thread, for its scope.
class InBody {
 public:
  explicit InBody(CallMutex& mutex) : mutex_(mutex) { mutex_.enter_body(); }
  ~InBody() { mutex_.leave_body(); }
  InBody(const InBody&) = delete;
  InBody& operator=(const InBody&) = delete;

 private:
  CallMutex& mutex_;
};

}  // namespace tfimm::detail
