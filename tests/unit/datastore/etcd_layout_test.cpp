// The etcd key layout and the pure rules on top of it (etcd_layout.h): keys
// and their parser, the value codecs, the allocation transaction and the
// claims' view, and applying watch events and listings to a NodeTable,
// including what someone with etcd credentials could write there.
#include "meshd/datastore/etcd_layout.h"

#include "tests/unit/controlplane/cluster_fixture.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <random>

namespace meshd::datastore {
namespace {

using controlplane::ClusterParams;
using controlplane::MergeOutcome;
using controlplane::NodeTable;
using controlplane::SignedRecord;
using controlplane::SignedTombstone;
using controlplane::testing::nth_cidr;
using controlplane::testing::params_for;
using controlplane::testing::signed_record;
using controlplane::testing::tombstone_of;
using keys::IdentitySecretKey;

constexpr std::string_view P = "/meshd/";
constexpr std::string_view C = "c0ffee";  // cluster_fixture.h's cluster id

IpPrefix prefix(std::string_view text) { return IpPrefix::parse(text).value(); }

KeyValue kv(std::string key, std::string value, Revision rev = 1) {
  return KeyValue{std::move(key), std::move(value), rev, rev, 1, 0};
}

WatchEvent put(std::string key, std::string value, Revision rev = 1) {
  return WatchEvent{WatchEvent::Type::kPut, kv(std::move(key), std::move(value), rev), {}};
}

WatchEvent put_record(const SignedRecord& r, Revision rev = 1) {
  return put(record_key(P, C, r.record.identity), record_value(r), rev);
}

WatchEvent put_tombstone(const SignedTombstone& t, Revision rev = 1) {
  return put(tombstone_key(P, C, t.tombstone.removed), tombstone_value(t), rev);
}

struct Cluster {
  IdentitySecretKey founder = IdentitySecretKey::generate();
  IdentitySecretKey a = IdentitySecretKey::generate();
  IdentitySecretKey b = IdentitySecretKey::generate();
  ClusterParams params = params_for(founder);
  SignedRecord founder_rec = signed_record(founder, founder, "founder", nth_cidr(0), 100);
  SignedRecord a_rec = signed_record(a, founder, "node-a", nth_cidr(1), 200);
  // Admitted by a member, not the founder: needs a's record first.
  SignedRecord b_rec = signed_record(b, a, "node-b", nth_cidr(2), 300);
};

// ---- Keys -------------------------------------------------------------------

TEST(EtcdLayout, KeysHaveTheDocumentedForm) {
  keys::KeyBytes bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 8 + 1);
  keys::IdentityPublicKey id(bytes);
  std::string hex = identity_hex(id);
  EXPECT_EQ(hex, "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9");
  EXPECT_EQ(params_key(P, C), "/meshd/c0ffee/params");
  EXPECT_EQ(record_key(P, C, id), "/meshd/c0ffee/records/" + hex);
  EXPECT_EQ(tombstone_key(P, C, id), "/meshd/c0ffee/tombstones/" + hex);
  EXPECT_EQ(alive_key(P, C, id), "/meshd/c0ffee/alive/" + hex);
  EXPECT_EQ(subnet_key(P, C, prefix("10.244.3.0/24")), "/meshd/c0ffee/subnets/10.244.3.0-24");
  EXPECT_EQ(subnet_key(P, C, prefix("fd00:1::/64")), "/meshd/c0ffee/subnets/fd00:1::-64");
  EXPECT_EQ(cluster_prefix(P, C), "/meshd/c0ffee/");
  EXPECT_EQ(family_prefix(P, C, KeyFamily::kRecord), "/meshd/c0ffee/records/");
  EXPECT_EQ(family_prefix(P, C, KeyFamily::kTombstone), "/meshd/c0ffee/tombstones/");
  EXPECT_EQ(family_prefix(P, C, KeyFamily::kSubnet), "/meshd/c0ffee/subnets/");
  EXPECT_EQ(family_prefix(P, C, KeyFamily::kAlive), "/meshd/c0ffee/alive/");
  EXPECT_EQ(family_prefix(P, C, KeyFamily::kParams), params_key(P, C));
  EXPECT_EQ(family_prefix(P, C, KeyFamily::kUnknown), cluster_prefix(P, C));
  // Every key of a family lies under its prefix.
  EXPECT_TRUE(record_key(P, C, id).starts_with(family_prefix(P, C, KeyFamily::kRecord)));
  EXPECT_EQ(parse_identity_hex(hex), id);
}

TEST(EtcdLayout, ParseKeyRoundTripsEveryFamily) {
  auto id = IdentitySecretKey::generate().public_key();
  EXPECT_EQ(parse_key(P, C, params_key(P, C)).family, KeyFamily::kParams);
  for (KeyFamily f : {KeyFamily::kRecord, KeyFamily::kTombstone, KeyFamily::kAlive}) {
    std::string key = family_prefix(P, C, f) + identity_hex(id);
    ParsedKey k = parse_key(P, C, key);
    EXPECT_EQ(k.family, f) << key;
    EXPECT_EQ(k.identity, id) << key;
  }
  for (auto text : {"10.244.3.0/24", "10.0.0.0/8", "0.0.0.0/0", "192.0.2.7/32", "fd00:1::/64",
                    "::/0", "2001:db8::1/128", "::ffff:0.0.0.0/96"}) {
    ParsedKey k = parse_key(P, C, subnet_key(P, C, prefix(text)));
    EXPECT_EQ(k.family, KeyFamily::kSubnet) << text;
    EXPECT_EQ(k.cidr, prefix(text)) << text;
  }
}

TEST(EtcdLayout, ParseKeyCallsAnythingMalformedUnknown) {
  auto id = IdentitySecretKey::generate().public_key();
  std::string hex = identity_hex(id);
  std::string upper = hex;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  const std::string base = "/meshd/c0ffee/";
  for (const std::string& key : std::vector<std::string>{
           "",
           "/meshd/",
           base,
           base + "params/",
           base + "paramsx",
           base + "records/",
           base + "records/" + hex + "/x",
           base + "records/" + hex.substr(1),
           base + "records/" + hex + "0",
           base + "records/" + upper,
           base + "records/" + hex.substr(0, 63) + "g",
           base + "record/" + hex,
           base + "nodes/" + hex,
           "/meshd/other/records/" + hex,       // another cluster
           "/meshd/c0ffee2/records/" + hex,     // a cluster whose id extends ours
           "/other/c0ffee/records/" + hex,      // another prefix
           "/meshd/c0ffee" + std::string("/records/") + hex + std::string(1, '\0'),
           base + "subnets/",
           base + "subnets/10.244.3.0/24",      // '/' instead of '-'
           base + "subnets/10.244.3.1-24",      // host bits
           base + "subnets/010.244.3.0-24",     // another spelling
           base + "subnets/10.244.3.0-024",
           base + "subnets/10.244.3.0-+24",
           base + "subnets/10.244.3.0-33",
           base + "subnets/10.244.3.0-",
           base + "subnets/-24",
           base + "subnets/10.244.3.0-24-24",
           base + "subnets/FD00:1::-64",        // upper case
           base + "subnets/fd00:1:0::-64",      // not the canonical form
           base + "subnets/fd00:1::-129",
           base + "subnets/10.244.3.0-99999999999999999999",
           base + "subnets/node-a",
       }) {
    EXPECT_EQ(parse_key(P, C, key).family, KeyFamily::kUnknown) << key;
  }
}

// ---- Values -----------------------------------------------------------------

TEST(EtcdLayout, SignedValueIsBodyThenSignature) {
  Cluster c;
  std::string v = record_value(c.a_rec);
  ASSERT_EQ(v.size(), c.a_rec.body.size() + keys::kSignatureLength);
  auto d = decode_signed_value(v);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->body, c.a_rec.body);
  EXPECT_EQ(d->signature, c.a_rec.signature);

