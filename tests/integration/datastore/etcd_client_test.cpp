// The etcd client (meshd/datastore/etcd_client.h) against a real 3-member
// etcd 3.4 (tests/support/etcd_cluster.h), in a network namespace each test
// makes: key-value calls, the create-once transaction under 20 racers,
// leases, failover when members die, the watch stream (history, compaction,
// progress notifications), and TLS + RBAC with token auth. Where a check must
// not rely on the client under test, the harness reads etcd through curl.
#include "meshd/datastore/etcd_client.h"
#include "netlink/netns.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/eventually.h"
#include "tests/support/prerequisite.h"
#include "tests/support/underlay.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace meshd::datastore {
namespace {

using namespace std::chrono_literals;
using testing::EtcdCluster;
using testing::EtcdClusterOptions;
using testing::eventually;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Each test: its own cluster, and the test's thread (and the threads it
// starts) inside the cluster's namespace for the test's duration.
class EtcdClientTest : public ::testing::Test {
 protected:
  virtual EtcdClusterOptions cluster_options() const { return {}; }

  void SetUp() override {
    MESHD_REQUIRE(EtcdCluster::missing().empty(), EtcdCluster::missing());
    cluster_ = std::make_unique<EtcdCluster>(3, cluster_options());
    auto g = nl::NetnsGuard::enter(cluster_->ns().fd());
    ASSERT_TRUE(g) << g.error().message;
    guard_.emplace(std::move(*g));
  }
  void TearDown() override {
    guard_.reset();
    if (HasFailure() && cluster_) std::fprintf(stderr, "%s", cluster_->all_log_tails().c_str());
  }

  EtcdOptions options(std::vector<std::string> endpoints = {}) const {
    EtcdOptions o;
    o.endpoints = endpoints.empty() ? cluster_->endpoints() : std::move(endpoints);
    o.timeout = 2s;
    if (cluster_->options().secure) {
      const auto& s = cluster_->security();
      o.ca_file = s.ca_file;
      o.cert_file = s.cert_file;
      o.key_file = s.key_file;
      o.username = s.user;
      o.password = s.password;
    }
    return o;
  }

  // The value of `key` as etcd holds it, read by the harness (curl), not by
  // the client under test; nothing when the key does not exist.
  std::optional<std::string> harness_get(const std::string& key) {
    auto r = cluster_->call_any("/v3/kv/range", R"({"key":")" + EtcdCluster::base64(key) + R"("})");
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object()) throw std::runtime_error("range " + key + ": " + r.body);
    const auto& o = v.as_object();
    if (!o.contains("kvs")) return std::nullopt;
    std::string b64(o.at("kvs").as_array().at(0).as_object().at("value").as_string());
    // Decode through the shell's base64: the harness never trusts the client's codec.
    return testing::sh_out("printf %s '" + b64 + "' | base64 -d");
  }

  std::unique_ptr<EtcdCluster> cluster_;
  std::optional<nl::NetnsGuard> guard_;
};

