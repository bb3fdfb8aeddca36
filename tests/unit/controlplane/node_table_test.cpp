// Validation and merge of records and tombstones as pure functions: each case
// is offered to a table and must end in one outcome, counted by its reason.
#include "cluster_fixture.h"
#include "meshd/controlplane/node_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

using namespace meshd;
using namespace meshd::controlplane;
using namespace meshd::controlplane::testing;
using keys::IdentitySecretKey;

namespace {

struct Keys {
  IdentitySecretKey founder = IdentitySecretKey::generate();
  IdentitySecretKey a = IdentitySecretKey::generate();
  IdentitySecretKey b = IdentitySecretKey::generate();
  IdentitySecretKey outsider = IdentitySecretKey::generate();
};

// A table holding the founder (self-admitted, 10.244.0.0/24) and member `a`
// (admitted by the founder, 10.244.1.0/24).
NodeTable base_table(const Keys& k) {
  NodeTable t(params_for(k.founder));
  EXPECT_EQ(t.merge(signed_record(k.founder, k.founder, "founder", nth_cidr(0), 100)),
            MergeOutcome::kAccepted);
  EXPECT_EQ(t.merge(signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200)),
            MergeOutcome::kAccepted);
  return t;
}

struct Case {
  const char* name;
  std::function<SignedRecord(const Keys&)> make;
  MergeOutcome want;
};

SignedRecord resign(NodeRecord r, const IdentitySecretKey& owner) { return sign_record(r, owner); }

}  // namespace

