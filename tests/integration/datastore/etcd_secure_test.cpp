// The etcd datastore mode run as docs/datastore.md ("Running it securely")
// tells an operator to: a real 3-member etcd 3.4 with TLS on client and peer
// traffic, client certificates required, and RBAC on, meshd's user allowed
// only its prefix (tests/support/etcd_cluster.h, secure mode); meshd nodes
// (userspace backend, a pod each from the real CNI plugin) with https
// endpoints, the CA, a CN-less client certificate, and a 0600 password file.
//
// What is asserted is read from outside meshd: etcd's keys by the harness
// (curl as etcd's root), the nodes' logs, /metrics and REST answers, pings
// between pods. The tests share one cluster and run in the order written
// (the removal frees the CIDR the next join takes; the outage is last), so
// the suite is one CTest test.
//   1. Secret files that are not private, or a wrong password: a clear
//      refusal, the secret never in the log.
//   2. Three nodes found and join through etcd over TLS + RBAC: their
//      records, claims and liveness keys in etcd, no secret there, pods
//      reach each other, etcd reported reachable.
//   3. `meshctl node remove`: the removed node leaves, its claim leaves
//      etcd, and the next node to join gets its CIDR back.
//   4. Every etcd member down: a removal answers 503 datastore_unavailable,
//      the metric says unreachable, pods keep reaching each other; etcd
//      back (its auth tokens gone with the restart): the nodes say so and
//      the same removal goes through.
#include "meshd/datastore/etcd_layout.h"
#include "store/cluster.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/prerequisite.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

namespace meshd::testing {
namespace {

namespace ds = meshd::datastore;

const std::string kPrefix = "/meshd/";
const std::vector<std::string> kEtcdAddresses{"172.31.78.211", "172.31.78.212", "172.31.78.213"};
const std::string kReachable = "meshd_datastore_reachable";

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class EtcdSecure : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!is_root() || !EtcdCluster::missing().empty()) return;
    try {
      c_ = new ClusterNodes();
      host_ = &c_->add_host(kEtcdAddresses);
      EtcdClusterOptions o;
      o.secure = true;
      o.prefix = kPrefix;
      etcd_ = new EtcdCluster(*host_, kEtcdAddresses, o);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete c_;  // the nodes first: they are clients of etcd
    c_ = nullptr;
    delete etcd_;
    etcd_ = nullptr;
  }
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MESHD_REQUIRE(EtcdCluster::missing().empty(), EtcdCluster::missing());
    MESHD_REQUIRE(sh("command -v wireguard-go >/dev/null") == 0, "wireguard-go (the userspace backend)");
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }
  void TearDown() override {
    if (HasFailure() && etcd_) std::fprintf(stderr, "%s", etcd_->all_log_tails().c_str());
  }

  // The node's [datastore] as the secure set-up documents it, with its
  // password in a file of the node's (mode `password_mode`) holding
  // `password` (nothing: the real one).
  static std::string datastore_config(const ClusterNodes::Node& n, mode_t password_mode = 0600,
                                      const std::string& password = "") {
    const auto& sec = etcd_->security();
    const std::string file = n.dir + "/etcd-password";
    write_file(file, (password.empty() ? sec.password : password) + "\n");
    ::chmod(file.c_str(), password_mode);
    std::string endpoints;
    for (const auto& e : etcd_->endpoints()) endpoints += (endpoints.empty() ? "\"" : ", \"") + e + "\"";
    return "[datastore]\nkind = \"etcd\"\nendpoints = [" + endpoints + "]\nprefix = \"" + kPrefix +
           "\"\nca_file = \"" + sec.ca_file + "\"\ncert_file = \"" + sec.cert_file + "\"\nkey_file = \"" +
           sec.key_file + "\"\nusername = \"" + sec.user + "\"\npassword_file = \"" + file +
           "\"\ntimeout_ms = 1000\nresync_interval_s = 10\nlease_ttl_s = 15\n";
  }
  static ClusterNodes::Node& add(const std::string& name, const ClusterNodes::Node* through) {
    auto& n = c_->add_node(name, through);
    n.extra_config = datastore_config(n);
    c_->write_config(n);
    if (through) c_->write_token(n, ClusterNodes::create_token(*through));
    return n;
  }
  static ClusterNodes::Pod& pod_on(ClusterNodes::Node& n) { return n.pods.empty() ? c_->add_pod(n) : n.pods.front(); }

  static std::string cluster_id(const ClusterNodes::Node& n) {
    auto db = ClusterNodes::open_store(n);
    auto info = store::ClusterRepo(*db).get();
    if (!info || !*info) throw std::runtime_error(n.name + "'s store holds no cluster");
    return (*info)->id;
  }
  static keys::IdentityPublicKey identity(const ClusterNodes::Node& n) {
    return ClusterNodes::identity(n).public_key();
  }
  static std::map<std::string, std::string> in_etcd() { return etcd_->contents(kPrefix); }
  // The node's record, its claim on its settled CIDR and its liveness key
  // are all in etcd: "" when so, else what is missing.
  static std::string etcd_holds(const ClusterNodes::Node& n) {
    auto cidr = ClusterNodes::settled_cidr(n);
    if (!cidr) return n.name + " is not settled";
    const auto all = in_etcd();
    const std::string cid = cluster_id(n);
    std::string out;
    if (!all.count(ds::record_key(kPrefix, cid, identity(n)))) out += "no record of " + n.name + "; ";
    if (!all.count(ds::alive_key(kPrefix, cid, identity(n)))) out += "no liveness key of " + n.name + "; ";
    auto claim = all.find(ds::subnet_key(kPrefix, cid, *cidr));
    if (claim == all.end()) {
      out += "no claim on " + cidr->to_string() + "; ";
    } else {
      auto decoded = ds::decode_claim(claim->second);
      if (!decoded || decoded->identity != identity(n))
        out += "the claim on " + cidr->to_string() + " is not " + n.name + "'s; ";
    }
    return out;
  }

  static ClusterNodes* c_;
  static Netns* host_;
  static EtcdCluster* etcd_;
  static std::string setup_error_;
};
ClusterNodes* EtcdSecure::c_ = nullptr;
Netns* EtcdSecure::host_ = nullptr;
EtcdCluster* EtcdSecure::etcd_ = nullptr;
std::string EtcdSecure::setup_error_;

