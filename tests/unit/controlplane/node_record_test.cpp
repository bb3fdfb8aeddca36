// Records, admissions and tombstones: the canonical bytes round-trip, every
// signed field is covered, and a record of the next version (with a field
// appended) still decodes and verifies here.
#include "cluster_fixture.h"
#include "keys/canonical_encoder.h"
#include "meshd/controlplane/node_record.h"

#include <gtest/gtest.h>

using namespace meshd;
using namespace meshd::controlplane;
using namespace meshd::controlplane::testing;

TEST(NodeRecord, RoundTripsThroughItsSignedBytes) {
  auto founder = keys::IdentitySecretKey::generate();
  NodeRecord r = make_record(founder, founder, "node-a", nth_cidr(0), 1000, 7);
  r.endpoints.push_back(Endpoint::parse("[2001:db8::1]:51820").value());
  r.pending_key = PendingKey{keys::PrivateKey::generate().public_key(), 5000};
  SignedRecord s = sign_record(r, founder);
  auto back = decode_record(s.body, s.signature);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->record, r);
  EXPECT_EQ(back->body, s.body);
  EXPECT_TRUE(owner_signature_valid(*back));
  EXPECT_TRUE(admission_signature_valid(back->record));
}

TEST(NodeRecord, EverySignedByteIsCovered) {
  auto owner = keys::IdentitySecretKey::generate();
  SignedRecord s = signed_record(owner, owner, "node-a", nth_cidr(0), 1000);
  for (std::size_t i = 0; i < s.body.size(); ++i) {
    SignedRecord t = s;
    t.body[i] ^= 0x01;
    EXPECT_FALSE(owner_signature_valid(t)) << "byte " << i;
  }
}

TEST(NodeRecord, AdmissionCoversNameCidrIdentityAndTime) {
  auto founder = keys::IdentitySecretKey::generate();
  auto owner = keys::IdentitySecretKey::generate();
  NodeRecord r = make_record(owner, founder, "node-b", nth_cidr(1), 1000);
  ASSERT_TRUE(admission_signature_valid(r));
  NodeRecord x = r;
  x.name = "node-c";
  EXPECT_FALSE(admission_signature_valid(x));
  x = r;
  x.pod_cidr = nth_cidr(2);
  EXPECT_FALSE(admission_signature_valid(x));
  x = r;
  x.admission.admitted_at = 999;
  EXPECT_FALSE(admission_signature_valid(x));
  x = r;
  x.identity = keys::IdentitySecretKey::generate().public_key();
  EXPECT_FALSE(admission_signature_valid(x));
  x = r;
  x.cluster_id = "other";
  EXPECT_FALSE(admission_signature_valid(x));
  // The owner's own fields are not the admitter's business.
  x = r;
  x.endpoints.clear();
  x.version = 9;
  EXPECT_TRUE(admission_signature_valid(x));
}

TEST(NodeRecord, OnlyTheOwnerSigns) {
  auto owner = keys::IdentitySecretKey::generate();
  auto other = keys::IdentitySecretKey::generate();
  NodeRecord r = make_record(owner, owner, "node-a", nth_cidr(0), 1);
  EXPECT_THROW(sign_record(r, other), std::invalid_argument);
}

TEST(NodeRecord, FieldsOfANewerVersionAreSkippedAndStillSigned) {
  auto owner = keys::IdentitySecretKey::generate();
  NodeRecord r = make_record(owner, owner, "node-a", nth_cidr(0), 1);
  r.protocol_version = 2;
  keys::CanonicalEncoder e = encode_record(r);
  e.str("a field of version 2").list(2).u64(1).boolean(true);  // appended by the next version
  keys::Signature sig = owner.sign(e);
  auto back = decode_record(e.data(), sig);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->record, r);
  EXPECT_TRUE(owner_signature_valid(*back));
  EXPECT_EQ(back->body, e.data());  // relayed as received
}

TEST(NodeRecord, MalformedBodiesAreRefused) {
  auto owner = keys::IdentitySecretKey::generate();
  SignedRecord s = signed_record(owner, owner, "node-a", nth_cidr(0), 1);
  for (std::size_t n = 0; n < s.body.size(); ++n) {
    std::vector<std::uint8_t> cut(s.body.begin(), s.body.begin() + n);
    EXPECT_FALSE(decode_record(cut, s.signature)) << "truncated to " << n;
  }
  std::vector<std::uint8_t> big(kMaxRecordBytes + 1, 0);
  EXPECT_FALSE(decode_record(big, s.signature));
  // Another kind's context: a tombstone is never read as a record.
  SignedTombstone t = tombstone_of(owner.public_key(), owner, 5);
  EXPECT_FALSE(decode_record(t.body, t.signature));
  EXPECT_FALSE(decode_tombstone(s.body, s.signature));
}

TEST(NodeRecord, TombstoneRoundTrips) {
  auto remover = keys::IdentitySecretKey::generate();
  auto removed = keys::IdentitySecretKey::generate().public_key();
  SignedTombstone t = tombstone_of(removed, remover, 1234);
  auto back = decode_tombstone(t.body, t.signature);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->tombstone, t.tombstone);
  EXPECT_TRUE(tombstone_signature_valid(*back));
  back->body.back() ^= 1;
  EXPECT_FALSE(tombstone_signature_valid(*back));
}

