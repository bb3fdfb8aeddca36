#include "store/tokens.h"

#include "store/database.h"
#include "store/sql_util.h"

namespace meshd::store {

using detail::guarded;

const char* to_string(TokenRefusal r) {
  switch (r) {
    case TokenRefusal::unknown: return "unknown token";
    case TokenRefusal::revoked: return "token revoked";
    case TokenRefusal::expired: return "token expired";
    case TokenRefusal::exhausted: return "token has no uses left";
  }
  return "token refused";
}

namespace {

constexpr const char* kColumns =
    "id, verifier, expires_at, usages_left, revoked, description, created_at, last_used_at";

std::optional<std::int64_t> opt_int(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getInt64();
}

void bind_opt(SQLite::Statement& st, int i, const std::optional<std::int64_t>& v) {
  if (v)
    st.bind(i, static_cast<std::int64_t>(*v));
  else
    st.bind(i);
}

Token row(SQLite::Statement& st) {
  Token t;
  t.id = st.getColumn(0).getString();
  t.verifier = detail::column_bytes(st.getColumn(1));
  t.expires_at = opt_int(st.getColumn(2));
  t.usages_left = opt_int(st.getColumn(3));
  t.revoked = st.getColumn(4).getInt() != 0;
  t.description = st.getColumn(5).getString();
  t.created_at = st.getColumn(6).getInt64();
  t.last_used_at = opt_int(st.getColumn(7));
  return t;
}

std::optional<Token> read(Database& db, const std::string& id) {
  SQLite::Statement st(db.sql(), std::string("SELECT ") + kColumns + " FROM tokens WHERE id = ?");
  st.bind(1, id);
  if (!st.executeStep()) return std::nullopt;
  return row(st);
}

bool valid_id(const std::string& id) {
  if (id.size() != kTokenIdLength) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

Error no_token(Database& db, const std::string& what, const std::string& id) {
  return Error{{ENOENT, boost::system::generic_category()},
               what + ": no token with id " + id + " in " + db.path()};
}

}  // namespace

Result<void> TokenRepo::create(const Token& t) {
  if (!valid_id(t.id))
    return Error::invalid("create token \"" + t.id + "\": the id must be " +
                          std::to_string(kTokenIdLength) + " characters from [a-z0-9]");
  if (t.verifier.empty()) return Error::invalid("create token " + t.id + ": empty verifier");
  if (t.usages_left && *t.usages_left < 0)
    return Error::invalid("create token " + t.id + ": negative usage count");
  return guarded(db_, "create token " + t.id, [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    if (read(db_, t.id))
      return Error{{EEXIST, boost::system::generic_category()},
                   "create token " + t.id + ": a token with this id already exists"};
    SQLite::Statement st(db_.sql(),
                         std::string("INSERT INTO tokens (") + kColumns +
                             ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind(1, t.id);
    detail::bind_bytes(st, 2, t.verifier);
    bind_opt(st, 3, t.expires_at);
    bind_opt(st, 4, t.usages_left);
    st.bind(5, t.revoked ? 1 : 0);
    st.bind(6, t.description);
    st.bind(7, static_cast<std::int64_t>(t.created_at));
    bind_opt(st, 8, t.last_used_at);
    st.exec();
    tx.commit();
    return {};
  });
}

Result<std::optional<Token>> TokenRepo::get(const std::string& id) {
  return guarded(db_, "read token " + id,
                 [&]() -> Result<std::optional<Token>> { return read(db_, id); });
}

Result<std::vector<Token>> TokenRepo::list() {
  return guarded(db_, "list tokens", [&]() -> Result<std::vector<Token>> {
    SQLite::Statement st(db_.sql(),
                         std::string("SELECT ") + kColumns + " FROM tokens ORDER BY created_at, id");
    std::vector<Token> out;
    while (st.executeStep()) out.push_back(row(st));
    return out;
  });
}

Result<void> TokenRepo::revoke(const std::string& id) {
  return guarded(db_, "revoke token " + id, [&]() -> Result<void> {
    SQLite::Statement st(db_.sql(), "UPDATE tokens SET revoked = 1 WHERE id = ?");
    st.bind(1, id);
    if (st.exec() == 0) return no_token(db_, "revoke token", id);
    return {};
  });
}

Result<ConsumeOutcome> TokenRepo::consume(const std::string& id, std::int64_t now) {
  return guarded(db_, "use token " + id, [&]() -> Result<ConsumeOutcome> {
    auto tx = detail::immediate(db_);
    auto t = read(db_, id);
    // A refusal returns without commit: the transaction rolls back, nothing changed.
    if (!t) return ConsumeOutcome{TokenRefusal::unknown};
    if (t->revoked) return ConsumeOutcome{TokenRefusal::revoked};
    if (t->expires_at && *t->expires_at <= now) return ConsumeOutcome{TokenRefusal::expired};
    if (t->usages_left && *t->usages_left <= 0) return ConsumeOutcome{TokenRefusal::exhausted};
    SQLite::Statement st(db_.sql(),
                         "UPDATE tokens SET usages_left = usages_left - 1, last_used_at = ? "
                         "WHERE id = ?");
    st.bind(1, static_cast<std::int64_t>(now));
    st.bind(2, id);
    st.exec();
    tx.commit();
    return ConsumeOutcome{std::move(*t)};
  });
}

Result<int> TokenRepo::prune(std::int64_t now) {
  return guarded(db_, "prune tokens", [&]() -> Result<int> {
    SQLite::Statement st(db_.sql(),
                         "DELETE FROM tokens WHERE revoked = 1 OR "
                         "(expires_at IS NOT NULL AND expires_at <= ?) OR usages_left = 0");
    st.bind(1, static_cast<std::int64_t>(now));
    return st.exec();
  });
}

Result<void> TokenRepo::remember_nonce(const std::string& token_id,
                                       const std::vector<std::uint8_t>& nonce, std::int64_t now) {
  if (nonce.empty()) return Error::invalid("remember join nonce for token " + token_id + ": empty nonce");
  return guarded(db_, "remember join nonce for token " + token_id, [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    if (!read(db_, token_id)) return no_token(db_, "remember join nonce", token_id);
    SQLite::Statement st(db_.sql(),
                         "INSERT INTO join_nonces (token_id, nonce, seen_at) VALUES (?, ?, ?) "
                         "ON CONFLICT DO NOTHING");
    st.bind(1, token_id);
    detail::bind_bytes(st, 2, nonce);
    st.bind(3, static_cast<std::int64_t>(now));
    if (st.exec() == 0)
      return Error{{EEXIST, boost::system::generic_category()},
                   "join with token " + token_id + " replayed: this nonce was already seen"};
    tx.commit();
    return {};
  });
}

Result<int> TokenRepo::prune_nonces(std::int64_t older_than) {
  return guarded(db_, "prune join nonces", [&]() -> Result<int> {
    SQLite::Statement st(db_.sql(), "DELETE FROM join_nonces WHERE seen_at < ?");
    st.bind(1, static_cast<std::int64_t>(older_than));
    return st.exec();
  });
}

}  // namespace meshd::store