// 1. Before any cluster: meshd refuses, at start and by name, a password
// file or a client key that others may read; a wrong password is an etcd
// failure it reports without quoting the password.
TEST_F(EtcdSecure, SecretFilesOthersCanReadAreRefusedAndAWrongPasswordIsNeverLogged) {
  const auto& sec = etcd_->security();
  auto& bad = c_->add_node("sx");
  bad.extra_config = datastore_config(bad, 0644);
  c_->write_config(bad);
  c_->start(bad);
  auto rc = c_->exit_status(bad, 20s);
  ASSERT_TRUE(rc) << "meshd ran with a password file readable by others:\n" << c_->log_tail(bad);
  EXPECT_NE(*rc, 0);
  const std::string pw_file = bad.dir + "/etcd-password";
  EXPECT_NE(c_->log(bad).find("chmod 600 " + pw_file), std::string::npos) << c_->log_tail(bad);
  EXPECT_EQ(c_->log(bad).find(sec.password), std::string::npos) << "the password reached the log";

  // The client key: the harness's copy stays as it is; this node gets a
  // group-readable copy.
  const std::string key = bad.dir + "/client.key";
  ASSERT_EQ(sh("cp " + sec.key_file + " " + key + " && chmod 0640 " + key), 0);
  bad.extra_config = datastore_config(bad);
  auto at = bad.extra_config.find(sec.key_file);
  bad.extra_config.replace(at, sec.key_file.size(), key);
  c_->write_config(bad);
  c_->start(bad);
  rc = c_->exit_status(bad, 20s);
  ASSERT_TRUE(rc) << "meshd ran with a client key readable by its group:\n" << c_->log_tail(bad);
  EXPECT_NE(*rc, 0);
  EXPECT_NE(c_->log_of_this_run(bad).find("chmod 600 " + key), std::string::npos) << c_->log_tail(bad);
  EXPECT_EQ(c_->log(bad).find("PRIVATE KEY"), std::string::npos) << "the key reached the log";

  // A wrong password: meshd starts (start-up never needs etcd), founding
  // waits, and it says why without the password it sent.
  const std::string wrong = "not-the-password-" + std::to_string(::getpid());
  bad.extra_config = datastore_config(bad, 0600, wrong);
  c_->write_config(bad);
  c_->start(bad);
  EXPECT_TRUE(c_->wait_log(bad, "etcd", 30s)) << c_->log_tail(bad);
  EXPECT_TRUE(eventually(
      [&] {
        auto run = c_->log_of_this_run(bad);
        return run.find("authentication failed") != std::string::npos ||
               run.find("invalid user ID or password") != std::string::npos;
      },
      30s, 200ms))
      << c_->log_tail(bad);
  EXPECT_EQ(c_->log(bad).find(wrong), std::string::npos) << "the wrong password reached the log";
  EXPECT_FALSE(ClusterNodes::settled_cidr(bad)) << "a node etcd refused founded a cluster";
  c_->stop(bad);
  EXPECT_EQ(in_etcd().size(), 0u) << "a refused node wrote under " << kPrefix;
}

