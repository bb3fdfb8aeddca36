// Egress masquerade with real meshd processes (userspace backend) in network
// namespaces: a founder and a joiner with one pod each, and an "outside" host
// on the underlay that has no route back to any pod CIDR. A pod reaches it
// only because its node masquerades; pod-to-pod and node-to-pod traffic keep
// their own addresses; `[egress] masquerade = false` and a SIGHUP remove
// meshd's nftables table (and with it the way out); `meshd --teardown`
// removes it too.
//
// One cluster for the whole suite (SetUpTestSuite), as in the cluster
// tests: the tests run in the order written, each checks its own
// preconditions.
#include "tests/support/capture.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/prerequisite.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace meshd::testing {
namespace {

const std::string kOutside = "172.31.78.200";

class Egress : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!is_root() || sh("command -v nft >/dev/null 2>&1") != 0) return;
    try {
      c_ = new ClusterNodes();
      auto& n1 = c_->add_node("n1");
      c_->start(n1);
      if (!c_->wait_settled(n1)) throw std::runtime_error("n1 did not found a cluster:\n" + c_->log_tail(n1));
      auto& n2 = c_->add_node("n2", &n1);
      c_->write_token(n2, ClusterNodes::create_token(n1));
      c_->start(n2);
      if (!c_->wait_settled(n2)) throw std::runtime_error("n2 did not join:\n" + c_->log_tail(n2));
      c_->add_pod(n1);
      c_->add_pod(n2);
      outside_ = &c_->add_host({kOutside});
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete c_;
    c_ = nullptr;
    outside_ = nullptr;
  }
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MESHD_REQUIRE(sh("command -v nft >/dev/null 2>&1") == 0, "needs nft (the nftables package)");
    MESHD_REQUIRE(sh("command -v tcpdump >/dev/null 2>&1") == 0, "needs tcpdump");
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static ClusterNodes::Node& node(const std::string& name) { return c_->node(name); }
  static ClusterNodes::Pod& pod(ClusterNodes::Node& n) { return n.pods.at(0); }
  static bool has_table(const ClusterNodes::Node& n) {
    return n.ns->out("nft list tables").find("table inet meshd") != std::string::npos;
  }
  // The masquerade rule for the node's pod CIDR, as nft lists it.
  static std::string rule_of(const ClusterNodes::Node& n) {
    return "ip saddr " + ClusterNodes::settled_cidr(n)->to_string() + " ip daddr != 10.244.0.0/16 oifname != \"" +
           c_->interface() + "\" masquerade";
  }
  // One ICMP echo request from `from` to `to`, as tcpdump -n prints it.
  static std::string echo(const std::string& from, const std::string& to) {
    return from + " > " + to + ": ICMP echo request";
  }

  static ClusterNodes* c_;
  static Netns* outside_;
  static std::string setup_error_;
};
ClusterNodes* Egress::c_ = nullptr;
Netns* Egress::outside_ = nullptr;
std::string Egress::setup_error_;

TEST_F(Egress, EveryNodeHoldsMeshdsTableWithTheRuleForItsPodCidr) {
  for (auto* n : {&node("n1"), &node("n2")}) {
    ASSERT_TRUE(eventually([&] { return has_table(*n); }, 15s, 100ms))
        << n->name << " has no table inet meshd\n" << c_->log_tail(*n);
    std::string listed = n->ns->out("nft list table inet meshd");
    EXPECT_NE(listed.find(rule_of(*n)), std::string::npos) << n->name << ":\n" << listed;
    EXPECT_NE(listed.find("type nat hook postrouting priority srcnat"), std::string::npos) << listed;
    EXPECT_TRUE(c_->wait_log(*n, "egress: masquerade " + ClusterNodes::settled_cidr(*n)->to_string()))
        << c_->log_tail(*n);
  }
}

TEST_F(Egress, APodReachesAnOutsideHostWithItsNodesUnderlayAddress) {
  for (auto* n : {&node("n1"), &node("n2")}) {
    ASSERT_TRUE(eventually([&] { return has_table(*n); }, 15s, 100ms)) << c_->log_tail(*n);
    auto& p = pod(*n);
    Capture at_outside(*outside_, "eth0", "icmp");
    // The outside host has no route to 10.244.0.0/16: only a masqueraded
    // request gets an answer back to the pod.
    EXPECT_TRUE(ClusterNodes::reaches(*p.ns, kOutside)) << "pod " << p.address << " on " << n->name;
    p.ns->run("ping -c 2 -i 0.2 -W 2 " + kOutside + " >/dev/null 2>&1");
    at_outside.stop();
    std::string seen = at_outside.read();
    EXPECT_NE(seen.find(echo(n->underlay, kOutside)), std::string::npos) << n->name << ":\n" << seen;
    EXPECT_EQ(seen.find("10.244."), std::string::npos) << "a pod address reached the outside host:\n" << seen;
  }
}

// Another node's host address is outside the cluster CIDR like any other:
// masqueraded, so the answer comes back the way the request went.
TEST_F(Egress, APodReachesAnotherNodesHostAddressWithItsNodesAddress) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  ASSERT_TRUE(eventually([&] { return has_table(n1); }, 15s, 100ms)) << c_->log_tail(n1);
  Capture at_n2(*n2.ns, "eth0", "icmp");
  EXPECT_TRUE(ClusterNodes::reaches(*pod(n1).ns, n2.underlay));
  at_n2.stop();
  std::string seen = at_n2.read();
  EXPECT_NE(seen.find(echo(n1.underlay, n2.underlay)), std::string::npos) << seen;
  EXPECT_EQ(seen.find("10.244."), std::string::npos) << seen;
}

