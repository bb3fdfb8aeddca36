// The join exchange end to end, as pure functions: a joiner's request, the
// member's answer over a token store (an in-memory fake and the real
// store::TokenRepo over SQLite), and the joiner opening the reply.
#include "cluster_fixture.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/token_store_adapter.h"
#include "store/database.h"
#include "store/tokens.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

namespace meshd::controlplane {
namespace {

using testing::params_for;
using testing::signed_record;
using Outcome = JoinTokenStore::Outcome;

constexpr std::uint64_t kNowMs = 1'800'000'000'000;  // the member's clock
constexpr std::int64_t kNowS = kNowMs / 1000;

JoinNonce random_nonce() {
  JoinNonce n{};
  randombytes_buf(n.data(), n.size());
  return n;
}

bool contains_bytes(std::span<const std::uint8_t> hay, std::span<const std::uint8_t> needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

struct TokenSpec {
  std::optional<std::int64_t> expires_at = kNowS + 3600;
  std::optional<std::int64_t> uses;
  bool revoked = false;
};

// The store as the exchange sees it, over two implementations.
class Store {
 public:
  virtual ~Store() = default;
  virtual JoinTokenStore& tokens() = 0;
  virtual void add(const keys::Token& t, const TokenSpec& spec) = 0;
  virtual void revoke(const std::string& id) = 0;
  virtual std::optional<std::int64_t> uses_left(const std::string& id) = 0;
};

// In memory, with the same rules as store::TokenRepo::consume.
class FakeTokenStore final : public JoinTokenStore, public Store {
 public:
  struct Row {
    keys::TokenVerifier verifier;
    TokenSpec spec;
    std::set<std::vector<std::uint8_t>> nonces;
  };
  Result<Outcome> consume(const std::string& id, const Proof& proof,
                          std::span<const std::uint8_t> nonce, std::int64_t now) override {
    auto it = rows_.find(id);
    if (it == rows_.end()) {
      keys::TokenVerifier stand_in{};
      randombytes_buf(stand_in.data(), stand_in.size());
      (void)proof(stand_in);
      return Outcome::kUnproven;
    }
    Row& r = it->second;
    if (!proof(r.verifier)) return Outcome::kUnproven;
    if (r.spec.revoked) return Outcome::kRevoked;
    if (r.spec.expires_at && *r.spec.expires_at <= now) return Outcome::kExpired;
    if (r.spec.uses && *r.spec.uses <= 0) return Outcome::kUsedUp;
    std::vector<std::uint8_t> n(nonce.begin(), nonce.end());
    if (r.nonces.count(n)) return Outcome::kReplayed;
    r.nonces.insert(n);
    if (r.spec.uses) --*r.spec.uses;
    return Outcome::kAccepted;
  }
  JoinTokenStore& tokens() override { return *this; }
  void add(const keys::Token& t, const TokenSpec& spec) override {
    rows_[t.id()] = Row{keys::token_verifier(keys::derive_token_key(t)), spec, {}};
  }
  void revoke(const std::string& id) override { rows_.at(id).spec.revoked = true; }
  std::optional<std::int64_t> uses_left(const std::string& id) override {
    return rows_.at(id).spec.uses;
  }

 private:
  std::map<std::string, Row> rows_;
};

// The real store: TokenRepo over an in-memory SQLite database.
class RepoTokenStore final : public Store {
 public:
  JoinTokenStore& tokens() override { return tokens_; }
  void add(const keys::Token& t, const TokenSpec& spec) override {
    store::Token row = store::stored_form(t);
    row.expires_at = spec.expires_at;
    row.usages_left = spec.uses;
    row.created_at = kNowS - 10;
    ASSERT_TRUE(repo_.create(row));
    if (spec.revoked) revoke(row.id);
  }
  void revoke(const std::string& id) override { ASSERT_TRUE(repo_.revoke(id)); }
  std::optional<std::int64_t> uses_left(const std::string& id) override {
    return repo_.get(id).value()->usages_left;
  }

 private:
  store::Database db_{store::DatabaseOptions{.path = ":memory:"}};
  store::TokenRepo repo_{db_};
  StoreJoinTokens tokens_{repo_};
};

struct Joiner {
  keys::PrivateKey wg = keys::PrivateKey::generate();
  keys::IdentitySecretKey identity = keys::IdentitySecretKey::generate();
  JoinClaims claims(std::string name, std::uint64_t at = kNowMs) const {
    return JoinClaims{std::move(name), wg.public_key(), identity.public_key(),
                      {Endpoint::parse("192.0.2.7:51820").value()}, at};
  }
};

class JoinExchange : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam())
      store_ = std::make_unique<RepoTokenStore>();
    else
      store_ = std::make_unique<FakeTokenStore>();
    table_.merge(signed_record(founder_, founder_, "founder", testing::nth_cidr(0), 1000));
  }