// 2. Three nodes: a founder and two joins, every call to etcd over TLS with
// a client certificate and a token of the `meshd` user.
TEST_F(EtcdSecure, NodesFoundAndJoinThroughASecuredEtcdAndNoSecretLandsThere) {
  auto& sa = add("sa", nullptr);
  c_->start(sa);
  ASSERT_TRUE(c_->wait_settled(sa, 60s)) << c_->log_tail(sa);
  std::string token_b = ClusterNodes::create_token(sa);
  auto& sb = c_->add_node("sb", &sa);
  sb.extra_config = datastore_config(sb);
  c_->write_config(sb);
  c_->write_token(sb, token_b);
  c_->start(sb);
  ASSERT_TRUE(c_->wait_settled(sb, 90s)) << c_->log_tail(sb);
  auto& sc = add("sc", &sb);  // through the member that joined through etcd
  c_->start(sc);
  ASSERT_TRUE(c_->wait_settled(sc, 90s)) << c_->log_tail(sc);
  for (auto* n : {&sa, &sb, &sc}) {
    EXPECT_TRUE(eventually([&] { return etcd_holds(*n).empty(); }, 20s, 200ms)) << etcd_holds(*n);
    EXPECT_TRUE(eventually([&] { return api_metric(n->api_socket(), kReachable) == 1; }, 20s, 200ms))
        << n->name;
    c_->add_pod(*n);
  }
  ASSERT_EQ(in_etcd().count(kPrefix + "cluster"), 1u);

  // etcd holds no secret: no join token, no private key, no password.
  const auto& sec = etcd_->security();
  for (const auto& [k, v] : in_etcd()) {
    EXPECT_EQ(v.find(token_b), std::string::npos) << k << " holds a join token";
    EXPECT_EQ(v.find(sec.password), std::string::npos) << k << " holds the etcd password";
    for (auto* n : {&sa, &sb, &sc}) {
      auto db = ClusterNodes::open_store(*n);
      auto wg = store::LocalNodeRepo(*db).wg_private_key().value();
      ASSERT_TRUE(wg);
      EXPECT_EQ(v.find(wg->to_base64_secret()), std::string::npos) << k << " holds " << n->name << "'s WireGuard key";
      auto id = ClusterNodes::identity(*n);
      const auto seed = id.seed();
      EXPECT_EQ(v.find(std::string(seed.begin(), seed.end())), std::string::npos)
          << k << " holds " << n->name << "'s identity key";
      EXPECT_EQ(v.find(id.to_base64_secret()), std::string::npos) << k << " holds " << n->name << "'s identity key";
    }
  }
  for (auto* n : {&sa, &sb, &sc}) EXPECT_EQ(c_->log(*n).find(sec.password), std::string::npos) << n->name;

  for (auto* from : {&sa, &sb, &sc})
    for (auto* to : {&sa, &sb, &sc}) {
      if (from == to) continue;
      EXPECT_TRUE(ClusterNodes::reaches(*pod_on(*from).ns, pod_on(*to).address, 20s))
          << from->name << " -> " << to->name;
    }
}