TEST(NodeRecord, TombstoneCarriesNameCidrAndReason) {
  auto remover = keys::IdentitySecretKey::generate();
  auto removed = keys::IdentitySecretKey::generate().public_key();
  const IpPrefix v6 = IpPrefix::parse("fd00:0:0:7::/64").value();
  for (const IpPrefix& cidr : {nth_cidr(7), v6, IpPrefix{}}) {
    SignedTombstone t =
        tombstone_of(removed, remover, 1234, "node-7", cidr, "pruned: silent for 3600 s");
    auto back = decode_tombstone(t.body, t.signature);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->tombstone, t.tombstone);
    EXPECT_EQ(back->tombstone.pod_cidr, cidr);
    EXPECT_EQ(back->tombstone.name, "node-7");
    EXPECT_EQ(back->tombstone.reason, "pruned: silent for 3600 s");
    EXPECT_TRUE(tombstone_signature_valid(*back));
    // The signature covers the new fields too.
    for (std::size_t i = 0; i < t.body.size(); ++i) {
      SignedTombstone x = t;
      x.body[i] ^= 0x01;
      EXPECT_FALSE(tombstone_signature_valid(x)) << "byte " << i;
    }
  }
  // All three empty (the remover held no record of the node).
  SignedTombstone bare = tombstone_of(removed, remover, 99);
  auto back = decode_tombstone(bare.body, bare.signature);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->tombstone.name.empty());
  EXPECT_EQ(back->tombstone.pod_cidr, IpPrefix{});
  EXPECT_TRUE(back->tombstone.reason.empty());
  for (std::size_t n = 0; n < bare.body.size(); ++n) {
    std::vector<std::uint8_t> cut(bare.body.begin(), bare.body.begin() + n);
    EXPECT_FALSE(decode_tombstone(cut, bare.signature)) << "truncated to " << n;
  }
}

TEST(NodeRecord, TombstoneFieldsAreBoundedWhenDecoded) {
  auto removed = keys::IdentitySecretKey::generate().public_key();
  auto remover = keys::IdentitySecretKey::generate().public_key();
  auto body = [&](const std::string& name, const std::string& cidr, const std::string& reason) {
    keys::CanonicalEncoder e(kTombstoneContext);
    e.str("c0ffee").bytes(removed.bytes()).bytes(remover.bytes()).u64(5);
    e.str(name).str(cidr).str(reason);
    return e.data();
  };
  keys::Signature sig{};
  EXPECT_TRUE(
      decode_tombstone(body("node-1", "10.244.1.0/24", std::string(kMaxReasonLength, 'r')), sig));
  EXPECT_TRUE(decode_tombstone(body(std::string(kMaxNameLength, 'n'), "", ""), sig));
  struct Bad {
    const char* what;
    std::vector<std::uint8_t> bytes;
  };
  const std::vector<Bad> bad = {
      {"name too long", body(std::string(kMaxNameLength + 1, 'n'), "10.244.1.0/24", "")},
      {"reason too long", body("node-1", "10.244.1.0/24", std::string(kMaxReasonLength + 1, 'r'))},
      {"CIDR with host bits", body("node-1", "10.244.1.5/24", "")},
      {"CIDR not a prefix", body("node-1", "node-1", "")},
      {"CIDR \"/0\" (a zero prefix travels as empty)", body("node-1", "/0", "")},
  };
  for (const Bad& b : bad) EXPECT_FALSE(decode_tombstone(b.bytes, sig)) << b.what;
  // Fields a newer version appends are skipped, as in a record.
  keys::CanonicalEncoder next(kTombstoneContext);
  next.str("c0ffee").bytes(removed.bytes()).bytes(remover.bytes()).u64(5);
  next.str("node-1").str("10.244.1.0/24").str("").str("a field of version 2");
  auto got = decode_tombstone(next.data(), sig);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->tombstone.pod_cidr, nth_cidr(1));
}

TEST(NodeRecord, NodeNames) {
  const std::vector<std::string> good = {"a", "node-1", "n.example", "0", std::string(63, 'x')};
  const std::vector<std::string> bad = {"",    "-a",  "a-",  "A", "a_b",
                                        "a b", ".a", "\xc3\xa4", std::string(64, 'x')};
  for (const auto& n : good) EXPECT_TRUE(valid_node_name(n)) << n;
  for (const auto& n : bad) EXPECT_FALSE(valid_node_name(n)) << n;
}

TEST(NodeRecord, AdoptTakesOnlyBytesThatStartWithAContext) {
  keys::CanonicalEncoder e("meshd/test/v1");
  e.str("x").u64(1);
  auto adopted = keys::CanonicalEncoder::adopt(e.data());
  ASSERT_TRUE(adopted);
  EXPECT_EQ(adopted->data(), e.data());
  EXPECT_EQ(adopted->context(), "meshd/test/v1");
  using Bytes = std::vector<std::uint8_t>;
  EXPECT_FALSE(keys::CanonicalEncoder::adopt(Bytes{}));
  EXPECT_FALSE(keys::CanonicalEncoder::adopt(Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0}));     // empty context
  EXPECT_FALSE(keys::CanonicalEncoder::adopt(Bytes{2, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}));  // a string first
  EXPECT_FALSE(keys::CanonicalEncoder::adopt(Bytes{0, 0, 0, 0, 0, 0, 0, 0, 5, 'x'}));  // past the end
  EXPECT_FALSE(keys::CanonicalEncoder::adopt(Bytes{0, 0, 0, 0}));                      // truncated header
}