  struct Run {
    std::vector<std::uint8_t> request;
    JoinAnswer answer;
    Result<JoinOutcome> outcome;
  };
  Run run(const keys::Token& presented, const JoinClaims& claims, std::uint64_t member_now = kNowMs,
          std::optional<JoinNonce> nonce = std::nullopt) {
    JoinNonce n = nonce.value_or(random_nonce());
    auto req = make_join_request(presented, claims, n);
    auto ans = answer_join(req, member_now, store_->tokens(), {founder_, table_, reserved_},
                           random_nonce());
    EXPECT_TRUE(ans) << ans.error().message;
    auto out = open_join_reply(ans->reply, presented, claims, n);
    return Run{req, *ans, out};
  }
  static std::optional<JoinRefusal> sealed_reason(const Run& r) {
    EXPECT_TRUE(r.outcome) << r.outcome.error().message;
    EXPECT_TRUE(std::holds_alternative<JoinRefused>(*r.outcome));
    return std::get<JoinRefused>(*r.outcome).reason;
  }

  keys::IdentitySecretKey founder_ = keys::IdentitySecretKey::generate();
  NodeTable table_{params_for(founder_)};
  std::vector<IpPrefix> reserved_;
  std::unique_ptr<Store> store_;
};

TEST_P(JoinExchange, AdmitsAndTheJoinerCanSignARecordEveryMemberAccepts) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 2});
  Joiner j;
  auto claims = j.claims("node-a");
  Run r = run(token, claims);
  ASSERT_TRUE(r.outcome) << r.outcome.error().message;
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*r.outcome));
  const auto& ad = std::get<JoinAdmitted>(*r.outcome);
  EXPECT_EQ(ad.cluster.cluster_id, "c0ffee");
  EXPECT_EQ(ad.cluster.founder, founder_.public_key());
  EXPECT_EQ(ad.cluster.cluster_cidr, table_.params().cluster_cidr);
  EXPECT_EQ(ad.pod_cidr, testing::nth_cidr(1));  // the lowest free one
  EXPECT_EQ(ad.admission.admitter, founder_.public_key());
  ASSERT_EQ(ad.records.size(), 1u);
  EXPECT_EQ(ad.records[0].record.identity, founder_.public_key());
  EXPECT_EQ(store_->uses_left(token.id()), 1);
  EXPECT_EQ(r.answer.pod_cidr, ad.pod_cidr);

  // The joiner's own record, built from the reply, is accepted by the
  // member's table and by a table built from the reply alone.
  NodeRecord mine;
  mine.cluster_id = ad.cluster.cluster_id;
  mine.name = claims.name;
  mine.wg_public_key = claims.wg_public_key;
  mine.identity = claims.identity;
  mine.endpoints = claims.endpoints;
  mine.pod_cidr = ad.pod_cidr;
  mine.version = 1;
  mine.admission = ad.admission;
  SignedRecord sr = sign_record(mine, j.identity);
  NodeTable fresh(ad.cluster);
  for (const auto& rec : ad.records) EXPECT_EQ(fresh.merge(rec), MergeOutcome::kAccepted);
  EXPECT_EQ(fresh.merge(sr), MergeOutcome::kAccepted);
  EXPECT_EQ(table_.merge(sr), MergeOutcome::kAccepted);
}

TEST_P(JoinExchange, UnknownIdAndWrongSecretGetTheSameBytes) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  auto wrong = keys::Token::parse(token.id() + ".0000000000000000").value();
  auto unknown = keys::Token::generate();
  Joiner j;
  Run a = run(wrong, j.claims("node-a"));
  Run b = run(unknown, j.claims("node-a"));
  EXPECT_EQ(a.answer.reply, uniform_refusal());
  EXPECT_EQ(b.answer.reply, uniform_refusal());
  EXPECT_TRUE(a.answer.unproven);
  EXPECT_FALSE(a.answer.refusal);
  for (const Run* r : {&a, &b}) EXPECT_EQ(sealed_reason(*r), std::nullopt);
  EXPECT_EQ(store_->uses_left(token.id()), 1);  // nothing spent
}