TEST(NodeTable, RecordCases) {
  const std::vector<Case> cases = {
      {"new member admitted by the founder",
       [](const Keys& k) { return signed_record(k.b, k.founder, "node-b", nth_cidr(2), 300); },
       MergeOutcome::kAccepted},
      {"new member admitted by a member",
       [](const Keys& k) { return signed_record(k.b, k.a, "node-b", nth_cidr(2), 300); },
       MergeOutcome::kAccepted},
      {"newer version of a member",
       [](const Keys& k) { return signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200, 2); },
       MergeOutcome::kAccepted},
      {"equal version of a member",
       [](const Keys& k) { return signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200, 1); },
       MergeOutcome::kStale},
      {"older version of a member",
       [](const Keys& k) { return signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200, 0); },
       MergeOutcome::kStale},
      {"other cluster",
       [](const Keys& k) {
         NodeRecord r = make_record(k.b, k.founder, "node-b", nth_cidr(2), 300);
         r.cluster_id = "other";
         r.admission = admit(k.founder, "other", r.name, r.identity, r.pod_cidr, 300);
         return resign(r, k.b);
       },
       MergeOutcome::kWrongCluster},
      {"signed by someone else",
       [](const Keys& k) {
         SignedRecord s = signed_record(k.b, k.founder, "node-b", nth_cidr(2), 300);
         s.signature = k.a.sign(keys::CanonicalEncoder::adopt(s.body).value());
         return s;
       },
       MergeOutcome::kBadSignature},
      {"a member's record changed by a relay",
       [](const Keys& k) {
         SignedRecord s = signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200, 5);
         NodeRecord forged = s.record;
         forged.endpoints = {Endpoint::parse("203.0.113.66:51820").value()};
         SignedRecord f = sign_record(forged, k.a);  // re-encoded bytes...
         f.signature = s.signature;                  // ...under the old signature
         return f;
       },
       MergeOutcome::kBadSignature},
      {"admitted by an outsider",
       [](const Keys& k) { return signed_record(k.b, k.outsider, "node-b", nth_cidr(2), 300); },
       MergeOutcome::kUnknownSigner},
      {"admits itself (not the founder)",
       [](const Keys& k) { return signed_record(k.b, k.b, "node-b", nth_cidr(2), 300); },
       MergeOutcome::kUnknownSigner},
      {"admission for another CIDR than the record's",
       [](const Keys& k) {
         NodeRecord r = make_record(k.b, k.founder, "node-b", nth_cidr(2), 300);
         r.pod_cidr = nth_cidr(3);  // the owner moves itself
         return resign(r, k.b);
       },
       MergeOutcome::kBadAdmission},
      {"admission for another name",
       [](const Keys& k) {
         NodeRecord r = make_record(k.b, k.founder, "node-b", nth_cidr(2), 300);
         r.name = "node-z";
         return resign(r, k.b);
       },
       MergeOutcome::kBadAdmission},
      {"name held by another live identity admitted earlier",
       [](const Keys& k) { return signed_record(k.b, k.founder, "node-a", nth_cidr(2), 300); },
       MergeOutcome::kAcceptedNameHeld},
      {"CIDR held by another identity admitted earlier",
       [](const Keys& k) { return signed_record(k.b, k.founder, "node-b", nth_cidr(1), 300); },
       MergeOutcome::kAcceptedCidrHeld},
      {"CIDR outside the cluster",
       [](const Keys& k) {
         return signed_record(k.b, k.founder, "node-b", IpPrefix::parse("10.9.0.0/24").value(), 300);
       },
       MergeOutcome::kInvalidField},
      {"CIDR of another length than the cluster's",
       [](const Keys& k) {
         return signed_record(k.b, k.founder, "node-b", IpPrefix::parse("10.244.2.0/23").value(), 300);
       },
       MergeOutcome::kInvalidField},
      {"bad name",
       [](const Keys& k) { return signed_record(k.b, k.founder, "Node_B", nth_cidr(2), 300); },
       MergeOutcome::kInvalidField},
      {"version 0",
       [](const Keys& k) { return signed_record(k.b, k.founder, "node-b", nth_cidr(2), 300, 0); },
       MergeOutcome::kInvalidField},
      {"reserved tombstone version",
       [](const Keys& k) {
         return signed_record(k.b, k.founder, "node-b", nth_cidr(2), 300, kTombstoneVersion);
       },
       MergeOutcome::kInvalidField},
      {"pending key equal to the current key",
       [](const Keys& k) {
         NodeRecord r = make_record(k.b, k.founder, "node-b", nth_cidr(2), 300);
         r.pending_key = PendingKey{r.wg_public_key, 400};
         return resign(r, k.b);
       },
       MergeOutcome::kInvalidField},
      {"pending key for a rotation",
       [](const Keys& k) {
         NodeRecord r = make_record(k.b, k.founder, "node-b", nth_cidr(2), 300);
         r.pending_key = PendingKey{keys::PrivateKey::generate().public_key(), 400};
         return resign(r, k.b);
       },
       MergeOutcome::kAccepted},
  };
  Keys k;
  for (const Case& c : cases) {
    NodeTable t = base_table(k);
    SignedRecord s = c.make(k);
    MergeOutcome got = t.merge(s);
    EXPECT_EQ(to_string(got), to_string(c.want)) << c.name;
    EXPECT_EQ(t.count(c.want), c.want == MergeOutcome::kAccepted ? 3u : 1u) << c.name;
    // Through the bytes path, as a record off the wire.
    NodeTable t2 = base_table(k);
    EXPECT_EQ(to_string(t2.merge_record_bytes(s.body, s.signature)), to_string(c.want)) << c.name;
  }
}

