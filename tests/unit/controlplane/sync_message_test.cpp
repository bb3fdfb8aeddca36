// The sync wire format: round trips, limits, and a message of the next
// protocol version (a new field, a new message type) handled by this one.
#include "cluster_fixture.h"
#include "meshd/controlplane/sync_message.h"

#include <gtest/gtest.h>

using namespace meshd;
using namespace meshd::controlplane;
using namespace meshd::controlplane::testing;

namespace {

SyncMessage sample() {
  auto owner = keys::IdentitySecretKey::generate();
  SignedRecord r = signed_record(owner, owner, "node-a", nth_cidr(0), 1);
  SignedTombstone t = tombstone_of(keys::IdentitySecretKey::generate().public_key(), owner, 9);
  SyncMessage m;
  m.type = MessageType::kRecords;
  m.records.push_back({r.body, r.signature});
  m.tombstones.push_back({t.body, t.signature});
  m.table_hash = TableHash{1, 2, 3};
  m.digest = {{owner.public_key(), 7}, {t.tombstone.removed, kTombstoneVersion}};
  m.wanted = {owner.public_key()};
  m.reply_wanted = true;
  return m;
}

void put_field(std::vector<std::uint8_t>& f, std::uint8_t id, std::vector<std::uint8_t> v) {
  f.push_back(id);
  for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<std::uint8_t>(v.size() >> s));
  f.insert(f.end(), v.begin(), v.end());
}

void fix_length(std::vector<std::uint8_t>& f) {
  std::size_t n = f.size() - kFrameHeaderBytes;
  for (int i = 0; i < 4; ++i) f[8 + i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
}

}  // namespace

TEST(SyncMessage, RoundTrips) {
  SyncMessage m = sample();
  auto bytes = encode_message(m);
  EXPECT_EQ(bytes.size(), encoded_size(m));
  auto d = decode_message(bytes);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_FALSE(d->unknown_type);
  EXPECT_EQ(d->message.type, m.type);
  EXPECT_EQ(d->message.protocol_version, kProtocolVersion);
  EXPECT_EQ(d->message.records, m.records);
  EXPECT_EQ(d->message.tombstones, m.tombstones);
  EXPECT_EQ(d->message.table_hash, m.table_hash);
  EXPECT_EQ(d->message.digest, m.digest);
  EXPECT_EQ(d->message.wanted, m.wanted);
  EXPECT_TRUE(d->message.reply_wanted);
}

TEST(SyncMessage, NextVersionFieldsAreSkippedAndTypesIgnored) {
  SyncMessage m = sample();
  auto bytes = encode_message(m);
  bytes[5] = 2;                                 // protocol version 2
  put_field(bytes, 99, {1, 2, 3, 4, 5});        // a field this version does not know
  put_field(bytes, 200, {});
  fix_length(bytes);
  auto d = decode_message(bytes);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->message.protocol_version, 2);
  EXPECT_EQ(d->message.records, m.records);
  EXPECT_EQ(d->message.digest, m.digest);

  bytes[6] = 42;  // a message type of the next version
  d = decode_message(bytes);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->unknown_type);
}

TEST(SyncMessage, RefusesBrokenFrames) {
  auto good = encode_message(sample());
  struct Case {
    const char* name;
    std::function<void(std::vector<std::uint8_t>&)> mutate;
  };
  const std::vector<Case> cases = {
      {"empty", [](auto& f) { f.clear(); }},
      {"bad magic", [](auto& f) { f[0] = 'X'; }},
      {"version 0", [](auto& f) { f[4] = 0; f[5] = 0; }},
      {"length too long", [](auto& f) { f[11] += 1; }},
      {"truncated", [](auto& f) { f.pop_back(); }},
      {"trailing byte", [](auto& f) { f.push_back(0); }},
      {"field past the end", [](auto& f) { put_field(f, 99, {}); f.back() = 0; f[f.size() - 2] = 9; fix_length(f); }},
      {"short hash", [](auto& f) { put_field(f, 3, {1}); fix_length(f); }},
      {"second reply-wanted", [](auto& f) { put_field(f, 6, {}); fix_length(f); }},
      {"reply-wanted with a value", [](auto& f) { f.resize(f.size() - 5); put_field(f, 6, {1}); fix_length(f); }},
      {"second hash", [](auto& f) { put_field(f, 3, std::vector<std::uint8_t>(32)); fix_length(f); }},
      {"digest not a multiple of 40", [](auto& f) { put_field(f, 4, std::vector<std::uint8_t>(41)); fix_length(f); }},
      {"wanted not a multiple of 32", [](auto& f) { put_field(f, 5, std::vector<std::uint8_t>(33)); fix_length(f); }},
      {"record without a body", [](auto& f) { put_field(f, 1, std::vector<std::uint8_t>(64)); fix_length(f); }},
      {"record over the limit", [](auto& f) { put_field(f, 1, std::vector<std::uint8_t>(kMaxRecordBytes + 65)); fix_length(f); }},
      {"frame over the limit", [](auto& f) { put_field(f, 99, std::vector<std::uint8_t>(kMaxMessageBytes)); fix_length(f); }},
  };
  for (const Case& c : cases) {
    auto f = good;
    c.mutate(f);
    EXPECT_FALSE(decode_message(f)) << c.name;
  }
}

TEST(SyncMessage, TooManyDigestEntriesAreRefused) {
  std::vector<std::uint8_t> f = {'M', 'S', 'Y', 'N', 0, 1, 3, 0, 0, 0, 0, 0};
  put_field(f, 4, std::vector<std::uint8_t>((kMaxDigestEntries + 1) * 40));
  fix_length(f);
  EXPECT_FALSE(decode_message(f));
  SyncMessage m;
  m.type = MessageType::kDigest;
  m.digest.resize(kMaxDigestEntries + 1);
  EXPECT_THROW(encode_message(m), std::length_error);
}

TEST(SyncMessage, SplitKeepsEveryMessageUnderTheLimit) {
  SyncMessage s = sample();
  std::vector<SignedBytes> many(3000, s.records[0]);
  auto parts = split_signed(MessageType::kPush, many, {});
  std::size_t total = 0;
  for (const auto& p : parts) {
    auto bytes = encode_message(p);
    EXPECT_LE(bytes.size(), kMaxMessageBytes);
    total += p.records.size();
  }
  EXPECT_EQ(total, many.size());
  EXPECT_GT(parts.size(), 1u);
}

TEST(SyncMessage, TooManyRecordsOrWantedAreRefused) {
  std::vector<std::uint8_t> f = {'M', 'S', 'Y', 'N', 0, 1, 1, 0, 0, 0, 0, 0};
  for (std::size_t i = 0; i <= kMaxSignedPerMessage; ++i)
    put_field(f, 1, std::vector<std::uint8_t>(65, 1));
  fix_length(f);
  EXPECT_FALSE(decode_message(f));

  std::vector<std::uint8_t> w = {'M', 'S', 'Y', 'N', 0, 1, 4, 0, 0, 0, 0, 0};
  put_field(w, 5, std::vector<std::uint8_t>((kMaxWanted + 1) * 32));
  fix_length(w);
  EXPECT_FALSE(decode_message(w));
  w.resize(kFrameHeaderBytes);  // exactly the limit passes
  put_field(w, 5, std::vector<std::uint8_t>(kMaxWanted * 32));
  fix_length(w);
  EXPECT_TRUE(decode_message(w));
}
