// The sync rules message by message: who gets what, and what is answered.
#include "cluster_fixture.h"
#include "meshd/controlplane/sync_engine.h"

#include <gtest/gtest.h>

#include <set>

using namespace meshd;
using namespace meshd::controlplane;
using namespace meshd::controlplane::testing;
using keys::IdentityPublicKey;
using keys::IdentitySecretKey;

namespace {

struct Cluster {
  IdentitySecretKey founder = IdentitySecretKey::generate();
  std::vector<IdentitySecretKey> members;
  std::vector<SignedRecord> records;  // [0] is the founder's

  explicit Cluster(std::size_t n) {
    records.push_back(signed_record(founder, founder, "founder", nth_cidr(0), 100));
    for (std::size_t i = 1; i < n; ++i) {
      members.push_back(IdentitySecretKey::generate());
      records.push_back(signed_record(members.back(), founder, "node-" + std::to_string(i),
                                      nth_cidr(static_cast<std::uint32_t>(i)), 100 + i));
    }
  }
  const IdentitySecretKey& key(std::size_t i) const { return i == 0 ? founder : members[i - 1]; }
  NodeTable table(std::size_t count) const {
    NodeTable t(params_for(founder));
    for (std::size_t i = 0; i < count; ++i) EXPECT_TRUE(accepted(t.merge(records[i])));
    return t;
  }
};

SyncMessage decoded(const Outgoing& o) { return decode_message(o.bytes).value().message; }

}  // namespace

TEST(SyncEngine, PushGoesToFanoutMembersAndIsForwardedOnceNotBack) {
  Cluster c(10);
  Rng rng(1);
  SyncEngine a(c.key(1).public_key(), c.table(10));
  SignedRecord next = signed_record(c.key(1), c.founder, "node-1", nth_cidr(1), 101, 2);
  auto out = a.publish(next, rng);
  ASSERT_EQ(out.size(), SyncOptions{}.push_fanout);
  std::set<IdentityPublicKey> to;
  for (const auto& o : out) {
    to.insert(o.to);
    EXPECT_NE(o.to, c.key(1).public_key());  // never to itself
    EXPECT_EQ(decoded(o).type, MessageType::kPush);
  }
  EXPECT_EQ(to.size(), out.size());  // distinct members

  SyncEngine b(c.key(2).public_key(), c.table(10));
  auto fwd = b.receive(c.key(1).public_key(), out[0].bytes, rng);
  ASSERT_EQ(fwd.size(), SyncOptions{}.push_fanout);
  for (const auto& o : fwd) {
    EXPECT_NE(o.to, c.key(1).public_key());  // not back to the sender
    EXPECT_NE(o.to, c.key(2).public_key());
    EXPECT_EQ(decoded(o).records.at(0).body, next.body);  // the owner's bytes, relayed
  }
  // The same push again is old news: nothing forwarded.
  EXPECT_TRUE(b.receive(c.key(3).public_key(), out[0].bytes, rng).empty());
  EXPECT_EQ(b.table().count(MergeOutcome::kStale), 1u);
}

TEST(SyncEngine, RefusedChangeIsNotPushed) {
  Cluster c(4);
  Rng rng(1);
  SyncEngine a(c.key(1).public_key(), c.table(4));
  EXPECT_TRUE(a.publish(c.records[1], rng).empty());  // the version it already has
}

TEST(SyncEngine, RecordBeforeItsAdmitterInOneMessageIsAccepted) {
  Cluster c(3);
  auto late = IdentitySecretKey::generate();
  // `late` was admitted by member 2, whose record the receiver lacks.
  SignedRecord r_late = signed_record(late, c.key(2), "late", nth_cidr(9), 500);
  SyncMessage m;
  m.type = MessageType::kRecords;
  m.records = {{r_late.body, r_late.signature}, {c.records[2].body, c.records[2].signature}};
  Rng rng(1);
  SyncEngine n(c.key(1).public_key(), c.table(2));
  n.receive(c.key(0).public_key(), encode_message(m), rng);
  EXPECT_NE(n.table().find(late.public_key()), nullptr);
  EXPECT_NE(n.table().find(c.key(2).public_key()), nullptr);
}

