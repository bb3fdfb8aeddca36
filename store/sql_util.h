// Internal to store/: turning SQLite's exceptions into meshd Errors, and the
// one way repositories open a write transaction.
#pragma once

#include "common/result.h"
#include "store/database.h"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <cstdint>
#include <string>
#include <vector>

namespace meshd::store::detail {

// errno-style code for an SQLite result code, so callers can test e.g. EBUSY.
int errno_for_sqlite(int extended_code);

// "<what> in <db path>: <sqlite message>".
Error sql_error(const Database& db, const std::string& what, const SQLite::Exception& e);

// Runs `f` (returning Result<T>) and turns any SQLite or std exception into an
// Error naming `what` and the database file. A Transaction inside `f` rolls
// back when the exception unwinds it.
template <class F>
auto guarded(Database& db, const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SQLite::Exception& e) {
    return sql_error(db, what, e);
  } catch (const ErrorException& e) {
    return e.error();
  } catch (const std::exception& e) {
    return Error{{EIO, boost::system::generic_category()},
                 what + " in " + db.path() + ": " + e.what()};
  }
}

// Every read-modify-write runs in BEGIN IMMEDIATE: it takes the write lock up
// front, so a concurrent writer waits in the busy handler instead of failing
// with SQLITE_BUSY_SNAPSHOT when a deferred read transaction tries to upgrade
// (which the busy handler cannot retry in WAL mode).
inline SQLite::Transaction immediate(Database& db) {
  return SQLite::Transaction(db.sql(), SQLite::TransactionBehavior::IMMEDIATE);
}

// Blob helpers.
inline std::vector<std::uint8_t> column_bytes(const SQLite::Column& c) {
  const auto* p = static_cast<const std::uint8_t*>(c.getBlob());
  return std::vector<std::uint8_t>(p, p + c.getBytes());
}
inline void bind_bytes(SQLite::Statement& st, int index, const std::vector<std::uint8_t>& b) {
  st.bind(index, b.data(), static_cast<int>(b.size()));
}

}  // namespace meshd::store::detail
