#include "cni/lease_connection.h"

#include <SQLiteCpp/Database.h>
#include <sqlite3.h>
#include <sys/random.h>

#include <cstdint>
#include <thread>

namespace meshd::cni {

namespace {

// SQLite calls the handler on the thread running the statement, with count
// 0 for each new wait: the deadline of that wait lives there.
thread_local std::chrono::steady_clock::time_point t_deadline;

// SQLite's default handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50,
// 100 ms: a waiter in a burst of a hundred writers that each hold the lock
// for well under a millisecond keeps sleeping long after the lock is free.
// Short sleeps, randomized so waiters do not retry in lockstep.
// `arg` carries the timeout in milliseconds.
int short_busy_wait(void* arg, int count) {
  const auto now = std::chrono::steady_clock::now();
  if (count == 0)
    t_deadline = now + std::chrono::milliseconds(reinterpret_cast<std::intptr_t>(arg));
  if (now >= t_deadline) return 0;  // SQLITE_BUSY to the caller
  std::uint32_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) r = 0;
  std::this_thread::sleep_for(std::chrono::microseconds(100 + r % 900));
  return 1;
}

}  // namespace

void tune_for_bursts(store::Database& db, std::chrono::milliseconds timeout) {
  db.sql().exec("PRAGMA synchronous = NORMAL");
  ::sqlite3_busy_handler(db.sql().getHandle(), &short_busy_wait,
                         reinterpret_cast<void*>(static_cast<std::intptr_t>(timeout.count())));
}

}  // namespace meshd::cni
