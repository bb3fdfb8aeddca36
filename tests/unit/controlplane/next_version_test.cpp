// Compiled against meshd_controlplane_next (MESHD_WIRE_NEXT: what meshd-next
// writes): protocol version 2, a field version 1 does not know appended to
// every record, sync frame, join request and reply (inside and outside their
// boxes), and a sync message type version 1 does not know on every tick.
//
// The decoders and the sync rules are the same source in both builds (no
// MESHD_WIRE_NEXT in them), so what is decoded here is what a version 1 node
// decodes: v1 reads v2's frames. The reverse, v2 reading v1, is checked on
// frames built here as version 1 writes them (the extra field removed).
// tests/integration/controlplane/mixed_version_test.cpp runs both builds as
// real processes.
#include "cluster_fixture.h"
#include "keys/token.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/node_table.h"
#include "meshd/controlplane/sync_engine.h"
#include "meshd/controlplane/sync_message.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>

namespace meshd::controlplane {
namespace {

using testing::params_for;
using testing::signed_record;

static_assert(kProtocolVersion == 2 && kWritesNextVersionFields,
              "this test is built against meshd_controlplane_next");

constexpr std::uint64_t kNowMs = 1'800'000'000'000;
using Bytes = std::vector<std::uint8_t>;

// The trailing field of the next version: u8 id | u32 length | "next".
Bytes next_field() {
  Bytes f(5 + kNextVersionFieldValue.size(), 0);
  f[0] = kNextVersionFieldId;
  f[4] = static_cast<std::uint8_t>(kNextVersionFieldValue.size());
  std::copy(kNextVersionFieldValue.begin(), kNextVersionFieldValue.end(), f.begin() + 5);
  return f;
}
bool ends_with(const Bytes& b, const Bytes& tail) {
  return b.size() >= tail.size() && std::equal(tail.begin(), tail.end(), b.end() - tail.size());
}
bool contains(std::span<const std::uint8_t> hay, std::span<const std::uint8_t> needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}
std::uint16_t frame_version(const Bytes& f) { return static_cast<std::uint16_t>(f[4] << 8 | f[5]); }

// The value of field `id` in a join frame's body (u8 id | u32 length | value).
Bytes field_of(const Bytes& frame, std::uint8_t id) {
  for (std::size_t pos = kJoinHeaderBytes; pos + 5 <= frame.size();) {
    std::size_t len = std::size_t(frame[pos + 1]) << 24 | std::size_t(frame[pos + 2]) << 16 |
                      std::size_t(frame[pos + 3]) << 8 | frame[pos + 4];
    if (frame[pos] == id) return Bytes(frame.begin() + pos + 5, frame.begin() + pos + 5 + len);
    pos += 5 + len;
  }
  return {};
}
// Opens a join box as the exchange seals it (XChaCha20-Poly1305 under the
// join key, additional data: the direction's context, version 2, token id,
// the nonces).
Bytes open_box(const Bytes& box, std::string_view context, const keys::Token& token,
               const JoinNonce& request_nonce, const JoinNonce* reply_nonce) {
  keys::CanonicalEncoder ad(context);
  ad.u64(2).str(token.id()).bytes(request_nonce);
  if (reply_nonce) ad.bytes(*reply_nonce);
  JoinKey key = join_key(token);
  Bytes plain(box.size());
  unsigned long long n = 0;
  const JoinNonce& nonce = reply_nonce ? *reply_nonce : request_nonce;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &n, nullptr, box.data(), box.size(),
                                                 ad.data().data(), ad.data().size(), nonce.data(),
                                                 key.data()) != 0)
    return {};
  plain.resize(n);
  return plain;
}

// Accepts every proven token once: the store as the exchange sees it.
class AcceptingTokens final : public JoinTokenStore {
 public:
  explicit AcceptingTokens(const keys::Token& t) : verifier_(keys::token_verifier(keys::derive_token_key(t))) {}
  Result<Outcome> consume(const std::string&, const Proof& proof, std::span<const std::uint8_t>,
                          std::int64_t) override {
    return proof(verifier_) ? Outcome::kAccepted : Outcome::kUnproven;
  }

