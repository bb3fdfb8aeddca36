#include "keys/token.h"
#include "keys/wg_key.h"
#include "store/cluster.h"
#include "store/database.h"
#include "store/events.h"
#include "store/local_node.h"
#include "store/records.h"
#include "store/tokens.h"
#include "store_test_util.h"

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

namespace meshd::store {
namespace {

class StoreRepos : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::string path_ = dir_.file("meshd.db");
  Database db_{DatabaseOptions{.path = path_}};
};

IpPrefix prefix(const char* s) { return IpPrefix::parse(s).value(); }

// ---------------------------------------------------------------- cluster

TEST_F(StoreRepos, ClusterIsFoundedOnceAndSurvivesReopen) {
  ClusterRepo repo(db_);
  auto none = repo.get();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  ClusterInfo info{"c-7f3a", prefix("10.244.0.0/16"), 24, 1700000000};
  ASSERT_TRUE(repo.set(info));

  auto again = repo.set(ClusterInfo{"c-other", prefix("10.99.0.0/16"), 24, 1700000100});
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(EEXIST));
  EXPECT_NE(again.error().message.find("already belongs to cluster c-7f3a"), std::string::npos)
      << again.error().message;

  Database reopened(DatabaseOptions{.path = path_});
  auto got = ClusterRepo(reopened).get();
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, info);
}

TEST_F(StoreRepos, ClusterRefusesANodePrefixThatDoesNotFit) {
  ClusterRepo repo(db_);
  for (std::uint8_t len : {8, 33}) {
    auto r = repo.set(ClusterInfo{"c-1", prefix("10.244.0.0/16"), len, 1});
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(EINVAL));
    EXPECT_NE(r.error().message.find("does not fit in 10.244.0.0/16"), std::string::npos);
  }
  EXPECT_FALSE(*repo.get());  // nothing was founded
}

// ------------------------------------------------------------- local node

TEST_F(StoreRepos, LocalNodeStartsEmptyAndKeepsEachField) {
  LocalNodeRepo repo(db_);
  auto fresh = repo.get();
  ASSERT_TRUE(fresh);
  EXPECT_EQ(*fresh, LocalNode{});
  EXPECT_FALSE(fresh->pod_cidr);
  EXPECT_FALSE(fresh->pod_cidr_settled);

  ASSERT_TRUE(repo.set_mtu(1420));
  ASSERT_TRUE(repo.set_name("node-a"));
  ASSERT_TRUE(repo.set_pod_cidr(prefix("10.244.3.0/24"), false));
  auto n = repo.get();
  ASSERT_TRUE(n);
  EXPECT_EQ(n->name, "node-a");
  EXPECT_EQ(n->mtu, 1420u);
  EXPECT_EQ(n->pod_cidr, prefix("10.244.3.0/24"));
  EXPECT_FALSE(n->pod_cidr_settled);

  ASSERT_TRUE(repo.set_pod_cidr(prefix("10.244.3.0/24"), true));
  EXPECT_TRUE(repo.get()->pod_cidr_settled);
  EXPECT_EQ(repo.get()->name, "node-a");  // other fields untouched
}

