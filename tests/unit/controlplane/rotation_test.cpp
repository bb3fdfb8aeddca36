// Key rotation rules (meshd/controlplane/rotation.h): which key a peer routes
// to and which it holds as standby at every point of a rotation, the
// deadlines, and the simulated outage under clock skew, compared with two
// schemes that switch on the clock alone.
#include "meshd/controlplane/rotation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

using namespace meshd;
using namespace meshd::controlplane;

namespace {

keys::PublicKey key(std::uint8_t fill) {
  keys::KeyBytes b{};
  b.fill(fill);
  return keys::PublicKey(b);
}

const keys::PublicKey kOld = key(0x11);
const keys::PublicKey kNext = key(0x22);

NodeRecord record(std::optional<PendingKey> pending) {
  NodeRecord r;
  r.name = "node-a";
  r.wg_public_key = kOld;
  r.pending_key = pending;
  return r;
}

constexpr std::uint64_t kSwitchAt = 1'000'000;
constexpr std::uint64_t kGrace = 2'000;

void expect_before_switch(const PeerKeys& k) {
  EXPECT_EQ(k.routed, kOld);
  ASSERT_TRUE(k.standby);
  EXPECT_EQ(*k.standby, kNext);
}
void expect_switched(const PeerKeys& k) {
  EXPECT_EQ(k.routed, kNext);
  EXPECT_FALSE(k.standby);
}

// ------------------------------------------------------------- peer_keys

TEST(Rotation, WithoutAPendingKeyThePeerRoutesTheCurrentKeyAndHoldsNoStandby) {
  const auto r = record(std::nullopt);
  for (bool seen : {false, true}) {
    const auto k = peer_keys(r, kSwitchAt + 10 * kGrace, seen, kGrace);
    EXPECT_EQ(k.routed, kOld);
    EXPECT_FALSE(k.standby);
  }
  EXPECT_FALSE(peer_deadline(r, kGrace));
}

TEST(Rotation, BeforeTheSwitchThePeerRoutesTheCurrentKeyAndHoldsTheNextAsStandby) {
  const auto r = record(PendingKey{kNext, kSwitchAt});
  // From the moment the record is seen, through switch_at itself (the owner
  // may be late), up to the last millisecond of the grace.
  for (std::uint64_t now : {std::uint64_t{0}, kSwitchAt - 3000, kSwitchAt - 1, kSwitchAt,
                            kSwitchAt + 1, kSwitchAt + kGrace - 1}) {
    SCOPED_TRACE("now = switch_at + " + std::to_string(static_cast<std::int64_t>(now - kSwitchAt)));
    expect_before_switch(peer_keys(r, now, false, kGrace));
  }
}

TEST(Rotation, AHandshakeOnTheStandbySwitchesThePeerAtOnceWhateverItsClockSays) {
  const auto r = record(PendingKey{kNext, kSwitchAt});
  // A peer whose clock is behind sees the owner's handshake "before"
  // switch_at: the handshake, not its clock, proves the owner switched.
  for (std::uint64_t now : {kSwitchAt - 5000, kSwitchAt, kSwitchAt + kGrace - 1})
    expect_switched(peer_keys(r, now, true, kGrace));
}

TEST(Rotation, WithoutAHandshakeThePeerSwitchesAtSwitchAtPlusGrace) {
  const auto r = record(PendingKey{kNext, kSwitchAt});
  expect_before_switch(peer_keys(r, kSwitchAt + kGrace - 1, false, kGrace));
  expect_switched(peer_keys(r, kSwitchAt + kGrace, false, kGrace));
  expect_switched(peer_keys(r, kSwitchAt + 100 * kGrace, false, kGrace));
  EXPECT_EQ(peer_deadline(r, kGrace), kSwitchAt + kGrace);
}

TEST(Rotation, WithGraceZeroTheFallbackIsSwitchAtItself) {
  const auto r = record(PendingKey{kNext, kSwitchAt});
  expect_before_switch(peer_keys(r, kSwitchAt - 1, false, 0));
  expect_switched(peer_keys(r, kSwitchAt, false, 0));
  EXPECT_EQ(peer_deadline(r, 0), kSwitchAt);
}

TEST(Rotation, ASwitchTimeNearTheEndOfTimeNeverWrapsTheDeadlineIntoThePast) {
  // A signed record may carry any switch time; switch_at + grace must not
  // wrap round to a small number and switch the peer before the owner.
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  const auto r = record(PendingKey{kNext, kMax - 10});
  EXPECT_EQ(peer_deadline(r, kGrace), kMax);
  expect_before_switch(peer_keys(r, kSwitchAt, false, kGrace));
  expect_before_switch(peer_keys(r, kMax - 1, false, kGrace));
  expect_switched(peer_keys(r, kMax, false, kGrace));
  EXPECT_EQ(switch_time(kMax - 5, 3000), kMax);
}

// ------------------------------------------------------- the owner's side

TEST(Rotation, TheOwnerSwitchesWhenItsClockReachesSwitchAt) {
  const PendingKey p{kNext, kSwitchAt};
  EXPECT_FALSE(owner_switched(p, 0));
  EXPECT_FALSE(owner_switched(p, kSwitchAt - 1));
  EXPECT_TRUE(owner_switched(p, kSwitchAt));
  EXPECT_TRUE(owner_switched(p, kSwitchAt + 1));
}

TEST(Rotation, TheSwitchTimeIsTheLeadAfterNow) {
  EXPECT_EQ(switch_time(kSwitchAt, 3000), kSwitchAt + 3000);
  EXPECT_EQ(switch_time(kSwitchAt, 0), kSwitchAt);
}

// ------------------------------------------------------------ simulation

constexpr std::uint64_t kHandshake = 5;
constexpr std::uint64_t kPoll = 20;

TEST(RotationGap, WithoutSkewTheGapIsOneHandshakeAndOnePoll) {
  EXPECT_EQ(simulated_gap_ms(0, 0, kGrace, kHandshake, kPoll), kHandshake + kPoll);
  // Only the difference of the clocks matters.
  EXPECT_EQ(simulated_gap_ms(-4000, -4000, kGrace, kHandshake, kPoll), kHandshake + kPoll);
  EXPECT_EQ(simulated_gap_ms(3000, 3000, kGrace, kHandshake, kPoll), kHandshake + kPoll);
}

TEST(RotationGap, AFallbackThatFiresBeforeTheHandshakeIsNoticedShortensTheGap) {
  // Grace 0 and equal clocks: the peer moves at switch_at, the owner's
  // handshake completes after it: one handshake.
  EXPECT_EQ(simulated_gap_ms(0, 0, 0, kHandshake, kPoll), kHandshake);
  // The fallback between the handshake and its notice.
  EXPECT_EQ(simulated_gap_ms(0, 0, 12, kHandshake, kPoll), 12u);
}

TEST(RotationGap, APeerAheadByMoreThanTheGraceWaitsSkewMinusGracePlusAHandshake) {
  // The peer's fallback fires (skew - grace) before the owner switches; the
  // gap runs from there to the owner's handshake.
  EXPECT_EQ(simulated_gap_ms(0, 2500, kGrace, kHandshake, kPoll), 500 + kHandshake);
  EXPECT_EQ(simulated_gap_ms(-1000, 4000, kGrace, kHandshake, kPoll), 3000 + kHandshake);
}

TEST(RotationGap, ExtremeInputsAreClampedNotOverflowed) {
  constexpr auto kMaxU = std::numeric_limits<std::uint64_t>::max();
  constexpr auto kMaxS = std::numeric_limits<std::int64_t>::max();
  constexpr auto kMinS = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(simulated_gap_ms(0, 0, kMaxU, kMaxU, kMaxU), 1'000'000'000'000u);
  EXPECT_EQ(simulated_gap_ms(kMinS, kMaxS, 0, 0, 0), 2'000'000'000'000u);
}

// The two schemes that switch on the clock alone, for contrast. The later of
// the two sides to switch has traffic queued and starts a handshake at once.
//
// Naive: the peer replaces the old key with the next one at switch_at by its
// own clock (no standby). Whichever side switches first talks to a key the
// other does not hold yet, and the handshake can start only once both have
// switched: |skew| + handshake.
std::uint64_t naive_gap_ms(std::int64_t owner_offset, std::int64_t peer_offset,
                           std::uint64_t handshake) {
  const std::int64_t owner_switch = -owner_offset, peer_switch = -peer_offset;
  const std::int64_t session = std::max(owner_switch, peer_switch) + static_cast<std::int64_t>(handshake);
  return static_cast<std::uint64_t>(session - std::min(owner_switch, peer_switch));
}
// Standby, switched on the clock: the peer holds the next key as standby
// (so the owner's handshake succeeds at once) but moves the allowed IPs at
// switch_at by its own clock. A peer behind still drops the owner's traffic
// for |skew|; a peer ahead routes to a key the owner does not use yet.
std::uint64_t standby_on_clock_gap_ms(std::int64_t owner_offset, std::int64_t peer_offset,
                                      std::uint64_t handshake) {
  const std::int64_t owner_switch = -owner_offset, peer_switch = -peer_offset;
  const std::int64_t session = owner_switch + static_cast<std::int64_t>(handshake);
  return static_cast<std::uint64_t>(std::max(peer_switch, session) -
                                    std::min(owner_switch, peer_switch));
}

std::uint64_t abs_ms(std::int64_t v) { return static_cast<std::uint64_t>(v < 0 ? -v : v); }

// The simulation: owner and peer clocks each off by -5 s .. +5 s,
// grace 2 s, a 5 ms handshake, a 20 ms poll. The gap stays within one
// handshake and one poll unless the peer's clock is ahead of the owner's by
// more than the grace; beyond that it is skew - grace + one handshake.
TEST(RotationGap, ClockSkewTable) {
  std::printf("\nrotation gap (ms) by owner clock offset (rows) and peer clock offset (columns), "
              "grace %llu ms, handshake %llu ms, poll %llu ms\n",
              static_cast<unsigned long long>(kGrace), static_cast<unsigned long long>(kHandshake),
              static_cast<unsigned long long>(kPoll));
  std::printf("%8s", "owner\\peer");
  for (std::int64_t peer = -5000; peer <= 5000; peer += 1000) std::printf("%7lld", static_cast<long long>(peer));
  std::printf("\n");
  for (std::int64_t owner = -5000; owner <= 5000; owner += 1000) {
    std::printf("%10lld", static_cast<long long>(owner));
    for (std::int64_t peer = -5000; peer <= 5000; peer += 1000) {
      const std::uint64_t gap = simulated_gap_ms(owner, peer, kGrace, kHandshake, kPoll);
      std::printf("%7llu", static_cast<unsigned long long>(gap));
    }
    std::printf("\n");
  }
  // Every pair on a 250 ms grid, not only the printed one.
  for (std::int64_t owner = -5000; owner <= 5000; owner += 250) {
    for (std::int64_t peer = -5000; peer <= 5000; peer += 250) {
      SCOPED_TRACE("owner offset " + std::to_string(owner) + " ms, peer offset " +
                   std::to_string(peer) + " ms");
      const std::int64_t skew = peer - owner;  // > 0: the peer's clock is ahead
      const std::uint64_t gap = simulated_gap_ms(owner, peer, kGrace, kHandshake, kPoll);
      if (skew <= static_cast<std::int64_t>(kGrace)) {
        EXPECT_LE(gap, kHandshake + kPoll + 1);
      } else {
        const std::uint64_t expected = static_cast<std::uint64_t>(skew) - kGrace + kHandshake;
        EXPECT_GE(gap, expected);
        EXPECT_LE(gap, expected + 1);
      }
    }
  }
}

// By skew alone (only the difference of the clocks matters), beside the two
// clock-only schemes: the rows of docs/lifecycle.md's table.
TEST(RotationGap, ClockOnlySchemesGrowWithEverySkewThisOneOnlyPastTheGrace) {
  std::printf("\n| peer clock vs owner (ms) | naive: replace at switch_at | standby, moved at switch_at "
              "| meshd: standby, moved on handshake or at switch_at + grace |\n|---:|---:|---:|---:|\n");
  for (std::int64_t skew = -5000; skew <= 5000; skew += 500) {
    SCOPED_TRACE("skew " + std::to_string(skew) + " ms");
    const std::uint64_t naive = naive_gap_ms(0, skew, kHandshake);
    const std::uint64_t on_clock = standby_on_clock_gap_ms(0, skew, kHandshake);
    const std::uint64_t ours = simulated_gap_ms(0, skew, kGrace, kHandshake, kPoll);
    std::printf("| %+lld | %llu | %llu | %llu |\n", static_cast<long long>(skew),
                static_cast<unsigned long long>(naive), static_cast<unsigned long long>(on_clock),
                static_cast<unsigned long long>(ours));

    // The naive gap is the whole skew plus a handshake, either way round.
    EXPECT_EQ(naive, abs_ms(skew) + kHandshake);
    // The standby saves the handshake only when the peer is behind; the
    // skew stays in the gap.
    EXPECT_EQ(on_clock, skew > 0 ? abs_ms(skew) + kHandshake : std::max(abs_ms(skew), kHandshake));
    // meshd's scheme never does worse than the naive one by more than the
    // poll, and from a skew of one poll upwards it does better (or equal,
    // beyond the grace, by the grace).
    EXPECT_LE(ours, naive + kPoll);
    if (abs_ms(skew) >= kPoll) {
      EXPECT_LE(ours, naive);
    }
    if (skew > static_cast<std::int64_t>(kGrace)) {
      EXPECT_EQ(ours, naive - kGrace);
    }
  }
}

}  // namespace
