#include "meshd/controlplane/rotation.h"

#include <algorithm>
#include <limits>

namespace meshd::controlplane {
namespace {

// Times are unix ms from records signed by other nodes: a switch time near
// 2^64 must not wrap the fallback deadline round to the past (which would
// switch every peer at once, before the owner).
std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max()
                                                           : a + b;
}

// simulated_gap_ms() bounds each input to about 31 years, so that its sums
// stay far from int64 overflow; nothing anyone simulates comes near.
constexpr std::int64_t kMaxModelMs = 1'000'000'000'000;

}  // namespace

PeerKeys peer_keys(const NodeRecord& r, std::uint64_t now_ms, bool standby_handshake_seen,
                   std::uint64_t grace_ms) {
  if (!r.pending_key) return PeerKeys{r.wg_public_key, std::nullopt};
  // A handshake on the standby can only come from the owner holding the new
  // private key: it has switched, so the old entry can no longer carry
  // anything. The deadline covers a handshake this node never saw (the
  // owner had nothing to send, or the peer's poll missed it).
  const bool switched = standby_handshake_seen ||
                        now_ms >= saturating_add(r.pending_key->switch_at, grace_ms);
  if (switched) return PeerKeys{r.pending_key->wg_public_key, std::nullopt};
  return PeerKeys{r.wg_public_key, r.pending_key->wg_public_key};
}

std::optional<std::uint64_t> peer_deadline(const NodeRecord& r, std::uint64_t grace_ms) {
  if (!r.pending_key) return std::nullopt;
  return saturating_add(r.pending_key->switch_at, grace_ms);
}

bool owner_switched(const PendingKey& pending, std::uint64_t now_ms) {
  return now_ms >= pending.switch_at;
}

std::uint64_t switch_time(std::uint64_t now_ms, std::uint64_t lead_ms) {
  return saturating_add(now_ms, lead_ms);
}

std::uint64_t simulated_gap_ms(std::int64_t owner_offset_ms, std::int64_t peer_offset_ms,
                               std::uint64_t grace_ms, std::uint64_t handshake_ms,
                               std::uint64_t poll_ms) {
  const auto clamp_u = [](std::uint64_t v) {
    return static_cast<std::int64_t>(std::min<std::uint64_t>(v, kMaxModelMs));
  };
  const auto clamp_s = [](std::int64_t v) {
    return std::clamp<std::int64_t>(v, -kMaxModelMs, kMaxModelMs);
  };
  const std::int64_t owner = clamp_s(owner_offset_ms), peer = clamp_s(peer_offset_ms);
  const std::int64_t grace = clamp_u(grace_ms), handshake = clamp_u(handshake_ms),
                     poll = clamp_u(poll_ms);

  // True time, with switch_at at 0. A clock `offset` ahead reads 0 at -offset.
  const std::int64_t owner_switch = -owner;              // new private key set, handshake started
  const std::int64_t session = owner_switch + handshake;  // a session under the new key
  // The peer moves the allowed IPs when it notices that handshake (at worst
  // a whole poll after it) or at its fallback, whichever comes first. The
  // handshake completes whether the peer has switched already or not: the
  // new key is an entry on the peer either way (standby or routed).
  const std::int64_t noticed = session + poll;
  const std::int64_t fallback = grace - peer;
  const std::int64_t peer_switch = std::min(noticed, fallback);
  // From the first switch (either side's traffic stops fitting the other's
  // entries) until the peer routes to the new entry and a session exists on it.
  const std::int64_t start = std::min(owner_switch, peer_switch);
  const std::int64_t end = std::max(peer_switch, session);
  return static_cast<std::uint64_t>(end - start);
}

}  // namespace meshd::controlplane
