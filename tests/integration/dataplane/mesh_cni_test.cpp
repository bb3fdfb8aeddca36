// meshd and meshd-cni together: meshd installs the conflist once the node has
// its pod CIDR; pods made by the real plugin from that conflist reach pods on
// the other node through the mesh, without NAT, with the mesh MTU.
#include "tests/support/cni_harness.h"
#include "tests/support/mesh_cluster.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

namespace meshd::testing {
namespace {

using namespace std::chrono_literals;

TEST(MeshWithCni, PodsMadeByThePluginReachPodsOnOtherNodes) {
  MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  MeshClusterOptions o;
  o.nodes = 2;
  o.pods_per_node = 0;
  MeshCluster c(o);
  c.start_all();
  ASSERT_TRUE(c.converged());

  struct PodOnNode {
    std::unique_ptr<Netns> ns;
    std::string address;
    std::string conf;
    MeshCluster::Node* node;
  };
  std::vector<PodOnNode> pods;
  for (auto& n : c.nodes()) {
    std::string conflist = n.cni_conf_dir() + "/05-meshd.conflist";
    ASSERT_TRUE(MeshCluster::eventually([&] { return sh("test -s " + conflist) == 0; }, 5s))
        << "meshd did not install " << conflist;
    PodOnNode p{std::make_unique<Netns>("mcp"), "", plugin_config_from_conflist(conflist), &n};
    auto add = run_in_node(n.ns->name(), plugin_path(),
                           {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "pod-" + std::to_string(n.index)},
                            {"CNI_NETNS", p.ns->path()}, {"CNI_IFNAME", "eth0"}, {"CNI_PATH", "/opt/cni/bin"}},
                           p.conf);
    ASSERT_EQ(add.exit_code, 0) << add.out;
    auto ip = add.json().at("ips").as_array().at(0).as_object().at("address").as_string();
    std::string addr(ip.c_str());
    p.address = addr.substr(0, addr.find('/'));
    EXPECT_TRUE(IpPrefix::parse(n.pod_cidr)->contains(*IpAddress::parse(p.address))) << p.address;
    // The pod gets the mesh MTU meshd derived (1500 underlay - 60).
    EXPECT_NE(p.ns->out("ip -o link show eth0").find("mtu 1440"), std::string::npos);
    pods.push_back(std::move(p));
  }

  auto& a = pods[0];
  auto& b = pods[1];
  ASSERT_TRUE(MeshCluster::eventually(
      [&] { return a.ns->run("ping -c 1 -W 1 " + b.address + " >/dev/null 2>&1") == 0; }, 15s))
      << "pod " << a.address << " cannot reach pod " << b.address << " on the other node";
  {
    Capture cap(*b.ns, "eth0", "icmp");
    a.ns->run("ping -c 3 -i 0.2 -W 2 " + b.address + " >/dev/null 2>&1");
    cap.stop();
    EXPECT_NE(cap.read().find(a.address + " > " + b.address + ": ICMP echo request"), std::string::npos)
        << "the receiving pod must see the sending pod's own address";
  }
  EXPECT_EQ(b.ns->run("ping -c 1 -W 2 " + a.address + " >/dev/null 2>&1"), 0);

  for (auto& p : pods) {
    auto del = run_in_node(p.node->ns->name(), plugin_path(),
                           {{"CNI_COMMAND", "DEL"}, {"CNI_CONTAINERID", "pod-" + std::to_string(p.node->index)},
                            {"CNI_NETNS", p.ns->path()}, {"CNI_IFNAME", "eth0"}, {"CNI_PATH", "/opt/cni/bin"}},
                           p.conf);
    EXPECT_EQ(del.exit_code, 0) << del.out;
  }
}

}  // namespace
}  // namespace meshd::testing