  EXPECT_FALSE(decode_signed_value(""));
  EXPECT_FALSE(decode_signed_value(std::string(keys::kSignatureLength, 'x')));  // no body
  EXPECT_TRUE(decode_signed_value(std::string(kMaxSignedValueBytes, 'x')));    // bounds only
  auto big = decode_signed_value(std::string(kMaxSignedValueBytes + 1, 'x'));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("at most 4160"), std::string::npos) << big.error().message;
}

TEST(EtcdLayout, ParamsRoundTripAndAreChecked) {
  Cluster c;
  auto back = decode_params(encode_params(c.params));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(same_params(*back, c.params));
  // Deterministic: the founder's put and a later compare see the same bytes.
  EXPECT_EQ(encode_params(*back), encode_params(c.params));

  auto bad = [&](ClusterParams p) { return decode_params(encode_params(p)); };
  ClusterParams p = c.params;
  p.cluster_id = "";
  EXPECT_FALSE(bad(p));
  p = c.params;
  p.node_prefix_length = 16;  // not longer than the cluster's /16
  auto e = bad(p);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("node prefix length 16"), std::string::npos);
  p.node_prefix_length = 33;
  EXPECT_FALSE(bad(p));
  p = c.params;
  p.founder = keys::IdentityPublicKey();
  EXPECT_FALSE(bad(p));
  p = c.params;
  p.cluster_cidr = prefix("10.244.1.0/16");  // host bits
  EXPECT_FALSE(bad(p));

  EXPECT_FALSE(decode_params(""));
  EXPECT_FALSE(decode_params("{\"cluster_id\":\"c0ffee\"}"));
  EXPECT_FALSE(decode_params(encode_claim(claim_of(c.a_rec.record))));  // another context
  std::string cut = encode_params(c.params);
  cut.pop_back();
  EXPECT_FALSE(decode_params(cut));
}