TEST_P(JoinExchange, ProvenCallersLearnWhyTheyAreRefused) {
  Joiner j;
  auto expired = keys::Token::generate();
  store_->add(expired, {.expires_at = kNowS});
  EXPECT_EQ(sealed_reason(run(expired, j.claims("node-a"))), JoinRefusal::kExpired);

  auto revoked = keys::Token::generate();
  store_->add(revoked, {.revoked = true});
  EXPECT_EQ(sealed_reason(run(revoked, j.claims("node-a"))), JoinRefusal::kRevoked);

  auto once = keys::Token::generate();
  store_->add(once, {.uses = 1});
  Joiner first;
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*run(once, first.claims("node-b")).outcome));
  EXPECT_EQ(sealed_reason(run(once, j.claims("node-a"))), JoinRefusal::kUsedUp);

  auto good = keys::Token::generate();
  store_->add(good, {.uses = 5});
  // "node-b" is now held by `first`, a live identity in the member's table.
  table_.merge(signed_record(first.identity, founder_, "node-b", testing::nth_cidr(1), 2000));
  EXPECT_EQ(sealed_reason(run(good, j.claims("node-b"))), JoinRefusal::kNameHeld);
  EXPECT_EQ(sealed_reason(run(good, j.claims("Not_A_Name"))), JoinRefusal::kInvalidName);
  table_.merge(testing::tombstone_of(j.identity.public_key(), founder_, 3000));
  EXPECT_EQ(sealed_reason(run(good, j.claims("node-a"))), JoinRefusal::kRemoved);
  EXPECT_EQ(store_->uses_left(good.id()), 5);  // refusals the joiner can fix cost no use
}

TEST_P(JoinExchange, AFullClusterCidrIsSaid) {
  ClusterParams small = params_for(founder_);
  small.cluster_cidr = IpPrefix::parse("10.244.0.0/23").value();
  table_ = NodeTable(small);
  table_.merge(signed_record(founder_, founder_, "founder", testing::nth_cidr(0), 1000));
  auto other = keys::IdentitySecretKey::generate();
  table_.merge(signed_record(other, founder_, "other", testing::nth_cidr(1), 2000));
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  Joiner j;
  EXPECT_EQ(sealed_reason(run(token, j.claims("node-a"))), JoinRefusal::kCidrFull);
  EXPECT_EQ(store_->uses_left(token.id()), 1);
}

// Datastore mode: the member claims the CIDR through its hook, which may
// hand out another than the table's pick; a datastore it cannot reach is
// said (the joiner waits) and costs no use; a claim for a join the token
// then refuses is undone.
TEST_P(JoinExchange, ADatastoreClaimDecidesTheCidrAndIsUndoneWhenTheTokenRefuses) {
  std::vector<std::pair<std::string, IpPrefix>> claimed, unclaimed;
  Result<IpPrefix> answer = testing::nth_cidr(5);
  std::optional<IpPrefix> proposed_seen;
  std::uint64_t admitted_at_seen = 0;
  JoinMemberContext ctx{founder_, table_, reserved_};
  ctx.claim = [&](const JoinClaims& c, const std::optional<IpPrefix>& proposed,
                  std::uint64_t admitted_at) -> Result<IpPrefix> {
    proposed_seen = proposed;
    admitted_at_seen = admitted_at;
    if (answer) claimed.emplace_back(c.name, *answer);
    return answer;
  };
  ctx.unclaim = [&](const JoinClaims& c, const IpPrefix& cidr) { unclaimed.emplace_back(c.name, cidr); };
  auto ask = [&](const keys::Token& t, const JoinClaims& claims) {
    JoinNonce n = random_nonce();
    auto req = make_join_request(t, claims, n);
    auto ans = answer_join(req, kNowMs, store_->tokens(), ctx, random_nonce());
    EXPECT_TRUE(ans) << ans.error().message;
    return open_join_reply(ans->reply, t, claims, n).value();
  };

  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  Joiner a;
  auto out = ask(token, a.claims("node-a"));
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(out));
  EXPECT_EQ(std::get<JoinAdmitted>(out).pod_cidr, testing::nth_cidr(5));  // the claim's, not the pick
  EXPECT_EQ(std::get<JoinAdmitted>(out).admission.admitted_at, admitted_at_seen);
  EXPECT_EQ(proposed_seen, testing::nth_cidr(1));  // the table's lowest free
  EXPECT_TRUE(unclaimed.empty());

  // The token is used up now: the claim made before the store said so is undone.
  Joiner b;
  answer = testing::nth_cidr(6);
  out = ask(token, b.claims("node-b"));
  ASSERT_TRUE(std::holds_alternative<JoinRefused>(out));
  EXPECT_EQ(std::get<JoinRefused>(out).reason, JoinRefusal::kUsedUp);
  ASSERT_EQ(unclaimed.size(), 1u);
  EXPECT_EQ(unclaimed[0], (std::pair<std::string, IpPrefix>{"node-b", testing::nth_cidr(6)}));

  auto fresh = keys::Token::generate();
  store_->add(fresh, {.uses = 1});
  answer = Error::from_errno(ETIMEDOUT, "etcd: no endpoint answered");
  out = ask(fresh, b.claims("node-b"));
  ASSERT_TRUE(std::holds_alternative<JoinRefused>(out));
  EXPECT_EQ(std::get<JoinRefused>(out).reason, JoinRefusal::kUnavailable);
  answer = Error::from_errno(ENOSPC, "no free CIDR");
  out = ask(fresh, b.claims("node-b"));
  EXPECT_EQ(std::get<JoinRefused>(out).reason, JoinRefusal::kCidrFull);
  EXPECT_EQ(store_->uses_left(fresh.id()), 1);  // neither cost a use
  EXPECT_EQ(unclaimed.size(), 1u);              // nothing was claimed to undo
}

