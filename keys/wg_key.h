// WireGuard Curve25519 keys in the exact forms wireguard-tools reads and
// writes: 32 bytes, 44-character standard base64 with one '=' of padding.
// Private keys are clamped like `wg genkey`, wiped on destruction, and never
// formattable: the only printable form of a key is a short prefix of its
// public half (see short_id()).
#pragma once

#include "common/result.h"

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace meshd::keys {

inline constexpr std::size_t kKeyLength = 32;
using KeyBytes = std::array<std::uint8_t, kKeyLength>;

class PublicKey {
 public:
  PublicKey() = default;
  explicit PublicKey(const KeyBytes& b) : bytes_(b) {}

  // Same acceptance rules as wg's key_from_base64: exactly 44 chars, '=' last,
  // canonical encoding. Error messages name the expected form.
  static Result<PublicKey> from_base64(std::string_view text);
  std::string to_base64() const;
  // First 8 characters of the base64 form plus "…": what logs and errors show.
  std::string short_id() const;

  const KeyBytes& bytes() const { return bytes_; }
  bool is_zero() const;

  auto operator<=>(const PublicKey&) const = default;

 private:
  KeyBytes bytes_{};
};

// A 32-byte secret (WireGuard private or preshared key). Move-only; wiped with
// sodium_memzero when destroyed or overwritten.
class SecretKey {
 public:
  SecretKey() = default;
  explicit SecretKey(const KeyBytes& b);
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  SecretKey(SecretKey&& o) noexcept;
  SecretKey& operator=(SecretKey&& o) noexcept;
  ~SecretKey();

  SecretKey clone() const;  // explicit copy; secrets are never copied by accident
  const KeyBytes& bytes() const { return bytes_; }
  bool is_zero() const;
  bool operator==(const SecretKey& o) const;  // constant time

 protected:
  KeyBytes bytes_{};
};

class PrivateKey : public SecretKey {
 public:
  using SecretKey::SecretKey;
  PrivateKey(SecretKey&& s) : SecretKey(std::move(s)) {}  // NOLINT

  static PrivateKey generate();  // CSPRNG, clamped (as `wg genkey`)
  static Result<PrivateKey> from_base64(std::string_view text);
  PrivateKey clone() const { return PrivateKey(SecretKey::clone()); }

  PublicKey public_key() const;  // X25519 base-point multiplication (as `wg pubkey`)
  // The secret in wg's base64 form: for key files and the UAPI/netlink wire
  // only. Callers must not log it.
  std::string to_base64_secret() const;
};

class PresharedKey : public SecretKey {
 public:
  using SecretKey::SecretKey;
  PresharedKey(SecretKey&& s) : SecretKey(std::move(s)) {}  // NOLINT
  static PresharedKey generate();
  static Result<PresharedKey> from_base64(std::string_view text);
  PresharedKey clone() const { return PresharedKey(SecretKey::clone()); }
  std::string to_base64_secret() const;
};

// Standard base64 of exactly 32 bytes (44 chars) and back, with wg's strictness.
std::string key_to_base64(const KeyBytes& k);
Result<KeyBytes> key_from_base64(std::string_view text);

// A key as 64 hex digits, the form of WireGuard's cross-platform userspace
// API (https://www.wireguard.com/xplatform/): lowercase out, either case in.
// Both directions are libsodium's sodium_bin2hex / sodium_hex2bin, whose time
// does not depend on the digits: the text may be a private key. A refused
// text is never quoted in the error.
std::string key_to_hex(const KeyBytes& k);
Result<KeyBytes> key_from_hex(std::string_view text);

}  // namespace meshd::keys
