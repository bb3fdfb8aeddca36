#include "meshd/config/config.h"
#include "tests/support/config_error.h"

#include "common/ifname.h"

#include <gtest/gtest.h>

namespace meshd::config {
namespace {

std::string error_of(const std::string& text) { return testing::config_error_of(text); }

TEST(Config, DefaultsFromAnEmptyFile) {
  auto c = parse_config("", "meshd.toml");
  EXPECT_EQ(c.interface, "meshd0");
  EXPECT_EQ(c.listen_port, 51820);
  EXPECT_EQ(c.backend, BackendKind::kAuto);
  EXPECT_EQ(c.mtu, 0u);
  EXPECT_EQ(c.persistent_keepalive, 25);
  EXPECT_EQ(c.database, "/var/lib/meshd/meshd.db");
  EXPECT_TRUE(c.peers.empty());
  EXPECT_FALSE(c.pod_cidr);
  EXPECT_EQ(c.resync_interval_ms, 2000u);
}

TEST(Config, FullFile) {
  auto c = parse_config(R"(
[node]
name = "node-a"
pod_cidr = "10.244.1.0/24"
[wireguard]
interface = "wgmesh"
listen_port = 51900
backend = "userspace"
mtu = 1380
underlay_interface = "eth0"
persistent_keepalive = 0
[userspace]
binary = "/usr/bin/wireguard-go"
socket_dir = "/tmp/x"
[state]
database = "/tmp/m.db"
runtime_dir = "/tmp/run"
[reconcile]
resync_interval_ms = 500
[cni]
conf_dir = "/tmp/cni"
network = "podnet"
[[peers]]
name = "laptop"
public_key = "abc"
endpoint = "192.0.2.1:51820"
allowed_ips = ["10.99.0.2/32"]
persistent_keepalive = 10
[[peers]]
public_key = "def"
)", "meshd.toml");
  EXPECT_EQ(c.node_name, "node-a");
  EXPECT_EQ(c.pod_cidr->to_string(), "10.244.1.0/24");
  EXPECT_EQ(c.interface, "wgmesh");
  EXPECT_EQ(c.listen_port, 51900);
  EXPECT_EQ(c.backend, BackendKind::kUserspace);
  EXPECT_EQ(c.mtu, 1380u);
  EXPECT_EQ(c.underlay_interface, "eth0");
  EXPECT_EQ(c.persistent_keepalive, 0);
  EXPECT_EQ(c.userspace_socket_dir, "/tmp/x");
  EXPECT_EQ(c.resync_interval_ms, 500u);
  EXPECT_EQ(c.cni_conf_dir, "/tmp/cni");
  EXPECT_EQ(c.cni_network, "podnet");
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].name, "laptop");
  EXPECT_EQ(c.peers[0].persistent_keepalive, std::optional<std::uint16_t>(10));
  EXPECT_EQ(c.peers[1].name, "peer1");  // unnamed peers get their index
  // Peer fields stay text: validation (and per-peer rejection) comes later.
  EXPECT_EQ(c.peers[1].public_key, "def");
}

TEST(Config, ErrorsNameFileKeyAndExpectedForm) {
  EXPECT_NE(error_of("[wireguard]\nlisten_port = 70000\n").find("meshd.toml: wireguard.listen_port: expected an integer from 1 to 65535"), std::string::npos);
  EXPECT_NE(error_of("[wireguard]\nlisten_port = \"x\"\n").find("wireguard.listen_port: expected an integer"), std::string::npos);
  EXPECT_NE(error_of("[wireguard]\nbackend = \"fast\"\n").find("expected \"auto\", \"kernel\" or \"userspace\""), std::string::npos);
  EXPECT_NE(error_of("[wireguard]\nlisten_prot = 1\n").find("wireguard.listen_prot: unknown key"), std::string::npos);
  EXPECT_NE(error_of("[wiregaurd]\n").find("wiregaurd: unknown section"), std::string::npos);
  EXPECT_NE(error_of("[node]\npod_cidr = \"10.244.1.5/24\"\n").find("did you mean 10.244.1.0/24"), std::string::npos);
  EXPECT_NE(error_of("[node]\npod_cidr = \"10.244.1.0/33\"\n").find("node.pod_cidr"), std::string::npos);
  // The CNI plugin finds no gateway in these: meshd refuses them as well.
  EXPECT_NE(error_of("[node]\npod_cidr = \"0.0.0.0/0\"\n").find("node.pod_cidr: pod CIDR 0.0.0.0/0 cannot host pods"), std::string::npos);
  EXPECT_NE(error_of("[node]\npod_cidr = \"10.0.0.0/31\"\n").find("expected an IPv4 prefix from /1 to /30"), std::string::npos);
  EXPECT_NE(error_of("[wireguard]\nmtu = 500\n").find("at least 1280"), std::string::npos);
  EXPECT_NE(error_of("[wireguard]\ninterface = \"a-very-long-interface-name\"\n").find("1-15 characters"), std::string::npos);
  EXPECT_NE(error_of("[[peers]]\nname = \"x\"\nfoo = 1\n").find("peers[0].foo: unknown key"), std::string::npos);
  EXPECT_NE(error_of("[[peers]]\nallowed_ips = \"10.0.0.0/8\"\n").find("peers[0].allowed_ips: expected an array of strings"), std::string::npos);
  EXPECT_NE(error_of("[cni]\nnetwork = \"a/b\"\n").find("cni.network"), std::string::npos);
  EXPECT_NE(error_of("this is not toml").find("meshd.toml:1:"), std::string::npos);
}

// The one interface-name rule (common/ifname.h): a '%' is a kernel name
// template, a leading '-' becomes an option in wireguard-go's argv.
TEST(Config, InterfaceNamesFollowTheOneRuleAndTheMessageSaysTheForm) {
  const std::string form(kInterfaceNameForm);
  for (const char* name : {"wg%d", "--version", "a b", "", "..", "a-very-long-interface-name"}) {
    std::string e = error_of(std::string("[wireguard]\ninterface = \"") + name + "\"\n");
    EXPECT_NE(e.find("meshd.toml: wireguard.interface"), std::string::npos) << name << ": " << e;
    EXPECT_NE(e.find(form), std::string::npos) << name << ": " << e;
    e = error_of(std::string("[wireguard]\nunderlay_interface = \"") + name + "\"\n");
    if (std::string(name).empty()) {
      EXPECT_EQ(e, "<no error>");  // "" = the interface of the route to the peers
    } else {
      EXPECT_NE(e.find("meshd.toml: wireguard.underlay_interface"), std::string::npos) << name << ": " << e;
      EXPECT_NE(e.find(form), std::string::npos) << name << ": " << e;
    }
  }
  EXPECT_EQ(parse_config("[wireguard]\ninterface = \"wg.mesh-0_a\"\nunderlay_interface = \"eth0.100\"\n",
                         "meshd.toml")
                .interface,
            "wg.mesh-0_a");
}

}  // namespace
}  // namespace meshd::config
