#include "store/tokens.h"

#include "store/database.h"
#include "store/sql_util.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace meshd::store {

using detail::guarded;

const char* to_string(TokenRefusal r) {
  switch (r) {
    case TokenRefusal::revoked: return "token revoked";
    case TokenRefusal::expired: return "token expired";
    case TokenRefusal::exhausted: return "token has no uses left";
    case TokenRefusal::replayed: return "join replayed: this nonce was already used with the token";
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
  const SQLite::Column v = st.getColumn(1);
  const auto* p = static_cast<const std::uint8_t*>(v.getBlob());
  t.verifier.assign(p, p + v.getBytes());
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
    st.bindNoCopy(2, t.verifier.data(), static_cast<int>(t.verifier.size()));
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

Result<ConsumeOutcome> TokenRepo::consume(const std::string& id, const TokenProof& proof,
                                          std::span<const std::uint8_t> nonce, std::int64_t now) {
  if (nonce.empty() || nonce.size() > kMaxNonceLength)
    return Error::invalid("use token " + id + ": the join nonce must be 1 to " +
                          std::to_string(kMaxNonceLength) + " bytes, got " +
                          std::to_string(nonce.size()));
  return guarded(db_, "use token " + id, [&]() -> Result<ConsumeOutcome> {
    auto tx = detail::immediate(db_);
    // A refusal returns without commit: the transaction rolls back, nothing changed.
    auto t = read(db_, id);
    // Prove first, and the same way for an unknown id (against random bytes
    // that no secret matches), so neither the answer nor the time it takes
    // tells a caller without the secret whether the id exists.
    bool proven;
    if (t) {
      proven = proof(*t);
    } else {
      Token stand_in{.id = id};
      stand_in.verifier.resize(keys::TokenVerifier{}.size());
      randombytes_buf(stand_in.verifier.data(), stand_in.verifier.size());
      proof(stand_in);
      proven = false;
    }
    if (!proven) return ConsumeOutcome{TokenRefused(std::nullopt)};

    if (t->revoked) return ConsumeOutcome{TokenRefused(TokenRefusal::revoked)};
    if (t->expires_at && *t->expires_at <= now)
      return ConsumeOutcome{TokenRefused(TokenRefusal::expired)};
    if (t->usages_left && *t->usages_left <= 0)
      return ConsumeOutcome{TokenRefused(TokenRefusal::exhausted)};
    {
      SQLite::Statement seen(db_.sql(),
                             "SELECT 1 FROM join_nonces WHERE token_id = ? AND nonce = ?");
      seen.bind(1, id);
      seen.bindNoCopy(2, nonce.data(), static_cast<int>(nonce.size()));
      if (seen.executeStep()) return ConsumeOutcome{TokenRefused(TokenRefusal::replayed)};
    }

    SQLite::Statement use(db_.sql(),
                          "UPDATE tokens SET usages_left = usages_left - 1, last_used_at = ? "
                          "WHERE id = ?");
    use.bind(1, static_cast<std::int64_t>(now));
    use.bind(2, id);
    use.exec();

    // Remembered only now, after the proof: a caller without the secret
    // cannot add rows. The bounds keep an unlimited token from growing the
    // table without end; the oldest go first.
    SQLite::Statement remember(db_.sql(),
                               "INSERT INTO join_nonces (token_id, nonce, seen_at) VALUES (?, ?, ?)");
    remember.bind(1, id);
    remember.bindNoCopy(2, nonce.data(), static_cast<int>(nonce.size()));
    remember.bind(3, static_cast<std::int64_t>(now));
    remember.exec();
    SQLite::Statement per_token(
        db_.sql(),
        "DELETE FROM join_nonces WHERE rowid IN (SELECT rowid FROM join_nonces WHERE token_id = ?1 "
        "ORDER BY seen_at, rowid LIMIT max(0, (SELECT count(*) FROM join_nonces "
        "WHERE token_id = ?1) - ?2))");
    per_token.bind(1, id);
    per_token.bind(2, static_cast<std::int64_t>(kMaxNoncesPerToken));
    per_token.exec();
    SQLite::Statement overall(
        db_.sql(),
        "DELETE FROM join_nonces WHERE rowid IN (SELECT rowid FROM join_nonces "
        "ORDER BY seen_at, rowid LIMIT max(0, (SELECT count(*) FROM join_nonces) - ?1))");
    overall.bind(1, static_cast<std::int64_t>(kMaxNonces));
    overall.exec();

    tx.commit();
    return ConsumeOutcome{std::move(*t)};
  });
}

Result<ConsumeOutcome> TokenRepo::consume(const keys::Token& presented,
                                          std::span<const std::uint8_t> nonce, std::int64_t now) {
  return consume(
      presented.id(),
      [&](const Token& stored) {
        keys::TokenVerifier v{};
        // A stored verifier of another length matches nothing; compare anyway.
        std::memcpy(v.data(), stored.verifier.data(), std::min(v.size(), stored.verifier.size()));
        const bool ok = keys::verify_token(presented, v) && stored.verifier.size() == v.size();
        sodium_memzero(v.data(), v.size());
        return ok;
      },
      nonce, now);
}

Token stored_form(const keys::Token& token) {
  keys::TokenVerifier v = keys::token_verifier(keys::derive_token_key(token));
  Token t{.id = token.id()};
  t.verifier.assign(v.begin(), v.end());
  sodium_memzero(v.data(), v.size());
  return t;
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

Result<int> TokenRepo::prune_nonces(std::int64_t older_than) {
  return guarded(db_, "prune join nonces", [&]() -> Result<int> {
    SQLite::Statement st(db_.sql(), "DELETE FROM join_nonces WHERE seen_at < ?");
    st.bind(1, static_cast<std::int64_t>(older_than));
    return st.exec();
  });
}

}  // namespace meshd::store