TEST(NodeTable, GarbageBytesAreCountedMalformed) {
  Keys k;
  NodeTable t = base_table(k);
  std::vector<std::uint8_t> junk = {0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'};
  EXPECT_EQ(t.merge_record_bytes(junk, keys::Signature{}), MergeOutcome::kMalformed);
  EXPECT_EQ(t.merge_tombstone_bytes(junk, keys::Signature{}), MergeOutcome::kMalformed);
  EXPECT_EQ(t.count(MergeOutcome::kMalformed), 2u);
}

TEST(NodeTable, TombstoneCases) {
  Keys k;
  {  // a member removes another: the record goes, its later versions are refused
    NodeTable t = base_table(k);
    EXPECT_EQ(t.merge(tombstone_of(k.a.public_key(), k.founder, 500)), MergeOutcome::kAccepted);
    EXPECT_EQ(t.find(k.a.public_key()), nullptr);
    EXPECT_EQ(t.merge(signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200, 9)),
              MergeOutcome::kRemovedIdentity);
    EXPECT_EQ(t.merge(tombstone_of(k.a.public_key(), k.founder, 600)), MergeOutcome::kStale);
    // The name is free again for a new identity (a reinstalled machine).
    EXPECT_EQ(admission_check(t, "node-a", k.b.public_key()), MergeOutcome::kAccepted);
    EXPECT_EQ(admission_check(t, "node-a", k.a.public_key()), MergeOutcome::kRemovedIdentity);
  }
  {  // an outsider cannot remove anyone
    NodeTable t = base_table(k);
    EXPECT_EQ(t.merge(tombstone_of(k.a.public_key(), k.outsider, 500)),
              MergeOutcome::kUnknownSigner);
    EXPECT_NE(t.find(k.a.public_key()), nullptr);
  }
  {  // removed_at 0 is not a time
    NodeTable t = base_table(k);
    EXPECT_EQ(t.merge(tombstone_of(k.a.public_key(), k.founder, 0)), MergeOutcome::kInvalidField);
  }
  {  // another cluster's tombstone
    NodeTable t = base_table(k);
    EXPECT_EQ(t.merge(sign_tombstone(Tombstone{"other", k.a.public_key(), k.founder.public_key(), 5},
                                     k.founder)),
              MergeOutcome::kWrongCluster);
  }
  {  // a forged signature
    NodeTable t = base_table(k);
    SignedTombstone s = tombstone_of(k.a.public_key(), k.founder, 500);
    s.signature[3] ^= 1;
    EXPECT_EQ(t.merge(s), MergeOutcome::kBadSignature);
  }
  {  // a member admitted by `a` before its removal stays; one admitted after is refused
    NodeTable t = base_table(k);
    SignedRecord before = signed_record(k.b, k.a, "node-b", nth_cidr(2), 300);
    auto c = IdentitySecretKey::generate();
    SignedRecord after = signed_record(c, k.a, "node-c", nth_cidr(3), 700);
    EXPECT_EQ(t.merge(tombstone_of(k.a.public_key(), k.founder, 500)), MergeOutcome::kAccepted);
    EXPECT_EQ(t.merge(before), MergeOutcome::kAccepted);
    EXPECT_EQ(t.merge(after), MergeOutcome::kUnknownSigner);
    // The other order ends the same.
    NodeTable u = base_table(k);
    EXPECT_EQ(u.merge(before), MergeOutcome::kAccepted);
    EXPECT_EQ(u.merge(after), MergeOutcome::kAccepted);
    EXPECT_EQ(u.merge(tombstone_of(k.a.public_key(), k.founder, 500)), MergeOutcome::kAccepted);
    EXPECT_EQ(u.digest(), t.digest());
    EXPECT_EQ(u.hash(), t.hash());
  }
}