TEST_F(StoreRepos, LocalSecretsRoundTripAndSurviveReopen) {
  LocalNodeRepo repo(db_);
  ASSERT_FALSE(*repo.wg_private_key());
  ASSERT_FALSE(*repo.identity_secret());

  keys::KeyBytes kb{};
  for (std::size_t i = 0; i < kb.size(); ++i) kb[i] = static_cast<std::uint8_t>(i * 7 + 1);
  keys::PrivateKey key(kb);
  ASSERT_TRUE(repo.set_wg_private_key(key));
  std::vector<std::uint8_t> identity(kIdentitySecretLength);
  for (std::size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<std::uint8_t>(255 - i);
  ASSERT_TRUE(repo.set_identity_secret(identity));

  Database reopened(DatabaseOptions{.path = path_});
  LocalNodeRepo again(reopened);
  auto k = again.wg_private_key();
  ASSERT_TRUE(k && *k);
  EXPECT_TRUE(**k == key);
  auto id = again.identity_secret();
  ASSERT_TRUE(id && *id);
  EXPECT_TRUE(std::ranges::equal(**id, identity));

  // Rotation replaces the key.
  keys::KeyBytes kb2 = kb;
  kb2[0] ^= 0xff;
  ASSERT_TRUE(again.set_wg_private_key(keys::PrivateKey(kb2)));
  EXPECT_TRUE(**again.wg_private_key() == keys::PrivateKey(kb2));
}

TEST_F(StoreRepos, LocalIdentityKeyRoundTripsAndStillSigns) {
  LocalNodeRepo repo(db_);
  EXPECT_FALSE(*repo.identity_key());
  auto key = keys::IdentitySecretKey::generate();
  ASSERT_TRUE(repo.set_identity_key(key));

  Database reopened(DatabaseOptions{.path = path_});
  auto back = LocalNodeRepo(reopened).identity_key();
  ASSERT_TRUE(back && *back) << (back ? "" : back.error().message);
  EXPECT_EQ((*back)->public_key(), key.public_key());
  const std::vector<std::uint8_t> msg{1, 2, 3};
  auto sig = (*back)->sign("meshd test", msg);
  EXPECT_TRUE(key.public_key().verify("meshd test", msg, sig));

  // A row whose public half does not match its seed is refused, not trusted.
  auto raw = *LocalNodeRepo(reopened).identity_secret();
  (*raw)[40] ^= 1;
  ASSERT_TRUE(LocalNodeRepo(reopened).set_identity_secret(*raw));
  auto bad = LocalNodeRepo(reopened).identity_key();
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(EINVAL));
  EXPECT_NE(bad.error().message.find("inconsistent"), std::string::npos);
}

TEST_F(StoreRepos, LocalIdentitySecretMustBe64Bytes) {
  LocalNodeRepo repo(db_);
  auto r = repo.set_identity_secret(std::vector<std::uint8_t>(32, 1));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EINVAL));
  EXPECT_NE(r.error().message.find("must be 64 bytes, got 32"), std::string::npos);
  EXPECT_FALSE(*repo.identity_secret());
}

// ------------------------------------------------- pending WireGuard key

keys::PrivateKey key_of(std::uint8_t fill) {
  keys::KeyBytes b{};
  b.fill(fill);
  return keys::PrivateKey(b);
}

bool contains_bytes(const std::string& haystack, const keys::KeyBytes& needle) {
  return haystack.find(std::string(needle.begin(), needle.end())) != std::string::npos;
}

TEST_F(StoreRepos, APendingKeyRoundTripsAndSurvivesReopen) {
  LocalNodeRepo repo(db_);
  auto none = repo.pending_wg_key();
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);

  ASSERT_TRUE(repo.set_wg_private_key(key_of(1)));
  auto set = repo.set_pending_wg_key(key_of(2), 1'700'000'003'000);
  ASSERT_TRUE(set) << set.error().message;

  Database reopened(DatabaseOptions{.path = path_});
  LocalNodeRepo again(reopened);
  auto p = again.pending_wg_key();
  ASSERT_TRUE(p && *p) << (p ? "" : p.error().message);
  EXPECT_TRUE((*p)->key == key_of(2));
  EXPECT_EQ((*p)->switch_at_ms, 1'700'000'003'000u);
  // The current key and the other fields are untouched.
  EXPECT_TRUE(**again.wg_private_key() == key_of(1));

  // A second rotation started before the first was committed replaces it.
  ASSERT_TRUE(again.set_pending_wg_key(key_of(3), 1'700'000'009'000));
  EXPECT_TRUE((*again.pending_wg_key())->key == key_of(3));
  EXPECT_EQ((*again.pending_wg_key())->switch_at_ms, 1'700'000'009'000u);
}

TEST_F(StoreRepos, CommittingThePendingKeyMakesItCurrentAndLeavesNothingPending) {
  LocalNodeRepo repo(db_);
  ASSERT_TRUE(repo.set_name("node-a"));
  ASSERT_TRUE(repo.set_mtu(1420));
  ASSERT_TRUE(repo.set_wg_private_key(key_of(1)));
  ASSERT_TRUE(repo.set_pending_wg_key(key_of(2), 5000));
  auto c = repo.commit_pending_wg_key();
  ASSERT_TRUE(c) << c.error().message;

  Database reopened(DatabaseOptions{.path = path_});
  LocalNodeRepo again(reopened);
  EXPECT_TRUE(**again.wg_private_key() == key_of(2));
  EXPECT_FALSE(*again.pending_wg_key());
  EXPECT_EQ(again.get()->name, "node-a");
  EXPECT_EQ(again.get()->mtu, 1420u);

  // Once the WAL is checkpointed into the file, the old key's bytes are
  // gone from it (secure_delete), not left in a free page or the old cell.
  reopened.sql().exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db_.sql().exec("PRAGMA wal_checkpoint(TRUNCATE)");
  EXPECT_FALSE(contains_bytes(test::read_file(path_), key_of(1).bytes()));
  EXPECT_TRUE(contains_bytes(test::read_file(path_), key_of(2).bytes()));
}

