// Re-admission as pure functions: a node whose record lost its pod CIDR
// asks with a request signed by its identity; the member answers from its
// table; the node opens the reply.
#include "cluster_fixture.h"
#include "meshd/controlplane/readmit.h"

#include <gtest/gtest.h>
#include <sodium.h>

namespace meshd::controlplane {
namespace {

using testing::nth_cidr;
using testing::params_for;
using testing::signed_record;
using testing::tombstone_of;

constexpr std::uint64_t kNowMs = 1'800'000'000'000;

JoinNonce random_nonce() {
  JoinNonce n{};
  randombytes_buf(n.data(), n.size());
  return n;
}

// A founder F (CIDR 0), a member M (CIDR 1), a winner W admitted by F at 100
// and a loser L admitted by M at 101, both to CIDR 2: L's claim lost.
class Readmit : public ::testing::Test {
 protected:
  Readmit() : table(params_for(f)) {
    EXPECT_EQ(table.merge(signed_record(f, f, "f", nth_cidr(0), 1)), MergeOutcome::kAccepted);
    EXPECT_EQ(table.merge(signed_record(m, f, "m", nth_cidr(1), 10)), MergeOutcome::kAccepted);
    EXPECT_EQ(table.merge(signed_record(w, f, "w", nth_cidr(2), 100)), MergeOutcome::kAccepted);
    EXPECT_EQ(table.merge(signed_record(l, m, "l", nth_cidr(2), 101)),
              MergeOutcome::kAcceptedCidrHeld);
  }

  std::vector<std::uint8_t> request(const keys::IdentitySecretKey& who, std::string name,
                                    std::uint64_t at = kNowMs, std::string cluster = "c0ffee") {
    return make_readmit_request(who, cluster, name, at, nonce);
  }
  ReadmitAnswer answer(std::span<const std::uint8_t> frame, std::span<const IpPrefix> reserved = {}) {
    return answer_readmit(frame, kNowMs, ReadmitMemberContext{m, table, reserved}, nonces);
  }
  ReadmitRefusal refusal(std::span<const std::uint8_t> frame) {
    auto a = answer(frame);
    EXPECT_FALSE(a.admission);
    EXPECT_TRUE(a.refusal);
    return a.refusal.value_or(ReadmitRefusal::kMalformed);
  }