TEST(NodeTable, TombstoneFieldsAreChecked) {
  Keys k;
  struct TombCase {
    const char* what;
    std::string name;
    IpPrefix cidr;
    std::string reason;
    MergeOutcome want;
  };
  const std::vector<TombCase> cases = {
      {"what the remover held", "node-a", nth_cidr(1), "removed by the operator",
       MergeOutcome::kAccepted},
      {"nothing known of the node", "", IpPrefix{}, "", MergeOutcome::kAccepted},
      {"reason of the longest length", "node-a", nth_cidr(1), std::string(kMaxReasonLength, 'r'),
       MergeOutcome::kAccepted},
      {"bad name", "Node_A", nth_cidr(1), "", MergeOutcome::kInvalidField},
      {"name too long", std::string(kMaxNameLength + 1, 'n'), nth_cidr(1), "",
       MergeOutcome::kInvalidField},
      {"CIDR outside the cluster", "node-a", IpPrefix::parse("10.9.1.0/24").value(), "",
       MergeOutcome::kInvalidField},
      {"CIDR of another length", "node-a", IpPrefix::parse("10.244.0.0/23").value(), "",
       MergeOutcome::kInvalidField},
      {"CIDR of another family", "node-a", IpPrefix::parse("fd00::/24").value(), "",
       MergeOutcome::kInvalidField},
      {"reason too long", "node-a", nth_cidr(1), std::string(kMaxReasonLength + 1, 'r'),
       MergeOutcome::kInvalidField},
  };
  for (const TombCase& c : cases) {
    NodeTable t = base_table(k);
    SignedTombstone s = tombstone_of(k.a.public_key(), k.founder, 500, c.name, c.cidr, c.reason);
    EXPECT_EQ(to_string(t.merge(s)), to_string(c.want)) << c.what;
    // An invalid tombstone removes nothing.
    EXPECT_EQ(t.find(k.a.public_key()) == nullptr, accepted(c.want)) << c.what;
    // Off the wire, where a too-long name or reason does not even decode.
    NodeTable u = base_table(k);
    MergeOutcome wire = u.merge_tombstone_bytes(s.body, s.signature);
    if (c.name.size() > kMaxNameLength || c.reason.size() > kMaxReasonLength)
      EXPECT_EQ(to_string(wire), to_string(MergeOutcome::kMalformed)) << c.what;
    else
      EXPECT_EQ(to_string(wire), to_string(c.want)) << c.what;
  }
  // The CIDR is free for the table at once; the name too (the reuse rule is
  // the sync engine's, docs/protocol.md "Removal").
  NodeTable t = base_table(k);
  ASSERT_EQ(t.merge(tombstone_of(k.a.public_key(), k.founder, 500, "node-a", nth_cidr(1))),
            MergeOutcome::kAccepted);
  EXPECT_EQ(lowest_free_cidr(t), nth_cidr(1));
  std::vector<IpPrefix> unreleased = {nth_cidr(1)};
  EXPECT_EQ(lowest_free_cidr(t, unreleased), nth_cidr(2));
  EXPECT_EQ(admission_check(t, "node-a", k.b.public_key()), MergeOutcome::kAccepted);
}

TEST(NodeTable, OverlapsResolveByAdmissionThenIdentity) {
  Keys k;
  auto c = IdentitySecretKey::generate();
  // b and c were admitted the same CIDR by different members at once.
  SignedRecord b = signed_record(k.b, k.founder, "node-b", nth_cidr(2), 300);
  SignedRecord c_later = signed_record(c, k.a, "node-c", nth_cidr(2), 301);
  SignedRecord c_same = signed_record(c, k.a, "node-c", nth_cidr(2), 300);
  for (const SignedRecord* other : {&c_later, &c_same}) {
    NodeTable t = base_table(k);
    t.merge(b);
    t.merge(*other);
    const SignedRecord& winner =
        precedes(b.record, other->record) ? b : *other;
    if (other == &c_later) {
      EXPECT_EQ(&winner, &b);
    }
    std::vector<keys::IdentityPublicKey> in_view;
    for (const auto& r : t.view()) in_view.push_back(r->record.identity);
    EXPECT_NE(std::find(in_view.begin(), in_view.end(), winner.record.identity), in_view.end());
    const SignedRecord& loser = &winner == &b ? *other : b;
    EXPECT_EQ(std::find(in_view.begin(), in_view.end(), loser.record.identity), in_view.end());
    EXPECT_FALSE(t.in_effect(loser.record));
    EXPECT_NE(t.find(loser.record.identity), nullptr);  // kept, so its owner learns it lost
  }
  // Same admission time: the smaller identity key wins.
  EXPECT_EQ(precedes(b.record, c_same.record), k.b.public_key() < c.public_key());
}

