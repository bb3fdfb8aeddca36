#include "keys/identity.h"

#include "keys/base64.h"
#include "keys/sodium_init.h"

#include <sodium.h>

#include <algorithm>

namespace meshd::keys {

static_assert(crypto_sign_PUBLICKEYBYTES == kKeyLength);
static_assert(crypto_sign_SEEDBYTES == kKeyLength);
static_assert(crypto_sign_SECRETKEYBYTES == 64);
static_assert(crypto_sign_BYTES == kSignatureLength);

std::string signature_to_base64(const Signature& s) {
  ensure_sodium();
  return base64_encode(s);
}

Result<Signature> signature_from_base64(std::string_view text) {
  Signature sig{};
  if (!base64_decode_exact(text, sig))
    return Error::invalid("invalid signature: expected 88 characters of standard base64 (64 bytes)");
  return sig;
}

// --- IdentityPublicKey ---

Result<IdentityPublicKey> IdentityPublicKey::from_base64(std::string_view text) {
  auto k = key_from_base64(text);
  if (!k)
    return Error::invalid(
        "invalid identity public key: expected 44 characters of standard base64 ending in one "
        "'='");
  return IdentityPublicKey(*k);
}

std::string IdentityPublicKey::to_base64() const { return key_to_base64(bytes_); }

std::string IdentityPublicKey::short_id() const { return to_base64().substr(0, 8) + "\u2026"; }

bool IdentityPublicKey::verify(const CanonicalEncoder& encoded, const Signature& sig) const {
  ensure_sodium();
  const auto& m = encoded.data();
  // libsodium rejects small-order public keys and non-canonical signatures
  // (1.0.18 verifies strictly), so a signature cannot be malleated.
  return crypto_sign_verify_detached(sig.data(), m.data(), m.size(), bytes_.data()) == 0;
}

bool IdentityPublicKey::verify(std::string_view context, std::span<const std::uint8_t> message,
                               const Signature& sig) const {
  CanonicalEncoder e(context);
  e.bytes(message);
  return verify(e, sig);
}

// --- IdentitySecretKey ---

IdentitySecretKey::IdentitySecretKey(IdentitySecretKey&& o) noexcept
    : secret_(o.secret_), public_(o.public_) {
  sodium_memzero(o.secret_.data(), o.secret_.size());
}

IdentitySecretKey& IdentitySecretKey::operator=(IdentitySecretKey&& o) noexcept {
  if (this != &o) {
    secret_ = o.secret_;
    public_ = o.public_;
    sodium_memzero(o.secret_.data(), o.secret_.size());
  }
  return *this;
}

IdentitySecretKey::~IdentitySecretKey() { sodium_memzero(secret_.data(), secret_.size()); }

IdentitySecretKey IdentitySecretKey::generate() {
  ensure_sodium();
  KeyBytes seed;
  randombytes_buf(seed.data(), seed.size());
  IdentitySecretKey k = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return k;
}

IdentitySecretKey IdentitySecretKey::from_seed(const KeyBytes& seed) {
  ensure_sodium();
  IdentitySecretKey k;
  KeyBytes pub;
  crypto_sign_seed_keypair(pub.data(), k.secret_.data(), seed.data());
  k.public_ = IdentityPublicKey(pub);
  return k;
}

Result<IdentitySecretKey> IdentitySecretKey::from_base64(std::string_view text) {
  auto seed = key_from_base64(text);
  if (!seed)
    return Error::invalid(
        "invalid identity secret key: expected 44 characters of standard base64 ending in one "
        "'=' (a 32-byte Ed25519 seed)");
  IdentitySecretKey k = from_seed(*seed);
  sodium_memzero(seed->data(), seed->size());
  return k;
}

IdentitySecretKey IdentitySecretKey::clone() const {
  KeyBytes s = seed();
  IdentitySecretKey k = from_seed(s);
  sodium_memzero(s.data(), s.size());
  return k;
}

KeyBytes IdentitySecretKey::seed() const {
  KeyBytes s;
  crypto_sign_ed25519_sk_to_seed(s.data(), secret_.data());
  return s;
}

std::string IdentitySecretKey::to_base64_secret() const {
  KeyBytes s = seed();
  std::string out = key_to_base64(s);
  sodium_memzero(s.data(), s.size());
  return out;
}

Signature IdentitySecretKey::sign(const CanonicalEncoder& encoded) const {
  ensure_sodium();
  Signature sig{};
  const auto& m = encoded.data();
  crypto_sign_detached(sig.data(), nullptr, m.data(), m.size(), secret_.data());
  return sig;
}

Signature IdentitySecretKey::sign(std::string_view context,
                                  std::span<const std::uint8_t> message) const {
  CanonicalEncoder e(context);
  e.bytes(message);
  return sign(e);
}

}  // namespace meshd::keys