TEST_F(StoreRepos, CommittingWithNothingPendingIsEnoentAndChangesNothing) {
  LocalNodeRepo repo(db_);
  auto empty = repo.commit_pending_wg_key();  // not even a row yet
  ASSERT_FALSE(empty);
  EXPECT_TRUE(empty.error().is(ENOENT)) << empty.error().message;
  EXPECT_NE(empty.error().message.find("no rotation is pending"), std::string::npos)
      << empty.error().message;

  ASSERT_TRUE(repo.set_wg_private_key(key_of(1)));
  auto none = repo.commit_pending_wg_key();
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(ENOENT));
  EXPECT_TRUE(**repo.wg_private_key() == key_of(1));

  // Committed once: a second commit finds nothing.
  ASSERT_TRUE(repo.set_pending_wg_key(key_of(2), 5000));
  ASSERT_TRUE(repo.commit_pending_wg_key());
  auto twice = repo.commit_pending_wg_key();
  ASSERT_FALSE(twice);
  EXPECT_TRUE(twice.error().is(ENOENT));
  EXPECT_TRUE(**repo.wg_private_key() == key_of(2));
}

TEST_F(StoreRepos, APendingKeyEqualToTheCurrentOneIsRefused) {
  // Peers refuse a record whose pending key is its current key, so a
  // rotation to the same key could never finish.
  LocalNodeRepo repo(db_);
  ASSERT_TRUE(repo.set_wg_private_key(key_of(1)));
  auto r = repo.set_pending_wg_key(key_of(1), 5000);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EINVAL));
  EXPECT_NE(r.error().message.find("is the node's current key"), std::string::npos)
      << r.error().message;
  EXPECT_FALSE(*repo.pending_wg_key());

  // With no current key stored, any key may be pending.
  Database other(DatabaseOptions{.path = dir_.file("other.db")});
  EXPECT_TRUE(LocalNodeRepo(other).set_pending_wg_key(key_of(1), 5000));
}

TEST_F(StoreRepos, APendingSwitchTimeAboveInt64IsRefused) {
  LocalNodeRepo repo(db_);
  const std::uint64_t too_late = std::uint64_t{1} << 63;
  auto r = repo.set_pending_wg_key(key_of(2), too_late);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EINVAL));
  EXPECT_NE(r.error().message.find(std::to_string(too_late)), std::string::npos);
  EXPECT_FALSE(*repo.pending_wg_key());
  EXPECT_TRUE(repo.set_pending_wg_key(key_of(2), too_late - 1));
  EXPECT_EQ((*repo.pending_wg_key())->switch_at_ms, too_late - 1);
}

TEST_F(StoreRepos, APlantedPendingKeyRowIsRefusedNamingTheColumnNeverItsBytes) {
  // The schema's CHECKs bind meshd's writes, not a file someone edited.
  LocalNodeRepo repo(db_);
  ASSERT_TRUE(repo.set_pending_wg_key(key_of(0x41), 5000));
  {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA ignore_check_constraints = ON");
    std::string hex;
    for (int i = 0; i < 31; ++i) hex += "41";
    raw.exec("UPDATE local_node SET pending_wg_key = x'" + hex + "'");
  }
  auto shorter = repo.pending_wg_key();
  ASSERT_FALSE(shorter);
  EXPECT_TRUE(shorter.error().is(EINVAL));
  EXPECT_NE(shorter.error().message.find("pending WireGuard key"), std::string::npos);
  EXPECT_NE(shorter.error().message.find("has 31 bytes, expected 32"), std::string::npos)
      << shorter.error().message;
  EXPECT_EQ(shorter.error().message.find("AAAA"), std::string::npos);  // no base64 of 0x41s
  EXPECT_EQ(shorter.error().message.find("4141"), std::string::npos);  // nor hex

  ASSERT_TRUE(repo.set_pending_wg_key(key_of(0x41), 5000));
  {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA ignore_check_constraints = ON");
    raw.exec("UPDATE local_node SET pending_switch_at = -5");
  }
  auto negative = repo.pending_wg_key();
  ASSERT_FALSE(negative);
  EXPECT_TRUE(negative.error().is(EINVAL));
  EXPECT_NE(negative.error().message.find("pending_switch_at"), std::string::npos)
      << negative.error().message;
  {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA ignore_check_constraints = ON");
    raw.exec("UPDATE local_node SET pending_switch_at = NULL");
  }
  EXPECT_FALSE(repo.pending_wg_key());
}