TEST_F(EtcdClientTest, PutRangeAndDelete) {
  EtcdClient c(options());
  auto r1 = c.put("/t/a", "one");
  ASSERT_TRUE(r1) << r1.error().message;
  auto r2 = c.put("/t/b", std::string("two\0bytes", 9));
  ASSERT_TRUE(r2) << r2.error().message;
  ASSERT_TRUE(c.put("/u/outside", "x"));
  EXPECT_GT(*r2, *r1);
  EXPECT_EQ(harness_get("/t/a"), "one");

  // One key.
  auto one = c.range({.key = "/t/a"});
  ASSERT_TRUE(one) << one.error().message;
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_EQ(one->kvs[0].key, "/t/a");
  EXPECT_EQ(one->kvs[0].value, "one");
  EXPECT_EQ(one->kvs[0].create_revision, *r1);
  EXPECT_EQ(one->kvs[0].mod_revision, *r1);
  EXPECT_EQ(one->kvs[0].version, 1);
  EXPECT_GE(one->revision, *r2);

  // A prefix, through prefix_end: both keys under /t/, in key order, bytes intact.
  auto all = c.range({.key = "/t/", .range_end = prefix_end("/t/")});
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->kvs.size(), 2u);
  EXPECT_EQ(all->kvs[0].key, "/t/a");
  EXPECT_EQ(all->kvs[1].key, "/t/b");
  EXPECT_EQ(all->kvs[1].value, std::string("two\0bytes", 9));
  EXPECT_EQ(all->count, 2);

  // An overwrite keeps the create revision and counts the version up.
  auto r3 = c.put("/t/a", "uno");
  ASSERT_TRUE(r3);
  one = c.range({.key = "/t/a"});
  ASSERT_TRUE(one);
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_EQ(one->kvs[0].create_revision, *r1);
  EXPECT_EQ(one->kvs[0].mod_revision, *r3);
  EXPECT_EQ(one->kvs[0].version, 2);

  // Delete one key, then the rest of the prefix; the key outside stays.
  auto d1 = c.del("/t/a");
  ASSERT_TRUE(d1) << d1.error().message;
  EXPECT_GT(*d1, *r3);
  EXPECT_EQ(harness_get("/t/a"), std::nullopt);
  ASSERT_TRUE(c.del("/t/", prefix_end("/t/")));
  auto empty = c.range({.key = "/t/", .range_end = prefix_end("/t/")});
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->kvs.empty());  // the gateway omits "kvs" and "count": zeros filled back in
  EXPECT_EQ(empty->count, 0);
  EXPECT_EQ(harness_get("/u/outside"), "x");
}

// 20 racers, each with its own client on its own thread, run the same
// create-once transaction: exactly one wins, and every loser's failure
// branch reads the winner's value.
TEST_F(EtcdClientTest, CreateOnceTransactionAdmitsExactlyOneOfTwentyRacers) {
  constexpr int kRacers = 20;
  const std::string key = "/race/claim";
  std::vector<std::optional<TxnResult>> results(kRacers);
  std::vector<std::string> errors(kRacers);
  std::latch ready(kRacers);
  std::vector<std::thread> racers;
  for (int i = 0; i < kRacers; ++i)
    racers.emplace_back([&, i] {
      // Threads started by the test's thread are in the cluster's namespace.
      EtcdClient c(options());
      Txn t;
      t.compare.push_back(
          {.key = key, .target = Compare::Target::kCreateRevision, .result = Compare::Result::kEqual, .number = 0});
      t.success.push_back({.kind = RequestOp::Kind::kPut, .key = key, .value = "racer-" + std::to_string(i)});
      t.failure.push_back({.kind = RequestOp::Kind::kRange, .key = key});
      ready.arrive_and_wait();
      auto r = c.txn(t);
      if (r)
        results[i] = *r;
      else
        errors[i] = r.error().message;
    });
  for (auto& t : racers) t.join();

  int winners = 0;
  std::string winner;
  for (int i = 0; i < kRacers; ++i) {
    ASSERT_TRUE(results[i]) << "racer " << i << ": " << errors[i];
    if (results[i]->succeeded) {
      ++winners;
      winner = "racer-" + std::to_string(i);
    }
  }
  ASSERT_EQ(winners, 1);
  EXPECT_EQ(harness_get(key), winner);
  for (int i = 0; i < kRacers; ++i) {
    if (results[i]->succeeded) continue;
    ASSERT_EQ(results[i]->responses.size(), 1u) << "racer " << i;
    ASSERT_EQ(results[i]->responses[0].kvs.size(), 1u) << "racer " << i;
    EXPECT_EQ(results[i]->responses[0].kvs[0].value, winner) << "racer " << i;
    EXPECT_EQ(results[i]->responses[0].kvs[0].version, 1) << "racer " << i;
  }
}