TEST(EtcdLayout, ClaimRoundTripsAndValidatesItsAdmission) {
  Cluster c;
  SubnetClaim claim = claim_of(c.b_rec.record);
  auto back = decode_claim(encode_claim(claim));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, claim);
  EXPECT_TRUE(claim_valid(c.params, claim, nth_cidr(2)));
  EXPECT_TRUE(claim_valid(c.params, claim_of(c.founder_rec.record), nth_cidr(0)));

  // The admission covers the CIDR: the same claim under another subnet key is invalid.
  EXPECT_FALSE(claim_valid(c.params, claim, nth_cidr(3)));
  // ... and the name, the identity and the cluster.
  SubnetClaim renamed = claim;
  renamed.name = "node-c";
  EXPECT_FALSE(claim_valid(c.params, renamed, nth_cidr(2)));
  SubnetClaim other_id = claim;
  other_id.identity = c.a.public_key();
  EXPECT_FALSE(claim_valid(c.params, other_id, nth_cidr(2)));
  ClusterParams other_cluster = c.params;
  other_cluster.cluster_id = "other";
  EXPECT_FALSE(claim_valid(other_cluster, claim, nth_cidr(2)));
  SubnetClaim bad_sig = claim;
  bad_sig.admission.signature[5] ^= 1;
  EXPECT_FALSE(claim_valid(c.params, bad_sig, nth_cidr(2)));
  // A node admitting itself (only the founder may).
  auto self = IdentitySecretKey::generate();
  SubnetClaim self_claim{self.public_key(), "self",
                         controlplane::admit(self, C, "self", self.public_key(), nth_cidr(9), 5)};
  EXPECT_FALSE(claim_valid(c.params, self_claim, nth_cidr(9)));
  // CIDRs the cluster does not allow, each with a correctly signed admission.
  for (auto text : {"10.245.1.0/24", "10.244.1.0/25", "10.244.0.0/23"}) {
    IpPrefix cidr = prefix(text);
    SubnetClaim x{c.b.public_key(), "node-b",
                  controlplane::admit(c.a, C, "node-b", c.b.public_key(), cidr, 300)};
    EXPECT_FALSE(claim_valid(c.params, x, cidr)) << text;
  }
  SubnetClaim bad_name{c.b.public_key(), "Node_B",
                       controlplane::admit(c.a, C, "Node_B", c.b.public_key(), nth_cidr(2), 300)};
  EXPECT_FALSE(claim_valid(c.params, bad_name, nth_cidr(2)));

  EXPECT_FALSE(decode_claim(""));
  EXPECT_FALSE(decode_claim("node-b"));
  EXPECT_FALSE(decode_claim(encode_params(c.params)));
  std::string cut = encode_claim(claim);
  cut.resize(cut.size() - 10);
  EXPECT_FALSE(decode_claim(cut));
}

TEST(EtcdLayout, AliveValueIsDecimalMilliseconds) {
  EXPECT_EQ(alive_value(1'800'000'000'123), "1800000000123");
  EXPECT_EQ(parse_alive_value("1800000000123"), 1'800'000'000'123u);
  EXPECT_EQ(parse_alive_value("0"), 0u);
  for (auto bad : {"", "-1", "01", "1.5", "12a", " 12", "99999999999999999999999"})
    EXPECT_FALSE(parse_alive_value(bad)) << bad;
}