// --------------------------------------------------------- signed records

SignedRow row(std::uint8_t who, std::uint64_t version, std::uint8_t fill = 0x10) {
  SignedRow r;
  r.identity.fill(who);
  r.version = version;
  r.body.assign(40, fill);
  r.signature.fill(static_cast<std::uint8_t>(fill + 1));
  return r;
}

SignedRow tombstone(std::uint8_t who, std::uint8_t fill = 0x70) {
  SignedRow r = row(who, kTombstoneRowVersion, fill);
  r.tombstone = true;
  return r;
}

std::vector<SignedRow> load(Database& db) {
  auto all = RecordRepo(db).load_all();
  EXPECT_TRUE(all) << all.error().message;
  return all ? *all : std::vector<SignedRow>{};
}

TEST_F(StoreRepos, SignedRowsRoundTripEveryByteAndSurviveReopen) {
  RecordRepo repo(db_);
  SignedRow big = row(0x02, 0xfedcba9876543210ull);  // above INT64_MAX
  big.body.assign(kMaxSignedBodyBytes, 0xab);
  for (std::size_t i = 0; i < big.signature.size(); ++i)
    big.signature[i] = static_cast<std::uint8_t>(i);
  const std::vector<SignedRow> rows{big, tombstone(0x01), row(0x03, 0)};
  ASSERT_TRUE(repo.put(rows));

  Database reopened(DatabaseOptions{.path = path_});
  // By identity, each exactly as put.
  EXPECT_EQ(load(reopened), (std::vector<SignedRow>{rows[1], rows[0], rows[2]}));
}

TEST_F(StoreRepos, ANewerRecordReplacesAndAnOlderOrEqualOneIsIgnored) {
  RecordRepo repo(db_);
  ASSERT_TRUE(repo.put(std::vector{row(0x05, 7, 0x20)}));

  ASSERT_TRUE(repo.put(std::vector{row(0x05, 6, 0x30)}));  // older
  ASSERT_TRUE(repo.put(std::vector{row(0x05, 7, 0x40)}));  // same version, other bytes
  EXPECT_EQ(load(db_), std::vector{row(0x05, 7, 0x20)});

  ASSERT_TRUE(repo.put(std::vector{row(0x05, 8, 0x50)}));
  EXPECT_EQ(load(db_), std::vector{row(0x05, 8, 0x50)});

  // Versions compare unsigned: above INT64_MAX is newer, not negative.
  ASSERT_TRUE(repo.put(std::vector{row(0x05, 0x8000000000000000ull, 0x60)}));
  ASSERT_TRUE(repo.put(std::vector{row(0x05, 9, 0x61)}));
  EXPECT_EQ(load(db_), std::vector{row(0x05, 0x8000000000000000ull, 0x60)});
}

TEST_F(StoreRepos, ATombstoneBeatsEveryRecordAndIsNeverReplaced) {
  RecordRepo repo(db_);
  ASSERT_TRUE(repo.put(std::vector{row(0x07, kTombstoneRowVersion - 1)}));
  ASSERT_TRUE(repo.put(std::vector{tombstone(0x07, 0x71)}));
  EXPECT_EQ(load(db_), std::vector{tombstone(0x07, 0x71)});

  // No record, however high its version, and no second tombstone replaces it.
  ASSERT_TRUE(repo.put(std::vector{row(0x07, kTombstoneRowVersion - 1, 0x11)}));
  ASSERT_TRUE(repo.put(std::vector{tombstone(0x07, 0x72)}));
  EXPECT_EQ(load(db_), std::vector{tombstone(0x07, 0x71)});

  // A tombstone for an identity never seen is kept too.
  ASSERT_TRUE(repo.put(std::vector{tombstone(0x08)}));
  ASSERT_TRUE(repo.put(std::vector{row(0x08, 1)}));
  EXPECT_EQ(load(db_), (std::vector{tombstone(0x07, 0x71), tombstone(0x08)}));
}