TEST_F(EtcdClientTest, LeaseKeptAliveKeepsItsKeyAndExpiresWithoutKeepalive) {
  EtcdClient c(options());
  // 2 s: etcd's minimum is 1.5 election timeouts (0.75 s here), rounded up.
  auto lease = c.lease_grant(2s);
  ASSERT_TRUE(lease) << lease.error().message;
  ASSERT_NE(*lease, 0);
  ASSERT_TRUE(c.put("/alive/a", "1", *lease));
  auto listed = c.range({.key = "/alive/a"});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->kvs.size(), 1u);
  EXPECT_EQ(listed->kvs[0].lease, *lease);

  // Kept alive for twice the TTL: the key stays.
  const auto until = std::chrono::steady_clock::now() + 4s;
  while (std::chrono::steady_clock::now() < until) {
    auto ttl = c.lease_keepalive(*lease);
    ASSERT_TRUE(ttl) << ttl.error().message;
    EXPECT_GT(ttl->count(), 0);
    EXPECT_LE(ttl->count(), 2);
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(harness_get("/alive/a"), "1");

  // No more keepalives: the key goes once the TTL has passed.
  const auto last = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return !harness_get("/alive/a"); }, 15s, 100ms));
  std::printf("lease of 2 s: key gone %.0f ms after the last keepalive\n", ms_since(last));

  // A keepalive of the expired lease: ENOENT.
  auto expired = c.lease_keepalive(*lease);
  ASSERT_FALSE(expired);
  EXPECT_TRUE(expired.error().is(ENOENT)) << expired.error().message;
}

// The members in an order where the leader comes last.
std::vector<int> followers_first(EtcdCluster& cluster, int leader) {
  std::vector<int> order;
  for (int i = 0; i < cluster.size(); ++i)
    if (i != leader) order.push_back(i);
  order.push_back(leader);
  return order;
}