TEST_F(Egress, PodToPodAndNodeToPodTrafficKeepTheirOwnAddresses) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  ASSERT_TRUE(eventually([&] { return has_table(n1); }, 15s, 100ms)) << c_->log_tail(n1);
  auto& from = pod(n1);
  auto& to = pod(n2);
  const std::string n1_mesh = ClusterNodes::mesh_address(n1);
  ASSERT_FALSE(n1_mesh.empty());
  EXPECT_TRUE(ClusterNodes::reaches(*from.ns, to.address));
  EXPECT_TRUE(ClusterNodes::reaches(*n1.ns, to.address));

  Capture at_device(*n2.ns, c_->interface(), "icmp");
  Capture at_pod(*to.ns, "eth0", "icmp");
  from.ns->run("ping -c 3 -i 0.2 -W 2 " + to.address + " >/dev/null 2>&1");
  n1.ns->run("ping -c 3 -i 0.2 -W 2 " + to.address + " >/dev/null 2>&1");
  at_device.stop();
  at_pod.stop();
  for (auto* cap : {&at_device, &at_pod}) {
    std::string seen = cap->read();
    EXPECT_NE(seen.find(echo(from.address, to.address)), std::string::npos) << "pod to pod:\n" << seen;
    EXPECT_NE(seen.find(echo(n1_mesh, to.address)), std::string::npos) << "node to pod:\n" << seen;
    EXPECT_EQ(seen.find(echo(n1.underlay, to.address)), std::string::npos) << "masqueraded:\n" << seen;
  }
}

TEST_F(Egress, MasqueradeOffOnAReloadRemovesTheTableAndTheWayOut) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  ASSERT_GT(n1.pid, 0);
  ASSERT_TRUE(eventually([&] { return has_table(n1); }, 15s, 100ms)) << c_->log_tail(n1);
  auto& p = pod(n1);
  ASSERT_TRUE(ClusterNodes::reaches(*p.ns, kOutside));

  std::ofstream(n1.config_path(), std::ios::app) << "[egress]\nmasquerade = false\n";
  ASSERT_EQ(::kill(n1.pid, SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return !has_table(n1); }, 15s, 100ms))
      << n1.ns->out("nft list ruleset") << c_->log_tail(n1);
  EXPECT_TRUE(c_->wait_log(n1, "egress: removed nftables table inet meshd")) << c_->log_tail(n1);
  EXPECT_EQ(c_->log_of_this_run(n1).find("needs a restart"), std::string::npos)
      << "egress.masquerade applies without a restart:\n" << c_->log_tail(n1);
  // The other node keeps its own.
  EXPECT_TRUE(has_table(n2));

  // The pod's requests now leave with its own address, and nothing answers them.
  Capture at_outside(*outside_, "eth0", "icmp");
  EXPECT_NE(p.ns->run("ping -c 3 -i 0.3 -W 1 " + kOutside + " >/dev/null 2>&1"), 0)
      << "the outside host answered a pod without masquerade";
  at_outside.stop();
  std::string seen = at_outside.read();
  EXPECT_NE(seen.find(echo(p.address, kOutside)), std::string::npos) << seen;
  EXPECT_EQ(seen.find(echo(n1.underlay, kOutside)), std::string::npos) << seen;
  // Pods still reach pods.
  EXPECT_TRUE(ClusterNodes::reaches(*p.ns, pod(n2).address));

  // Back on (the section removed: the default) with another reload.
  c_->write_config(n1);
  ASSERT_EQ(::kill(n1.pid, SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return has_table(n1); }, 15s, 100ms)) << c_->log_tail(n1);
  EXPECT_TRUE(ClusterNodes::reaches(*p.ns, kOutside));
}

TEST_F(Egress, StoppingMeshdKeepsTheTableAndTeardownRemovesIt) {
  auto& n2 = node("n2");
  ASSERT_TRUE(eventually([&] { return has_table(n2); }, 15s, 100ms)) << c_->log_tail(n2);
  // A stopped meshd leaves the data plane up, the masquerade included.
  EXPECT_EQ(c_->stop(n2), 0);
  EXPECT_TRUE(has_table(n2));
  EXPECT_TRUE(ClusterNodes::reaches(*pod(n2).ns, kOutside));

  int rc = n2.ns->run(std::string(MESHD_BIN_DIR) + "/meshd --config " + n2.config_path() + " --teardown >>" +
                      n2.log_path() + " 2>&1");
  EXPECT_EQ(rc, 0) << c_->log_tail(n2);
  EXPECT_FALSE(has_table(n2)) << n2.ns->out("nft list ruleset");
  EXPECT_NE(c_->log(n2).find("removed nftables table inet meshd"), std::string::npos) << c_->log_tail(n2);
  // A second teardown finds nothing to remove and still succeeds.
  rc = n2.ns->run(std::string(MESHD_BIN_DIR) + "/meshd --config " + n2.config_path() + " --teardown >>" +
                  n2.log_path() + " 2>&1");
  EXPECT_EQ(rc, 0) << c_->log_tail(n2);
}

}  // namespace
}  // namespace meshd::testing