 private:
  keys::TokenVerifier verifier_;
};

TEST(NextVersion, RecordsCarryTheNewFieldUnderTheOwnersSignatureAndAreAccepted) {
  auto founder = keys::IdentitySecretKey::generate();
  auto node = keys::IdentitySecretKey::generate();
  NodeTable table(params_for(founder));
  ASSERT_EQ(table.merge(signed_record(founder, founder, "founder", testing::nth_cidr(0), 1000)),
            MergeOutcome::kAccepted);
  SignedRecord r = signed_record(node, founder, "node-a", testing::nth_cidr(1), 2000);
  EXPECT_EQ(r.record.protocol_version, 2u);
  EXPECT_TRUE(contains(r.body, kNextVersionFieldValue)) << "the record does not carry the new field";

  // As a version 1 node receives it: decoded, the new field skipped, the
  // signature checked over every byte, merged, and relayed as received.
  auto back = decode_record(r.body, r.signature);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->record, r.record);
  EXPECT_TRUE(owner_signature_valid(*back));
  EXPECT_EQ(table.merge(*back), MergeOutcome::kAccepted);
  ASSERT_NE(table.find(node.public_key()), nullptr);
  EXPECT_EQ(table.find(node.public_key())->body, r.body);
}

TEST(NextVersion, ARecordOfThisVersionIsAcceptedByTheNext) {
  auto founder = keys::IdentitySecretKey::generate();
  NodeRecord rec = testing::make_record(founder, founder, "founder", testing::nth_cidr(0), 1000);
  rec.protocol_version = 1;
  // Version 1 writes the same fields without the appended one: the next
  // build's encoding minus the encoding of that last bytes field.
  keys::CanonicalEncoder with = encode_record(rec);
  keys::CanonicalEncoder empty(kNodeRecordContext);
  keys::CanonicalEncoder one(kNodeRecordContext);
  one.bytes(kNextVersionFieldValue);
  const std::size_t extra = one.data().size() - empty.data().size();
  Bytes v1_body(with.data().begin(), with.data().end() - extra);
  auto adopted = keys::CanonicalEncoder::adopt(v1_body);
  ASSERT_TRUE(adopted);
  SignedRecord v1{rec, v1_body, founder.sign(*adopted)};

  auto back = decode_record(v1.body, v1.signature);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->record, rec);
  NodeTable table(params_for(founder));
  EXPECT_EQ(table.merge(*back), MergeOutcome::kAccepted);
}

TEST(NextVersion, SyncFramesCarryTheNewFieldAndDecodeAsBefore) {
  auto a = keys::IdentitySecretKey::generate();
  SignedRecord r = signed_record(a, a, "node-a", testing::nth_cidr(0), 1000);
  SyncMessage m;
  m.type = MessageType::kPush;
  m.records.push_back({r.body, r.signature});
  m.table_hash = TableHash{};
  Bytes f = encode_message(m);
  EXPECT_EQ(frame_version(f), 2);
  EXPECT_TRUE(ends_with(f, next_field()));
  auto d = decode_message(f);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_FALSE(d->unknown_type);
  EXPECT_EQ(d->message.protocol_version, 2);
  EXPECT_EQ(d->message.records, m.records);
  EXPECT_EQ(d->message.table_hash, m.table_hash);

  // The same frame as version 1 writes it: version 1, no new field.
  Bytes v1(f.begin(), f.end() - next_field().size());
  v1[5] = 1;
  const std::uint32_t len = static_cast<std::uint32_t>(v1.size() - kFrameHeaderBytes);
  for (int i = 0; i < 4; ++i) v1[8 + i] = static_cast<std::uint8_t>(len >> (24 - 8 * i));
  d = decode_message(v1);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->message.protocol_version, 1);
  EXPECT_EQ(d->message.records, m.records);
}