TEST_F(EtcdClientTest, FailsOverWhenItsMemberDiesAndFailsFastWithoutQuorum) {
  auto leader = cluster_->leader();
  ASSERT_TRUE(leader);
  std::vector<std::string> endpoints;
  for (int i : followers_first(*cluster_, *leader)) endpoints.push_back(cluster_->endpoint(i));
  EtcdClient c(options(endpoints));
  ASSERT_TRUE(c.put("/f/k", "0"));

  // The member the client talks to (a follower) dies: the next call goes
  // through another, at once (a follower's death changes nothing for raft).
  int talking = cluster_->index_of(c.current_endpoint());
  ASSERT_GE(talking, 0) << c.current_endpoint();
  ASSERT_NE(talking, *leader);
  cluster_->kill(talking);
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.put("/f/k", "1");
  ASSERT_TRUE(r) << r.error().message;
  std::printf("follower killed: the next put took %.1f ms\n", ms_since(t0));
  EXPECT_NE(cluster_->index_of(c.current_endpoint()), talking);
  EXPECT_EQ(harness_get("/f/k"), "1");
  cluster_->restart(talking);
  ASSERT_TRUE(cluster_->wait_healthy());

  // The leader dies while the client talks to it: the client moves to the
  // other member, which forwards writes to the dead leader until its
  // election timeout passes (such a write times out: ETIMEDOUT, outcome
  // unknown) or says it has none (EAGAIN); then writes succeed. Measured,
  // bounded generously.
  EtcdClient to_leader(options({cluster_->endpoint(*leader), cluster_->endpoint(talking)}));
  ASSERT_TRUE(to_leader.put("/f/k", "2"));
  ASSERT_EQ(cluster_->index_of(to_leader.current_endpoint()), *leader);
  cluster_->kill(*leader);
  t0 = std::chrono::steady_clock::now();
  int failed_calls = 0;
  std::string last_error;
  ASSERT_TRUE(eventually(
      [&] {
        auto p = to_leader.put("/f/k", "3");
        if (!p) {
          ++failed_calls;
          last_error = p.error().message;
          EXPECT_TRUE(p.error().is(EAGAIN) || p.error().is(ETIMEDOUT)) << last_error;
        }
        return bool(p);
      },
      20s, 50ms))
      << last_error;
  std::printf("leader killed: a put succeeded again after %.0f ms (%d failed calls before; last: %s)\n",
              ms_since(t0), failed_calls, last_error.c_str());
  EXPECT_NE(cluster_->index_of(to_leader.current_endpoint()), *leader);
  cluster_->restart(*leader);
  ASSERT_TRUE(cluster_->wait_healthy());

  // Two of three down: no quorum. Calls fail fast, as "no leader" (EAGAIN:
  // the survivor was reached and said so, even though the other endpoints
  // refused connections) or, while the survivor still believes in the old
  // leader, a timeout (ETIMEDOUT: a write that timed out may still be
  // applied later, so the caller re-reads it); never hanging. Measured; the
  // bound is generous (every endpoint's timeout plus slack).
  ASSERT_TRUE(c.put("/f/k", "4"));
  int survivor = cluster_->index_of(c.current_endpoint());
  ASSERT_GE(survivor, 0);
  std::vector<int> dead;
  for (int i = 0; i < cluster_->size(); ++i)
    if (i != survivor) dead.push_back(i);
  for (int i : dead) cluster_->kill(i);
  for (int attempt = 0; attempt < 3; ++attempt) {
    t0 = std::chrono::steady_clock::now();
    auto p = c.put("/f/k", "no-quorum-" + std::to_string(attempt));
    double took = ms_since(t0);
    ASSERT_FALSE(p) << "a put succeeded without quorum";
    EXPECT_TRUE(p.error().is(EAGAIN) || p.error().is(ETIMEDOUT)) << p.error().message;
    EXPECT_LT(took, 3 * 2000 + 3000) << p.error().message;
    std::printf("2 of 3 down, put %d: failed after %.0f ms: %s\n", attempt, took, p.error().message.c_str());
    auto g = c.range({.key = "/f/k"});
    ASSERT_FALSE(g) << "a quorum read succeeded without quorum";
    EXPECT_TRUE(g.error().is(EAGAIN) || g.error().is(ETIMEDOUT)) << g.error().message;
  }

  // Back: the same client works again.
  cluster_->restart(dead);
  ASSERT_TRUE(cluster_->wait_healthy());
  // Whether the write that timed out was applied once quorum returned (the
  // issue saw it happen): a figure, not a rule the test could assert.
  std::printf("quorum back: /f/k holds \"%s\" before the next write\n", harness_get("/f/k").value_or("").c_str());
  t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return bool(c.put("/f/k", "5")); }, 20s, 100ms));
  std::printf("quorum back: a put succeeded after %.0f ms\n", ms_since(t0));
  EXPECT_EQ(harness_get("/f/k"), "5");
}

// Runs `io` until `done` or `bound` (the watch's callbacks run in here).
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds bound) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (!done() && std::chrono::steady_clock::now() < until) {
    io.restart();
    if (io.run_for(20ms) == 0) std::this_thread::sleep_for(5ms);
  }
  return done();
}

// What a watch delivered, in order.
struct Watched {
  std::vector<WatchResponse> responses;
  std::optional<Error> ended;
  std::vector<WatchEvent> events() const {
    std::vector<WatchEvent> out;
    for (const auto& r : responses) out.insert(out.end(), r.events.begin(), r.events.end());
    return out;
  }
  std::unique_ptr<EtcdWatch> start(boost::asio::io_context& io, const EtcdOptions& o, const std::string& key,
                                   const std::string& range_end, Revision from) {
    return std::make_unique<EtcdWatch>(
        io, o, key, range_end, from, [this](const WatchResponse& r) { responses.push_back(r); },
        [this](const Error& e) { ended = e; });
  }
};

