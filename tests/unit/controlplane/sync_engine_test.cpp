// The sync rules message by message: who gets what, and what is answered.
#include "cluster_fixture.h"
#include "meshd/controlplane/sync_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// The tombstone release rule (docs/protocol.md, "Removal"): a removed node's
// CIDR is reserved until every member showed the remover it holds the
// tombstone.
namespace {

// The founder removes node `victim` of `c` (its name and CIDR in the tombstone).
SignedTombstone removal_of(const Cluster& c, std::size_t victim, std::uint64_t at = 900) {
  return tombstone_of(c.key(victim).public_key(), c.founder, at, "node-" + std::to_string(victim),
                      nth_cidr(static_cast<std::uint32_t>(victim)));
}

// The tombstone as a member relays it.
std::vector<std::uint8_t> pushed(const SignedTombstone& t) {
  SyncMessage m;
  m.type = MessageType::kPush;
  m.tombstones = {{t.body, t.signature}};
  return encode_message(m);
}

std::set<IdentityPublicKey> targets(const std::vector<Outgoing>& out) {
  std::set<IdentityPublicKey> to;
  for (const auto& o : out) {
    EXPECT_EQ(decoded(o).type, MessageType::kSummary);
    EXPECT_TRUE(decoded(o).reply_wanted);
    to.insert(o.to);
  }
  return to;
}

}  // namespace

TEST(SyncEngine, TombstoneReleasedOnceEveryMemberShowedIt) {
  Cluster c(4);
  Rng rng(1);
  SyncEngine f(c.key(0).public_key(), c.table(4));
  SyncEngine m1(c.key(1).public_key(), c.table(4));
  SyncEngine m2(c.key(2).public_key(), c.table(4));
  const IdentityPublicKey gone = c.key(3).public_key();
  SignedTombstone t = removal_of(c, 3);
  f.publish(t, rng);  // the pushes are lost
  EXPECT_FALSE(f.released(gone));
  EXPECT_TRUE(f.has_unreleased());
  EXPECT_EQ(f.unreleased_cidrs(), std::vector<IpPrefix>{nth_cidr(3)});
  // Asked: the two members, never the removed node nor itself.
  EXPECT_EQ(targets(f.release_probe()),
            (std::set<IdentityPublicKey>{c.key(1).public_key(), c.key(2).public_key()}));

  // Member 1 got the tombstone first: its table equals the founder's and it
  // answers the probe with its Summary.
  m1.receive(f.self(), pushed(t), rng);
  ASSERT_EQ(m1.table().hash(), f.table().hash());
  for (auto& p : f.release_probe())
    if (p.to == m1.self()) exchange(f, m1, {p}, rng);
  EXPECT_EQ(targets(f.release_probe()), std::set<IdentityPublicKey>{m2.self()});
  EXPECT_FALSE(f.released(gone));

  // Member 2 lacks it: the probe gets its Digest, the founder sends the
  // tombstone, and member 2 has shown nothing yet.
  for (auto& p : f.release_probe()) exchange(f, m2, {p}, rng);
  EXPECT_NE(m2.table().tombstone(gone), nullptr);
  EXPECT_FALSE(f.released(gone));
  EXPECT_EQ(targets(f.release_probe()), std::set<IdentityPublicKey>{m2.self()});
  // The next probe finds equal tables.
  for (auto& p : f.release_probe()) exchange(f, m2, {p}, rng);
  EXPECT_TRUE(f.released(gone));
  EXPECT_FALSE(f.has_unreleased());
  EXPECT_TRUE(f.unreleased_cidrs().empty());
  EXPECT_TRUE(f.release_probe().empty());
  // Members know nothing of each other's holdings: their own view is theirs.
  EXPECT_FALSE(m2.released(gone));
}

TEST(SyncEngine, DigestListingTheTombstoneShowsIt) {
  Cluster c(4);
  Rng rng(1);
  NodeTable tf = c.table(4);
  NodeTable t1 = c.table(4);
  SignedTombstone t = removal_of(c, 3);
  ASSERT_EQ(t1.merge(t), MergeOutcome::kAccepted);
  // Member 1 also holds a newer record of member 2: the tables differ.
  ASSERT_EQ(t1.merge(signed_record(c.key(2), c.founder, "node-2", nth_cidr(2), 102, 2)),
            MergeOutcome::kAccepted);
  SyncEngine f(c.key(0).public_key(), tf);
  SyncEngine m1(c.key(1).public_key(), t1);
  f.publish(t, rng);
  auto probe = f.release_probe();
  std::vector<Outgoing> to_m1;
  for (auto& p : probe)
    if (p.to == m1.self()) to_m1.push_back(p);
  ASSERT_EQ(to_m1.size(), 1u);
  auto digest = m1.receive(f.self(), to_m1[0].bytes, rng);
  ASSERT_EQ(digest.size(), 1u);
  ASSERT_EQ(decoded(digest[0]).type, MessageType::kDigest);
  f.receive(m1.self(), digest[0].bytes, rng);  // the founder asks for node 2's newer record
  EXPECT_NE(f.table().hash(), m1.table().hash());
  EXPECT_EQ(targets(f.release_probe()), std::set<IdentityPublicKey>{c.key(2).public_key()});
}

