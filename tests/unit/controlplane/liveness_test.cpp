// Liveness rules (meshd/controlplane/liveness.h): when a member is alive,
// silent or prunable, where silence is counted from, and when a node may
// prune at all.
#include "meshd/controlplane/liveness.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

using namespace meshd::controlplane;

namespace {

constexpr std::uint64_t kStart = 1'700'000'000'000;  // this node's start (unix ms)
constexpr std::uint64_t kSilent = 300'000;
constexpr std::uint64_t kPrune = 3'600'000;

const LivenessPolicy kNoPrune{kSilent, 0};
const LivenessPolicy kWithPrune{kSilent, kPrune};

TEST(Liveness, NamesForTheApiAndLogs) {
  EXPECT_EQ(to_string(Liveness::kAlive), "alive");
  EXPECT_EQ(to_string(Liveness::kSilent), "silent");
  EXPECT_EQ(to_string(Liveness::kPrunable), "prunable");
}

TEST(Liveness, AMemberSeenRecentlyIsAliveAndSilentFromSilentAfterOn) {
  const MemberSeen seen{kStart + 10'000, kStart};
  EXPECT_EQ(silent_for_ms(seen, kStart + 10'000), 0u);
  EXPECT_EQ(liveness(seen, kStart + 10'000, kNoPrune), Liveness::kAlive);
  EXPECT_EQ(liveness(seen, kStart + 10'000 + kSilent - 1, kNoPrune), Liveness::kAlive);
  EXPECT_EQ(silent_for_ms(seen, kStart + 10'000 + kSilent), kSilent);
  EXPECT_EQ(liveness(seen, kStart + 10'000 + kSilent, kNoPrune), Liveness::kSilent);
}

TEST(Liveness, ANeverSeenMemberIsCountedFromWhenThisNodeBeganWatching) {
  // Just restarted (or the member just admitted): nobody is silent yet.
  const MemberSeen never{std::nullopt, kStart};
  EXPECT_EQ(liveness(never, kStart, kNoPrune), Liveness::kAlive);
  EXPECT_EQ(liveness(never, kStart + kSilent - 1, kNoPrune), Liveness::kAlive);
  EXPECT_EQ(liveness(never, kStart + kSilent, kNoPrune), Liveness::kSilent);
  EXPECT_EQ(silent_for_ms(never, kStart + kSilent + 5), kSilent + 5);
}

TEST(Liveness, ASignOfLifeBeforeThisNodeStartedCountsFromTheStart) {
  // Seen a day before a restart: the restart must not make it silent at once.
  const MemberSeen seen{kStart - 86'400'000, kStart};
  EXPECT_EQ(silent_for_ms(seen, kStart + 1000), 1000u);
  EXPECT_EQ(liveness(seen, kStart + 1000, kWithPrune), Liveness::kAlive);
}

TEST(Liveness, AClockBehindTheLastSignOfLifeReadsAsSeenJustNow) {
  const MemberSeen seen{kStart + 50'000, kStart};
  EXPECT_EQ(silent_for_ms(seen, kStart), 0u);
  EXPECT_EQ(silent_for_ms(seen, 0), 0u);
  EXPECT_EQ(liveness(seen, 0, kWithPrune), Liveness::kAlive);
}

TEST(Liveness, PruningOffMeansSilentForever) {
  const MemberSeen seen{kStart, kStart};
  EXPECT_EQ(liveness(seen, kStart + kPrune * 1000, kNoPrune), Liveness::kSilent);
  EXPECT_EQ(liveness(seen, std::numeric_limits<std::uint64_t>::max(), kNoPrune), Liveness::kSilent);
}

TEST(Liveness, PruningOnMakesAMemberPrunableFromPruneAfterOn) {
  const MemberSeen seen{kStart, kStart};
  EXPECT_EQ(liveness(seen, kStart + kSilent - 1, kWithPrune), Liveness::kAlive);
  EXPECT_EQ(liveness(seen, kStart + kSilent, kWithPrune), Liveness::kSilent);
  EXPECT_EQ(liveness(seen, kStart + kPrune - 1, kWithPrune), Liveness::kSilent);
  EXPECT_EQ(liveness(seen, kStart + kPrune, kWithPrune), Liveness::kPrunable);
  // A sign of life resets it.
  const MemberSeen back{kStart + kPrune, kStart};
  EXPECT_EQ(liveness(back, kStart + kPrune, kWithPrune), Liveness::kAlive);
}

TEST(Liveness, NeverPrunableBeforeSilentEvenWithAPruneTimeBelowTheSilentTime) {
  // The config refuses such a policy; the rule holds without it.
  const LivenessPolicy odd{kSilent, kSilent / 2};
  const MemberSeen seen{kStart, kStart};
  EXPECT_EQ(liveness(seen, kStart + kSilent / 2, odd), Liveness::kAlive);
  EXPECT_EQ(liveness(seen, kStart + kSilent, odd), Liveness::kPrunable);
}

// ------------------------------------------------------ the majority rule

TEST(LivenessMajority, WithNoOtherMemberNothingIsPruned) {
  EXPECT_FALSE(may_prune(0, 0));
  EXPECT_FALSE(may_prune(3, 0));
}

TEST(LivenessMajority, ANodeCutOffFromEveryoneNeverPrunes) {
  // A partitioned node sees every other member silent: it must not tombstone
  // the healthy rest of the cluster.
  for (std::size_t others = 1; others <= 100; ++others) EXPECT_FALSE(may_prune(0, others)) << others;
}

TEST(LivenessMajority, ThisNodeAndTheMembersItSeesMustBeAStrictMajority) {
  struct Case {
    std::size_t alive_others, others;
    bool may;
  };
  const Case cases[] = {
      {0, 1, false},  // two nodes, the other silent: a split or a death look the same
      {1, 1, true},   // (nothing to prune, but nothing forbids it)
      {1, 2, true},   // three nodes, one dead: the two others prune it
      {0, 2, false},
      {1, 3, false},  // four nodes split 2 | 2: neither half prunes
      {2, 3, true},
      {2, 4, true},   // five nodes split 3 | 2: the three prune
      {1, 4, false},  // ... the two never
      {49, 99, false},
      {50, 99, true},
  };
  for (const auto& c : cases)
    EXPECT_EQ(may_prune(c.alive_others, c.others), c.may)
        << c.alive_others << " of " << c.others << " other members alive";
}

TEST(LivenessMajority, AtMostOneSideOfAnySplitMayPrune) {
  for (std::size_t n = 2; n <= 12; ++n) {
    for (std::size_t a = 1; a < n; ++a) {
      const std::size_t b = n - a;  // sides of a and b nodes; each sees its own side alive
      const bool side_a = may_prune(a - 1, n - 1), side_b = may_prune(b - 1, n - 1);
      EXPECT_FALSE(side_a && side_b) << n << " nodes split " << a << " | " << b;
    }
  }
}

TEST(LivenessMajority, MoreAliveThanMembersIsCountedAsAllAlive) {
  EXPECT_EQ(may_prune(7, 2), may_prune(2, 2));
}

}  // namespace