TEST_F(StoreRepos, ManyRowsInOnePutKeepTheNewestOfEachIdentity) {
  RecordRepo repo(db_);
  std::vector<SignedRow> rows;
  std::vector<SignedRow> expected;
  for (int i = 0; i < 200; ++i) {
    const auto who = static_cast<std::uint8_t>(i);
    // Each identity twice in the batch, newer first for half of them.
    SignedRow a = row(who, 3, 0x20), b = row(who, 4, 0x21);
    if (i % 2) std::swap(a, b);
    rows.push_back(a);
    rows.push_back(b);
    expected.push_back(row(who, 4, 0x21));
  }
  rows.push_back(tombstone(0x09));
  rows.push_back(row(0x09, 5));
  expected[9] = tombstone(0x09);
  ASSERT_TRUE(repo.put(rows));
  EXPECT_EQ(load(db_), expected);
}

TEST_F(StoreRepos, AMalformedRowRefusesTheWholePut) {
  RecordRepo repo(db_);
  SignedRow empty = row(0x01, 1);
  empty.body.clear();
  SignedRow huge = row(0x01, 1);
  huge.body.assign(kMaxSignedBodyBytes + 1, 0);
  SignedRow low_tomb = tombstone(0x01);
  low_tomb.version = 3;
  SignedRow max_record = row(0x01, kTombstoneRowVersion);
  const std::pair<SignedRow, const char*> cases[] = {
      {empty, "body of 0 bytes, expected 1 to 4096"},
      {huge, "body of 4097 bytes, expected 1 to 4096"},
      {low_tomb, "a tombstone's version must be 18446744073709551615, not 3"},
      {max_record, "version 18446744073709551615 is reserved for tombstones"},
  };
  for (const auto& [bad, message] : cases) {
    SCOPED_TRACE(message);
    auto r = repo.put(std::vector{row(0x02, 1), bad});
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(EINVAL));
    EXPECT_NE(r.error().message.find(message), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("01010101..."), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(load(db_).empty());  // the good row of each batch was not written either
}

TEST_F(StoreRepos, ClusterFounderRoundTrips) {
  ClusterInfo info{"c-1", prefix("10.244.0.0/16"), 24, 1700000000};
  for (std::size_t i = 0; i < info.founder.size(); ++i)
    info.founder[i] = static_cast<std::uint8_t>(0xa0 + i);
  ASSERT_TRUE(ClusterRepo(db_).set(info));
  Database reopened(DatabaseOptions{.path = path_});
  auto got = ClusterRepo(reopened).get();
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->founder, info.founder);
  EXPECT_EQ(**got, info);
}

// ----------------------------------------------------------------- tokens

Token token(const std::string& id, std::optional<std::int64_t> uses,
            std::optional<std::int64_t> expires = 10000) {
  return Token{.id = id,
               .verifier = {0xde, 0xad, 0xbe, 0xef},
               .expires_at = expires,
               .usages_left = uses,
               .description = "for " + id,
               .created_at = 100};
}

// A real token stored the way the REST handler stores it.
keys::Token issue(TokenRepo& repo, std::optional<std::int64_t> uses,
                  std::optional<std::int64_t> expires = 10000) {
  keys::Token t = keys::Token::generate();
  Token row = stored_form(t);
  row.usages_left = uses;
  row.expires_at = expires;
  row.created_at = 100;
  EXPECT_TRUE(repo.create(row));
  return t;
}

// The same id with another secret: what someone who read the id in a log has.
keys::Token guess(const keys::Token& real) {
  return keys::Token::parse(real.id() + ".0123456789abcdef").value();
}

std::vector<std::uint8_t> nonce(int i) {
  std::vector<std::uint8_t> n(24, 0x5a);
  n[0] = static_cast<std::uint8_t>(i);
  n[1] = static_cast<std::uint8_t>(i >> 8);
  n[2] = static_cast<std::uint8_t>(i >> 16);
  return n;
}

int nonce_rows(Database& db, const std::string& token_id = "") {
  if (token_id.empty()) return db.sql().execAndGet("SELECT count(*) FROM join_nonces").getInt();
  SQLite::Statement st(db.sql(), "SELECT count(*) FROM join_nonces WHERE token_id = ?");
  st.bind(1, token_id);
  st.executeStep();
  return st.getColumn(0).getInt();
}

