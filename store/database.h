// The meshd SQLite database: one file per node, WAL, busy timeout, foreign
// keys, a versioned schema migrated forward on open (PRAGMA user_version).
// A database from a newer meshd, or a file that is not ours, is refused with
// a message that says so, and is left untouched.
#pragma once

#include "common/result.h"

#include <memory>
#include <string>

namespace SQLite {
class Database;
}

namespace meshd::store {

struct DatabaseOptions {
  std::string path;             // ":memory:" works for unit tests
  int busy_timeout_ms = 10000;  // concurrent CNI invocations wait, not fail
  bool read_only = false;
};

class Database {
 public:
  // Opens (creating with mode 0600 if missing) and migrates. Throws
  // ErrorException when the file is foreign, newer, or unreadable.
  explicit Database(DatabaseOptions opts);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  int schema_version() const;
  static int latest_schema_version();
  const std::string& path() const;

  // For repositories in store/ only: no SQL outside store/.
  SQLite::Database& sql();

 private:
  DatabaseOptions opts_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace meshd::store