TEST_P(JoinExchange, AJoinerOutsideTheWindowIsToldClockSkewAndSpendsNoUse) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  Joiner j;
  for (std::uint64_t at : {kNowMs - kJoinWindowMs - 1, kNowMs + kJoinWindowMs + 1}) {
    Run r = run(token, j.claims("node-a", at));
    EXPECT_EQ(sealed_reason(r), JoinRefusal::kClockSkew);
    EXPECT_EQ(std::get<JoinRefused>(*r.outcome).member_time, kNowMs);
  }
  EXPECT_EQ(store_->uses_left(token.id()), 1);
  // At the window's edge it is admitted.
  Run ok = run(token, j.claims("node-a", kNowMs + kJoinWindowMs));
  EXPECT_TRUE(std::holds_alternative<JoinAdmitted>(*ok.outcome));
}

TEST_P(JoinExchange, AReplayedRequestIsRefused) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 10});
  Joiner j;
  auto claims = j.claims("node-a");
  Run first = run(token, claims);
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*first.outcome));
  // The recorded request, replayed inside the window: the nonce is known.
  auto again = answer_join(first.request, kNowMs + 1000, store_->tokens(), {founder_, table_},
                           random_nonce());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->refusal, JoinRefusal::kReplayed);
  EXPECT_FALSE(again->admitted);
  // And later, outside the window: refused by the timestamp.
  auto late = answer_join(first.request, kNowMs + kJoinWindowMs + 1, store_->tokens(),
                          {founder_, table_}, random_nonce());
  ASSERT_TRUE(late);
  EXPECT_EQ(late->refusal, JoinRefusal::kClockSkew);
  EXPECT_FALSE(late->admitted);
  EXPECT_EQ(store_->uses_left(token.id()), 9);
}