TEST_F(StoreRepos, TokensAreCreatedListedAndRevoked) {
  TokenRepo repo(db_);
  ASSERT_TRUE(repo.create(token("bbbbbb", 1)));
  ASSERT_TRUE(repo.create(token("aaaaaa", std::nullopt, std::nullopt)));
  auto dup = repo.create(token("aaaaaa", 3));
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(EEXIST));
  for (const char* bad : {"abc", "ABCDEF", "abc-12", "abcdefg"}) {
    auto r = repo.create(token(bad, 1));
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().is(EINVAL));
  }

  auto all = repo.list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0], token("aaaaaa", std::nullopt, std::nullopt));
  EXPECT_EQ((*all)[1].id, "bbbbbb");

  ASSERT_TRUE(repo.revoke("bbbbbb"));
  ASSERT_TRUE(repo.revoke("bbbbbb"));
  EXPECT_TRUE((*repo.get("bbbbbb"))->revoked);
  EXPECT_TRUE(repo.revoke("zzzzzz").error().is(ENOENT));
}

TEST_F(StoreRepos, StoredFormIsTheVerifierNeverTheSecret) {
  keys::Token t = keys::Token::generate();
  Token row = stored_form(t);
  EXPECT_EQ(row.id, t.id());
  const keys::TokenVerifier v = keys::token_verifier(keys::derive_token_key(t));
  EXPECT_TRUE(std::equal(row.verifier.begin(), row.verifier.end(), v.begin(), v.end()));
  const std::string secret = t.reveal().substr(kTokenIdLength + 1);
  const std::string stored(row.verifier.begin(), row.verifier.end());
  EXPECT_EQ(stored.find(secret), std::string::npos);
}

// The accepted token, or fails the test.
const Token& accepted(const Result<ConsumeOutcome>& r) {
  static const Token none;
  EXPECT_TRUE(r) << r.error().message;
  if (!r || !std::holds_alternative<Token>(*r)) {
    ADD_FAILURE() << "refused";
    return none;
  }
  return std::get<Token>(*r);
}

TokenRefused refused(const Result<ConsumeOutcome>& r) {
  EXPECT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r && std::holds_alternative<TokenRefused>(*r)) << "accepted";
  return std::get<TokenRefused>(*r);
}

std::optional<TokenRefusal> reason(const Result<ConsumeOutcome>& r) {
  return refused(r).reason_for_operator_log();
}

TEST_F(StoreRepos, ConsumeCountsUsesAndRefusesWithAReasonOnlyForTheOperator) {
  TokenRepo repo(db_);
  keys::Token two = issue(repo, 2);
  for (int i = 0; i < 2; ++i) {
    auto r = repo.consume(two, nonce(i), 500 + i);
    const Token& t = accepted(r);  // as it was before this use
    EXPECT_EQ(t.id, two.id());
    EXPECT_EQ(t.usages_left, 2 - i);
    EXPECT_EQ(t.verifier, stored_form(two).verifier);
  }
  EXPECT_EQ((*repo.get(two.id()))->usages_left, 0);
  EXPECT_EQ((*repo.get(two.id()))->last_used_at, 501);
  EXPECT_EQ(reason(repo.consume(two, nonce(2), 502)), TokenRefusal::exhausted);
  EXPECT_EQ((*repo.get(two.id()))->last_used_at, 501);  // a refusal changes nothing

  keys::Token expiring = issue(repo, 5, 1000);
  accepted(repo.consume(expiring, nonce(0), 999));
  EXPECT_EQ(reason(repo.consume(expiring, nonce(1), 1000)), TokenRefusal::expired);
  EXPECT_EQ((*repo.get(expiring.id()))->usages_left, 4);

  keys::Token revoked = issue(repo, 5);
  ASSERT_TRUE(repo.revoke(revoked.id()));
  auto r = repo.consume(revoked, nonce(0), 1);
  EXPECT_EQ(reason(r), TokenRefusal::revoked);
  // What the joiner may be told is the same fixed text for every cause.
  EXPECT_EQ(refused(r).message(), "bootstrap token refused");
  EXPECT_EQ((*repo.get(revoked.id()))->usages_left, 5);

  keys::Token unlimited = issue(repo, std::nullopt, std::nullopt);
  for (int i = 0; i < 20; ++i) accepted(repo.consume(unlimited, nonce(i), 1 << 30));
  EXPECT_FALSE((*repo.get(unlimited.id()))->usages_left);
  EXPECT_STREQ(to_string(TokenRefusal::exhausted), "token has no uses left");
}

