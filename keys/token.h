// Bootstrap tokens, kubeadm-style: "<id>.<secret>", id 6 and secret 16
// characters of [a-z0-9]. The id is public (it names the token in lists and
// logs); the secret is shown once, when the token is made, and never stored:
// members keep only token_verifier() of derive_token_key(token). The join
// exchange seals its boxes with a key derived from that verifier
// (meshd/controlplane/join_exchange.h), so a stolen store can join with a
// still-valid token but never yields the secret.
#pragma once

#include "common/result.h"
#include "keys/wg_key.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace meshd::keys {

inline constexpr std::size_t kTokenIdLength = 6;
inline constexpr std::size_t kTokenSecretLength = 16;
inline constexpr std::string_view kTokenForm = "[a-z0-9]{6}.[a-z0-9]{16}";

// The key the join exchange seals its boxes with. Secret; wiped.
class TokenKey : public SecretKey {
 public:
  using SecretKey::SecretKey;
  TokenKey(SecretKey&& s) : SecretKey(std::move(s)) {}  // NOLINT
  TokenKey clone() const { return TokenKey(SecretKey::clone()); }
};

// What a member stores to check a presented token: a hash of the TokenKey, so
// a leaked store does not even yield the AEAD key.
using TokenVerifier = std::array<std::uint8_t, 32>;

class Token {
 public:
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  Token(Token&& o) noexcept;
  Token& operator=(Token&& o) noexcept;
  ~Token();

  // 22 characters from the CSPRNG, each uniform over [a-z0-9] (no modulo bias).
  static Token generate();
  // Strict: exactly kTokenForm, nothing around it. The error states that form
  // and never echoes the input (it may be a real token with a typo).
  static Result<Token> parse(std::string_view text);

  std::string id() const { return std::string(id_.data(), id_.size()); }
  // "id.secret": to show the operator once; callers must not log it.
  std::string reveal() const;

 private:
  Token() = default;
  friend TokenKey derive_token_key(const Token& token);
  std::array<char, kTokenIdLength> id_{};
  std::array<char, kTokenSecretLength> secret_{};
};

// Keyed BLAKE2b-256 (fixed context "meshd/token-key/v1" as the key) over
// "id.secret": the same token always gives the same key; binding the id means
// two tokens never share a key even if their secrets collide.
TokenKey derive_token_key(const Token& token);
// Keyed BLAKE2b-256 (context "meshd/token-verifier/v1") of the derived key.
TokenVerifier token_verifier(const TokenKey& key);
// Whether `presented` is the token `stored` was made from; compares in
// constant time.
bool verify_token(const Token& presented, const TokenVerifier& stored);

std::string token_verifier_to_base64(const TokenVerifier& v);
Result<TokenVerifier> token_verifier_from_base64(std::string_view text);

}  // namespace meshd::keys