// ---- Allocation -------------------------------------------------------------

TEST(EtcdLayout, ClaimTxnCreatesTheSubnetKeyOnlyIfAbsent) {
  Cluster c;
  SubnetClaim claim = claim_of(c.b_rec.record);
  Txn t = claim_txn(P, c.params, nth_cidr(2), claim);
  std::string key = "/meshd/c0ffee/subnets/10.244.2.0-24";
  ASSERT_EQ(t.compare.size(), 1u);
  EXPECT_EQ(t.compare[0].key, key);
  EXPECT_EQ(t.compare[0].target, Compare::Target::kCreateRevision);
  EXPECT_EQ(t.compare[0].result, Compare::Result::kEqual);
  EXPECT_EQ(t.compare[0].number, 0);
  ASSERT_EQ(t.success.size(), 1u);
  EXPECT_EQ(t.success[0].kind, RequestOp::Kind::kPut);
  EXPECT_EQ(t.success[0].key, key);
  EXPECT_EQ(t.success[0].value, encode_claim(claim));
  EXPECT_EQ(t.success[0].lease, 0);  // never on a lease
  ASSERT_EQ(t.failure.size(), 1u);
  EXPECT_EQ(t.failure[0].kind, RequestOp::Kind::kRange);
  EXPECT_EQ(t.failure[0].key, key);
  EXPECT_EQ(t.failure[0].range_end, "");

  Txn r = release_txn(P, C, nth_cidr(2), encode_claim(claim));
  ASSERT_EQ(r.compare.size(), 1u);
  EXPECT_EQ(r.compare[0].target, Compare::Target::kValue);
  EXPECT_EQ(r.compare[0].value, encode_claim(claim));
  ASSERT_EQ(r.success.size(), 1u);
  EXPECT_EQ(r.success[0].kind, RequestOp::Kind::kDelete);
  EXPECT_EQ(r.success[0].key, key);
  EXPECT_EQ(r.success[0].range_end, "");  // that one key only
}

TEST(EtcdLayout, ClaimsViewReuseAndNextCandidate) {
  Cluster c;
  auto joiner = IdentitySecretKey::generate();
  auto claim_for = [&](const IdentitySecretKey& id, std::string name, IpPrefix cidr) {
    return SubnetClaim{id.public_key(), name,
                       controlplane::admit(c.a, C, name, id.public_key(), cidr, 500)};
  };
  RangeResult subnets;
  subnets.kvs = {
      kv(subnet_key(P, C, nth_cidr(0)), encode_claim(claim_of(c.founder_rec.record)), 2),
      kv(subnet_key(P, C, nth_cidr(1)), encode_claim(claim_of(c.a_rec.record)), 3),
      // The joiner's first attempt got nth_cidr(4) before it timed out.
      kv(subnet_key(P, C, nth_cidr(4)), encode_claim(claim_for(joiner, "joiner", nth_cidr(4))), 7),
      // Garbage under a subnet key: not a valid claim, but the key exists.
      kv(subnet_key(P, C, nth_cidr(2)), "garbage", 5),
      // A claim copied to another subnet key: its admission does not cover it.
      kv(subnet_key(P, C, nth_cidr(3)), encode_claim(claim_for(joiner, "joiner", nth_cidr(4))), 6),
      // Another cluster's and unknown keys.
      kv(subnet_key(P, "other", nth_cidr(5)), encode_claim(claim_of(c.a_rec.record)), 8),
      kv("/meshd/c0ffee/subnets/bogus", encode_claim(claim_of(c.a_rec.record)), 9),
  };
  auto valid = valid_claims(P, c.params, subnets);
  ASSERT_EQ(valid.size(), 3u);
  EXPECT_EQ(valid[0].cidr, nth_cidr(0));
  EXPECT_EQ(valid[1].cidr, nth_cidr(1));
  EXPECT_EQ(valid[2].cidr, nth_cidr(4));
  EXPECT_EQ(valid[2].claim.identity, joiner.public_key());
  EXPECT_EQ(valid[2].mod_revision, 7);

  auto claimed = claimed_cidrs(P, C, subnets);
  EXPECT_EQ(claimed, (std::vector<IpPrefix>{nth_cidr(0), nth_cidr(1), nth_cidr(2), nth_cidr(3),
                                            nth_cidr(4)}));

  EXPECT_EQ(reuse(P, c.params, subnets, joiner.public_key()), nth_cidr(4));
  EXPECT_EQ(reuse(P, c.params, subnets, c.a.public_key()), nth_cidr(1));
  EXPECT_FALSE(reuse(P, c.params, subnets, IdentitySecretKey::generate().public_key()));

  NodeTable table(c.params);
  ASSERT_EQ(table.merge(c.founder_rec), MergeOutcome::kAccepted);
  ASSERT_EQ(table.merge(c.a_rec), MergeOutcome::kAccepted);
  // A record whose claim is not in etcd yet holds its CIDR too.
  ASSERT_EQ(table.merge(signed_record(c.b, c.a, "node-b", nth_cidr(5), 300)),
            MergeOutcome::kAccepted);
  EXPECT_EQ(next_candidate(table, claimed, {}), nth_cidr(6));
  std::vector<IpPrefix> reserved = {nth_cidr(6), nth_cidr(8)};
  EXPECT_EQ(next_candidate(table, claimed, reserved), nth_cidr(7));
  EXPECT_EQ(next_candidate(table, {}, {}), nth_cidr(2));

  // A full cluster: nothing.
  ClusterParams tiny = c.params;
  tiny.cluster_cidr = prefix("10.244.0.0/23");
  NodeTable small(tiny);
  EXPECT_FALSE(next_candidate(small, claimed, {}));
}