TEST_F(StoreRepos, AWrongSecretSpendsNothingAndRemembersNothing) {
  TokenRepo repo(db_);
  keys::Token real = issue(repo, 1);
  for (int i = 0; i < 5; ++i) {
    auto r = repo.consume(guess(real), nonce(i), 200);
    EXPECT_EQ(reason(r), std::nullopt);
  }
  EXPECT_EQ((*repo.get(real.id()))->usages_left, 1);
  EXPECT_FALSE((*repo.get(real.id()))->last_used_at);
  EXPECT_EQ(nonce_rows(db_), 0);
  // The holder of the real token still gets its one use.
  accepted(repo.consume(real, nonce(0), 201));
  EXPECT_EQ((*repo.get(real.id()))->usages_left, 0);
}

TEST_F(StoreRepos, AnUnknownIdAndAWrongSecretAreRefusedIdentically) {
  TokenRepo repo(db_);
  keys::Token real = issue(repo, 3);
  // Every state of the real token: proving nothing reveals none of them.
  keys::Token revoked = issue(repo, 3);
  ASSERT_TRUE(repo.revoke(revoked.id()));
  keys::Token expired = issue(repo, 3, 10);
  keys::Token exhausted = issue(repo, 0);
  const keys::Token unknown = keys::Token::generate();

  const TokenRefused baseline = refused(repo.consume(unknown, nonce(1), 100));
  EXPECT_EQ(baseline.reason_for_operator_log(), std::nullopt);
  for (const keys::Token* t : {&real, &revoked, &expired, &exhausted}) {
    SCOPED_TRACE(t->id());
    const TokenRefused r = refused(repo.consume(guess(*t), nonce(1), 100));
    EXPECT_EQ(r, baseline);
    EXPECT_EQ(r.message(), baseline.message());
  }

  // The proof sees a stand-in for an unknown id, shaped like a real row, so
  // both cases do the same work.
  std::vector<std::size_t> seen;
  auto record = [&](const Token& stored) {
    seen.push_back(stored.verifier.size());
    return false;
  };
  EXPECT_EQ(refused(repo.consume(real.id(), record, nonce(2), 100)), baseline);
  EXPECT_EQ(refused(repo.consume("zzzzzz", record, nonce(2), 100)), baseline);
  EXPECT_EQ(seen, (std::vector<std::size_t>{32, 32}));
}

TEST_F(StoreRepos, AReplayedNonceIsRefusedAndSpendsNothing) {
  TokenRepo repo(db_);
  keys::Token t = issue(repo, 5);
  accepted(repo.consume(t, nonce(7), 100));
  auto replay = repo.consume(t, nonce(7), 101);
  EXPECT_EQ(reason(replay), TokenRefusal::replayed);
  EXPECT_EQ(refused(replay).message(), "bootstrap token refused");
  EXPECT_EQ((*repo.get(t.id()))->usages_left, 4);
  accepted(repo.consume(t, nonce(8), 102));

  // The same nonce with another token is another join.
  keys::Token other = issue(repo, 5);
  accepted(repo.consume(other, nonce(7), 103));

  EXPECT_TRUE(repo.consume(t, {}, 1).error().is(EINVAL));
  EXPECT_TRUE(repo.consume(t, std::vector<std::uint8_t>(kMaxNonceLength + 1, 1), 1)
                  .error()
                  .is(EINVAL));
}

TEST_F(StoreRepos, JoinNoncesAreForgottenOutsideTheWindow) {
  TokenRepo repo(db_);
  keys::Token t = issue(repo, 5);
  accepted(repo.consume(t, nonce(1), 100));
  accepted(repo.consume(t, nonce(2), 200));
  auto pruned = repo.prune_nonces(150);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(*pruned, 1);
  accepted(repo.consume(t, nonce(1), 300));                                // forgotten
  EXPECT_EQ(reason(repo.consume(t, nonce(2), 300)), TokenRefusal::replayed);  // still remembered
}

