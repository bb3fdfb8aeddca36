// Bootstrap tokens ("id.secret", kubeadm-like). Only a verifier derived from
// the secret is stored, never the secret. Consuming a use and remembering a
// join nonce are each one BEGIN IMMEDIATE transaction, so two joins racing on
// a one-use token cannot both succeed.
#pragma once

#include "common/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace meshd::store {

class Database;

inline constexpr std::size_t kTokenIdLength = 6;

struct Token {
  std::string id;                            // 6 characters, [a-z0-9]
  std::vector<std::uint8_t> verifier;        // keyed hash of the secret
  std::optional<std::int64_t> expires_at;    // unix seconds; nothing = never
  std::optional<std::int64_t> usages_left;   // nothing = unlimited
  bool revoked = false;
  std::string description;
  std::int64_t created_at = 0;
  std::optional<std::int64_t> last_used_at;  // set by consume()
  auto operator<=>(const Token&) const = default;
};

// Why consume() refused, for the join handler to map to its (uniform,
// constant-time) answer and for the operator's log.
enum class TokenRefusal { unknown, revoked, expired, exhausted };
const char* to_string(TokenRefusal r);

// consume() either returns the token as it was before this use (its verifier
// is what the join handler checks), or the reason it may not be used.
using ConsumeOutcome = std::variant<Token, TokenRefusal>;

class TokenRepo {
 public:
  explicit TokenRepo(Database& db) : db_(db) {}

  // EEXIST if the id is taken; EINVAL for a malformed id or empty verifier.
  Result<void> create(const Token& t);
  Result<std::optional<Token>> get(const std::string& id);
  Result<std::vector<Token>> list();  // by creation time, then id
  // ENOENT if unknown; revoking twice is success.
  Result<void> revoke(const std::string& id);
  // Checks not revoked, not expired (expires_at <= now is expired), not
  // exhausted, then decrements usages_left (when limited) and records the use,
  // all in one BEGIN IMMEDIATE transaction. A refusal changes nothing.
  Result<ConsumeOutcome> consume(const std::string& id, std::int64_t now);
  // Tokens that can never be used again (expired before `now`, or revoked,
  // or exhausted) are deleted with their nonces; returns how many.
  Result<int> prune(std::int64_t now);

  // Join replay protection: EEXIST if (token_id, nonce) was seen before;
  // ENOENT if the token does not exist.
  Result<void> remember_nonce(const std::string& token_id, const std::vector<std::uint8_t>& nonce,
                              std::int64_t now);
  // Forgets nonces seen before `older_than` (they are outside the join
  // timestamp window anyway); returns how many.
  Result<int> prune_nonces(std::int64_t older_than);

 private:
  Database& db_;
};

}  // namespace meshd::store
