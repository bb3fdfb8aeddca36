// The joiner's side of the join exchange on the wire: one TCP round trip to
// a member's join listener, blocking (the joiner runs it before its event
// loop starts).
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

namespace meshd::controlplane {

// Connects to `target`, sends `request`, reads one reply frame ("MJRP",
// "MJRR", a re-admission's, readmit.h, or "MJRO", an announcement's,
// announce.h | u16
// | u8 kind | u8 | u32 len | body, the whole frame bounded by
// kMaxJoinReplyBytes) and returns it whole (header + body), for
// open_join_reply. The deadline covers everything. Errors name the target:
// ECONNREFUSED, ETIMEDOUT, EMSGSIZE (the header announces more than the
// bound), EPROTO (a header that is not a reply's, or a reply cut short).
Result<std::vector<std::uint8_t>> join_roundtrip(const Endpoint& target,
                                                 std::span<const std::uint8_t> request,
                                                 std::chrono::milliseconds timeout);

}  // namespace meshd::controlplane
