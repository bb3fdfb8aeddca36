// Liveness of the other members, as pure rules: when a member counts as
// silent, when it may be pruned, and when this node may prune at all. The
// daemon feeds in what it observed (WireGuard handshakes, sync messages) and
// the clock; nothing here reads either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace meshd::controlplane {

struct LivenessPolicy {
  std::uint64_t silent_after_ms = 300'000;
  std::uint64_t prune_after_ms = 0;  // 0: never prune
};

enum class Liveness : std::uint8_t {
  kAlive,     // seen within silent_after
  kSilent,    // not seen for silent_after (reported)
  kPrunable,  // not seen for prune_after, and pruning is on
};
std::string_view to_string(Liveness l);

struct MemberSeen {
  // The last sign of life: the later of the last WireGuard handshake with the
  // member and the last sync message from it (unix ms). Nothing: never.
  std::optional<std::uint64_t> last_seen_ms;
  // Since when this node has been in a position to see it: the later of
  // this node's start and the member's admission (unix ms). Silence is
  // counted from here when the member was never seen, so a node that just
  // restarted does not call everyone silent.
  std::uint64_t watching_since_ms = 0;
};

// The member's liveness at `now_ms`.
Liveness liveness(const MemberSeen& seen, std::uint64_t now_ms, const LivenessPolicy& policy);

// How long the member has been silent at `now_ms` (0 if seen just now).
std::uint64_t silent_for_ms(const MemberSeen& seen, std::uint64_t now_ms);

// Whether this node may prune at all: it and the other members it sees alive
// (`alive_others` of `other_members`) are a strict majority of the cluster,
// itself included. A node cut off from the rest (which sees everyone silent)
// never prunes anyone, nor does either half of an even split; a three-node
// cluster with one member dead still may (2 of 3). With no other members it
// may not.
bool may_prune(std::size_t alive_others, std::size_t other_members);

}  // namespace meshd::controlplane
