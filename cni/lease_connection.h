// How the CNI plugin's own connection to the meshd database is tuned for
// bursts of concurrent ADDs and DELs (a node restarting, a deployment
// scaling): many short lease transactions from many processes at once.
#pragma once

#include "store/database.h"

#include <chrono>

namespace meshd::cni {

// Applies to `db`'s connection only (both settings are per connection; meshd's
// own connections keep theirs):
// - synchronous=NORMAL: in WAL mode a commit is in the WAL file (the page
//   cache) when it returns, so it survives a kill -9 of any process; only an
//   OS crash or power loss may drop the last commits, which no longer fsync
//   (https://sqlite.org/pragma.html#pragma_synchronous). See docs/store.md.
// - a busy handler that retries the write lock after short randomized sleeps
//   (0.1-1 ms) instead of SQLite's default steps (1, 2, 5 ... 100 ms), up to
//   `timeout` in all; then the statement fails with SQLITE_BUSY as before.
void tune_for_bursts(store::Database& db, std::chrono::milliseconds timeout);

}  // namespace meshd::cni
