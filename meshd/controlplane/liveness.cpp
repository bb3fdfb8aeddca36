#include "meshd/controlplane/liveness.h"

#include <algorithm>

namespace meshd::controlplane {

std::string_view to_string(Liveness l) {
  switch (l) {
    case Liveness::kAlive: return "alive";
    case Liveness::kSilent: return "silent";
    case Liveness::kPrunable: return "prunable";
  }
  return "unknown";
}

std::uint64_t silent_for_ms(const MemberSeen& seen, std::uint64_t now_ms) {
  const std::uint64_t since = std::max(seen.last_seen_ms.value_or(0), seen.watching_since_ms);
  // A clock stepped back (or a handshake time from the device a little
  // ahead of this clock) reads as "seen just now", never as a wrapped
  // silence of 2^64 ms.
  return now_ms > since ? now_ms - since : 0;
}

Liveness liveness(const MemberSeen& seen, std::uint64_t now_ms, const LivenessPolicy& policy) {
  const std::uint64_t silent = silent_for_ms(seen, now_ms);
  if (silent < policy.silent_after_ms) return Liveness::kAlive;
  // Prunable only once silent too: a prune_after below silent_after (the
  // config refuses it; a caller could still pass it) never removes a
  // member that nobody was told about.
  if (policy.prune_after_ms != 0 && silent >= policy.prune_after_ms) return Liveness::kPrunable;
  return Liveness::kSilent;
}

bool may_prune(std::size_t alive_others, std::size_t other_members) {
  if (other_members == 0) return false;
  alive_others = std::min(alive_others, other_members);
  // This node counts itself: it and the members it sees alive must be a
  // strict majority of the whole cluster (other_members + 1). A minority
  // partition can never reach it, and two halves of an even split cannot
  // either, so at most one side of any split prunes.
  return 2 * (alive_others + 1) > other_members + 1;
}

}  // namespace meshd::controlplane