TEST_F(EtcdClientTest, WatchReplaysHistoryWithPrevKvInOrderThenFollowsLive) {
  EtcdClient c(options());
  auto r1 = c.put("/w/a", "1");
  ASSERT_TRUE(r1);
  ASSERT_TRUE(c.put("/w/a", "2"));
  ASSERT_TRUE(c.put("/other", "not watched"));
  ASSERT_TRUE(c.put("/w/b", "b1"));
  auto rd = c.del("/w/a");
  ASSERT_TRUE(rd);

  boost::asio::io_context io;
  Watched w;
  auto watch = w.start(io, options(), "/w/", prefix_end("/w/"), *r1);
  // History: the created message first, then every change under /w/ since r1.
  ASSERT_TRUE(run_until(io, [&] { return w.events().size() >= 4 || w.ended; }, 10s))
      << w.events().size() << " events";
  ASSERT_FALSE(w.ended) << w.ended->message;
  ASSERT_FALSE(w.responses.empty());
  EXPECT_TRUE(w.responses.front().created);
  EXPECT_TRUE(w.responses.front().events.empty());
  auto ev = w.events();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(ev[0].kv.key, "/w/a");
  EXPECT_EQ(ev[0].kv.value, "1");
  EXPECT_EQ(ev[0].kv.mod_revision, *r1);
  EXPECT_FALSE(ev[0].prev);  // created at r1: nothing before it
  EXPECT_EQ(ev[1].type, WatchEvent::Type::kPut);
  EXPECT_EQ(ev[1].kv.value, "2");
  ASSERT_TRUE(ev[1].prev);
  EXPECT_EQ(ev[1].prev->value, "1");
  EXPECT_EQ(ev[2].kv.key, "/w/b");
  EXPECT_EQ(ev[3].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(ev[3].kv.key, "/w/a");
  EXPECT_EQ(ev[3].kv.mod_revision, *rd);
  ASSERT_TRUE(ev[3].prev);
  EXPECT_EQ(ev[3].prev->value, "2");
  for (std::size_t i = 1; i < ev.size(); ++i) EXPECT_GT(ev[i].kv.mod_revision, ev[i - 1].kv.mod_revision);

  // Live: a change made now arrives, with its predecessor.
  auto r5 = c.put("/w/b", "b2");
  ASSERT_TRUE(r5);
  ASSERT_TRUE(run_until(io, [&] { return w.events().size() >= 5 || w.ended; }, 10s));
  ev = w.events();
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[4].kv.key, "/w/b");
  EXPECT_EQ(ev[4].kv.value, "b2");
  EXPECT_EQ(ev[4].kv.mod_revision, *r5);
  ASSERT_TRUE(ev[4].prev);
  EXPECT_EQ(ev[4].prev->value, "b1");
  EXPECT_FALSE(w.ended);

  watch->cancel();
  run_until(io, [&] { return io.stopped(); }, 2s);
}

// A watch from a revision compaction removed ends with compact_revision
// set: the watcher must list again and diff.
TEST_F(EtcdClientTest, WatchFromACompactedRevisionEndsWithCompactRevision) {
  EtcdClient c(options());
  auto r1 = c.put("/c/a", "1");
  ASSERT_TRUE(r1);
  ASSERT_TRUE(c.put("/c/a", "2"));
  auto r3 = c.put("/c/a", "3");
  ASSERT_TRUE(r3);
  auto compacted = c.compact(*r3);
  ASSERT_TRUE(compacted) << compacted.error().message;

  boost::asio::io_context io;
  Watched w;
  auto watch = w.start(io, options(), "/c/", prefix_end("/c/"), *r1);
  ASSERT_TRUE(run_until(io, [&] { return w.ended.has_value(); }, 10s))
      << w.responses.size() << " responses, no end";
  bool saw_compaction = false;
  for (const auto& r : w.responses)
    if (r.compact_revision > 0) {
      saw_compaction = true;
      EXPECT_EQ(r.compact_revision, *r3);
      EXPECT_TRUE(r.events.empty());
    }
  EXPECT_TRUE(saw_compaction) << "ended without compact_revision: " << w.ended->message;
  EXPECT_TRUE(w.events().empty());

  // From the compaction revision on, the same watch works.
  Watched w2;
  auto watch2 = w2.start(io, options(), "/c/", prefix_end("/c/"), *r3);
  ASSERT_TRUE(run_until(io, [&] { return !w2.events().empty() || w2.ended; }, 10s));
  ASSERT_FALSE(w2.ended) << w2.ended->message;
  EXPECT_EQ(w2.events().at(0).kv.value, "3");
  watch2->cancel();
}