// ---- Applying ---------------------------------------------------------------

TEST(EtcdLayout, ApplyMergesRecordsAndTombstones) {
  Cluster c;
  NodeTable t(c.params);
  Applied a = apply(t, put_record(c.founder_rec), P, C);
  EXPECT_EQ(a.family, KeyFamily::kRecord);
  EXPECT_EQ(a.disposition, Disposition::kMerged);
  EXPECT_EQ(a.outcome, MergeOutcome::kAccepted);
  EXPECT_EQ(apply(t, put_record(c.a_rec), P, C).disposition, Disposition::kMerged);
  EXPECT_EQ(apply(t, put_record(c.b_rec), P, C).disposition, Disposition::kMerged);
  EXPECT_EQ(t.members().size(), 3u);

  // The same put again (a re-delivered event): unchanged.
  a = apply(t, put_record(c.a_rec), P, C);
  EXPECT_EQ(a.disposition, Disposition::kUnchanged);
  EXPECT_EQ(a.outcome, MergeOutcome::kStale);

  // A newer version replaces the older.
  SignedRecord a2 = signed_record(c.a, c.founder, "node-a", nth_cidr(1), 200, 2);
  EXPECT_EQ(apply(t, put_record(a2), P, C).disposition, Disposition::kMerged);
  EXPECT_EQ(t.find(c.a.public_key())->record.version, 2u);

  // A delete of a record key changes nothing.
  WatchEvent del{WatchEvent::Type::kDelete, {record_key(P, C, c.b.public_key()), "", 0, 9, 0, 0},
                 {}};
  a = apply(t, del, P, C);
  EXPECT_EQ(a.disposition, Disposition::kIgnored);
  EXPECT_EQ(a.family, KeyFamily::kRecord);
  EXPECT_NE(t.find(c.b.public_key()), nullptr);

  // A tombstone removes b for good; b's record put again is unchanged.
  SignedTombstone tomb = tombstone_of(c.b.public_key(), c.a, 900, "node-b", nth_cidr(2));
  a = apply(t, put_tombstone(tomb), P, C);
  EXPECT_EQ(a.family, KeyFamily::kTombstone);
  EXPECT_EQ(a.disposition, Disposition::kMerged);
  EXPECT_EQ(t.find(c.b.public_key()), nullptr);
  a = apply(t, put_record(c.b_rec), P, C);
  EXPECT_EQ(a.disposition, Disposition::kUnchanged);
  EXPECT_EQ(a.outcome, MergeOutcome::kRemovedIdentity);
  EXPECT_EQ(apply(t, put_tombstone(tomb), P, C).disposition, Disposition::kUnchanged);
  // Deleting the tombstone key does not bring b back.
  WatchEvent tdel{WatchEvent::Type::kDelete,
                  {tombstone_key(P, C, c.b.public_key()), "", 0, 10, 0, 0}, {}};
  EXPECT_EQ(apply(t, tdel, P, C).disposition, Disposition::kIgnored);
  EXPECT_NE(t.tombstone(c.b.public_key()), nullptr);
}

