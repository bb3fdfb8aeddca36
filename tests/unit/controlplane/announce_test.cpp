// The underlay announcement as pure functions: a member's own record in a
// frame for another member's join listener; the member merges it by the
// sync rules and pushes it on; the node reads the reply.
#include "cluster_fixture.h"
#include "meshd/controlplane/announce.h"
#include "meshd/controlplane/join_exchange.h"

#include <gtest/gtest.h>

namespace meshd::controlplane {
namespace {

using testing::nth_cidr;
using testing::params_for;
using testing::signed_record;
using testing::tombstone_of;

// A founder F, members M and N, all admitted by F; the table is M's.
class Announce : public ::testing::Test {
 protected:
  Announce() : engine(m.public_key(), NodeTable(params_for(f))) {
    (void)engine.publish(signed_record(f, f, "f", nth_cidr(0), 1), rng);
    (void)engine.publish(signed_record(m, f, "m", nth_cidr(1), 10), rng);
    (void)engine.publish(n_v(5), rng);
  }
  // N's record at `version` with a fresh WireGuard key (a rotation's result).
  SignedRecord n_v(std::uint64_t version) { return signed_record(n, f, "n", nth_cidr(2), 20, version); }
  AnnounceAnswer answer(std::span<const std::uint8_t> frame) { return answer_announce(frame, engine, rng); }

  keys::IdentitySecretKey f = keys::IdentitySecretKey::generate();
  keys::IdentitySecretKey m = keys::IdentitySecretKey::generate();
  keys::IdentitySecretKey n = keys::IdentitySecretKey::generate();
  Rng rng{7};
  SyncEngine engine;
};

TEST_F(Announce, RequestRoundTripsAndStaysWithinTheJoinListenersBound) {
  auto r = n_v(9);
  auto frame = make_announce_request("c0ffee", r);
  EXPECT_LE(frame.size(), kMaxJoinRequestBytes);
  EXPECT_EQ(std::string(frame.begin(), frame.begin() + 4), "MJRN");
  auto d = decode_announce_request(frame);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->cluster_id, "c0ffee");
  EXPECT_EQ(d->record.record, r.record);
  EXPECT_EQ(d->record.body, r.body);
  EXPECT_EQ(d->record.signature, r.signature);
}

TEST_F(Announce, ReplyRoundTrips) {
  AnnounceReply stale{AnnounceStatus::kStale, 42, {}};
  auto d = decode_announce_reply(make_announce_reply(stale));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->status, AnnounceStatus::kStale);
  EXPECT_EQ(d->held_version, 42u);

  auto t = tombstone_of(n.public_key(), m, 77, "n", nth_cidr(2));
  auto r = decode_announce_reply(make_announce_reply(AnnounceReply{AnnounceStatus::kRemoved, {}, t}));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->tombstone);
  EXPECT_EQ(r->tombstone->tombstone, t.tombstone);
  EXPECT_EQ(r->tombstone->signature, t.signature);
}

TEST_F(Announce, AStaleReplyWithoutTheHeldVersionOrAnUnknownStatusIsRefused) {
  auto f1 = make_announce_reply(AnnounceReply{AnnounceStatus::kStale, {}, {}});
  EXPECT_FALSE(decode_announce_reply(f1));
  auto f2 = make_announce_reply(AnnounceReply{AnnounceStatus::kMerged, {}, {}});
  f2[12 + 5] = 99;  // the status field's value
  EXPECT_FALSE(decode_announce_reply(f2));
}

TEST_F(Announce, MalformedRequestsAreRefused) {
  auto good = make_announce_request("c0ffee", n_v(9));
  EXPECT_FALSE(decode_announce_request({}));
  auto cut = good;
  cut.pop_back();
  EXPECT_FALSE(decode_announce_request(cut));  // the header's length disagrees
  auto magic = good;
  magic[3] = 'Q';
  EXPECT_FALSE(decode_announce_request(magic));
  auto reserved = good;
  reserved[6] = 1;
  EXPECT_FALSE(decode_announce_request(reserved));
  std::vector<std::uint8_t> huge(kMaxJoinRequestBytes + 1, 0);
  std::copy(good.begin(), good.begin() + 12, huge.begin());
  EXPECT_FALSE(decode_announce_request(huge));
  auto a = answer(cut);
  EXPECT_EQ(a.status, AnnounceStatus::kMalformed);
  auto reply = decode_announce_reply(a.reply);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, AnnounceStatus::kMalformed);
}

TEST_F(Announce, ANewerVersionIsMergedAndPushedOnButNotToItsOwner) {
  auto r = n_v(9);
  auto a = answer(make_announce_request("c0ffee", r));
  EXPECT_EQ(a.status, AnnounceStatus::kMerged);
  EXPECT_EQ(a.outcome, MergeOutcome::kAccepted);
  ASSERT_NE(engine.table().find(n.public_key()), nullptr);
  EXPECT_EQ(engine.table().find(n.public_key())->record.wg_public_key, r.record.wg_public_key);
  EXPECT_FALSE(a.out.empty());
  for (const auto& o : a.out) EXPECT_NE(o.to, n.public_key());
  auto reply = decode_announce_reply(a.reply);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, AnnounceStatus::kMerged);
}

TEST_F(Announce, AnOlderOrEqualVersionLosesAndTheReplySaysWhichVersionIsHeld) {
  auto before = engine.table().hash();
  for (std::uint64_t v : {3u, 5u}) {
    auto a = answer(make_announce_request("c0ffee", n_v(v)));
    EXPECT_EQ(a.status, AnnounceStatus::kStale);
    EXPECT_TRUE(a.out.empty());
    auto reply = decode_announce_reply(a.reply);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->held_version, 5u);
  }
  EXPECT_EQ(engine.table().hash(), before);
}

TEST_F(Announce, ARecordNotSignedByItsOwnerIsRefused) {
  auto r = n_v(9);
  r.signature[0] ^= 1;
  auto a = answer(make_announce_request("c0ffee", r));
  EXPECT_EQ(a.status, AnnounceStatus::kRefused);
  EXPECT_EQ(a.outcome, MergeOutcome::kBadSignature);
  EXPECT_EQ(engine.table().find(n.public_key())->record.version, 5u);
}

TEST_F(Announce, AnotherClusterOrAnUnknownIdentityIsRefused) {
  EXPECT_EQ(answer(make_announce_request("other", n_v(9))).status, AnnounceStatus::kWrongCluster);
  auto stranger = keys::IdentitySecretKey::generate();
  auto a = answer(make_announce_request("c0ffee", signed_record(stranger, f, "s", nth_cidr(3), 30, 9)));
  EXPECT_EQ(a.status, AnnounceStatus::kUnknownIdentity);
  EXPECT_EQ(engine.table().find(stranger.public_key()), nullptr);
}

TEST_F(Announce, ARemovedIdentityStaysRemovedAndTheReplyCarriesItsTombstone) {
  auto t = tombstone_of(n.public_key(), m, 77, "n", nth_cidr(2));
  (void)engine.publish(t, rng);
  auto a = answer(make_announce_request("c0ffee", n_v(9)));
  EXPECT_EQ(a.status, AnnounceStatus::kRemoved);
  EXPECT_EQ(engine.table().find(n.public_key()), nullptr);
  auto reply = decode_announce_reply(a.reply);
  ASSERT_TRUE(reply);
  ASSERT_TRUE(reply->tombstone);
  EXPECT_TRUE(tombstone_signature_valid(*reply->tombstone));
  EXPECT_EQ(reply->tombstone->tombstone.removed, n.public_key());
}

}  // namespace
}  // namespace meshd::controlplane