// Finding (etcd 3.4.23's JSON gateway, measured here): a watch created with
// progress_notify gets progress notifications — a "result" with only a
// header, whose revision is the store's — on the server's schedule,
// --experimental-watch-progress-notify-interval, 10 minutes by default. A
// watchdog on a silent watch can count on them only where etcd runs with a
// shorter interval; else it must reopen the watch. This cluster runs with
// 300 ms.
class EtcdProgressTest : public EtcdClientTest {
 protected:
  EtcdClusterOptions cluster_options() const override { return {.progress_notify_interval = 300ms}; }
};

TEST_F(EtcdProgressTest, QuietWatchGetsProgressNotificationsAtTheServersInterval) {
  EtcdClient c(options());
  auto r = c.put("/elsewhere", "x");
  ASSERT_TRUE(r);
  boost::asio::io_context io;
  Watched w;
  auto watch = w.start(io, options(), "/quiet/", prefix_end("/quiet/"), 0);
  auto progress = [&] {
    std::vector<WatchResponse> out;
    for (const auto& m : w.responses)
      if (m.progress_notify()) out.push_back(m);
    return out;
  };
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(io, [&] { return progress().size() >= 3 || w.ended; }, 15s))
      << w.responses.size() << " responses";
  ASSERT_FALSE(w.ended) << w.ended->message;
  std::printf("3 progress notifications in %.0f ms (server interval 300 ms)\n", ms_since(t0));
  EXPECT_TRUE(w.responses.front().created);
  for (const auto& p : progress()) EXPECT_GE(p.revision, *r);
  EXPECT_TRUE(w.events().empty());
  watch->cancel();
}

class EtcdSecureTest : public EtcdClientTest {
 protected:
  EtcdClusterOptions cluster_options() const override { return {.secure = true, .prefix = "/meshd/"}; }
};

TEST_F(EtcdSecureTest, TlsAndTokenAuthWithinTheRolesPrefix) {
  EtcdClient c(options());
  auto p = c.put("/meshd/c1/params", "v");
  ASSERT_TRUE(p) << p.error().message;
  auto g = c.range({.key = "/meshd/", .range_end = prefix_end("/meshd/")});
  ASSERT_TRUE(g) << g.error().message;
  ASSERT_EQ(g->kvs.size(), 1u);
  EXPECT_EQ(g->kvs[0].value, "v");
  EXPECT_EQ(harness_get("/meshd/c1/params"), "v");

  // Outside the role's prefix: refused, and nothing written.
  auto outside = c.put("/elsewhere", "v");
  ASSERT_FALSE(outside);
  EXPECT_TRUE(outside.error().is(EACCES)) << outside.error().message;
  EXPECT_EQ(harness_get("/elsewhere"), std::nullopt);
  auto outside_read = c.range({.key = "/", .range_end = prefix_end("/")});
  ASSERT_FALSE(outside_read);
  EXPECT_TRUE(outside_read.error().is(EACCES)) << outside_read.error().message;

  // A lease and a watch under the same credentials.
  auto lease = c.lease_grant(5s);
  ASSERT_TRUE(lease) << lease.error().message;
  ASSERT_TRUE(c.put("/meshd/c1/alive/x", "1", *lease));
  boost::asio::io_context io;
  Watched w;
  auto watch = w.start(io, options(), "/meshd/", prefix_end("/meshd/"), p.value());
  ASSERT_TRUE(run_until(io, [&] { return w.events().size() >= 2 || w.ended; }, 10s));
  ASSERT_FALSE(w.ended) << w.ended->message;
  EXPECT_EQ(w.events()[1].kv.key, "/meshd/c1/alive/x");
  watch->cancel();
}

