// Bootstrap tokens ("id.secret", kubeadm-like). Only a verifier derived from
// the secret is stored, never the secret. Using a token is one BEGIN
// IMMEDIATE transaction that first proves the presented secret, then checks
// the token may be used, refuses a replayed join nonce, spends a use and
// remembers the nonce: two joins racing on a one-use token cannot both
// succeed, and someone who knows only the public id can change nothing.
#pragma once

#include "common/result.h"
#include "keys/token.h"
#include "store/secret_bytes.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace meshd::store {

class Database;

inline constexpr std::size_t kTokenIdLength = 6;

// Join nonces remembered against replays. Each accepted join adds one;
// beyond these bounds the oldest (by seen_at, then insertion) are forgotten
// in the same transaction, so the table never holds more than kMaxNonces
// rows, nor more than kMaxNoncesPerToken for one token.
inline constexpr std::size_t kMaxNoncesPerToken = 256;
inline constexpr std::size_t kMaxNonces = 4096;
inline constexpr std::size_t kMaxNonceLength = 64;  // bytes

struct Token {
  std::string id;                            // 6 characters, [a-z0-9]
  SecretBytes verifier;                      // keys::token_verifier() of the token's key
  std::optional<std::int64_t> expires_at;    // unix seconds; nothing = never
  std::optional<std::int64_t> usages_left;   // nothing = unlimited
  bool revoked = false;
  std::string description;
  std::int64_t created_at = 0;
  std::optional<std::int64_t> last_used_at;  // set by consume()
  auto operator<=>(const Token&) const = default;
};

// What `token` is stored as: its id and keys::token_verifier() of its key.
// The other fields are the caller's to fill in.
Token stored_form(const keys::Token& token);

// Why a caller who proved it holds the token was still refused.
enum class TokenRefusal { revoked, expired, exhausted, replayed };
const char* to_string(TokenRefusal r);

// A refused consume(). Every refusal says the same to whoever presented the
// token (message()): an unknown id, a wrong secret, a revoked, expired,
// exhausted token or a replayed nonce are indistinguishable to it. The cause
// exists only once the secret was proven, and only behind an accessor whose
// name says where it may go.
class TokenRefused {
 public:
  static constexpr std::string_view kMessage = "bootstrap token refused";
  std::string_view message() const { return kMessage; }

  // For the operator's log only, never for the peer. Nothing when the
  // presented secret was not proven (unknown id and wrong secret alike).
  std::optional<TokenRefusal> reason_for_operator_log() const { return reason_; }

  bool operator==(const TokenRefused&) const = default;

 private:
  friend class TokenRepo;
  explicit TokenRefused(std::optional<TokenRefusal> reason) : reason_(reason) {}
  std::optional<TokenRefusal> reason_;
};

// Accepted: the token as it was before this use (its verifier is what the
// join handler works with); or refused.
using ConsumeOutcome = std::variant<Token, TokenRefused>;

// Decides whether the presenter holds the token whose stored form is
// `stored`, e.g. by opening the join box with a key derived from it. Must
// take the same time whatever `stored` holds (libsodium's comparisons and
// AEADs do): for an unknown id it is called with a stand-in of random bytes,
// so an unknown id and a wrong secret cost the same.
using TokenProof = std::function<bool(const Token& stored)>;

class TokenRepo {
 public:
  explicit TokenRepo(Database& db) : db_(db) {}

  // EEXIST if the id is taken; EINVAL for a malformed id or empty verifier.
  Result<void> create(const Token& t);
  Result<std::optional<Token>> get(const std::string& id);
  Result<std::vector<Token>> list();  // by creation time, then id
  // ENOENT if unknown; revoking twice is success.
  Result<void> revoke(const std::string& id);

  // One BEGIN IMMEDIATE transaction: proves the secret (`proof`, against the
  // stored row), then checks not revoked, not expired (expires_at <= now is
  // expired), not exhausted, `nonce` not seen before with this token; then
  // decrements usages_left (when limited), records the use, remembers the
  // nonce (keeping the table within its bounds) and commits. Any refusal
  // rolls back: nothing changes. An error (not a refusal) is returned only
  // for a nonce that is empty or longer than kMaxNonceLength, or when SQLite
  // fails.
  Result<ConsumeOutcome> consume(const std::string& id, const TokenProof& proof,
                                 std::span<const std::uint8_t> nonce, std::int64_t now);
  // The same, for a caller that holds the token itself: proven with
  // keys::verify_token (constant time) against the stored verifier.
  Result<ConsumeOutcome> consume(const keys::Token& presented, std::span<const std::uint8_t> nonce,
                                 std::int64_t now);

  // Tokens that can never be used again (expired before `now`, or revoked,
  // or exhausted) are deleted with their nonces; returns how many.
  Result<int> prune(std::int64_t now);
  // Forgets nonces seen before `older_than` (they are outside the join
  // timestamp window anyway); returns how many.
  Result<int> prune_nonces(std::int64_t older_than);

 private:
  Database& db_;
};

}  // namespace meshd::store