TEST(NodeTable, MergeIsOrderIndependent) {
  Keys k;
  std::vector<IdentitySecretKey> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(IdentitySecretKey::generate());
  std::vector<SignedRecord> recs;
  recs.push_back(signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200));
  // Two admitted through different members at the same moment, same CIDR and name.
  recs.push_back(signed_record(ids[0], k.founder, "node-x", nth_cidr(5), 400));
  recs.push_back(signed_record(ids[1], k.a, "node-x", nth_cidr(5), 400));
  recs.push_back(signed_record(ids[2], k.a, "node-y", nth_cidr(6), 410));
  recs.push_back(signed_record(ids[2], k.a, "node-y", nth_cidr(6), 410, 2));
  recs.push_back(signed_record(ids[3], ids[2], "node-z", nth_cidr(7), 420));
  SignedTombstone tomb = tombstone_of(ids[3].public_key(), k.a, 900);

  std::mt19937 rng(7);
  std::optional<std::vector<DigestEntry>> first;
  std::optional<std::vector<keys::IdentityPublicKey>> first_view;
  for (int round = 0; round < 20; ++round) {
    NodeTable t(params_for(k.founder));
    t.merge(signed_record(k.founder, k.founder, "founder", nth_cidr(0), 100));
    std::vector<int> order = {0, 1, 2, 3, 4, 5, 6, 0, 3};
    std::shuffle(order.begin(), order.end(), rng);
    // Offer everything until nothing changes: a record whose admitter came
    // later is refused now and offered again by the next anti-entropy round.
    for (int pass = 0; pass < 4; ++pass)
      for (int i : order) i == 6 ? (void)t.merge(tomb) : (void)t.merge(recs[i]);
    std::vector<keys::IdentityPublicKey> view;
    for (const auto& r : t.view()) view.push_back(r->record.identity);
    if (!first) {
      first = t.digest();
      first_view = view;
      EXPECT_EQ(view.size(), 4u);  // founder, a, the node-x winner, node-y
    }
    EXPECT_EQ(t.digest(), *first) << "round " << round;
    EXPECT_EQ(view, *first_view) << "round " << round;
  }
}

TEST(NodeTable, LowestFreeCidr) {
  Keys k;
  NodeTable t = base_table(k);
  EXPECT_EQ(lowest_free_cidr(t), nth_cidr(2));
  t.merge(signed_record(k.b, k.founder, "node-b", nth_cidr(3), 300));
  EXPECT_EQ(lowest_free_cidr(t), nth_cidr(2));  // the gap first
  // A full cluster CIDR: /23 with /24 nodes holds two.
  auto founder = IdentitySecretKey::generate();
  ClusterParams p{"c0ffee", IpPrefix::parse("10.244.0.0/23").value(), 24, founder.public_key()};
  NodeTable small(p);
  EXPECT_EQ(small.merge(signed_record(founder, founder, "f", nth_cidr(0), 1)), MergeOutcome::kAccepted);
  EXPECT_EQ(lowest_free_cidr(small), nth_cidr(1));
  EXPECT_EQ(small.merge(signed_record(k.a, founder, "a", nth_cidr(1), 2)), MergeOutcome::kAccepted);
  EXPECT_EQ(lowest_free_cidr(small), std::nullopt);
}

TEST(NodeTable, AdmissionCheck) {
  Keys k;
  NodeTable t = base_table(k);
  EXPECT_EQ(admission_check(t, "node-b", k.b.public_key()), MergeOutcome::kAccepted);
  EXPECT_EQ(admission_check(t, "node-a", k.b.public_key()), MergeOutcome::kAcceptedNameHeld);
  EXPECT_EQ(admission_check(t, "node-a", k.a.public_key()), MergeOutcome::kAccepted);  // its own
  EXPECT_EQ(admission_check(t, "Node B", k.b.public_key()), MergeOutcome::kInvalidField);
}

TEST(NodeTable, HashFollowsTheDigest) {
  Keys k;
  NodeTable t = base_table(k);
  NodeTable u = base_table(k);
  EXPECT_EQ(t.hash(), u.hash());
  t.merge(signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200, 2));
  EXPECT_NE(t.hash(), u.hash());
  u.merge(signed_record(k.a, k.founder, "node-a", nth_cidr(1), 200, 2));
  EXPECT_EQ(t.hash(), u.hash());
  EXPECT_NE(NodeTable(params_for(k.founder)).hash(), t.hash());
}