// 3. A removal through meshctl: the node leaves, its claim leaves etcd, and
// its CIDR is the next join's (the lowest free one).
TEST_F(EtcdSecure, ARemovedNodesClaimLeavesEtcdAndTheNextJoinGetsItsCidr) {
  auto& sa = c_->node("sa");
  auto& sc = c_->node("sc");
  auto cidr = ClusterNodes::settled_cidr(sc);
  ASSERT_TRUE(cidr);
  const std::string cid = cluster_id(sa);
  const std::string claim_key = ds::subnet_key(kPrefix, cid, *cidr);
  ASSERT_EQ(in_etcd().count(claim_key), 1u);

  auto r = run_process({ClusterNodes::meshctl_path(), "--socket", sa.api_socket(), "node", "remove", "sc"}, "");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(c_->wait_log(sc, "was removed from the cluster", 30s)) << c_->log_tail(sc);
  EXPECT_TRUE(eventually([&] { return in_etcd().count(claim_key) == 0; }, 30s, 200ms))
      << "the claim on " << cidr->to_string() << " stayed in etcd";
  EXPECT_EQ(in_etcd().count(ds::tombstone_key(kPrefix, cid, identity(sc))), 1u);
  EXPECT_EQ(in_etcd().count(ds::record_key(kPrefix, cid, identity(sc))), 0u);

  auto& sd = add("sd", &sa);
  c_->start(sd);
  ASSERT_TRUE(c_->wait_settled(sd, 90s)) << c_->log_tail(sd);
  auto got = ClusterNodes::settled_cidr(sd);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->to_string(), cidr->to_string()) << "the removed node's CIDR was not handed out again";
  EXPECT_TRUE(eventually([&] { return etcd_holds(sd).empty(); }, 20s, 200ms)) << etcd_holds(sd);
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(sd).ns, pod_on(sa).address, 20s));
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(sa).ns, pod_on(sd).address, 20s));
}

// 4. etcd away entirely: the data plane stays, a removal is refused with the
// reason; etcd back: the same removal goes through.
TEST_F(EtcdSecure, WithEtcdDownARemovalIsRefusedAsUnavailableAndGoesThroughOnceItIsBack) {
  auto& sa = c_->node("sa");
  auto& sb = c_->node("sb");
  auto& sd = c_->node("sd");
  const std::string cid = cluster_id(sa);
  for (int i = 0; i < etcd_->size(); ++i) etcd_->kill(i);
  const std::size_t mark = c_->log(sa).size();

  // The first call to fail opens the breaker; the DELETE after it is
  // refused at once either way.
  ApiAnswer refused;
  EXPECT_TRUE(eventually(
      [&] {
        refused = api_request(sa.api_socket(), "DELETE", "/v1/nodes/sd");
        return refused.status == 503;
      },
      20s, 500ms))
      << refused.status << " " << refused.body;
  EXPECT_NE(refused.body.find("datastore_unavailable"), std::string::npos) << refused.body;
  EXPECT_TRUE(eventually([&] { return api_metric(sa.api_socket(), kReachable) == 0; }, 30s, 500ms));
  for (auto* from : {&sa, &sb, &sd})
    for (auto* to : {&sa, &sb, &sd}) {
      if (from == to) continue;
      EXPECT_TRUE(ClusterNodes::reaches(*pod_on(*from).ns, pod_on(*to).address, 10s))
          << from->name << " -> " << to->name << " while etcd is down";
    }
  const std::string outage = c_->log(sa).substr(mark);
  EXPECT_EQ(count_of(outage, "etcd unreachable ("), 1u) << outage;

  etcd_->restart({0, 1, 2}, 30s);
  ASSERT_TRUE(etcd_->wait_healthy(30s)) << etcd_->all_log_tails();
  EXPECT_TRUE(eventually(
      [&] { return c_->log(sa).substr(mark).find("etcd reachable again through") != std::string::npos; }, 60s,
      200ms))
      << c_->log_tail(sa);
  EXPECT_TRUE(eventually([&] { return api_metric(sa.api_socket(), kReachable) == 1; }, 30s, 500ms));
  ApiAnswer removed;
  EXPECT_TRUE(eventually(
      [&] {
        removed = api_request(sa.api_socket(), "DELETE", "/v1/nodes/sd");
        return removed.status == 200;
      },
      30s, 500ms))
      << removed.status << " " << removed.body;
  EXPECT_TRUE(c_->wait_log(sd, "was removed from the cluster", 30s)) << c_->log_tail(sd);
  EXPECT_TRUE(eventually([&] { return in_etcd().count(ds::tombstone_key(kPrefix, cid, identity(sd))) == 1; },
                         30s, 200ms));
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(sa).ns, pod_on(sb).address, 20s));
}

}  // namespace
}  // namespace meshd::testing
