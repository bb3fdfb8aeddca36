// meshd's side of the CNI plugin on a node, with the real meshd in a node
// namespace: the conflist it installs (chained plugins found in its bin
// dirs, the plugin's options, a name that sorts first, a warning when
// another config sorts before it), removed by --teardown and when the node's
// pod CIDR is withdrawn; and the pods it names when the mesh MTU drops below
// theirs.
#include "cni/conflist.h"
#include "cni/naming.h"
#include "tests/support/cni_harness.h"
#include "tests/support/mesh_cluster.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

namespace meshd::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// One meshd node (userspace backend, no peers) whose [cni] section ends the
// config file, so that keys appended to it land in [cni].
class CniNodeDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MeshClusterOptions o;
    o.nodes = 1;
    o.pods_per_node = 0;
    cluster_ = std::make_unique<MeshCluster>(o);
    node_ = &cluster_->node(1);
    bin_ = node_->dir + "/cnibin";
    fs::create_directories(bin_);
  }
  void append_config(const std::string& text) {
    std::ofstream(node_->config_path(), std::ios::app) << text;
  }
  std::string conflist_path(const std::string& name = "05-meshd.conflist") const {
    return node_->cni_conf_dir() + "/" + name;
  }
  // ADD through meshd-cni alone, with the plugin entry of the conflist meshd
  // wrote (as a runtime would run the chain's first plugin).
  PluginRun add_pod_from_conflist(const Netns& pod, const std::string& container_id) {
    auto list = json::parse(read_file(conflist_path())).as_object();
    auto conf = list["plugins"].as_array()[0].as_object();
    conf["name"] = list["name"];
    conf["cniVersion"] = list["cniVersion"];
    return run_in_node(node_->ns->name(), plugin_path(),
                       {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", container_id},
                        {"CNI_NETNS", pod.path()}, {"CNI_IFNAME", "eth0"}},
                       json::serialize(conf));
  }
  bool wait_for_log(const std::string& needle) {
    return MeshCluster::eventually([&] { return cluster_->log(*node_).find(needle) != std::string::npos; },
                                   10s);
  }
  void reload() { ASSERT_EQ(::kill(node_->meshd_pid, SIGHUP), 0); }
  // The config file with `from` replaced by `to`.
  void edit_config(const std::string& from, const std::string& to) {
    std::string cfg = read_file(node_->config_path());
    auto at = cfg.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    cfg.replace(at, from.size(), to);
    std::ofstream(node_->config_path(), std::ios::trunc) << cfg;
  }

  std::unique_ptr<MeshCluster> cluster_;
  MeshCluster::Node* node_ = nullptr;
  std::string bin_;
};

TEST_F(CniNodeDaemon, ConflistChainsInstalledPluginsTakesItsOptionsAndGoesWithTeardown) {
  MESHD_REQUIRE(fs::exists("/usr/lib/cni/portmap"), "containernetworking-plugins is needed");
  // portmap is installed in the bin dir, bandwidth is not: only portmap is chained.
  fs::copy_file("/usr/lib/cni/portmap", bin_ + "/portmap");
  fs::copy_file(plugin_path(), bin_ + "/meshd-cni");
  append_config("bin_dirs = [\"" + bin_ + "\"]\nmtu = 1300\nlog_file = \"" + node_->dir +
                "/cni.log\"\n");
  // Another network config that sorts before ours, as a leftover bridge would.
  fs::create_directories(node_->cni_conf_dir());
  std::ofstream(conflist_path("01-leftover.conflist")) << "{}";
  std::ofstream(conflist_path("99-late.conflist")) << "{}";
  // What an earlier meshd wrote under the old name: replaced, not kept as a
  // second network config.
  std::ofstream(conflist_path("10-meshd.conflist")) << cni::render_conflist({});
  cluster_->start(*node_);
  ASSERT_TRUE(MeshCluster::eventually([&] { return sh("test -s " + conflist_path()) == 0; }, 10s))
      << cluster_->log(*node_);

  auto list = json::parse(read_file(conflist_path())).as_object();
  EXPECT_EQ(list["cniVersion"], "1.0.0");
  EXPECT_EQ(json::serialize(list["cniVersions"]), R"(["0.4.0","1.0.0"])");
  auto plugins = list["plugins"].as_array();
  ASSERT_EQ(plugins.size(), 2u) << read_file(conflist_path());
  EXPECT_EQ(plugins[0].as_object()["type"], "meshd-cni");
  EXPECT_EQ(plugins[0].as_object()["mtu"], 1300);
  EXPECT_EQ(plugins[0].as_object()["logFile"], json::value(node_->dir + "/cni.log"));
  EXPECT_EQ(json::serialize(plugins[1]), R"({"type":"portmap","capabilities":{"portMappings":true}})");

  ASSERT_TRUE(wait_for_log("sorts before 05-meshd.conflist")) << cluster_->log(*node_);
  EXPECT_FALSE(fs::exists(conflist_path("10-meshd.conflist")));
  std::string log = cluster_->log(*node_);
  std::string line = log.substr(log.find("CNI config 01-leftover.conflist"));
  line = line.substr(0, line.find('\n'));
  EXPECT_EQ(line.find("99-late"), std::string::npos) << line;
  EXPECT_NE(log.find("CNI plugin bandwidth is not in " + bin_), std::string::npos) << log;

  // --teardown: the mesh goes, and so does the conflist (and only ours).
  cluster_->stop(*node_);
  auto td = run_process({"/usr/sbin/ip", "netns", "exec", node_->ns->name(),
                         std::string(MESHD_BIN_DIR) + "/meshd", "--config", node_->config_path(),
                         "--teardown"},
                        {}, "");
  EXPECT_EQ(td.exit_code, 0) << td.out;
  EXPECT_FALSE(fs::exists(conflist_path()));
  EXPECT_TRUE(fs::exists(conflist_path("01-leftover.conflist")));
}