TEST_P(JoinExchange, AManInTheMiddleWithoutTheTokenCanNeitherForgeNorAlter) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1000});
  Joiner j;
  auto claims = j.claims("node-a");
  JoinNonce n = random_nonce();
  auto req = make_join_request(token, claims, n);
  // Any flipped byte of the request: never admitted, nothing spent.
  for (std::size_t i = 0; i < req.size(); ++i) {
    auto bad = req;
    bad[i] ^= 0x01;
    auto a = answer_join(bad, kNowMs, store_->tokens(), {founder_, table_}, random_nonce());
    ASSERT_TRUE(a);
    EXPECT_FALSE(a->admitted) << "byte " << i;
    EXPECT_EQ(a->reply, uniform_refusal()) << "byte " << i;
  }
  EXPECT_EQ(store_->uses_left(token.id()), 1000);
  // Any flipped byte of a genuine reply: the joiner does not take it.
  auto a = answer_join(req, kNowMs, store_->tokens(), {founder_, table_}, random_nonce());
  ASSERT_TRUE(a && a->admitted);
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*open_join_reply(a->reply, token, claims, n)));
  for (std::size_t i = 0; i < a->reply.size(); ++i) {
    auto bad = a->reply;
    bad[i] ^= 0x01;
    auto o = open_join_reply(bad, token, claims, n);
    EXPECT_FALSE(o && std::holds_alternative<JoinAdmitted>(*o)) << "byte " << i;
  }
  // A reply sealed for another request (another nonce) is refused.
  EXPECT_FALSE(open_join_reply(a->reply, token, claims, random_nonce()));
  // A member that does not hold the token cannot forge a reply: one made
  // with another token's key does not open.
  auto other = keys::Token::parse(token.id() + ".1111111111111111").value();
  FakeTokenStore impostor_store;
  impostor_store.add(other, {});
  auto forged = make_join_request(other, claims, n);
  auto fa = answer_join(forged, kNowMs, impostor_store, {founder_, table_}, random_nonce());
  ASSERT_TRUE(fa && fa->admitted);
  EXPECT_FALSE(open_join_reply(fa->reply, token, claims, n));
  // The claims in the request cannot be read without the key.
  auto parsed = decode_join_request(req).value();
  EXPECT_FALSE(open_claims(parsed, join_key(other)));
  EXPECT_TRUE(open_claims(parsed, join_key(token)));
  std::string name = claims.name;
  EXPECT_FALSE(contains_bytes(req, std::span(reinterpret_cast<const std::uint8_t*>(name.data()),
                                             name.size())));
}

TEST_P(JoinExchange, SecretsNeverAppearInAnyMessage) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  Joiner j;
  Run r = run(token, j.claims("node-a"));
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*r.outcome));
  const std::string revealed = token.reveal();
  const std::string secret = revealed.substr(keys::kTokenIdLength + 1);
  auto token_key = keys::derive_token_key(token);
  auto verifier = keys::token_verifier(token_key);
  auto box_key = join_key(token);
  auto seed = j.identity.seed();
  auto as_bytes = [](const std::string& s) {
    return std::vector<std::uint8_t>(s.begin(), s.end());
  };
  for (const auto* msg : {&r.request, &r.answer.reply}) {
    EXPECT_FALSE(contains_bytes(*msg, j.wg.bytes()));         // WireGuard private key
    EXPECT_FALSE(contains_bytes(*msg, seed));                 // identity private key
    EXPECT_FALSE(contains_bytes(*msg, as_bytes(secret)));     // the token's secret
    EXPECT_FALSE(contains_bytes(*msg, token_key.bytes()));    // its derived keys
    EXPECT_FALSE(contains_bytes(*msg, verifier));
    EXPECT_FALSE(contains_bytes(*msg, box_key));
  }
  sodium_memzero(seed.data(), seed.size());
}

TEST_P(JoinExchange, AMemberMayRejoinUnderItsOwnName) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  Joiner j;
  // j already holds "node-a" in the table (e.g. it lost its disk but kept its identity).
  // Its CIDR is not the lowest free one, so a fresh allocation would differ.
  table_.merge(signed_record(j.identity, founder_, "node-a", testing::nth_cidr(3), 2000));
  Run r = run(token, j.claims("node-a"));
  ASSERT_TRUE(r.outcome);
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*r.outcome));
  // Re-admitted with the CIDR its record holds, not a second one.
  EXPECT_EQ(std::get<JoinAdmitted>(*r.outcome).pod_cidr, testing::nth_cidr(3));
  EXPECT_EQ(r.answer.pod_cidr, testing::nth_cidr(3));
}

TEST_P(JoinExchange, AnIdentityRejoiningUnderANewNameGetsAFreshCidr) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  Joiner j;
  table_.merge(signed_record(j.identity, founder_, "node-a", testing::nth_cidr(3), 2000));
  Run r = run(token, j.claims("node-b"));
  ASSERT_TRUE(r.outcome);
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*r.outcome));
  EXPECT_EQ(std::get<JoinAdmitted>(*r.outcome).pod_cidr, testing::nth_cidr(1));
}