  keys::IdentitySecretKey f = keys::IdentitySecretKey::generate();
  keys::IdentitySecretKey m = keys::IdentitySecretKey::generate();
  keys::IdentitySecretKey w = keys::IdentitySecretKey::generate();
  keys::IdentitySecretKey l = keys::IdentitySecretKey::generate();
  NodeTable table;
  ReadmitNonces nonces;
  JoinNonce nonce = random_nonce();
};

TEST_F(Readmit, ClaimStateNamesWhyARecordIsNotInEffect) {
  EXPECT_EQ(claim_state(table, table.find(w.public_key())->record).loss, ClaimLoss::kNone);
  auto s = claim_state(table, table.find(l.public_key())->record);
  EXPECT_EQ(s.loss, ClaimLoss::kCidrHeld);
  ASSERT_TRUE(s.winner);
  EXPECT_EQ(s.winner->record.name, "w");
  // Another node named "w", admitted later: its name lost, whatever its CIDR.
  auto late = keys::IdentitySecretKey::generate();
  table.merge(signed_record(late, m, "w", nth_cidr(9), 200));
  EXPECT_EQ(claim_state(table, table.find(late.public_key())->record).loss, ClaimLoss::kNameHeld);
}

TEST_F(Readmit, ALosingRecordGetsAFreeCidrItsOwnerCanSignAndTheTableAccepts) {
  auto a = answer(request(l, "l"));
  ASSERT_FALSE(a.refusal) << to_string(*a.refusal);
  ASSERT_TRUE(a.pod_cidr && a.admission && a.lost_cidr);
  EXPECT_EQ(*a.lost_cidr, nth_cidr(2));
  EXPECT_NE(*a.pod_cidr, nth_cidr(2));
  EXPECT_EQ(*a.pod_cidr, nth_cidr(3));  // the lowest no record claims
  for (const auto& id : table.members())
    EXPECT_FALSE(table.find(id)->record.pod_cidr.overlaps(*a.pod_cidr));
  EXPECT_EQ(a.admission->admitter, m.public_key());

  auto o = open_readmit_reply(a.reply, table.params(), "l", l.public_key(), nonce);
  ASSERT_TRUE(o) << o.error().message;
  ASSERT_TRUE(std::holds_alternative<Readmitted>(*o));
  const auto& got = std::get<Readmitted>(*o);
  EXPECT_EQ(got.pod_cidr, *a.pod_cidr);
  EXPECT_EQ(got.admission, *a.admission);

  // The owner's new record with it is in effect.
  NodeRecord r = table.find(l.public_key())->record;
  r.pod_cidr = got.pod_cidr;
  r.admission = got.admission;
  r.version += 1;
  EXPECT_EQ(table.merge(sign_record(r, l)), MergeOutcome::kAccepted);
  EXPECT_TRUE(table.in_effect(r));
}

TEST_F(Readmit, ANodeWhoseRecordNeverArrivedIsJudgedByWhatTheMemberAdmitted) {
  // M admitted P to CIDR 2 after W's admission; P's record never reached M.
  auto p = keys::IdentitySecretKey::generate();
  std::vector<NodeRecord> pending = {testing::make_record(p, m, "p", nth_cidr(2), 150)};
  auto a = answer_readmit(request(p, "p"), kNowMs, ReadmitMemberContext{m, table, {}, pending}, nonces);
  ASSERT_FALSE(a.refusal) << to_string(*a.refusal);
  EXPECT_EQ(*a.lost_cidr, nth_cidr(2));
  EXPECT_EQ(*a.pod_cidr, nth_cidr(3));
  // Admitted before W: nothing lost.
  nonce = random_nonce();
  pending = {testing::make_record(p, m, "p", nth_cidr(2), 50)};
  a = answer_readmit(request(p, "p"), kNowMs, ReadmitMemberContext{m, table, {}, pending}, nonces);
  ASSERT_TRUE(a.refusal);
  EXPECT_EQ(*a.refusal, ReadmitRefusal::kInEffect);
  // Another name than the one admitted.
  nonce = random_nonce();
  a = answer_readmit(request(p, "q"), kNowMs, ReadmitMemberContext{m, table, {}, pending}, nonces);
  ASSERT_TRUE(a.refusal);
  EXPECT_EQ(*a.refusal, ReadmitRefusal::kNameMismatch);
}

TEST_F(Readmit, ReservedCidrsAreSkipped) {
  std::vector<IpPrefix> reserved = {nth_cidr(3), nth_cidr(4)};
  auto a = answer(request(l, "l"), reserved);
  ASSERT_TRUE(a.pod_cidr);
  EXPECT_EQ(*a.pod_cidr, nth_cidr(5));
}

TEST_F(Readmit, ARecordInEffectIsRefused) {
  EXPECT_EQ(refusal(request(w, "w")), ReadmitRefusal::kInEffect);
  EXPECT_EQ(refusal(request(m, "m")), ReadmitRefusal::kInEffect);
}

TEST_F(Readmit, AnUnknownIdentityIsRefused) {
  auto stranger = keys::IdentitySecretKey::generate();
  EXPECT_EQ(refusal(request(stranger, "l")), ReadmitRefusal::kUnknownIdentity);
}

TEST_F(Readmit, ASignatureByAnotherKeyOrOverOtherBytesIsRefusedUnread) {
  // W signs a request naming L's identity: the bytes of L's request, W's signature.
  auto by_l = request(l, "l");
  auto by_w = make_readmit_request(w, "c0ffee", "l", kNowMs, nonce);
  auto forged = by_l;
  std::copy(by_w.end() - 64, by_w.end(), forged.end() - 64);
  auto a = answer(forged);
  ASSERT_TRUE(a.refusal);
  EXPECT_EQ(*a.refusal, ReadmitRefusal::kMalformed);
  EXPECT_FALSE(a.request);
  // One flipped bit in a signed field.
  auto flipped = by_l;
  flipped[kJoinHeaderBytes + 5 + 2] ^= 1;  // inside the cluster id
  EXPECT_EQ(refusal(flipped), ReadmitRefusal::kMalformed);
  // The refusal cannot echo a nonce it did not verify; the node reads it as such.
  auto o = open_readmit_reply(a.reply, table.params(), "l", l.public_key(), nonce);
  ASSERT_TRUE(o) << o.error().message;
  ASSERT_TRUE(std::holds_alternative<ReadmitRefused>(*o));
  EXPECT_EQ(std::get<ReadmitRefused>(*o).reason, ReadmitRefusal::kMalformed);
}

TEST_F(Readmit, ATimestampOutsideTheWindowIsRefusedWithTheMembersTime) {
  auto a = answer(request(l, "l", kNowMs - kJoinWindowMs - 1));
  ASSERT_TRUE(a.refusal);
  EXPECT_EQ(*a.refusal, ReadmitRefusal::kClockSkew);
  auto o = open_readmit_reply(a.reply, table.params(), "l", l.public_key(), nonce);
  ASSERT_TRUE(o) << o.error().message;
  ASSERT_TRUE(std::holds_alternative<ReadmitRefused>(*o));
  EXPECT_EQ(std::get<ReadmitRefused>(*o).member_time, kNowMs);
  EXPECT_EQ(refusal(request(l, "l", kNowMs + kJoinWindowMs + 1)), ReadmitRefusal::kClockSkew);
  // Inside the window: admitted.
  nonce = random_nonce();
  EXPECT_TRUE(answer(request(l, "l", kNowMs - kJoinWindowMs)).admission);
}

TEST_F(Readmit, ATombstonedIdentityIsRefused) {
  ASSERT_EQ(table.merge(tombstone_of(l.public_key(), f, 500)), MergeOutcome::kAccepted);
  EXPECT_EQ(refusal(request(l, "l")), ReadmitRefusal::kRemoved);
}

TEST_F(Readmit, ANameOtherThanTheRecordsIsRefused) {
  EXPECT_EQ(refusal(request(l, "l2")), ReadmitRefusal::kNameMismatch);
}

TEST_F(Readmit, ALostNameIsRefused) {
  auto late = keys::IdentitySecretKey::generate();
  table.merge(signed_record(late, m, "w", nth_cidr(2), 300));
  EXPECT_EQ(refusal(request(late, "w")), ReadmitRefusal::kNameHeld);
}

TEST_F(Readmit, AnotherClustersRequestIsRefused) {
  EXPECT_EQ(refusal(request(l, "l", kNowMs, "other")), ReadmitRefusal::kWrongCluster);
}

TEST_F(Readmit, AReplayedRequestIsRefused) {
  auto req = request(l, "l");
  EXPECT_TRUE(answer(req).admission);
  EXPECT_EQ(refusal(req), ReadmitRefusal::kReplayed);
}

TEST_F(Readmit, AFullClusterCidrIsRefused) {
  // Room for two node prefixes: F holds one, W and L claim the other.
  ClusterParams p{"c0ffee", IpPrefix::parse("10.244.0.0/23").value(), 24, f.public_key()};
  NodeTable small(p);
  small.merge(signed_record(f, f, "f", nth_cidr(0), 1));
  small.merge(signed_record(w, f, "w", nth_cidr(1), 100));
  ASSERT_EQ(small.merge(signed_record(l, f, "l", nth_cidr(1), 101)), MergeOutcome::kAcceptedCidrHeld);
  auto a = answer_readmit(request(l, "l"), kNowMs, ReadmitMemberContext{f, small, {}}, nonces);
  ASSERT_TRUE(a.refusal);
  EXPECT_EQ(*a.refusal, ReadmitRefusal::kCidrFull);
}

TEST_F(Readmit, TheNodeRefusesAReplyToAnotherRequestOrForAnotherNode) {
  auto a = answer(request(l, "l"));
  ASSERT_TRUE(a.admission);
  auto other = open_readmit_reply(a.reply, table.params(), "l", l.public_key(), random_nonce());
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code.value(), EACCES);
  // Replayed to another node (same nonce): the admission does not cover it.
  auto to_w = open_readmit_reply(a.reply, table.params(), "w", w.public_key(), nonce);
  ASSERT_FALSE(to_w);
  EXPECT_EQ(to_w.error().code.value(), EACCES);
  // A changed CIDR in transit: the admission does not cover it.
  auto tampered = a.reply;
  auto cidr = a.pod_cidr->to_string();
  auto at = std::search(tampered.begin(), tampered.end(), cidr.begin(), cidr.end());
  ASSERT_NE(at, tampered.end());
  at[7] = '9';  // 10.244.3.0/24 -> 10.244.9.0/24
  EXPECT_FALSE(open_readmit_reply(tampered, table.params(), "l", l.public_key(), nonce));
}

TEST_F(Readmit, MalformedFramesAreRefusedAndNeverAdmitted) {
  auto req = request(l, "l");
  for (std::size_t cut = 0; cut < req.size(); ++cut) {
    std::vector<std::uint8_t> part(req.begin(), req.begin() + cut);
    EXPECT_EQ(refusal(part), ReadmitRefusal::kMalformed) << cut;
    auto o = open_readmit_reply(part, table.params(), "l", l.public_key(), nonce);
    EXPECT_FALSE(o && std::holds_alternative<Readmitted>(*o)) << cut;
  }
}

TEST(ReadmitNonces, RemembersPairsAndForgetsTheOldestBeyondItsBound) {
  ReadmitNonces n;
  auto id = keys::IdentitySecretKey::generate().public_key();
  auto other = keys::IdentitySecretKey::generate().public_key();
  JoinNonce first = random_nonce();
  EXPECT_TRUE(n.insert(id, first));
  EXPECT_FALSE(n.insert(id, first));
  EXPECT_TRUE(n.insert(other, first));  // the pair, not the nonce alone
  for (std::size_t i = 0; i < kMaxReadmitNonces; ++i) EXPECT_TRUE(n.insert(id, random_nonce()));
  EXPECT_TRUE(n.insert(id, first));  // forgotten: the window bounds the rest
}

}  // namespace
}  // namespace meshd::controlplane
