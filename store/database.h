// The meshd SQLite database: one file per node, WAL, busy timeout, foreign
// keys, a versioned schema migrated forward on open (PRAGMA user_version).
// A database from a newer meshd, or a file that is not ours, is refused with
// a message that says so, and is left untouched. The file holds private keys
// and is opened read-write by root (the CNI plugin), so it is trusted only
// when it, its -wal and -shm, and its directory belong to this user and are
// not accessible by group or others, and no symbolic link leads to it.
#pragma once

#include "common/result.h"

#include <cstdint>
#include <memory>
#include <string>

namespace SQLite {
class Database;
}

namespace meshd::store {

// PRAGMA application_id of every meshd database: "mshd" in ASCII. Lets a
// meshd binary (and `file(1)`) tell its own database from any other SQLite file.
inline constexpr std::int32_t kApplicationId = 0x6d736864;

struct DatabaseOptions {
  std::string path;             // ":memory:" works for unit tests
  int busy_timeout_ms = 10000;  // concurrent CNI invocations wait, not fail
  bool read_only = false;
  // false: never create nor migrate (the CNI plugin, which must not change
  // the daemon's schema): a missing file is ENOENT, and a schema other than
  // the one this binary knows is refused (ENOTSUP) naming both versions.
  bool migrate = true;
  // true (the CNI plugin: bursts of short lease transactions from many
  // processes), for this connection only:
  // - synchronous=NORMAL: in WAL mode a commit is in the WAL file when it
  //   returns, so it survives a kill -9 of any process; only an OS crash or
  //   power loss may drop the last commits, which no longer fsync
  //   (https://sqlite.org/pragma.html#pragma_synchronous; docs/store.md).
  // - the write lock is retried after short randomized sleeps (0.1-1 ms)
  //   instead of SQLite's default steps (1, 2, 5 ... 100 ms), up to
  //   busy_timeout_ms in all; then SQLITE_BUSY as before.
  // false (meshd): synchronous=FULL, a consumed token survives power loss.
  bool burst_writer = false;
};

class Database {
 public:
  // Opens (creating with mode 0600, and a missing directory with 0700, unless
  // `migrate` is false) and migrates. Throws ErrorException when the file is
  // foreign, newer, unreadable, or not trusted (owner, mode, symbolic link,
  // a directory others can write to).
  explicit Database(DatabaseOptions opts);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // The same as the constructor, for callers that prefer a Result.
  static Result<std::unique_ptr<Database>> open(DatabaseOptions opts);

  // Test hook: creates (or migrates) the file at `path` up to schema `version`
  // only (0 = an empty meshd database), so every migration path can be tested.
  static void create_at_version(const std::string& path, int version);

  int schema_version() const;
  static int latest_schema_version();
  const std::string& path() const;

  // For repositories in store/ only: no SQL outside store/.
  SQLite::Database& sql();

 private:
  Database(DatabaseOptions opts, int target_version);
  void open_and_migrate(bool memory, int target_version);

  DatabaseOptions opts_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace meshd::store
