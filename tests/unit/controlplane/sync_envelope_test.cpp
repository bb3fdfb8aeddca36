// The sync envelope codec: what a member accepts from another member's
// address, and every way an envelope is refused.
#include "meshd/controlplane/sync_channel.h"
#include "meshd/controlplane/sync_message.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace meshd::controlplane {
namespace {

constexpr std::uint64_t kNow = 1'800'000'000'000;
constexpr std::uint64_t kWindow = 120'000;

struct Envelopes : testing::Test {
  keys::IdentitySecretKey alice = keys::IdentitySecretKey::generate();
  keys::IdentitySecretKey bob = keys::IdentitySecretKey::generate();
  keys::IdentitySecretKey mallory = keys::IdentitySecretKey::generate();
  std::vector<std::uint8_t> payload{'M', 'S', 'Y', 'N', 0, 1, 2, 3, 4, 5};

  std::vector<std::uint8_t> sealed(std::uint64_t at = kNow) {
    return seal_envelope(alice, bob.public_key(), at, payload);
  }
  Result<OpenedEnvelope> open_as_bob(std::span<const std::uint8_t> f,
                                     std::uint64_t now = kNow) {
    return open_envelope(f, alice.public_key(), bob.public_key(), now, kWindow);
  }
};

TEST_F(Envelopes, OpensToTheSenderTimestampAndPayload) {
  auto f = sealed();
  ASSERT_EQ(f.size(), kEnvelopeHeaderBytes + payload.size() + kEnvelopeSignatureBytes);
  auto e = open_as_bob(f);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->sender, alice.public_key());
  EXPECT_EQ(e->timestamp, kNow);
  EXPECT_EQ(e->payload, payload);
  auto size = envelope_size(std::span(f).first(kEnvelopeHeaderBytes));
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, f.size());
}

TEST_F(Envelopes, EmptyAndLargestPayloadsOpen) {
  payload.clear();
  auto e = open_as_bob(sealed());
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_TRUE(e->payload.empty());
  payload.assign(kMaxMessageBytes, 0xab);
  e = open_as_bob(sealed());
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->payload.size(), kMaxMessageBytes);
}

TEST_F(Envelopes, RefusesAnEnvelopeFromAnotherMemberThanTheSourceAddressOwner) {
  // Mallory signs correctly, with her own key, but she is not the member
  // that owns the address the connection came from (alice's).
  auto f = seal_envelope(mallory, bob.public_key(), kNow, payload);
  auto e = open_as_bob(f);
  ASSERT_FALSE(e);
  EXPECT_TRUE(e.error().is(EACCES));
  EXPECT_NE(e.error().message.find("sender"), std::string::npos) << e.error().message;
  // And the message names no key.
  EXPECT_EQ(e.error().message.find(mallory.public_key().to_base64().substr(0, 8)),
            std::string::npos);
}

TEST_F(Envelopes, RefusesAnEnvelopeAddressedToAnotherNode) {
  auto f = seal_envelope(alice, mallory.public_key(), kNow, payload);
  auto e = open_as_bob(f);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("addressed to another node"), std::string::npos);
}

TEST_F(Envelopes, RefusesAStaleOrFutureEnvelopeOutsideTheWindow) {
  EXPECT_TRUE(open_as_bob(sealed(kNow - kWindow)));
  EXPECT_TRUE(open_as_bob(sealed(kNow + kWindow)));
  for (std::uint64_t at : {kNow - kWindow - 1, kNow + kWindow + 1, std::uint64_t{0}}) {
    auto e = open_as_bob(sealed(at));
    ASSERT_FALSE(e) << at;
    EXPECT_TRUE(e.error().is(ETIME)) << e.error().message;
  }
}

TEST_F(Envelopes, RefusesEveryEnvelopeWithAnyByteChanged) {
  auto good = sealed();
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto f = good;
    f[i] ^= 0x01;
    EXPECT_FALSE(open_as_bob(f)) << "byte " << i;
  }
}

TEST_F(Envelopes, RefusesASignatureMadeUnderAnotherContext) {
  auto f = sealed();
  std::span<const std::uint8_t> body(f.data(), f.size() - kEnvelopeSignatureBytes);
  keys::Signature other = alice.sign("meshd/node-record/v1", body);
  std::copy(other.begin(), other.end(), f.end() - kEnvelopeSignatureBytes);
  auto e = open_as_bob(f);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("signature"), std::string::npos);
}

TEST_F(Envelopes, RefusesTruncatedExtendedAndMisframedEnvelopes) {
  auto good = sealed();
  for (std::size_t n : {std::size_t{0}, std::size_t{4}, kEnvelopeHeaderBytes - 1,
                        kEnvelopeHeaderBytes, good.size() - 1})
    EXPECT_FALSE(open_as_bob(std::span(good).first(n))) << n;
  auto longer = good;
  longer.push_back(0);
  EXPECT_FALSE(open_as_bob(longer));
  auto bad_version = good;
  bad_version[5] = 2;
  auto e = envelope_size(bad_version);
  ASSERT_FALSE(e);
  EXPECT_TRUE(e.error().is(EPROTONOSUPPORT));
}

TEST_F(Envelopes, AnOversizedPayloadIsRefusedFromTheHeaderAlone) {
  // Only the header exists: the size check must not need the payload.
  auto whole = sealed();
  std::vector<std::uint8_t> header(whole.begin(), whole.begin() + kEnvelopeHeaderBytes);
  const std::uint32_t too_big = kMaxMessageBytes + 1;
  for (int i = 0; i < 4; ++i)
    header[kEnvelopeHeaderBytes - 4 + i] = static_cast<std::uint8_t>(too_big >> (24 - 8 * i));
  auto e = envelope_size(header);
  ASSERT_FALSE(e);
  EXPECT_TRUE(e.error().is(EMSGSIZE));
  EXPECT_FALSE(open_as_bob(header));
  EXPECT_THROW(seal_envelope(alice, bob.public_key(), kNow,
                             std::vector<std::uint8_t>(kMaxMessageBytes + 1)),
               std::invalid_argument);
}

}  // namespace
}  // namespace meshd::controlplane