TEST(StoreTokenNonces, TheNonceTableNeverExceedsItsBounds) {
  // In memory: thousands of joins, each its own transaction.
  Database db(DatabaseOptions{.path = ":memory:"});
  TokenRepo repo(db);
  std::vector<keys::Token> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back(issue(repo, std::nullopt, std::nullopt));

  // One unlimited token used far beyond its bound: the oldest go first.
  int n = 0;
  for (; n < static_cast<int>(kMaxNoncesPerToken) + 40; ++n) {
    accepted(repo.consume(tokens[0], nonce(n), 1000 + n));
    ASSERT_LE(nonce_rows(db, tokens[0].id()), static_cast<int>(kMaxNoncesPerToken));
  }
  EXPECT_EQ(nonce_rows(db, tokens[0].id()), static_cast<int>(kMaxNoncesPerToken));
  EXPECT_EQ(reason(repo.consume(tokens[0], nonce(n - 1), 5000)), TokenRefusal::replayed);
  accepted(repo.consume(tokens[0], nonce(0), 5000));  // the oldest was forgotten

  // Many tokens together: the whole table stays within its bound.
  for (std::size_t k = 1; k < tokens.size(); ++k)
    for (int i = 0; i < static_cast<int>(kMaxNoncesPerToken); ++i) {
      accepted(repo.consume(tokens[k], nonce(i), 10000 + static_cast<std::int64_t>(k)));
      ASSERT_LE(nonce_rows(db), static_cast<int>(kMaxNonces));
    }
  EXPECT_EQ(nonce_rows(db), static_cast<int>(kMaxNonces));
  // Wrong secrets never add a row, even against a full table.
  for (int i = 0; i < 10; ++i) refused(repo.consume(guess(tokens[3]), nonce(100000 + i), 20000));
  EXPECT_EQ(nonce_rows(db), static_cast<int>(kMaxNonces));
}

TEST_F(StoreRepos, ConsumeFromTwoConnectionsNeverOverspendsAOneUseToken) {
  TokenRepo repo(db_);
  keys::Token t = issue(repo, 1);
  Database other(DatabaseOptions{.path = path_});
  TokenRepo repo2(other);
  int granted = 0, i = 0;
  for (TokenRepo* r : {&repo, &repo2, &repo, &repo2})
    granted += std::holds_alternative<Token>(*r->consume(t, nonce(i++), 50)) ? 1 : 0;
  EXPECT_EQ(granted, 1);
}

TEST_F(StoreRepos, TokenPruneDropsDeadTokensAndTheirNonces) {
  TokenRepo repo(db_);
  ASSERT_TRUE(repo.create(token("alive1", 1, 5000)));
  keys::Token expiring = issue(repo, 2, 100);
  accepted(repo.consume(expiring, nonce(7), 50));
  ASSERT_TRUE(repo.create(token("usedup", 0)));
  ASSERT_TRUE(repo.create(token("revokd", 1)));
  ASSERT_TRUE(repo.revoke("revokd"));
  ASSERT_EQ(nonce_rows(db_), 1);
  auto n = repo.prune(1000);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 3);
  auto left = repo.list();
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].id, "alive1");
  // The nonce went with its token (foreign key, ON DELETE CASCADE).
  EXPECT_EQ(nonce_rows(db_), 0);
}

// ----------------------------------------------------------------- events

TEST_F(StoreRepos, EventsAppendListSinceAndPrune) {
  EventRepo repo(db_);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    auto id = repo.append(100 + i, "node-joined", "node-" + std::to_string(i), "joined");
    ASSERT_TRUE(id);
    ids.push_back(*id);
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));

  auto first2 = repo.list(2);
  ASSERT_EQ(first2->size(), 2u);
  EXPECT_EQ((*first2)[0].node, "node-0");
  EXPECT_EQ((*first2)[1].at, 101);
  auto rest = repo.list(100, (*first2)[1].id);
  ASSERT_EQ(rest->size(), 3u);
  EXPECT_EQ((*rest)[0].node, "node-2");

  EXPECT_EQ(*repo.prune(103), 3);
  auto left = repo.list(100);
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ((*left)[0].at, 103);
  // Ids are never reused after a prune: a poller never misses a new event.
  auto next = repo.append(200, "node-removed", "node-1", "removed by operator");
  EXPECT_GT(*next, ids.back());
  EXPECT_FALSE(repo.append(1, "", "", "x"));
}

}  // namespace
}  // namespace meshd::store
