#include "store/datastore_state.h"

#include "store/database.h"
#include "store/sql_util.h"

namespace meshd::store {

using detail::guarded;

namespace {

// Messages quote a scope only once it passed this check: a malformed one is
// described by its length, never echoed (it may hold control characters).
Result<void> check_scope(const std::string& scope, const std::string& what) {
  bool printable = true;
  for (char ch : scope)
    if (static_cast<unsigned char>(ch) < 0x21 || static_cast<unsigned char>(ch) > 0x7e) printable = false;
  if (scope.empty() || scope.size() > kMaxDatastoreScopeBytes || !printable)
    return Error::invalid(what + ": the datastore scope has " + std::to_string(scope.size()) +
                          " bytes; expected 1 to " + std::to_string(kMaxDatastoreScopeBytes) +
                          " printable ASCII characters without spaces, like \"etcd:/meshd/<cluster id>\"");
  return {};
}

}  // namespace

Result<std::optional<std::int64_t>> DatastoreStateRepo::revision(const std::string& scope) {
  const std::string what = "read the datastore revision";
  if (auto ok = check_scope(scope, what); !ok) return ok.error();
  return guarded(db_, what + " of " + scope, [&]() -> Result<std::optional<std::int64_t>> {
    SQLite::Statement st(db_.sql(), "SELECT revision FROM datastore_state WHERE scope = ?");
    st.bind(1, scope);
    if (!st.executeStep()) return std::optional<std::int64_t>{};
    // The CHECK and STRICT bind meshd's writes, not a planted file.
    const auto col = st.getColumn(0);
    if (!col.isInteger() || col.getInt64() < 1)
      return Error::invalid("stored datastore_state.revision of " + scope + " in " + db_.path() +
                            " is not a revision (expected an integer >= 1)");
    return std::optional<std::int64_t>{col.getInt64()};
  });
}

Result<void> DatastoreStateRepo::set_revision(const std::string& scope, std::int64_t rev) {
  const std::string what = "store the datastore revision";
  if (auto ok = check_scope(scope, what); !ok) return ok.error();
  if (rev < 1)
    return Error::invalid(what + " of " + scope + ": revision " + std::to_string(rev) +
                          " is not a revision; expected 1 or more (0 would resume the watch "
                          "from the newest revision and skip the events in between)");
  return guarded(db_, what + " of " + scope, [&]() -> Result<void> {
    // One statement: atomic on its own, no read-modify-write.
    SQLite::Statement st(db_.sql(),
                         "INSERT INTO datastore_state (scope, revision) VALUES (?, ?) "
                         "ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision");
    st.bind(1, scope);
    st.bind(2, static_cast<std::int64_t>(rev));
    st.exec();
    return {};
  });
}

Result<void> DatastoreStateRepo::clear(const std::string& scope) {
  const std::string what = "clear the datastore revision";
  if (auto ok = check_scope(scope, what); !ok) return ok.error();
  return guarded(db_, what + " of " + scope, [&]() -> Result<void> {
    SQLite::Statement st(db_.sql(), "DELETE FROM datastore_state WHERE scope = ?");
    st.bind(1, scope);
    st.exec();
    return {};
  });
}

}  // namespace meshd::store
