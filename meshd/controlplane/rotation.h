// Hitless WireGuard key rotation, as pure rules (docs/lifecycle.md, "Key
// rotation").
//
// WireGuard facts that decide the shape: setting a new private key expires a
// device's sessions with every peer; a peer can only answer a handshake under
// the new static key if it already holds the new public key; one device entry
// per public key, each allowed IP owned by one entry. So:
//
//   1. The rotating node generates its next key, stores it, and publishes its
//      record with `pending_key` = (next public key, switch_at = now + lead).
//   2. Every peer adds the next key as a second entry without allowed IPs
//      (the standby) as soon as it sees the record.
//   3. At switch_at (its own clock) the rotating node sets its new private
//      key, then sends every member a sync message, which starts a handshake
//      under the new key with each.
//   4. A peer moves the allowed IPs from the old entry to the standby and
//      drops the old one as soon as it sees a handshake on the standby (the
//      proof that the owner switched), or at the latest at switch_at + grace
//      by its own clock.
//
// Step 4 is what makes the gap independent of clock skew: a peer whose clock
// is behind still switches on the handshake; one whose clock is ahead waits
// for it until switch_at + grace. Only a skew larger than grace (the peer's
// clock ahead) opens a gap of skew - grace plus one handshake.
#pragma once

#include "keys/wg_key.h"
#include "meshd/controlplane/node_record.h"

#include <cstdint>
#include <optional>

namespace meshd::controlplane {

// The device entries a peer holds for a member's record.
struct PeerKeys {
  keys::PublicKey routed;                  // holds the member's allowed IPs and routes
  std::optional<keys::PublicKey> standby;  // a second entry without allowed IPs
};

// What a peer holds for `r` at `now_ms` (its own clock).
// `standby_handshake_seen`: the device reports a handshake on the pending
// key's entry.
PeerKeys peer_keys(const NodeRecord& r, std::uint64_t now_ms, bool standby_handshake_seen,
                   std::uint64_t grace_ms);

// When a peer must look at `r` again (unix ms): the fallback switch time
// switch_at + grace while a rotation is pending, else nothing.
std::optional<std::uint64_t> peer_deadline(const NodeRecord& r, std::uint64_t grace_ms);

// The rotating node's side: whether its own device uses the pending key at
// `now_ms` (its clock has reached switch_at).
bool owner_switched(const PendingKey& pending, std::uint64_t now_ms);

// The switch time for a rotation started at `now_ms`.
std::uint64_t switch_time(std::uint64_t now_ms, std::uint64_t lead_ms);

// The outage a peer sees in the owner's traffic across one rotation, for the
// simulations in the unit tests and the docs: the owner's clock runs
// `owner_offset_ms` ahead of true time, the peer's `peer_offset_ms`; the
// owner switches at switch_at by its clock and then starts a handshake, a
// handshake takes `handshake_ms`, a peer notices a handshake within
// `poll_ms` (the model takes the worst case: poll_ms after it). Returns the
// length of the outage in true time (ms): from the first of the two switches
// (the owner's key, the peer's routing) until both have switched and a
// session under the new key exists. Deterministic; each input is clamped to
// 10^12 ms.
std::uint64_t simulated_gap_ms(std::int64_t owner_offset_ms, std::int64_t peer_offset_ms,
                               std::uint64_t grace_ms, std::uint64_t handshake_ms,
                               std::uint64_t poll_ms);

}  // namespace meshd::controlplane