TEST(SyncEngine, EqualSummaryBeforeTheTombstoneDoesNotShowIt) {
  Cluster c(3);
  Rng rng(1);
  SyncEngine f(c.key(0).public_key(), c.table(3));
  SyncEngine m1(c.key(1).public_key(), c.table(3));
  SyncEngine m2(c.key(2).public_key(), c.table(3));
  // Equal tables, no tombstone: member 1's Summary matches.
  auto s = m1.tick(rng);
  ASSERT_FALSE(s.empty());
  for (auto& o : s) {
    if (o.to == f.self()) {
      EXPECT_TRUE(f.receive(m1.self(), o.bytes, rng).empty());
    }
  }
  // Then a removal (of a node that never had a record here: nothing else
  // changes) arrives; the earlier match was taken without it.
  auto outsider = IdentitySecretKey::generate();
  SignedTombstone first = tombstone_of(outsider.public_key(), c.founder, 900, "old", nth_cidr(9));
  f.publish(first, rng);
  EXPECT_TRUE(targets(f.release_probe()).contains(m1.self()));
  // Member 1 shows it (equal Summary after it took it up); a second removal
  // then arrives: the first is shown, the second is not.
  m1.receive(f.self(), pushed(first), rng);
  m2.receive(f.self(), pushed(first), rng);
  for (SyncEngine* m : {&m1, &m2})
    for (auto& o : f.release_probe())
      if (o.to == m->self()) exchange(f, *m, {o}, rng);
  EXPECT_TRUE(f.released(outsider.public_key()));
  auto second = IdentitySecretKey::generate();
  f.publish(tombstone_of(second.public_key(), c.founder, 950, "older", nth_cidr(10)), rng);
  EXPECT_TRUE(f.released(outsider.public_key()));
  EXPECT_FALSE(f.released(second.public_key()));
  EXPECT_EQ(f.unreleased_cidrs(), std::vector<IpPrefix>{nth_cidr(10)});
  // Member 1's Summary, without the second, no longer matches: it gets a
  // Digest, and shows nothing.
  auto stale = m1.tick(rng);
  for (auto& o : stale)
    if (o.to == f.self()) {
      auto answer = f.receive(m1.self(), o.bytes, rng);
      ASSERT_EQ(answer.size(), 1u);
      EXPECT_EQ(decoded(answer[0]).type, MessageType::kDigest);
    }
  EXPECT_FALSE(f.released(second.public_key()));
}

TEST(SyncEngine, MemberThatJoinedSinceMustShowTheTombstone) {
  Cluster c(4);
  Rng rng(1);
  SyncEngine f(c.key(0).public_key(), c.table(3));  // node 3 not known yet
  SyncEngine m1(c.key(1).public_key(), c.table(3));
  SyncEngine m2(c.key(2).public_key(), c.table(3));
  auto victim = IdentitySecretKey::generate();
  SignedTombstone t = tombstone_of(victim.public_key(), c.founder, 900, "gone", nth_cidr(20));
  f.publish(t, rng);
  // Node 3 joins (its record reaches everyone) before the members answered.
  SyncMessage rec;
  rec.type = MessageType::kPush;
  rec.records = {{c.records[3].body, c.records[3].signature}};
  for (SyncEngine* e : {&f, &m1, &m2}) e->receive(c.key(0).public_key(), encode_message(rec), rng);
  m1.receive(f.self(), pushed(t), rng);
  m2.receive(f.self(), pushed(t), rng);
  for (SyncEngine* m : {&m1, &m2})
    for (auto& o : f.release_probe())
      if (o.to == m->self()) exchange(f, *m, {o}, rng);
  EXPECT_FALSE(f.released(victim.public_key()));
  EXPECT_EQ(targets(f.release_probe()), std::set<IdentityPublicKey>{c.key(3).public_key()});
  SyncEngine m3(c.key(3).public_key(), c.table(4));  // its table has no tombstone yet
  for (int i = 0; i < 2; ++i)
    for (auto& o : f.release_probe()) exchange(f, m3, {o}, rng);
  EXPECT_TRUE(f.released(victim.public_key()));
  EXPECT_TRUE(f.unreleased_cidrs().empty());
}