TEST(SyncEngine, SummaryDigestRequestRecords) {
  Cluster c(6);
  Rng rng(1);
  // A knows 0..5 with node 3 at version 2; B knows 0..4 and node 1 at version 2.
  NodeTable ta = c.table(6);
  SignedRecord n3v2 = signed_record(c.key(3), c.founder, "node-3", nth_cidr(3), 103, 2);
  ta.merge(n3v2);
  NodeTable tb = c.table(5);
  SignedRecord n1v2 = signed_record(c.key(1), c.founder, "node-1", nth_cidr(1), 101, 2);
  tb.merge(n1v2);
  SyncEngine a(c.key(0).public_key(), ta);
  SyncEngine b(c.key(4).public_key(), tb);

  // Equal tables: a summary gets no answer.
  SyncEngine a2(c.key(1).public_key(), ta);
  auto s = a.tick(rng);
  ASSERT_FALSE(s.empty());
  EXPECT_TRUE(a2.receive(c.key(0).public_key(), s[0].bytes, rng).empty());

  auto digest = b.receive(c.key(0).public_key(), s[0].bytes, rng);
  ASSERT_EQ(digest.size(), 1u);
  EXPECT_EQ(decoded(digest[0]).type, MessageType::kDigest);
  auto answer = a.receive(c.key(4).public_key(), digest[0].bytes, rng);
  ASSERT_EQ(answer.size(), 2u);
  SyncMessage records = decoded(answer[0]);
  SyncMessage request = decoded(answer[1]);
  EXPECT_EQ(records.type, MessageType::kRecords);
  EXPECT_EQ(records.records.size(), 2u);  // node 3 v2 (newer) and node 5 (missing)
  EXPECT_EQ(request.type, MessageType::kRequest);
  EXPECT_EQ(request.wanted, std::vector<IdentityPublicKey>{c.key(1).public_key()});

  b.receive(c.key(0).public_key(), answer[0].bytes, rng);
  auto reply = b.receive(c.key(0).public_key(), answer[1].bytes, rng);
  ASSERT_EQ(reply.size(), 1u);
  a.receive(c.key(4).public_key(), reply[0].bytes, rng);
  EXPECT_EQ(a.table().hash(), b.table().hash());
  EXPECT_EQ(a.table().digest(), b.table().digest());
}

TEST(SyncEngine, UnsortedOrRepeatedDigestEntriesAreAnsweredRight) {
  Cluster c(4);
  Rng rng(1);
  SyncEngine a(c.key(0).public_key(), c.table(4));
  SyncMessage m;
  m.type = MessageType::kDigest;
  // Node 2 listed twice (v1 and v5), node 1 missing, entries out of order.
  m.digest = {{c.key(3).public_key(), 1}, {c.key(2).public_key(), 5},
              {c.key(0).public_key(), 1}, {c.key(2).public_key(), 1}};
  auto out = a.receive(c.key(3).public_key(), encode_message(m), rng);
  ASSERT_EQ(out.size(), 2u);
  SyncMessage records = decoded(out[0]);
  ASSERT_EQ(records.records.size(), 1u);
  EXPECT_EQ(records.records[0].body, c.records[1].body);
  EXPECT_EQ(decoded(out[1]).wanted, std::vector<IdentityPublicKey>{c.key(2).public_key()});
}

TEST(SyncEngine, TombstoneOutranksARecordInDigests) {
  Cluster c(4);
  Rng rng(1);
  NodeTable ta = c.table(4);
  ta.merge(tombstone_of(c.key(3).public_key(), c.founder, 900));
  SyncEngine a(c.key(0).public_key(), ta);
  SyncEngine b(c.key(1).public_key(), c.table(4));
  SyncMessage dg;
  dg.type = MessageType::kDigest;
  dg.digest = b.table().digest();
  auto out = a.receive(c.key(1).public_key(), encode_message(dg), rng);
  ASSERT_EQ(out.size(), 1u);
  SyncMessage m = decoded(out[0]);
  EXPECT_EQ(m.tombstones.size(), 1u);
  b.receive(c.key(0).public_key(), out[0].bytes, rng);
  EXPECT_EQ(b.table().find(c.key(3).public_key()), nullptr);
  EXPECT_EQ(a.table().hash(), b.table().hash());
}

TEST(SyncEngine, NodeRestoredFromAnOlderBackupTakesUpItsNewestRecord) {
  Cluster c(3);
  Rng rng(1);
  SignedRecord own_v7 = signed_record(c.key(1), c.founder, "node-1", nth_cidr(1), 101, 7);
  NodeTable peer_table = c.table(3);
  peer_table.merge(own_v7);
  SyncEngine peer(c.key(2).public_key(), peer_table);
  SyncEngine restored(c.key(1).public_key(), c.table(3));  // holds its own v1
  auto s = restored.tick(rng);
  auto digest = peer.receive(c.key(1).public_key(), s.at(0).bytes, rng);
  auto answer = restored.receive(c.key(2).public_key(), digest.at(0).bytes, rng);
  ASSERT_EQ(answer.size(), 1u);  // a request for its own newer record
  auto reply = peer.receive(c.key(1).public_key(), answer[0].bytes, rng);
  restored.receive(c.key(2).public_key(), reply.at(0).bytes, rng);
  EXPECT_EQ(restored.table().find(c.key(1).public_key())->record.version, 7u);
}

