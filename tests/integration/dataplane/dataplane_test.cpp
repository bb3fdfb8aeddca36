// A 3-node mesh of real meshd processes, configured from static peer lists:
// pods on different nodes reach each other through WireGuard, without NAT,
// the underlay carries only WireGuard UDP, drift is repaired, and traffic
// keeps flowing through a meshd restart and a kill -9.
#include "tests/support/mesh_cluster.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"


#ifndef MESHD_TEST_BACKEND
#define MESHD_TEST_BACKEND "userspace"
#endif

namespace meshd::testing {
namespace {

using namespace std::chrono_literals;

class Dataplane : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MeshClusterOptions o;
    o.backend = MESHD_TEST_BACKEND;
    cluster_ = std::make_unique<MeshCluster>(o);
  }
  void TearDown() override {
    if (HasFailure() && cluster_)
      for (auto& n : cluster_->nodes())
        std::cerr << "---- node" << n.index << " log ----\n" << cluster_->log(n) << "\n";
    cluster_.reset();
  }

  // One ping from a pod to an address; true if answered.
  bool ping(const MeshCluster::Pod& from, const std::string& to) {
    return from.ns->run("ping -c 1 -W 1 " + to + " >/dev/null 2>&1") == 0;
  }
  bool reachable(const MeshCluster::Pod& from, const std::string& to) {
    return MeshCluster::eventually([&] { return ping(from, to); }, 15s);
  }
  void start_and_converge() {
    cluster_->start_all();
    ASSERT_TRUE(cluster_->converged()) << "meshd did not report in_sync on every node";
  }

  std::unique_ptr<MeshCluster> cluster_;
};

TEST_F(Dataplane, PodsOnEveryNodeReachEachOther) {
  start_and_converge();
  auto& c = *cluster_;
  for (auto& a : c.nodes()) {
    for (auto& b : c.nodes()) {
      if (a.index == b.index) continue;
      EXPECT_TRUE(reachable(a.pods[0], b.pods[0].address))
          << "pod on node" << a.index << " cannot reach pod on node" << b.index;
    }
  }
  // The node itself reaches remote pods (its source is its pod-CIDR gateway).
  EXPECT_EQ(c.node(1).ns->run("ping -c 1 -W 2 " + c.node(3).pods[0].address + " >/dev/null"), 0);
}

TEST_F(Dataplane, ReceiverSeesTheSenderPodsOwnAddress) {
  start_and_converge();
  auto& c = *cluster_;
  auto& src = c.node(1).pods[0];
  auto& dst = c.node(2).pods[0];
  ASSERT_TRUE(reachable(src, dst.address));
  // Capture in the receiving pod while the sender pings it.
  Capture cap(*dst.ns, "eth0", "icmp");
  src.ns->run("ping -c 3 -i 0.2 -W 2 " + dst.address + " >/dev/null 2>&1");
  cap.stop();
  std::string seen = cap.read();
  EXPECT_NE(seen.find(src.address + " > " + dst.address + ": ICMP echo request"), std::string::npos)
      << seen;
  EXPECT_EQ(seen.find("172.31.77."), std::string::npos) << "underlay address leaked: " << seen;
}

TEST_F(Dataplane, UnderlayCarriesOnlyWireGuardUdp) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  ASSERT_TRUE(reachable(n1.pods[0], c.node(2).pods[0].address));
  Capture cap(*n1.ns, "eth0");
  n1.pods[0].ns->run("ping -c 10 -i 0.1 -W 2 " + c.node(2).pods[0].address + " >/dev/null 2>&1");
  n1.pods[0].ns->run("ping -c 10 -i 0.1 -W 2 " + c.node(3).pods[0].address + " >/dev/null 2>&1");
  cap.stop();
  std::string wg = cap.read("udp port 51820");
  std::string other = cap.read("not (udp port 51820) and not arp");
  auto lines = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };
  EXPECT_GE(lines(wg), 40) << "expected the pings as WireGuard UDP on the underlay";
  EXPECT_EQ(lines(other), 0) << "non-WireGuard traffic on the underlay:\n" << other;
  EXPECT_EQ(wg.find("ICMP"), std::string::npos);
}