TEST_P(JoinExchange, JoinsAnsweredBackToBackGetDifferentCidrsWhenTheFirstIsReserved) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 2});
  Joiner a, b;
  Run ra = run(token, a.claims("node-a"));
  ASSERT_TRUE(ra.answer.pod_cidr);
  // The member holds a's CIDR until a's record arrives.
  reserved_.push_back(*ra.answer.pod_cidr);
  Run rb = run(token, b.claims("node-b"));
  ASSERT_TRUE(rb.answer.pod_cidr);
  EXPECT_EQ(*ra.answer.pod_cidr, testing::nth_cidr(1));
  EXPECT_EQ(*rb.answer.pod_cidr, testing::nth_cidr(2));
  ASSERT_TRUE(rb.outcome);
  ASSERT_TRUE(std::holds_alternative<JoinAdmitted>(*rb.outcome));
  EXPECT_EQ(std::get<JoinAdmitted>(*rb.outcome).pod_cidr, testing::nth_cidr(2));
}

TEST_P(JoinExchange, FieldsOfANewerVersionAreIgnored) {
  auto token = keys::Token::generate();
  store_->add(token, {.uses = 1});
  Joiner j;
  auto claims = j.claims("node-a");
  JoinNonce n = random_nonce();
  auto req = make_join_request(token, claims, n);
  // Append field 200 (unknown here) to the clear body, and fix the length.
  std::vector<std::uint8_t> extra{200, 0, 0, 0, 3, 'n', 'e', 'w'};
  req.insert(req.end(), extra.begin(), extra.end());
  std::uint32_t len = static_cast<std::uint32_t>(req.size() - kJoinHeaderBytes);
  for (int k = 0; k < 4; ++k) req[8 + k] = static_cast<std::uint8_t>(len >> (24 - 8 * k));
  auto a = answer_join(req, kNowMs, store_->tokens(), {founder_, table_}, random_nonce());
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->admitted);
  auto o = open_join_reply(a->reply, token, claims, n);
  ASSERT_TRUE(o);
  EXPECT_TRUE(std::holds_alternative<JoinAdmitted>(*o));
}

TEST(JoinWire, RefusesOversizedAndTruncatedRequests) {
  auto token = keys::Token::generate();
  Joiner j;
  auto req = make_join_request(token, j.claims("node-a"), random_nonce());
  EXPECT_TRUE(decode_join_request(req));
  for (std::size_t cut = 0; cut < req.size(); ++cut)
    EXPECT_FALSE(decode_join_request(std::span(req).first(cut))) << cut;
  std::vector<std::uint8_t> big(kMaxJoinRequestBytes + 1, 0);
  std::copy(req.begin(), req.begin() + kJoinHeaderBytes, big.begin());
  EXPECT_FALSE(decode_join_request(big));
  // A known field twice.
  auto twice = req;
  std::vector<std::uint8_t> dup{2, 0, 0, 0, 24};
  dup.resize(dup.size() + 24, 0);
  twice.insert(twice.end(), dup.begin(), dup.end());
  std::uint32_t len = static_cast<std::uint32_t>(twice.size() - kJoinHeaderBytes);
  for (int k = 0; k < 4; ++k) twice[8 + k] = static_cast<std::uint8_t>(len >> (24 - 8 * k));
  EXPECT_FALSE(decode_join_request(twice));
}

TEST(JoinWire, RefusesProtocolVersionZeroAndAnyKindButTheRequest) {
  auto token = keys::Token::generate();
  Joiner j;
  auto req = make_join_request(token, j.claims("node-a"), random_nonce());
  auto v0 = req;
  v0[4] = 0;
  v0[5] = 0;
  EXPECT_FALSE(decode_join_request(v0));
  auto kind = req;
  kind[6] = 1;
  EXPECT_FALSE(decode_join_request(kind));
  // The token id's form: 6 characters of [a-z0-9], nothing else reaches the store.
  const std::string id = token.id();
  auto id_at = std::search(req.begin(), req.end(), id.begin(), id.end());
  ASSERT_NE(id_at, req.end());
  auto upper = req;
  upper[id_at - req.begin()] = 'A';
  EXPECT_FALSE(decode_join_request(upper));
  // A next version's request decodes (its box then decides).
  auto v2 = req;
  v2[5] = 2;
  auto d = decode_join_request(v2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->protocol_version, 2);
  EXPECT_FALSE(open_claims(*d, join_key(token)));  // the version is bound into the box
}

INSTANTIATE_TEST_SUITE_P(Stores, JoinExchange, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "TokenRepo" : "Fake"; });

}  // namespace
}  // namespace meshd::controlplane