TEST(SyncEngine, DigestOfAnOversizedTableIsTruncatedToTheLimit) {
  Cluster c(2);
  Rng rng(1);
  NodeTable t = c.table(2);
  // Tombstones are the cheapest entries to make: one signature each.
  for (std::size_t i = 0; i < kMaxDigestEntries; ++i) {
    keys::KeyBytes k{};
    for (int b = 0; b < 4; ++b) k[b] = static_cast<std::uint8_t>(i >> (8 * b));
    k[31] = 0xee;
    ASSERT_EQ(t.merge(tombstone_of(IdentityPublicKey(k), c.founder, 10)), MergeOutcome::kAccepted);
  }
  ASSERT_GT(t.digest().size(), kMaxDigestEntries);
  SyncEngine a(c.key(1).public_key(), t);
  SyncMessage s;
  s.type = MessageType::kSummary;
  s.table_hash = TableHash{};
  auto out = a.receive(c.key(0).public_key(), encode_message(s), rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(decoded(out[0]).digest.size(), kMaxDigestEntries);
}

namespace {

// Delivers `out` and every answer between two engines until none is left.
void exchange(SyncEngine& a, SyncEngine& b, std::vector<Outgoing> out, Rng& rng) {
  std::vector<std::pair<SyncEngine*, Outgoing>> q;
  for (auto& o : out) q.push_back({&a, std::move(o)});
  while (!q.empty()) {
    auto [sender, msg] = std::move(q.back());
    q.pop_back();
    SyncEngine* to = msg.to == a.self() ? &a : &b;
    if (msg.to != a.self() && msg.to != b.self()) continue;  // a third node: not here
    for (auto& r : to->receive(sender->self(), msg.bytes, rng)) q.push_back({to, std::move(r)});
  }
}

}  // namespace

TEST(SyncEngine, FounderAloneIsSettled) {
  Cluster c(1);
  EXPECT_TRUE(SyncEngine(c.key(0).public_key(), c.table(1)).settled());
}

TEST(SyncEngine, SettledOnceEveryMemberAcknowledged) {
  Cluster c(3);
  Rng rng(1);
  SyncEngine f(c.key(0).public_key(), c.table(3));
  SyncEngine m1(c.key(1).public_key(), c.table(3));
  SyncEngine n(c.key(2).public_key(), c.table(3));
  EXPECT_FALSE(n.settled());
  auto probe = n.settle_probe();
  ASSERT_EQ(probe.size(), 2u);  // the founder and member 1
  EXPECT_TRUE(decoded(probe[0]).reply_wanted);
  exchange(n, probe[0].to == f.self() ? f : m1, {probe[0]}, rng);
  EXPECT_FALSE(n.settled());  // one of two
  EXPECT_EQ(n.settle_probe().size(), 1u);
  exchange(n, probe[1].to == f.self() ? f : m1, {probe[1]}, rng);
  EXPECT_TRUE(n.settled());
  EXPECT_TRUE(n.settle_probe().empty());
}

TEST(SyncEngine, EarlierConflictingAdmissionIsSeenBeforeSettling) {
  Cluster c(3);
  Rng rng(1);
  // The founder admitted `early` to node 2's CIDR before it admitted node 2
  // (another member handed node 2 the same CIDR at the same time).
  auto early = IdentitySecretKey::generate();
  NodeTable tf = c.table(3);
  ASSERT_EQ(tf.merge(signed_record(early, c.founder, "early", nth_cidr(2), 50)),
            MergeOutcome::kAccepted);
  SyncEngine f(c.key(0).public_key(), tf);
  NodeTable tn = c.table(3);
  SyncEngine n(c.key(2).public_key(), tn);
  SyncEngine m1(c.key(1).public_key(), c.table(3));
  exchange(n, m1, n.settle_probe(), rng);  // member 1 acknowledges: it knows no conflict
  exchange(n, f, n.settle_probe(), rng);   // the founder answers with its digest
  EXPECT_NE(n.table().find(early.public_key()), nullptr);
  EXPECT_FALSE(n.table().in_effect(n.table().find(c.key(2).public_key())->record));
  EXPECT_FALSE(n.settled());
  exchange(n, f, n.settle_probe(), rng);
  EXPECT_FALSE(n.settled());  // acknowledged or not, its CIDR is lost
}

TEST(SyncEngine, NewAllocationNeedsNewAcknowledgements) {
  Cluster c(2);
  Rng rng(1);
  SyncEngine f(c.key(0).public_key(), c.table(2));
  SyncEngine n(c.key(1).public_key(), c.table(2));
  exchange(n, f, n.settle_probe(), rng);
  ASSERT_TRUE(n.settled());
  // Re-admitted to another CIDR (version 2): settled again only after a new round of acks.
  auto moved = signed_record(c.key(1), c.founder, "node-1", nth_cidr(7), 900, 2);
  n.publish(moved, rng);  // the push is lost
  EXPECT_FALSE(n.settled());
  exchange(n, f, n.settle_probe(), rng);  // the founder lacked it: gets it, no acknowledgement yet
  EXPECT_FALSE(n.settled());
  exchange(n, f, n.settle_probe(), rng);
  EXPECT_TRUE(n.settled());
}
