#include "keys/wg_key.h"
#include "store/cluster.h"
#include "store/database.h"
#include "store/events.h"
#include "store/local_node.h"
#include "store/nodes.h"
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
  EXPECT_EQ(**id, identity);

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

// ------------------------------------------------------------------ nodes

NodeRecord record(const std::string& name, std::uint64_t version) {
  NodeRecord r;
  r.name = name;
  r.wg_public_key.fill(static_cast<std::uint8_t>(name.size()));
  r.identity_public_key.fill(0x42);
  r.endpoints = {Endpoint::parse("192.0.2.10:51820").value(),
                 Endpoint::parse("[2001:db8::10]:51820").value()};
  r.pod_cidr = prefix("10.244.1.0/24");
  r.version = version;
  r.admitted_by = "node-a";
  r.admitted_at = 1000;
  r.admission_proof = {1, 2, 3};
  r.signature = {9, 8, 7, 6};
  return r;
}

TEST_F(StoreRepos, NodeRecordsRoundTripEveryField) {
  NodeRepo repo(db_);
  NodeRecord r = record("node-b", 3);
  r.last_seen = 1234;
  r.version = 0xfedcba9876543210ull;  // above INT64_MAX: stored bit for bit
  ASSERT_TRUE(repo.upsert(r));
  auto got = repo.get("node-b");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, r);
  EXPECT_FALSE(*repo.get("nobody"));
}

TEST_F(StoreRepos, NodeUpsertRefusesAnOlderVersionAndADifferentRecordWithTheSameVersion) {
  NodeRepo repo(db_);
  ASSERT_TRUE(repo.upsert(record("node-b", 5)));

  auto older = repo.upsert(record("node-b", 4));
  ASSERT_FALSE(older);
  EXPECT_TRUE(older.error().is(ESTALE));
  EXPECT_NE(older.error().message.find("version 4 is older than the stored version 5"),
            std::string::npos)
      << older.error().message;

  NodeRecord forged = record("node-b", 5);
  forged.endpoints = {Endpoint::parse("198.51.100.1:51820").value()};
  auto same = repo.upsert(forged);
  ASSERT_FALSE(same);
  EXPECT_TRUE(same.error().is(EEXIST));

  EXPECT_TRUE(repo.upsert(record("node-b", 5)));  // identical re-delivery is fine
  NodeRecord newer = record("node-b", 6);
  newer.endpoints = {Endpoint::parse("198.51.100.1:51820").value()};
  ASSERT_TRUE(repo.upsert(newer));
  EXPECT_EQ((*repo.get("node-b"))->endpoints, newer.endpoints);
  EXPECT_EQ((*repo.get("node-b"))->version, 6u);
}

TEST_F(StoreRepos, RemovedNodesAreTombstonedAndStayRemoved) {
  NodeRepo repo(db_);
  ASSERT_TRUE(repo.upsert(record("node-c", 1)));
  ASSERT_TRUE(repo.upsert(record("node-b", 1)));
  ASSERT_TRUE(repo.upsert(record("node-d", 1)));
  ASSERT_TRUE(repo.mark_removed("node-c", 5000));
  ASSERT_TRUE(repo.mark_removed("node-c", 6000));  // idempotent, keeps the first time

  auto live = repo.list();
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[0].name, "node-b");
  EXPECT_EQ((*live)[1].name, "node-d");
  auto all = repo.list(NodeFilter::all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_TRUE((*all)[1].removed);
  EXPECT_EQ((*all)[1].removed_at, 5000);

  // A newer record relayed later does not resurrect it.
  ASSERT_TRUE(repo.upsert(record("node-c", 2)));
  EXPECT_TRUE((*repo.get("node-c"))->removed);
  EXPECT_EQ(repo.list()->size(), 2u);

  auto unknown = repo.mark_removed("ghost", 1);
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(unknown.error().is(ENOENT));
}

