// Ed25519 node identity. A node's WireGuard key may rotate; its identity key
// does not: it signs the node's records (name, keys, endpoints, pod CIDRs) so
// that members accept a record only from the node it describes, also when
// another member relays it.
//
// Every signature is over a CanonicalEncoder encoding, which starts with a
// domain-separation context, so a signature made for one purpose can never be
// presented as one for another.
#pragma once

#include "common/result.h"
#include "keys/canonical_encoder.h"
#include "keys/wg_key.h"

#include <array>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace meshd::keys {

inline constexpr std::size_t kSignatureLength = 64;
using Signature = std::array<std::uint8_t, kSignatureLength>;

std::string signature_to_base64(const Signature& s);
Result<Signature> signature_from_base64(std::string_view text);

class IdentityPublicKey {
 public:
  IdentityPublicKey() = default;
  explicit IdentityPublicKey(const KeyBytes& b) : bytes_(b) {}

  // Same 44-character form (and strictness) as WireGuard keys.
  static Result<IdentityPublicKey> from_base64(std::string_view text);
  std::string to_base64() const;
  std::string short_id() const;  // first 8 base64 characters + "…"

  const KeyBytes& bytes() const { return bytes_; }

  // True if `sig` is this key's signature over `encoded` exactly.
  bool verify(const CanonicalEncoder& encoded, const Signature& sig) const;
  // The counterpart of IdentitySecretKey::sign(context, message).
  bool verify(std::string_view context, std::span<const std::uint8_t> message,
              const Signature& sig) const;

  auto operator<=>(const IdentityPublicKey&) const = default;

 private:
  KeyBytes bytes_{};
};

// Stored as its 32-byte Ed25519 seed (base64, 44 characters, in a 0600 file);
// the expanded secret key is derived from it. Move-only, wiped on destruction.
class IdentitySecretKey {
 public:
  IdentitySecretKey(const IdentitySecretKey&) = delete;
  IdentitySecretKey& operator=(const IdentitySecretKey&) = delete;
  IdentitySecretKey(IdentitySecretKey&& o) noexcept;
  IdentitySecretKey& operator=(IdentitySecretKey&& o) noexcept;
  ~IdentitySecretKey();

  static IdentitySecretKey generate();
  static IdentitySecretKey from_seed(const KeyBytes& seed);
  static Result<IdentitySecretKey> from_base64(std::string_view text);

  IdentitySecretKey clone() const;  // explicit copy; never copied by accident
  // The seed, for storage only; callers must wipe copies and never log them.
  KeyBytes seed() const;
  std::string to_base64_secret() const;

  const IdentityPublicKey& public_key() const { return public_; }

  // Signs the encoder's bytes (context included).
  Signature sign(const CanonicalEncoder& encoded) const;
  // Signs `message` under `context`: the bytes of
  // CanonicalEncoder(context).bytes(message).
  Signature sign(std::string_view context, std::span<const std::uint8_t> message) const;

 private:
  IdentitySecretKey() = default;
  std::array<std::uint8_t, 64> secret_{};  // libsodium form: seed || public key
  IdentityPublicKey public_;
};

}  // namespace meshd::keys
