#include "keys/wg_key.h"

#include "keys/base64.h"
#include "keys/sodium_init.h"

#include <sodium.h>

#include <cerrno>
#include <utility>

namespace meshd::keys {

namespace {

// Never echoes the text: it may be a private key pasted in the wrong place.
Error bad_key_text(std::string_view text) {
  return Error::invalid(
      "invalid WireGuard key: expected 44 characters of standard base64 ending in one '=' "
      "(the form `wg genkey` and `wg pubkey` print), got " +
      std::to_string(text.size()) + " characters that are not such a key");
}

}  // namespace

std::string key_to_base64(const KeyBytes& k) {
  ensure_sodium();
  return base64_encode(k);
}

// wg's key_from_base64 accepts exactly: 44 characters, the last one '=', the
// first 43 from the standard alphabet, and the two bits the 43rd character
// carries beyond the 32nd byte equal to zero (canonical form); which is
// precisely the canonical padded base64 of 32 bytes.
Result<KeyBytes> key_from_base64(std::string_view text) {
  ensure_sodium();
  KeyBytes key{};
  if (!base64_decode_exact(text, key)) return bad_key_text(text);
  return key;
}

// --- PublicKey ---

Result<PublicKey> PublicKey::from_base64(std::string_view text) {
  auto k = key_from_base64(text);
  if (!k) return k.error();
  return PublicKey(*k);
}

std::string PublicKey::to_base64() const { return key_to_base64(bytes_); }

std::string PublicKey::short_id() const { return to_base64().substr(0, 8) + "\u2026"; }

bool PublicKey::is_zero() const {
  ensure_sodium();
  return sodium_is_zero(bytes_.data(), bytes_.size()) == 1;
}

// --- SecretKey ---

SecretKey::SecretKey(const KeyBytes& b) : bytes_(b) {}

SecretKey::SecretKey(SecretKey&& o) noexcept : bytes_(o.bytes_) {
  sodium_memzero(o.bytes_.data(), o.bytes_.size());
}

SecretKey& SecretKey::operator=(SecretKey&& o) noexcept {
  if (this != &o) {
    bytes_ = o.bytes_;
    sodium_memzero(o.bytes_.data(), o.bytes_.size());
  }
  return *this;
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

SecretKey SecretKey::clone() const { return SecretKey(bytes_); }

bool SecretKey::is_zero() const {
  ensure_sodium();
  return sodium_is_zero(bytes_.data(), bytes_.size()) == 1;
}

bool SecretKey::operator==(const SecretKey& o) const {
  ensure_sodium();
  return sodium_memcmp(bytes_.data(), o.bytes_.data(), bytes_.size()) == 0;
}

namespace {

SecretKey secret_from_base64_or(Result<KeyBytes>&& k, bool* ok) {
  *ok = k.has_value();
  if (!k) return SecretKey();
  SecretKey s(*k);
  sodium_memzero(k->data(), k->size());
  return s;
}

SecretKey random_secret() {
  ensure_sodium();
  KeyBytes b;
  randombytes_buf(b.data(), b.size());
  SecretKey s(b);
  sodium_memzero(b.data(), b.size());
  return s;
}

}  // namespace

// --- PrivateKey ---

PrivateKey PrivateKey::generate() {
  ensure_sodium();
  KeyBytes b;
  randombytes_buf(b.data(), b.size());
  // RFC 7748 section 5 clamping, byte for byte what `wg genkey` does
  // (curve25519_clamp_secret): clear the 3 low bits, clear bit 255, set bit 254.
  b[0] &= 248;
  b[31] = static_cast<std::uint8_t>((b[31] & 127) | 64);
  PrivateKey k{b};
  sodium_memzero(b.data(), b.size());
  return k;
}

Result<PrivateKey> PrivateKey::from_base64(std::string_view text) {
  bool ok = false;
  SecretKey s = secret_from_base64_or(key_from_base64(text), &ok);
  if (!ok) return bad_key_text(text);
  return PrivateKey(std::move(s));
}

PublicKey PrivateKey::public_key() const {
  ensure_sodium();
  // crypto_scalarmult_base clamps its own copy of the scalar, like wg's
  // curve25519_generate_public, so unclamped keys (as `wg pubkey` accepts)
  // give the same public key too.
  KeyBytes pub{};
  crypto_scalarmult_curve25519_base(pub.data(), bytes_.data());
  return PublicKey(pub);
}

std::string PrivateKey::to_base64_secret() const { return key_to_base64(bytes_); }

// --- PresharedKey ---

PresharedKey PresharedKey::generate() { return PresharedKey(random_secret()); }

Result<PresharedKey> PresharedKey::from_base64(std::string_view text) {
  bool ok = false;
  SecretKey s = secret_from_base64_or(key_from_base64(text), &ok);
  if (!ok) return bad_key_text(text);
  return PresharedKey(std::move(s));
}

std::string PresharedKey::to_base64_secret() const { return key_to_base64(bytes_); }

// --- hex ---

std::string key_to_hex(const KeyBytes& k) {
  ensure_sodium();
  std::string out(k.size() * 2 + 1, '\0');  // sodium_bin2hex writes a NUL
  sodium_bin2hex(out.data(), out.size(), k.data(), k.size());
  out.pop_back();
  return out;
}

Result<KeyBytes> key_from_hex(std::string_view text) {
  ensure_sodium();
  KeyBytes k{};
  if (text.size() != k.size() * 2)
    return Error::invalid("invalid key: expected 64 hex digits, got " +
                          std::to_string(text.size()) + " characters");
  // No `ignore` set and no hex_end: any non-hex character fails the call.
  std::size_t len = 0;
  if (sodium_hex2bin(k.data(), k.size(), text.data(), text.size(), nullptr, &len, nullptr) != 0 ||
      len != k.size()) {
    sodium_memzero(k.data(), k.size());
    return Error::invalid("invalid key: expected 64 hex digits, found a non-hex character");
  }
  return k;
}

}  // namespace meshd::keys