TEST(NextVersion, TheTickSendsAMessageTypeThatThisVersionIgnores) {
  auto founder = keys::IdentitySecretKey::generate();
  auto b = keys::IdentitySecretKey::generate();
  NodeTable t(params_for(founder));
  ASSERT_TRUE(accepted(t.merge(signed_record(founder, founder, "founder", testing::nth_cidr(0), 1000))));
  ASSERT_TRUE(accepted(t.merge(signed_record(b, founder, "node-b", testing::nth_cidr(1), 2000))));
  SyncEngine next(founder.public_key(), t);
  SyncEngine peer(b.public_key(), t);
  Rng rng(7);
  auto out = next.tick(rng);
  std::size_t unknown = 0, summaries = 0;
  for (const auto& o : out) {
    ASSERT_EQ(o.to, b.public_key());
    auto answer = peer.receive(founder.public_key(), o.bytes, rng);
    if (o.bytes[6] == kNextVersionMessageType) {
      ++unknown;
      EXPECT_TRUE(answer.empty()) << "a message of an unknown type is answered";
    } else {
      ++summaries;
    }
  }
  EXPECT_EQ(unknown, 1u);
  EXPECT_EQ(summaries, 1u);
  EXPECT_EQ(peer.counters().unknown_type_in, 1u);
  EXPECT_EQ(peer.counters().malformed_in, 0u);
  EXPECT_EQ(peer.counters().messages_in, 2u);
}

TEST(NextVersion, JoinRequestAndReplyCarryTheNewFieldAndStillOpen) {
  auto founder = keys::IdentitySecretKey::generate();
  NodeTable table(params_for(founder));
  ASSERT_TRUE(accepted(table.merge(signed_record(founder, founder, "founder", testing::nth_cidr(0), 1000))));
  auto token = keys::Token::generate();
  AcceptingTokens tokens(token);
  JoinClaims claims;
  claims.name = "joiner";
  claims.wg_public_key = keys::PrivateKey::generate().public_key();
  claims.identity = keys::IdentitySecretKey::generate().public_key();
  claims.timestamp = kNowMs;
  JoinNonce nonce{}, reply_nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  randombytes_buf(reply_nonce.data(), reply_nonce.size());

  Bytes req = make_join_request(token, claims, nonce);
  EXPECT_EQ(frame_version(req), 2);
  EXPECT_TRUE(ends_with(req, next_field())) << "the request frame does not carry the new field";
  auto decoded = decode_join_request(req);
  ASSERT_TRUE(decoded) << decoded.error().message;
  // Inside the box too: the claims end with the new field, and still open.
  EXPECT_TRUE(ends_with(open_box(field_of(req, 3), "meshd/join-request/v1", token, nonce, nullptr),
                        next_field()));
  auto claims_back = open_claims(*decoded, join_key(token));
  ASSERT_TRUE(claims_back);
  EXPECT_EQ(claims_back->name, claims.name);

  auto ans = answer_join(req, kNowMs, tokens, {founder, table}, reply_nonce);
  ASSERT_TRUE(ans) << ans.error().message;
  ASSERT_TRUE(ans->admitted) << "refused: " << (ans->refusal ? to_string(*ans->refusal) : "unproven");
  EXPECT_EQ(frame_version(ans->reply), 2);
  EXPECT_TRUE(ends_with(ans->reply, next_field())) << "the reply frame does not carry the new field";
  EXPECT_TRUE(ends_with(open_box(field_of(ans->reply, 2), "meshd/join-reply/v1", token, nonce, &reply_nonce),
                        next_field()))
      << "the reply's answer does not carry the new field";
  auto out = open_join_reply(ans->reply, token, claims, nonce);
  ASSERT_TRUE(out) << out.error().message;
  auto* admitted = std::get_if<JoinAdmitted>(&*out);
  ASSERT_NE(admitted, nullptr);
  EXPECT_EQ(admitted->pod_cidr, testing::nth_cidr(1));
  ASSERT_EQ(admitted->records.size(), 1u);
  EXPECT_EQ(admitted->records[0].body, table.find(founder.public_key())->body);
}

}  // namespace
}  // namespace meshd::controlplane
