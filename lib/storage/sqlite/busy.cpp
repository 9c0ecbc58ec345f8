#include <unistd.h>

#include <algorithm>
#include <thread>

#include "storage/sqlite/connection.hpp"

namespace tfimm::detail {

// While another connection holds the lock, retry for up to busy_timeout.
// Two things pull apart here. Each hand-over of the lock to another process
// costs a wake-up and a reread of what changed, and every retry costs a
// wake-up, so the fewer of both the more sets per second: waiters should
// sleep long and let a writer finish its run.
// But SQLite's own waits (up to 100 ms) let a waiter keep missing the
// moments the lock is free, past the timeout. So: jittered sleeps growing
// from 0.1 ms to 50 ms, and a waiter that has waited 1 s retries every
// 2 to 4 ms until it gets its turn. Off: fail at once with SQLITE_BUSY.
void SqliteStore::Connection::wait_when_busy(bool on) {
  sqlite3_busy_handler(db.getHandle(), on ? &Connection::on_busy : nullptr, this);
}

int SqliteStore::Connection::on_busy(void* self, int attempt) {
  auto& c = *static_cast<Connection*>(self);
  const auto now = std::chrono::steady_clock::now();
  if (attempt == 0) c.busy_since = now;
  const auto waited = now - c.busy_since;
  if (waited >= c.busy_timeout) return 0;
  const int step = waited < std::chrono::seconds(1) ? std::min(50000, 100 << std::min(attempt, 9))
                                                    : 4000;  // microseconds
  const auto jitter = static_cast<int>(
      (static_cast<unsigned>(attempt) * 2654435761u ^ static_cast<unsigned>(::getpid())) %
      static_cast<unsigned>(step));
  // Never past the deadline: the last try comes at the timeout, not up to
  // one long sleep after it.
  const auto left = std::chrono::ceil<std::chrono::microseconds>(c.busy_timeout - waited);
  std::this_thread::sleep_for(std::min(std::chrono::microseconds(step / 2 + jitter / 2), left));
  return 1;
}

}  // namespace tfimm::detail
