// This node's own state: its name, its pod CIDR (and whether it is settled,
// i.e. acknowledged by every live member, so pod addresses may be handed
// out), the MTU chosen for pod interfaces, and its secrets: the WireGuard
// private key (and, during a rotation, the next one) and the Ed25519
// identity secret. They live in the store (file mode 0600) so a restart
// keeps the node's keys and identity (wesher#49, cilium#25492). One row; a
// fresh database reads as an empty LocalNode.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "keys/identity.h"
#include "keys/wg_key.h"
#include "store/secret_bytes.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace meshd::store {

class Database;

struct LocalNode {
  std::string name;                 // empty until set
  std::optional<IpPrefix> pod_cidr;
  bool pod_cidr_settled = false;    // hand out pod addresses only when true
  unsigned mtu = 0;                 // 0 = not chosen yet
  auto operator<=>(const LocalNode&) const = default;
};

// An Ed25519 secret key in libsodium's 64-byte form (seed || public key).
inline constexpr std::size_t kIdentitySecretLength = 64;

class LocalNodeRepo {
 public:
  explicit LocalNodeRepo(Database& db) : db_(db) {}

  // Never fails for "not set yet": returns an empty LocalNode.
  Result<LocalNode> get();
  Result<void> set_name(const std::string& name);
  Result<void> set_pod_cidr(const IpPrefix& cidr, bool settled);
  Result<void> set_mtu(unsigned mtu);

  Result<void> set_wg_private_key(const keys::PrivateKey& key);
  // Nothing when no key has been stored yet.
  Result<std::optional<keys::PrivateKey>> wg_private_key();

  // A key rotation in progress (controlplane/rotation.h): the next
  // WireGuard key and when it takes over (unix ms), stored before it is
  // announced so a restart finishes the rotation instead of losing the key.
  struct PendingWgKey {
    keys::PrivateKey key;
    std::uint64_t switch_at_ms = 0;
  };
  // Replaces any pending key. EINVAL when `key` is the current key (peers
  // refuse a record announcing it) or switch_at_ms is above INT64_MAX.
  Result<void> set_pending_wg_key(const keys::PrivateKey& key, std::uint64_t switch_at_ms);
  // Nothing when no rotation is pending.
  Result<std::optional<PendingWgKey>> pending_wg_key();
  // The pending key becomes the node's key, in one transaction; nothing is
  // pending afterwards. ENOENT when nothing is pending.
  Result<void> commit_pending_wg_key();

  // Raw 64 bytes (EINVAL for any other length): keys/ wraps these in its
  // identity type. The returned buffer wipes itself when freed.
  Result<void> set_identity_secret(std::span<const std::uint8_t> secret);
  Result<std::optional<SecretBytes>> identity_secret();

  // The same secret as keys/' type: stored as seed || public key; reading
  // re-derives the key from the seed and refuses (EINVAL) a stored public half
  // that does not match it (a corrupted or hand-edited row).
  Result<void> set_identity_key(const keys::IdentitySecretKey& key);
  Result<std::optional<keys::IdentitySecretKey>> identity_key();

 private:
  Database& db_;
};

}  // namespace meshd::store