TEST(SyncEngine, RemovedMemberNeverBlocksARelease) {
  Cluster c(4);
  Rng rng(1);
  SyncEngine f(c.key(0).public_key(), c.table(4));
  SyncEngine m1(c.key(1).public_key(), c.table(4));
  // Node 3 is removed; member 2 is down and never answers.
  f.publish(removal_of(c, 3), rng);
  for (auto& o : f.release_probe())
    if (o.to == m1.self()) exchange(f, m1, {o}, rng);
  for (auto& o : f.release_probe())
    if (o.to == m1.self()) exchange(f, m1, {o}, rng);
  EXPECT_FALSE(f.released(c.key(3).public_key()));
  EXPECT_EQ(targets(f.release_probe()), std::set<IdentityPublicKey>{c.key(2).public_key()});
  // The removed node itself showing it (it still talks) counts for nothing,
  // and what it showed before it was removed is forgotten.
  SyncEngine gone(c.key(3).public_key(), f.table());
  for (auto& o : gone.tick(rng))
    if (o.to == f.self()) f.receive(gone.self(), o.bytes, rng);
  EXPECT_FALSE(f.released(c.key(3).public_key()));
  // Member 2, down, is removed (pruned) in turn: it no longer blocks either
  // removal once member 1 shows the second one.
  f.publish(removal_of(c, 2, 950), rng);
  EXPECT_EQ(targets(f.release_probe()), std::set<IdentityPublicKey>{m1.self()});
  for (int i = 0; i < 2; ++i)
    for (auto& o : f.release_probe()) exchange(f, m1, {o}, rng);
  EXPECT_TRUE(f.released(c.key(3).public_key()));
  EXPECT_TRUE(f.released(c.key(2).public_key()));
  EXPECT_FALSE(f.has_unreleased());
}

TEST(SyncEngine, LoneMemberReleasesAtOnceAndARestartForgets) {
  Cluster c(2);
  Rng rng(1);
  NodeTable alone = c.table(1);
  auto victim = IdentitySecretKey::generate();
  SignedTombstone t = tombstone_of(victim.public_key(), c.founder, 900, "gone", nth_cidr(5));
  SyncEngine f(c.key(0).public_key(), alone);
  f.publish(t, rng);
  EXPECT_TRUE(f.released(victim.public_key()));  // no other member to tell
  // Restarted with the tombstone and a member in its store: unreleased until
  // the member shows it again.
  NodeTable restored = c.table(2);
  ASSERT_EQ(restored.merge(t), MergeOutcome::kAccepted);
  SyncEngine again(c.key(0).public_key(), restored);
  SyncEngine m1(c.key(1).public_key(), restored);
  EXPECT_FALSE(again.released(victim.public_key()));
  EXPECT_EQ(again.unreleased_cidrs(), std::vector<IpPrefix>{nth_cidr(5)});
  for (auto& o : again.release_probe()) exchange(again, m1, {o}, rng);
  EXPECT_TRUE(again.released(victim.public_key()));
  // Not a tombstone this node holds: never released.
  EXPECT_FALSE(again.released(c.key(1).public_key()));
}

TEST(SyncEngine, CidrTheRemovedRecordHeldIsReservedToo) {
  Cluster c(3);
  Rng rng(1);
  // The remover lagged behind a re-admission: its tombstone names CIDR 2,
  // this member's table holds the node's record at CIDR 7.
  NodeTable t = c.table(3);
  ASSERT_EQ(t.merge(signed_record(c.key(2), c.founder, "node-2", nth_cidr(7), 700, 2)),
            MergeOutcome::kAccepted);
  SyncEngine m1(c.key(1).public_key(), t);
  m1.receive(c.key(0).public_key(), pushed(removal_of(c, 2)), rng);
  auto cidrs = m1.unreleased_cidrs();
  std::sort(cidrs.begin(), cidrs.end());
  EXPECT_EQ(cidrs, (std::vector<IpPrefix>{nth_cidr(2), nth_cidr(7)}));
  std::vector<IpPrefix> reserved = m1.unreleased_cidrs();
  EXPECT_EQ(lowest_free_cidr(m1.table(), reserved), nth_cidr(3));
}

// Datastore mode: a tombstone merged from the datastore, not by sync, is
// numbered like one that arrived by sync, so the release rule still holds.
TEST(SyncEngine, ATombstoneAppliedFromTheDatastoreIsTakenNoteOf) {
  Cluster c(3);
  Rng rng(1);
  SyncEngine f(c.key(0).public_key(), c.table(3));
  SyncEngine m1(c.key(1).public_key(), c.table(3));
  const IdentityPublicKey gone = c.key(2).public_key();
  SignedTombstone t = removal_of(c, 2);
  auto outcome = f.apply_external([&](NodeTable& table) { return table.merge(t); });
  EXPECT_EQ(outcome, MergeOutcome::kAccepted);
  ASSERT_NE(f.table().tombstone(gone), nullptr);
  EXPECT_TRUE(f.has_unreleased());
  EXPECT_EQ(f.unreleased_cidrs(), std::vector<IpPrefix>{nth_cidr(2)});
  EXPECT_EQ(targets(f.release_probe()), std::set<IdentityPublicKey>{m1.self()});
  // Applying nothing new changes nothing.
  f.apply_external([](NodeTable&) { return 0; });
  EXPECT_EQ(f.unreleased_cidrs(), std::vector<IpPrefix>{nth_cidr(2)});
}