TEST_F(EtcdSecureTest, AWrongPasswordIsRefusedWithoutEchoingIt) {
  auto o = options();
  o.password = "wrong-" + cluster_->security().password.substr(0, 6) + "-Zq81";
  EtcdClient c(o);
  auto r = c.put("/meshd/x", "v");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EACCES)) << r.error().message;
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_EQ(r.error().message.find(o.password), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find(cluster_->security().password), std::string::npos) << r.error().message;
  std::printf("wrong password: %s\n", r.error().message.c_str());
  EXPECT_EQ(harness_get("/meshd/x"), std::nullopt);
}

// A simple token etcd no longer knows ("invalid auth token") is replaced by
// the client by itself. Tokens are forgotten when unused for
// --auth-token-ttl (1 s here), not by restarts: a restart of every member
// replays them from the WAL (measured: a token from before a full restart
// still worked after it).
class EtcdShortTokenTest : public EtcdClientTest {
 protected:
  EtcdClusterOptions cluster_options() const override { return {.secure = true, .auth_token_ttl = 1s}; }
};

TEST_F(EtcdShortTokenTest, ReauthenticatesWhenItsTokenExpired) {
  EtcdClient c(options());
  ASSERT_TRUE(c.put("/meshd/k", "1"));
  const auto& s = cluster_->security();
  // A token taken with the client's: unused as long, it expires with it.
  const std::string probe = cluster_->authenticate(0, s.user, s.password);
  ASSERT_FALSE(probe.empty());
  // Waiting out the TTL, not asserting a time: any use of a token renews
  // it, so polling with one would keep it alive.
  std::this_thread::sleep_for(3s);
  const std::string put_k = R"({"key":")" + EtcdCluster::base64("/meshd/k") + R"(","value":"MA=="})";
  auto stale = cluster_->call_with_token(0, "/v3/kv/put", put_k, probe);
  ASSERT_NE(stale.body.find("invalid auth token"), std::string::npos) << stale.status << " " << stale.body;
  auto r = c.put("/meshd/k", "2");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(harness_get("/meshd/k"), "2");
}

// The placement the cluster tests use: members on addresses of a host on a
// bridge underlay, a client in another namespace reaching them across it
// (TLS with IP SANs on non-loopback addresses, as meshd nodes will).
TEST(EtcdUnderlayTest, ClientInAnotherNamespaceReachesMembersOnAnUnderlayHost) {
  MESHD_REQUIRE(EtcdCluster::missing().empty(), EtcdCluster::missing());
  testing::Underlay underlay("eu");
  testing::Netns host("eh"), node("en");
  underlay.attach(host, "eu1", "172.31.79.10/24");
  underlay.attach(node, "eu2", "172.31.79.20/24");
  testing::must(host.run("ip addr add 172.31.79.11/24 dev eth0"));
  testing::must(host.run("ip addr add 172.31.79.12/24 dev eth0"));
  EtcdCluster cluster(host, {"172.31.79.10", "172.31.79.11", "172.31.79.12"}, {.secure = true});
  EXPECT_EQ(cluster.endpoint(2), "https://172.31.79.12:2379");

  auto g = nl::NetnsGuard::enter(node.fd());
  ASSERT_TRUE(g) << g.error().message;
  const auto& s = cluster.security();
  EtcdOptions o{.endpoints = cluster.endpoints(), .ca_file = s.ca_file, .cert_file = s.cert_file,
                .key_file = s.key_file, .username = s.user, .password = s.password};
  EtcdClient c(o);
  auto p = c.put("/meshd/from-node", "hello");
  ASSERT_TRUE(p) << p.error().message << "\n" << cluster.all_log_tails();
  // The member it talks to dies: the next call crosses the bridge to another.
  int talking = cluster.index_of(c.current_endpoint());
  ASSERT_GE(talking, 0);
  cluster.kill(talking);
  ASSERT_TRUE(eventually([&] { return bool(c.range({.key = "/meshd/from-node"})); }, 20s, 100ms));
  auto r = c.range({.key = "/meshd/from-node"});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0].value, "hello");
  EXPECT_NE(cluster.index_of(c.current_endpoint()), talking);
}

}  // namespace
}  // namespace meshd::datastore
