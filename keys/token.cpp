#include "keys/token.h"

#include "keys/sodium_init.h"

#include <sodium.h>

#include <utility>

namespace meshd::keys {

namespace {

constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
// BLAKE2b keys must be 16..64 bytes; these fixed strings are the keys, and
// differ so a token key can never equal a verifier.
constexpr std::string_view kKeyContext = "meshd/token-key/v1";
constexpr std::string_view kVerifierContext = "meshd/token-verifier/v1";
static_assert(kKeyContext.size() >= crypto_generichash_KEYBYTES_MIN);
static_assert(kVerifierContext.size() >= crypto_generichash_KEYBYTES_MIN);

bool in_alphabet(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

void fill_random(char* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    // randombytes_uniform rejects out-of-range draws: uniform, no modulo bias.
    out[i] = kAlphabet[randombytes_uniform(static_cast<std::uint32_t>(kAlphabet.size()))];
}

}  // namespace

Token::Token(Token&& o) noexcept : id_(o.id_), secret_(o.secret_) {
  sodium_memzero(o.secret_.data(), o.secret_.size());
}

Token& Token::operator=(Token&& o) noexcept {
  if (this != &o) {
    id_ = o.id_;
    secret_ = o.secret_;
    sodium_memzero(o.secret_.data(), o.secret_.size());
  }
  return *this;
}

Token::~Token() { sodium_memzero(secret_.data(), secret_.size()); }

Token Token::generate() {
  ensure_sodium();
  Token t;
  fill_random(t.id_.data(), t.id_.size());
  fill_random(t.secret_.data(), t.secret_.size());
  return t;
}

Result<Token> Token::parse(std::string_view text) {
  ensure_sodium();
  bool ok = text.size() == kTokenIdLength + 1 + kTokenSecretLength &&
            text[kTokenIdLength] == '.';
  for (std::size_t i = 0; ok && i < text.size(); ++i)
    if (i != kTokenIdLength && !in_alphabet(text[i])) ok = false;
  if (!ok)
    return Error::invalid("invalid bootstrap token: expected the form " +
                          std::string(kTokenForm) +
                          " (6 lowercase letters or digits, a dot, 16 lowercase letters or "
                          "digits), as printed when the token was created");
  Token t;
  std::copy_n(text.begin(), kTokenIdLength, t.id_.begin());
  std::copy_n(text.begin() + kTokenIdLength + 1, kTokenSecretLength, t.secret_.begin());
  return t;
}

std::string Token::reveal() const {
  std::string s;
  s.reserve(kTokenIdLength + 1 + kTokenSecretLength);
  s.append(id_.data(), id_.size()).append(1, '.').append(secret_.data(), secret_.size());
  return s;
}

TokenKey derive_token_key(const Token& token) {
  ensure_sodium();
  crypto_generichash_state st;
  crypto_generichash_init(&st, reinterpret_cast<const unsigned char*>(kKeyContext.data()),
                          kKeyContext.size(), kKeyLength);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(token.id_.data()),
                            token.id_.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>("."), 1);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(token.secret_.data()),
                            token.secret_.size());
  KeyBytes out;
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(&st, sizeof st);
  TokenKey k(out);
  sodium_memzero(out.data(), out.size());
  return k;
}

TokenVerifier token_verifier(const TokenKey& key) {
  ensure_sodium();
  TokenVerifier v;
  crypto_generichash(v.data(), v.size(), key.bytes().data(), key.bytes().size(),
                     reinterpret_cast<const unsigned char*>(kVerifierContext.data()),
                     kVerifierContext.size());
  return v;
}

bool verify_token(const Token& presented, const TokenVerifier& stored) {
  TokenVerifier v = token_verifier(derive_token_key(presented));
  const bool same = sodium_memcmp(v.data(), stored.data(), v.size()) == 0;
  sodium_memzero(v.data(), v.size());
  return same;
}

std::string token_verifier_to_base64(const TokenVerifier& v) { return key_to_base64(v); }

Result<TokenVerifier> token_verifier_from_base64(std::string_view text) {
  auto k = key_from_base64(text);
  if (!k)
    return Error::invalid(
        "invalid token verifier: expected 44 characters of standard base64 ending in one '='");
  return *k;
}

}  // namespace meshd::keys