TEST(EtcdLayout, ApplyIgnoresOtherFamiliesAndClusters) {
  Cluster c;
  NodeTable t(c.params);
  ASSERT_EQ(t.merge(c.founder_rec), MergeOutcome::kAccepted);
  auto hash = t.hash();
  std::vector<WatchEvent> events = {
      put(params_key(P, C), encode_params(c.params)),
      put(subnet_key(P, C, nth_cidr(1)), encode_claim(claim_of(c.a_rec.record))),
      put(alive_key(P, C, c.a.public_key()), alive_value(123)),
      put("/meshd/other/records/" + identity_hex(c.a.public_key()), record_value(c.a_rec)),
      put("/elsewhere/" + identity_hex(c.a.public_key()), record_value(c.a_rec)),
      put("/meshd/c0ffee/records/not-hex", record_value(c.a_rec)),
  };
  for (const auto& ev : events) {
    Applied a = apply(t, ev, P, C);
    EXPECT_EQ(a.disposition, Disposition::kIgnored) << ev.kv.key;
    EXPECT_FALSE(a.outcome) << ev.kv.key;
  }
  EXPECT_EQ(t.hash(), hash);
  EXPECT_EQ(t.members().size(), 1u);
}

TEST(EtcdLayout, ApplyRefusesTamperedValues) {
  Cluster c;
  NodeTable t(c.params);
  ASSERT_EQ(apply(t, put_record(c.founder_rec), P, C).disposition, Disposition::kMerged);
  ASSERT_EQ(apply(t, put_record(c.a_rec), P, C).disposition, Disposition::kMerged);
  auto hash = t.hash();
  auto expect_refused = [&](const WatchEvent& ev, std::optional<MergeOutcome> outcome,
                            bool mismatch, const char* what) {
    Applied a = apply(t, ev, P, C);
    EXPECT_EQ(a.disposition, Disposition::kRefused) << what;
    EXPECT_EQ(a.outcome, outcome) << what;
    EXPECT_EQ(a.key_mismatch, mismatch) << what;
    EXPECT_EQ(t.hash(), hash) << what;
  };

  // a's valid record copied to b's key: b must not appear, a must not change.
  expect_refused(put(record_key(P, C, c.b.public_key()), record_value(c.a_rec)), std::nullopt,
                 true, "record under another identity's key");
  EXPECT_EQ(t.find(c.b.public_key()), nullptr);
  // A tombstone of a stored under b's key (it would remove a if believed).
  SignedTombstone ta = tombstone_of(c.a.public_key(), c.founder, 900);
  expect_refused(put(tombstone_key(P, C, c.b.public_key()), tombstone_value(ta)), std::nullopt,
                 true, "tombstone under another identity's key");
  EXPECT_NE(t.find(c.a.public_key()), nullptr);

  // b's record with a flipped signature bit / body byte.
  SignedRecord forged = c.b_rec;
  forged.signature[0] ^= 1;
  expect_refused(put_record(forged), MergeOutcome::kBadSignature, false, "bad signature");
  // A record whose owner signed a CIDR its admission does not cover.
  controlplane::NodeRecord moved = c.b_rec.record;
  moved.pod_cidr = nth_cidr(9);
  expect_refused(put_record(controlplane::sign_record(moved, c.b)), MergeOutcome::kBadAdmission,
                 false, "bad admission");
  // Admitted by an identity that is no member.
  auto stranger = IdentitySecretKey::generate();
  expect_refused(put_record(signed_record(c.b, stranger, "node-b", nth_cidr(2), 300)),
                 MergeOutcome::kUnknownSigner, false, "unknown admitter");
  // Another cluster's record under this cluster's key.
  controlplane::NodeRecord other = c.b_rec.record;
  other.cluster_id = "other";
  other.admission = controlplane::admit(c.a, "other", "node-b", c.b.public_key(), nth_cidr(2), 300);
  expect_refused(put_record(controlplane::sign_record(other, c.b)), MergeOutcome::kWrongCluster,
                 false, "another cluster's record");
  // A tombstone signed by no member.
  expect_refused(put_tombstone(tombstone_of(c.a.public_key(), stranger, 900)),
                 MergeOutcome::kUnknownSigner, false, "tombstone by a stranger");
  SignedTombstone bad_tomb = ta;
  bad_tomb.signature[3] ^= 1;
  expect_refused(put_tombstone(bad_tomb), MergeOutcome::kBadSignature, false, "tombstone bad sig");
  // Garbage values.
  for (std::string junk : {std::string(), std::string("x"), std::string(64, '\0'),
                           std::string(200, 'z'), std::string(5000, '\x01'),
                           record_value(c.b_rec).substr(0, 100)}) {
    expect_refused(put(record_key(P, C, c.b.public_key()), junk), MergeOutcome::kMalformed, false,
                   "garbage record value");
    expect_refused(put(tombstone_key(P, C, c.b.public_key()), junk), MergeOutcome::kMalformed,
                   false, "garbage tombstone value");
  }
  // A record value under a tombstone key is not a tombstone.
  expect_refused(put(tombstone_key(P, C, c.b.public_key()), record_value(c.b_rec)),
                 MergeOutcome::kMalformed, false, "record under a tombstone key");
}