TEST_F(Dataplane, WgShowAndStatusDescribeTheDevice) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  std::string dump = c.wg(n1, "show meshd0 dump");
  // First line: the device (private key, public key, port, fwmark); then one per peer.
  EXPECT_NE(dump.find(n1.public_key), std::string::npos) << dump;
  for (int i : {2, 3}) {
    auto& m = c.node(i);
    std::string peer_line = m.public_key + "\t(none)\t" + m.underlay + ":51820\t" + m.pod_cidr + "\t";
    EXPECT_NE(dump.find(peer_line), std::string::npos) << "peer node" << i << " missing from\n" << dump;
  }
  std::string st = c.status(n1);
  EXPECT_NE(st.find(std::string("\"backend\":\"") + MESHD_TEST_BACKEND + "\""), std::string::npos) << st;
  EXPECT_NE(st.find("\"peers\":2"), std::string::npos) << st;
  // MTU derived from the underlay: 1500 - 60 (IPv4 endpoints).
  EXPECT_NE(n1.ns->out("ip -o link show meshd0").find("mtu 1440"), std::string::npos);
  EXPECT_NE(st.find("\"mtu\":1440"), std::string::npos) << st;
  // meshctl status shows the same for a person, and exits 0 when in sync.
  std::string meshctl = std::string(MESHD_BIN_DIR) + "/meshctl status --runtime-dir " + n1.dir + "/run";
  std::string shown = sh_out(meshctl);
  EXPECT_NE(shown.find(std::string("backend:    ") + MESHD_TEST_BACKEND), std::string::npos) << shown;
  EXPECT_NE(shown.find("in sync:    yes"), std::string::npos) << shown;
  EXPECT_NE(shown.find("peers:      2"), std::string::npos) << shown;
  EXPECT_EQ(sh(meshctl + " >/dev/null"), 0);
  EXPECT_EQ(sh(std::string(MESHD_BIN_DIR) + "/meshctl status --runtime-dir /nonexistent 2>/dev/null"), 1);
  // The node's pod-CIDR gateway address is on the device; routes carry our protocol.
  EXPECT_NE(n1.ns->out("ip -o addr show dev meshd0").find(n1.gateway + "/32"), std::string::npos);
  std::string routes = n1.ns->out("ip route show proto 77");
  EXPECT_NE(routes.find("10.77.2.0/24 dev meshd0"), std::string::npos) << routes;
  EXPECT_NE(routes.find("src " + n1.gateway), std::string::npos) << routes;
}

TEST_F(Dataplane, DriftIsRepairedWithinTwoSeconds) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  auto& n2 = c.node(2);

  // A peer removed by hand comes back (meshd may already have restored it by
  // the time we look; its log says it did).
  auto restores = [&] {
    std::string log = c.log(n1);
    std::string needle = "add peer " + n2.public_key.substr(0, 8);
    std::size_t count = 0;
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++count;
    return count;
  };
  std::size_t before = restores();
  ASSERT_EQ(c.wg_rc(n1, "set meshd0 peer " + n2.public_key + " remove"), 0);
  EXPECT_TRUE(MeshCluster::eventually([&] { return restores() > before; }, 2s))
      << "meshd did not re-add the removed peer within 2 s";
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return c.wg(n1, "show meshd0 peers").find(n2.public_key) != std::string::npos; }, 2s))
      << "removed peer not restored within 2 s";

  // A route deleted by hand comes back.
  ASSERT_EQ(n1.ns->run("ip route del " + n2.pod_cidr), 0);
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return n1.ns->out("ip route show " + n2.pod_cidr).find("meshd0") != std::string::npos; }, 2s))
      << "deleted route not restored within 2 s";

  // A bounced link (which drops every route through it) is repaired.
  ASSERT_EQ(n1.ns->run("ip link set meshd0 down"), 0);
  ASSERT_EQ(n1.ns->run("ip link set meshd0 up"), 0);
  EXPECT_TRUE(MeshCluster::eventually(
      [&] {
        std::string r = n1.ns->out("ip route show proto 77");
        return r.find(n2.pod_cidr) != std::string::npos && r.find(c.node(3).pod_cidr) != std::string::npos;
      },
      2s))
      << "routes not restored within 2 s of a link bounce";
  EXPECT_TRUE(reachable(n1.pods[0], n2.pods[0].address));

  // Someone else's route is never touched.
  ASSERT_EQ(n1.ns->run("ip route add 10.123.0.0/16 dev meshd0 proto static"), 0);
  std::this_thread::sleep_for(1500ms);
  EXPECT_NE(n1.ns->out("ip route show 10.123.0.0/16").find("meshd0"), std::string::npos);
}