TEST_F(CniNodeDaemon, AWithdrawnPodCidrTakesTheConflistAwayAndARestoredOneBringsItBack) {
  append_config("chained_plugins = []\n");
  cluster_->start(*node_);
  ASSERT_TRUE(MeshCluster::eventually([&] { return sh("test -s " + conflist_path()) == 0; }, 10s))
      << cluster_->log(*node_);
  ASSERT_TRUE(cluster_->converged());

  edit_config("pod_cidr = \"" + node_->pod_cidr + "\"\n", "");
  reload();
  ASSERT_TRUE(wait_for_log("reload: node.pod_cidr removed")) << cluster_->log(*node_);
  EXPECT_TRUE(MeshCluster::eventually([&] { return !fs::exists(conflist_path()); }, 10s));
  {
    // The plugin refuses new pods (STATUS 50) from the same store.
    auto status = run_in_node(node_->ns->name(), plugin_path(), {{"CNI_COMMAND", "STATUS"}},
                              R"({"cniVersion":"1.1.0","name":"meshd","type":"meshd-cni","database":")" +
                                  node_->dir + "/meshd.db\"}");
    EXPECT_EQ(status.code(), 50) << status.out;
  }
  // Existing pods keep their gateway address and routes.
  EXPECT_NE(node_->ns->out("ip -o addr show dev meshd0").find(node_->gateway + "/32"), std::string::npos);

  edit_config("[node]\n", "[node]\npod_cidr = \"" + node_->pod_cidr + "\"\n");
  reload();
  EXPECT_TRUE(MeshCluster::eventually([&] { return fs::exists(conflist_path()); }, 10s))
      << cluster_->log(*node_);
  auto status = run_in_node(node_->ns->name(), plugin_path(), {{"CNI_COMMAND", "STATUS"}},
                            R"({"cniVersion":"1.1.0","name":"meshd","type":"meshd-cni","database":")" +
                                node_->dir + "/meshd.db\"}");
  EXPECT_EQ(status.exit_code, 0) << status.out;
}

TEST_F(CniNodeDaemon, PodsAboveALoweredMeshMtuAreNamed) {
  append_config("chained_plugins = []\n");
  edit_config("[wireguard]\n", "[wireguard]\nmtu = 1420\n");
  cluster_->start(*node_);
  ASSERT_TRUE(MeshCluster::eventually([&] { return sh("test -s " + conflist_path()) == 0; }, 10s))
      << cluster_->log(*node_);
  // A pod made from meshd's conflist gets the mesh MTU of now.
  Netns pod("cmp");
  auto add = add_pod_from_conflist(pod, "big-pod");
  ASSERT_EQ(add.exit_code, 0) << add.out;
  ASSERT_NE(pod.out("ip -o link show eth0").find("mtu 1420"), std::string::npos);
  EXPECT_EQ(cluster_->log(*node_).find("above the mesh MTU"), std::string::npos);

  edit_config("mtu = 1420\n", "mtu = 1380\n");
  reload();
  ASSERT_TRUE(wait_for_log("above the mesh MTU 1380")) << cluster_->log(*node_);
  std::string log = cluster_->log(*node_);
  std::string line = log.substr(log.find("above the mesh MTU 1380"));
  line = line.substr(0, line.find('\n'));
  EXPECT_NE(line.find("big-pod/eth0 (host veth " + cni::host_veth_name("meshd", "big-pod", "eth0") + ", mtu 1420)"),
            std::string::npos)
      << line;
}

// The same when the MTU is derived and the underlay's drops while meshd runs.
TEST_F(CniNodeDaemon, PodsAboveAMeshMtuLoweredByTheUnderlayAreNamed) {
  append_config("chained_plugins = []\n");
  // The underlay is the default route's link (no peers): 1500 - 60 = 1440.
  ASSERT_EQ(sh("ip -n " + node_->ns->name() + " route add default dev eth0"), 0);
  cluster_->start(*node_);
  ASSERT_TRUE(MeshCluster::eventually([&] { return sh("test -s " + conflist_path()) == 0; }, 10s))
      << cluster_->log(*node_);
  ASSERT_TRUE(cluster_->converged());
  Netns pod("cmp");
  auto add = add_pod_from_conflist(pod, "early-pod");
  ASSERT_EQ(add.exit_code, 0) << add.out;
  ASSERT_NE(pod.out("ip -o link show eth0").find("mtu 1440"), std::string::npos);

  ASSERT_EQ(sh("ip -n " + node_->ns->name() + " link set eth0 mtu 1400"), 0);
  ASSERT_TRUE(wait_for_log("above the mesh MTU 1340")) << cluster_->log(*node_);
  std::string log = cluster_->log(*node_);
  std::string line = log.substr(log.find("above the mesh MTU 1340"));
  line = line.substr(0, line.find('\n'));
  EXPECT_NE(line.find("early-pod/eth0 (host veth " + cni::host_veth_name("meshd", "early-pod", "eth0") +
                      ", mtu 1440)"),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace meshd::testing