// Every event the tests below shuffle: a chain of admissions (b by a),
// versions, a conflict, a removal and tampered copies.
struct History {
  Cluster c;
  IdentitySecretKey d = IdentitySecretKey::generate();
  IdentitySecretKey e = IdentitySecretKey::generate();
  std::vector<WatchEvent> events;

  History() {
    Revision rev = 10;
    auto add = [&](WatchEvent ev) {
      ev.kv.mod_revision = ++rev;
      events.push_back(std::move(ev));
    };
    add(put_record(c.founder_rec));
    add(put_record(c.a_rec));
    add(put_record(c.b_rec));
    add(put_record(signed_record(c.b, c.a, "node-b", nth_cidr(2), 300, 2)));
    add(put_record(signed_record(c.a, c.founder, "node-a", nth_cidr(1), 200, 3)));
    // d admitted by b; e admitted by d: a chain three deep.
    add(put_record(signed_record(d, c.b, "node-d", nth_cidr(3), 400)));
    add(put_record(signed_record(e, d, "node-e", nth_cidr(4), 500)));
    // Two claims on one CIDR: the earlier admission wins.
    auto f = IdentitySecretKey::generate();
    add(put_record(signed_record(f, c.a, "node-f", nth_cidr(4), 450)));
    // d removed by a, after it admitted e.
    add(put_tombstone(tombstone_of(d.public_key(), c.a, 900, "node-d", nth_cidr(3))));
    // Tampering and noise: a's record copied to g's key, junk under h's key
    // (deleted again), a liveness key.
    auto g = IdentitySecretKey::generate();
    auto h = IdentitySecretKey::generate();
    add(put(record_key(P, C, g.public_key()), record_value(c.a_rec)));
    add(put(record_key(P, C, h.public_key()), "junk"));
    add(put(alive_key(P, C, c.a.public_key()), alive_value(1)));
    add(WatchEvent{WatchEvent::Type::kDelete, {record_key(P, C, h.public_key()), "", 0, 0, 0, 0},
                   {}});
  }

  // What a range at the end returns: the newest value of each key, in key order.
  RangeResult listing() const {
    std::map<std::string, KeyValue> latest;
    for (const WatchEvent& ev : events) {
      if (ev.type == WatchEvent::Type::kDelete)
        latest.erase(ev.kv.key);
      else
        latest[ev.kv.key] = ev.kv;
    }
    RangeResult r;
    r.revision = 100;
    for (auto& [_, v] : latest) r.kvs.push_back(v);
    return r;
  }
};

TEST(EtcdLayout, ApplyEventsIsOrderIndependent) {
  History h;
  NodeTable in_order(h.c.params);
  for (const WatchEvent& ev : h.events) apply(in_order, ev, P, C);
  ASSERT_EQ(in_order.members().size(), 5u);  // founder, a, b, e, f
  ASSERT_EQ(in_order.tombstone_count(), 1u);
  EXPECT_EQ(in_order.find(h.c.b.public_key())->record.version, 2u);

  std::mt19937 rng(13);
  for (int round = 0; round < 30; ++round) {
    std::vector<WatchEvent> shuffled = h.events;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    // Duplicates, as a reconnecting watch may deliver.
    shuffled.push_back(shuffled[round % shuffled.size()]);
    // Revisions in the shuffled order too, as if written so: apply_events
    // cannot lean on them to find each admitter first.
    for (std::size_t i = 0; i < shuffled.size(); ++i)
      shuffled[i].kv.mod_revision = static_cast<Revision>(i + 1);
    NodeTable t(h.c.params);
    ApplyReport r = apply_events(t, shuffled, P, C);
    EXPECT_EQ(t.hash(), in_order.hash()) << "round " << round;
    EXPECT_EQ(t.digest(), in_order.digest()) << "round " << round;
    EXPECT_EQ(r.merged + r.unchanged + r.refused + r.ignored, shuffled.size());
    EXPECT_GE(r.key_mismatch, 1u);  // 2 when the duplicate is the copied record
    // The waits hide no admitter: nothing was counted as an unknown signer.
    EXPECT_EQ(t.count(MergeOutcome::kUnknownSigner), 0u) << "round " << round;
  }
}