TEST_F(Dataplane, InvalidPeerIsRejectedByNameAndTheRestStillApplies) {
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  c.write_config(n1,
                 "[[peers]]\nname = \"broken-laptop\"\npublic_key = \"not-a-key\"\nallowed_ips = [\"10.99.0.2/32\"]\n"
                 "[[peers]]\nname = \"bad-endpoint\"\npublic_key = \"" +
                     keys::PrivateKey::generate().public_key().to_base64() +
                     "\"\nendpoint = \"nowhere\"\nallowed_ips = [\"10.99.0.3/32\"]\n");
  start_and_converge();
  std::string st = c.status(n1);
  EXPECT_NE(st.find("broken-laptop"), std::string::npos) << st;
  EXPECT_NE(st.find("bad-endpoint"), std::string::npos) << st;
  EXPECT_NE(st.find("\"peers\":2"), std::string::npos) << st;
  EXPECT_NE(c.log(n1).find("peer broken-laptop rejected: public_key"), std::string::npos);
  EXPECT_TRUE(reachable(n1.pods[0], c.node(2).pods[0].address));
}

TEST_F(Dataplane, NoPacketLostThroughRestartAndKill9) {
  start_and_converge();
  auto& c = *cluster_;
  auto& src = c.node(1).pods[0];
  auto& dst = c.node(2).pods[0];
  ASSERT_TRUE(reachable(src, dst.address));
  std::this_thread::sleep_for(1500ms);  // let every handshake settle

  // 20 packets/s for 12 s while node1's meshd is restarted and node2's is
  // killed with SIGKILL and started again.
  std::string out = "/tmp/" + src.ns->name() + "-ping.txt";
  ASSERT_EQ(src.ns->run("sh -c 'ping -i 0.05 -c 240 -W 1 " + dst.address + " > " + out + " 2>&1 &'"), 0);
  std::this_thread::sleep_for(2s);
  c.stop(c.node(1), SIGTERM);
  std::this_thread::sleep_for(1s);
  c.start(c.node(1));
  std::this_thread::sleep_for(3s);
  c.stop(c.node(2), SIGKILL);
  std::this_thread::sleep_for(1s);
  c.start(c.node(2));
  ASSERT_TRUE(MeshCluster::eventually(
      [&] { return sh_out("cat " + out).find("packets transmitted") != std::string::npos; }, 60s));
  std::string result = sh_out("cat " + out);
  ::unlink(out.c_str());
  EXPECT_NE(result.find("240 packets transmitted, 240 received, 0% packet loss"), std::string::npos)
      << result;
  EXPECT_TRUE(c.converged());
  // The restarted meshd adopted the running device instead of recreating it.
  EXPECT_NE(c.log(c.node(2)).find("backend: " MESHD_TEST_BACKEND), std::string::npos);
}

}  // namespace
}  // namespace meshd::testing

namespace meshd::testing {
namespace {

// `meshd --once` converges and exits 0; `meshd --teardown` removes the device
// and meshd's routes (and with them the userspace implementation).
TEST(DataplaneCommands, OnceConvergesAndTeardownRemovesEverything) {
  MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  MeshClusterOptions o;
  o.nodes = 2;
  o.backend = MESHD_TEST_BACKEND;
  MeshCluster c(o);
  auto& n1 = c.node(1);
  std::string meshd = o.meshd + " --config " + n1.config_path();
  EXPECT_EQ(n1.ns->run(meshd + " --once >>" + n1.log_path() + " 2>&1"), 0) << c.log(n1);
  EXPECT_NE(c.wg(n1, "show meshd0 peers").find(c.node(2).public_key), std::string::npos);
  EXPECT_NE(n1.ns->out("ip route show proto 77").find(c.node(2).pod_cidr), std::string::npos);
  // A second pass finds nothing to do and still exits 0.
  EXPECT_EQ(n1.ns->run(meshd + " --once >>" + n1.log_path() + " 2>&1"), 0);

  EXPECT_EQ(n1.ns->run(meshd + " --teardown >>" + n1.log_path() + " 2>&1"), 0) << c.log(n1);
  EXPECT_NE(n1.ns->run("ip link show meshd0 >/dev/null 2>&1"), 0) << "device still there";
  EXPECT_EQ(n1.ns->out("ip route show proto 77"), "");
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return sh_out("ip netns pids " + n1.ns->name()).empty(); }, std::chrono::seconds(5)))
      << "a process (the userspace implementation?) outlived the teardown";
}

}  // namespace
}  // namespace meshd::testing