TEST_F(StoreRepos, LastSeenOnlyMovesForward) {
  NodeRepo repo(db_);
  ASSERT_TRUE(repo.upsert(record("node-b", 1)));
  ASSERT_TRUE(repo.set_last_seen("node-b", 300));
  ASSERT_TRUE(repo.set_last_seen("node-b", 200));
  EXPECT_EQ((*repo.get("node-b"))->last_seen, 300);
  EXPECT_EQ((*repo.get("node-b"))->version, 1u);
  EXPECT_TRUE(repo.set_last_seen("ghost", 1).error().is(ENOENT));
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

TokenRefusal refusal(const Result<ConsumeOutcome>& r) {
  EXPECT_TRUE(r);
  EXPECT_TRUE(std::holds_alternative<TokenRefusal>(*r));
  return std::get<TokenRefusal>(*r);
}

TEST_F(StoreRepos, ConsumeCountsUsesAndRefusesWithAReason) {
  TokenRepo repo(db_);
  ASSERT_TRUE(repo.create(token("twouse", 2)));
  for (int i = 0; i < 2; ++i) {
    auto r = repo.consume("twouse", 500 + i);
    ASSERT_TRUE(r);
    ASSERT_TRUE(std::holds_alternative<Token>(*r));
    EXPECT_EQ(std::get<Token>(*r).verifier, (std::vector<std::uint8_t>{0xde, 0xad, 0xbe, 0xef}));
  }
  EXPECT_EQ((*repo.get("twouse"))->usages_left, 0);
  EXPECT_EQ((*repo.get("twouse"))->last_used_at, 501);
  EXPECT_EQ(refusal(repo.consume("twouse", 502)), TokenRefusal::exhausted);
  EXPECT_EQ((*repo.get("twouse"))->last_used_at, 501);  // a refusal changes nothing

  EXPECT_EQ(refusal(repo.consume("nobody", 1)), TokenRefusal::unknown);

  ASSERT_TRUE(repo.create(token("expire", 5, 1000)));
  EXPECT_TRUE(std::holds_alternative<Token>(*repo.consume("expire", 999)));
  EXPECT_EQ(refusal(repo.consume("expire", 1000)), TokenRefusal::expired);
  EXPECT_EQ((*repo.get("expire"))->usages_left, 4);

  ASSERT_TRUE(repo.create(token("revokd", 5)));
  ASSERT_TRUE(repo.revoke("revokd"));
  EXPECT_EQ(refusal(repo.consume("revokd", 1)), TokenRefusal::revoked);
  EXPECT_EQ((*repo.get("revokd"))->usages_left, 5);

  ASSERT_TRUE(repo.create(token("unlimt", std::nullopt, std::nullopt)));
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(std::holds_alternative<Token>(*repo.consume("unlimt", 1 << 30)));
  EXPECT_FALSE((*repo.get("unlimt"))->usages_left);
  EXPECT_STREQ(to_string(TokenRefusal::exhausted), "token has no uses left");
}

TEST_F(StoreRepos, ConsumeFromTwoConnectionsNeverOverspendsAOneUseToken) {
  TokenRepo repo(db_);
  ASSERT_TRUE(repo.create(token("oneuse", 1)));
  Database other(DatabaseOptions{.path = path_});
  TokenRepo repo2(other);
  int granted = 0;
  for (TokenRepo* r : {&repo, &repo2, &repo, &repo2})
    granted += std::holds_alternative<Token>(*r->consume("oneuse", 50)) ? 1 : 0;
  EXPECT_EQ(granted, 1);
}

TEST_F(StoreRepos, JoinNoncesRefuseReplaysUntilPruned) {
  TokenRepo repo(db_);
  ASSERT_TRUE(repo.create(token("tokenx", 3)));
  const std::vector<std::uint8_t> n1{1, 2, 3, 4}, n2{1, 2, 3, 5};
  ASSERT_TRUE(repo.remember_nonce("tokenx", n1, 100));
  auto replay = repo.remember_nonce("tokenx", n1, 101);
  ASSERT_FALSE(replay);
  EXPECT_TRUE(replay.error().is(EEXIST));
  EXPECT_NE(replay.error().message.find("replayed"), std::string::npos);
  ASSERT_TRUE(repo.remember_nonce("tokenx", n2, 200));
  EXPECT_TRUE(repo.remember_nonce("nosuch", n1, 100).error().is(ENOENT));

  auto pruned = repo.prune_nonces(150);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(*pruned, 1);
  EXPECT_TRUE(repo.remember_nonce("tokenx", n1, 300));   // forgotten: outside the window
  EXPECT_FALSE(repo.remember_nonce("tokenx", n2, 300));  // still remembered
}

TEST_F(StoreRepos, TokenPruneDropsDeadTokensAndTheirNonces) {
  TokenRepo repo(db_);
  ASSERT_TRUE(repo.create(token("alive1", 1, 5000)));
  ASSERT_TRUE(repo.create(token("expird", 1, 100)));
  ASSERT_TRUE(repo.create(token("usedup", 0)));
  ASSERT_TRUE(repo.create(token("revokd", 1)));
  ASSERT_TRUE(repo.revoke("revokd"));
  ASSERT_TRUE(repo.remember_nonce("expird", {7}, 50));
  auto n = repo.prune(1000);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 3);
  auto left = repo.list();
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].id, "alive1");
  // The nonce went with its token (foreign key, ON DELETE CASCADE).
  EXPECT_EQ(db_.sql().execAndGet("SELECT count(*) FROM join_nonces").getInt(), 0);
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