TEST(EtcdLayout, ApplyEventsCountsAnUnknownSignerOnce) {
  Cluster c;
  NodeTable t(c.params);
  ASSERT_EQ(t.merge(c.founder_rec), MergeOutcome::kAccepted);
  // b's admitter a never arrives.
  std::vector<WatchEvent> events = {put_record(c.b_rec, 5)};
  ApplyReport r = apply_events(t, events, P, C);
  EXPECT_EQ(r.refused, 1u);
  EXPECT_EQ(r.outcomes[static_cast<std::size_t>(MergeOutcome::kUnknownSigner)], 1u);
  EXPECT_EQ(t.count(MergeOutcome::kUnknownSigner), 1u);
}

TEST(EtcdLayout, ApplyListingIsIdempotentAndMatchesTheEvents) {
  History h;
  RangeResult listing = h.listing();
  NodeTable from_listing(h.c.params);
  ApplyReport first = apply_listing(from_listing, listing, P, C);
  EXPECT_GT(first.merged, 0u);
  EXPECT_EQ(first.refused, 1u);  // a's record copied to g's key
  EXPECT_EQ(first.key_mismatch, 1u);

  auto hash = from_listing.hash();
  auto digest = from_listing.digest();
  ApplyReport second = apply_listing(from_listing, listing, P, C);
  EXPECT_EQ(second.merged, 0u);
  EXPECT_EQ(from_listing.hash(), hash);
  EXPECT_EQ(from_listing.digest(), digest);

  // Events then the listing: the same table as the listing alone.
  NodeTable both(h.c.params);
  apply_events(both, h.events, P, C);
  apply_listing(both, listing, P, C);
  EXPECT_EQ(both.digest(), digest);

  // A shuffled listing (pages in another order) gives the same table.
  std::mt19937 rng(5);
  for (int round = 0; round < 10; ++round) {
    RangeResult s = listing;
    std::shuffle(s.kvs.begin(), s.kvs.end(), rng);
    NodeTable t(h.c.params);
    apply_listing(t, s, P, C);
    EXPECT_EQ(t.digest(), digest) << "round " << round;
  }
}

TEST(EtcdLayout, ApplyListingNamesTheRecordsEtcdIsBehindOn) {
  Cluster c;
  NodeTable t(c.params);
  SignedRecord a2 = signed_record(c.a, c.founder, "node-a", nth_cidr(1), 200, 2);
  for (const auto& r : {c.founder_rec, a2, c.b_rec}) ASSERT_TRUE(controlplane::accepted(t.merge(r)));

  RangeResult listing;
  listing.kvs = {
      kv(record_key(P, C, c.founder.public_key()), record_value(c.founder_rec)),  // in step
      kv(record_key(P, C, c.a.public_key()), record_value(c.a_rec)),  // an older version
      // b's key deleted by someone: absent.
  };
  ApplyReport r = apply_listing(t, listing, P, C);
  std::vector<keys::IdentityPublicKey> want = {c.a.public_key(), c.b.public_key()};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(r.behind, want);
  EXPECT_EQ(t.members().size(), 3u);  // nothing left the table

  // Tampered bytes under b's key: behind too; the right bytes: in step.
  listing.kvs.push_back(kv(record_key(P, C, c.b.public_key()), "junk"));
  r = apply_listing(t, listing, P, C);
  EXPECT_EQ(r.behind, want);
  listing.kvs.back().value = record_value(c.b_rec);
  listing.kvs[1].value = record_value(a2);
  r = apply_listing(t, listing, P, C);
  EXPECT_TRUE(r.behind.empty());

  // A partial listing says nothing of what is missing.
  listing.kvs.pop_back();
  listing.more = true;
  r = apply_listing(t, listing, P, C);
  EXPECT_TRUE(r.behind.empty());
}

}  // namespace
}  // namespace meshd::datastore
