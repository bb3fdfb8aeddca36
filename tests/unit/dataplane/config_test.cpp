#include "meshd/config/config.h"
#include "tests/support/config_error.h"
#include "tests/support/temp_dir.h"

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

// ------------------------------------------------- cluster, join and API keys

TEST(Config, ClusterJoinAndApiDefaults) {
  auto c = parse_config("", "meshd.toml");
  EXPECT_FALSE(c.cluster_mode);
  EXPECT_EQ(c.cluster_cidr.to_string(), "10.244.0.0/16");
  EXPECT_EQ(c.node_prefix_length, 24);
  EXPECT_EQ(c.join_listen.to_string(), "0.0.0.0:51821");
  EXPECT_TRUE(c.join_listen.address.is_v4());
  EXPECT_EQ(c.sync_port, 51822);
  EXPECT_EQ(c.anti_entropy_interval_ms, 1000u);
  EXPECT_FALSE(c.advertise_endpoint);
  EXPECT_FALSE(c.join_target);
  EXPECT_EQ(c.join_token_file, "");
  EXPECT_EQ(c.api_socket, "/run/meshd/meshd.sock");
  // The socket follows the runtime directory unless it is configured.
  EXPECT_EQ(parse_config("[state]\nruntime_dir = \"/tmp/n1/run\"\n", "meshd.toml").api_socket,
            "/tmp/n1/run/meshd.sock");
  EXPECT_EQ(parse_config("[state]\nruntime_dir = \"/tmp/n1/run\"\n[api]\nsocket = \"/a.sock\"\n",
                         "meshd.toml")
                .api_socket,
            "/a.sock");
  EXPECT_EQ(c.api_socket_group, "");
  EXPECT_FALSE(c.api_listen);
  EXPECT_EQ(c.api_bearer_token_file, "");
  EXPECT_EQ(c.api_tls_cert_file, "");
  EXPECT_EQ(c.api_tls_key_file, "");
  EXPECT_EQ(c.api_max_connections, 64u);
  EXPECT_EQ(c.api_idle_timeout_ms, 30000u);
}

TEST(Config, AClusterOrJoinSectionTurnsClusterModeOnEvenEmpty) {
  EXPECT_TRUE(parse_config("[cluster]\n", "meshd.toml").cluster_mode);
  EXPECT_TRUE(parse_config("[join]\ntarget = \"192.0.2.1:51821\"\ntoken_file = \"/t\"\n", "meshd.toml")
                  .cluster_mode);
  EXPECT_FALSE(parse_config("[api]\n[node]\nname = \"a\"\n", "meshd.toml").cluster_mode);
  // [cluster] alone keeps every default.
  auto c = parse_config("[cluster]\n", "meshd.toml");
  EXPECT_EQ(c.cluster_cidr.to_string(), "10.244.0.0/16");
  EXPECT_EQ(c.node_prefix_length, 24);
}

TEST(Config, EveryClusterJoinAndApiKey) {
  auto c = parse_config(R"(
[cluster]
cidr = "fd00:10::/48"
node_prefix = 64
join_listen = "[::]:7001"
sync_port = 7002
anti_entropy_interval_ms = 250
advertise_endpoint = "[2001:db8::5]:51900"
[join]
target = "[2001:db8::1]:7001"
token_file = "/etc/meshd/join-token"
[api]
socket = "/run/m/api.sock"
socket_group = "meshd-admin"
listen = "192.0.2.5:8443"
bearer_token_file = "/etc/meshd/api-token"
tls_cert_file = "/etc/meshd/api.crt"
tls_key_file = "/etc/meshd/api.key"
max_connections = 8
idle_timeout_ms = 5000
)", "meshd.toml");
  EXPECT_TRUE(c.cluster_mode);
  EXPECT_EQ(c.cluster_cidr.to_string(), "fd00:10::/48");
  EXPECT_EQ(c.node_prefix_length, 64);
  EXPECT_EQ(c.join_listen.to_string(), "[::]:7001");
  EXPECT_EQ(c.sync_port, 7002);
  EXPECT_EQ(c.anti_entropy_interval_ms, 250u);
  ASSERT_TRUE(c.advertise_endpoint);
  EXPECT_EQ(c.advertise_endpoint->to_string(), "[2001:db8::5]:51900");
  ASSERT_TRUE(c.join_target);
  EXPECT_EQ(c.join_target->to_string(), "[2001:db8::1]:7001");
  EXPECT_EQ(c.join_token_file, "/etc/meshd/join-token");
  EXPECT_EQ(c.api_socket, "/run/m/api.sock");
  EXPECT_EQ(c.api_socket_group, "meshd-admin");
  ASSERT_TRUE(c.api_listen);
  EXPECT_EQ(c.api_listen->to_string(), "192.0.2.5:8443");
  EXPECT_EQ(c.api_bearer_token_file, "/etc/meshd/api-token");
  EXPECT_EQ(c.api_tls_cert_file, "/etc/meshd/api.crt");
  EXPECT_EQ(c.api_tls_key_file, "/etc/meshd/api.key");
  EXPECT_EQ(c.api_max_connections, 8u);
  EXPECT_EQ(c.api_idle_timeout_ms, 5000u);

  // "" = auto for the advertised endpoint and no unix socket.
  auto d = parse_config("[cluster]\nadvertise_endpoint = \"\"\n[api]\nsocket = \"\"\n", "meshd.toml");
  EXPECT_FALSE(d.advertise_endpoint);
  EXPECT_EQ(d.api_socket, "");
  // A node prefix at the bounds: /30 in v4, /126 in v6, one longer than the cluster's.
  EXPECT_EQ(parse_config("[cluster]\nnode_prefix = 30\n", "m").node_prefix_length, 30);
  EXPECT_EQ(parse_config("[cluster]\nnode_prefix = 17\n", "m").node_prefix_length, 17);
  EXPECT_EQ(parse_config("[cluster]\ncidr = \"fd00::/64\"\nnode_prefix = 126\n", "m").node_prefix_length, 126);
}

// Each message in full: the file, the key, what is wrong and what to write.
TEST(Config, ClusterJoinAndApiErrorsSayTheKeyAndTheExpectedForm) {
  const std::pair<const char*, const char*> cases[] = {
      // Cross-key: static pod CIDR with cluster mode.
      {"[node]\npod_cidr = \"10.244.1.0/24\"\n[cluster]\n",
       "meshd.toml: node.pod_cidr: is the static mode's pod CIDR; with a [cluster] section the "
       "cluster allocates each node's pod CIDR: remove node.pod_cidr, or the [cluster] and [join] "
       "sections for static mode"},
      {"[node]\npod_cidr = \"10.244.1.0/24\"\n[join]\ntarget = \"192.0.2.1:51821\"\ntoken_file = \"/t\"\n",
       "meshd.toml: node.pod_cidr: is the static mode's pod CIDR; with a [join] section the "
       "cluster allocates each node's pod CIDR: remove node.pod_cidr, or the [cluster] and [join] "
       "sections for static mode"},
      // Cross-key: join target and token file go together.
      {"[join]\ntarget = \"192.0.2.1:51821\"\n",
       "meshd.toml: join.token_file: missing: joining through join.target needs token_file, the "
       "absolute path of a 0600 file holding the bootstrap token \"id.secret\""},
      {"[join]\ntoken_file = \"/etc/meshd/join-token\"\n",
       "meshd.toml: join.target: missing: [join] needs target, a member's cluster.join_listen "
       "\"address:port\", and token_file"},
      {"[join]\n",
       "meshd.toml: join.target: missing: [join] needs target, a member's cluster.join_listen "
       "\"address:port\", and token_file"},
      // Cross-key: the node prefix must fit the cluster CIDR.
      {"[cluster]\nnode_prefix = 16\n",
       "meshd.toml: cluster.node_prefix: /16 does not fit cluster.cidr 10.244.0.0/16: expected a "
       "length from 17 to 30"},
      {"[cluster]\nnode_prefix = 31\n",
       "meshd.toml: cluster.node_prefix: /31 does not fit cluster.cidr 10.244.0.0/16: expected a "
       "length from 17 to 30"},
      {"[cluster]\ncidr = \"10.0.0.0/25\"\n",
       "meshd.toml: cluster.node_prefix: (default) /24 does not fit cluster.cidr 10.0.0.0/25: "
       "expected a length from 26 to 30"},
      {"[cluster]\ncidr = \"fd00::/48\"\n",
       "meshd.toml: cluster.node_prefix: (default) /24 does not fit cluster.cidr fd00::/48: "
       "expected a length from 49 to 126"},
      {"[cluster]\ncidr = \"10.0.0.0/30\"\nnode_prefix = 30\n",
       "meshd.toml: cluster.node_prefix: /30 does not fit cluster.cidr 10.0.0.0/30: expected a "
       "larger cluster.cidr (a node prefix is at most /30)"},
      {"[cluster]\nnode_prefix = 0\n",
       "meshd.toml: cluster.node_prefix: expected an integer from 1 to 128, got 0"},
      {"[cluster]\ncidr = \"10.244.1.0/16\"\n",
       "meshd.toml: cluster.cidr: \"10.244.1.0/16\" has host bits set; did you mean 10.244.0.0/16?"},
      {"[cluster]\ncidr = 16\n", "meshd.toml: cluster.cidr: expected a string like \"10.244.0.0/16\""},
      // Cross-key: a wildcard join listener holds the sync port too.
      {"[cluster]\nsync_port = 51821\n",
       "meshd.toml: cluster.sync_port: 51821 is also cluster.join_listen's port (0.0.0.0:51821, "
       "every address); expected another port"},
      // Endpoints.
      {"[cluster]\njoin_listen = \"0.0.0.0\"\n",
       "meshd.toml: cluster.join_listen: expected \"a.b.c.d:port\" or \"[ipv6]:port\" (no host "
       "names), got \"0.0.0.0\""},
      {"[cluster]\njoin_listen = \"0.0.0.0:0\"\n",
       "meshd.toml: cluster.join_listen: expected a port from 1 to 65535, got \"0.0.0.0:0\""},
      {"[cluster]\nadvertise_endpoint = \"0.0.0.0:51820\"\n",
       "meshd.toml: cluster.advertise_endpoint: expected a concrete address to reach, not 0.0.0.0 "
       "(\"0.0.0.0:51820\")"},
      {"[join]\ntarget = \"member.example:51821\"\ntoken_file = \"/t\"\n",
       "meshd.toml: join.target: expected \"a.b.c.d:port\" or \"[ipv6]:port\" (no host names), got "
       "\"member.example:51821\""},
      {"[join]\ntarget = \"[::]:51821\"\ntoken_file = \"/t\"\n",
       "meshd.toml: join.target: expected a concrete address to reach, not :: (\"[::]:51821\")"},
      {"[join]\ntarget = 51821\n",
       "meshd.toml: join.target: expected a string, \"a.b.c.d:port\" or \"[ipv6]:port\" (no host names)"},
      {"[api]\nlisten = \"localhost:8443\"\nbearer_token_file = \"/t\"\n",
       "meshd.toml: api.listen: expected \"a.b.c.d:port\" or \"[ipv6]:port\" (no host names), got "
       "\"localhost:8443\""},
      // Ranges.
      {"[cluster]\nsync_port = 0\n", "meshd.toml: cluster.sync_port: expected an integer from 1 to 65535, got 0"},
      {"[cluster]\nanti_entropy_interval_ms = 99\n",
       "meshd.toml: cluster.anti_entropy_interval_ms: expected an integer from 100 to 600000, got 99"},
      {"[cluster]\nanti_entropy_interval_ms = 600001\n",
       "meshd.toml: cluster.anti_entropy_interval_ms: expected an integer from 100 to 600000, got 600001"},
      {"[api]\nmax_connections = 0\n",
       "meshd.toml: api.max_connections: expected an integer from 1 to 4096, got 0"},
      {"[api]\nidle_timeout_ms = 50\n",
       "meshd.toml: api.idle_timeout_ms: expected an integer from 100 to 3600000, got 50"},
      // Paths.
      {"[join]\ntarget = \"192.0.2.1:51821\"\ntoken_file = \"join-token\"\n",
       "meshd.toml: join.token_file: expected an absolute path, got \"join-token\""},
      {"[api]\nsocket = \"meshd.sock\"\n", "meshd.toml: api.socket: expected an absolute path, got \"meshd.sock\""},
      {"[api]\nlisten = \"127.0.0.1:8443\"\nbearer_token_file = \"./t\"\n",
       "meshd.toml: api.bearer_token_file: expected an absolute path, got \"./t\""},
      // The API's cross-key rules.
      {"[api]\nlisten = \"127.0.0.1:8443\"\n",
       "meshd.toml: api.bearer_token_file: missing: a TCP listener (api.listen 127.0.0.1:8443) "
       "needs bearer_token_file, the absolute path of a 0600 file holding the token clients send"},
      {"[api]\nbearer_token_file = \"/t\"\n",
       "meshd.toml: api.bearer_token_file: applies only to a TCP listener, and api.listen is not "
       "set; set api.listen or remove it"},
      {"[api]\ntls_cert_file = \"/c\"\ntls_key_file = \"/k\"\n",
       "meshd.toml: api.tls_cert_file: applies only to a TCP listener, and api.listen is not set; "
       "set api.listen or remove it"},
      {"[api]\nlisten = \"192.0.2.5:8443\"\nbearer_token_file = \"/t\"\ntls_cert_file = \"/c\"\n",
       "meshd.toml: api.tls_key_file: missing: TLS needs both api.tls_cert_file and api.tls_key_file"},
      {"[api]\nlisten = \"192.0.2.5:8443\"\nbearer_token_file = \"/t\"\ntls_key_file = \"/k\"\n",
       "meshd.toml: api.tls_cert_file: missing: TLS needs both api.tls_cert_file and api.tls_key_file"},
      {"[api]\nsocket = \"\"\nsocket_group = \"meshd\"\n",
       "meshd.toml: api.socket_group: is set but api.socket is \"\" (no unix socket); remove one"},
      {"[api]\nsocket_group = \"-x\"\n",
       "meshd.toml: api.socket_group: expected a group name of 1-32 characters of [A-Za-z0-9._-], "
       "not starting with '-', got \"-x\""},
      // Unknown keys and sections.
      {"[cluster]\nnode_prefix_length = 24\n",
       "meshd.toml: cluster.node_prefix_length: unknown key (check its spelling)"},
      {"[join]\ntoken = \"abc123.secret\"\n", "meshd.toml: join.token: unknown key (check its spelling)"},
      {"[api]\nport = 1\n", "meshd.toml: api.port: unknown key (check its spelling)"},
      {"[clutser]\n",
       "meshd.toml: clutser: unknown section (expected one of node, wireguard, userspace, state, "
       "reconcile, cni, cluster, join, liveness, rotation, egress, api, peers)"},
      {"cluster = 1\n", "meshd.toml: cluster: expected a table ([cluster])"},
  };
  for (const auto& [text, message] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(error_of(text), message);
  }
  // A unix socket address holds at most 107 bytes of path.
  const std::string long_path = "/" + std::string(107, 's');
  EXPECT_EQ(error_of("[api]\nsocket = \"" + long_path + "\"\n"),
            "meshd.toml: api.socket: expected a path of at most 107 bytes (a unix socket address), got 108");
  EXPECT_EQ(error_of("[api]\nsocket = \"" + long_path.substr(1) + "\"\n").find("at most 107"),
            std::string::npos);  // 107 bytes: the absolute-path rule speaks, not the length
}

// ------------------------------------------------ liveness, rotation, egress

TEST(Config, LivenessRotationAndEgressDefaults) {
  auto c = parse_config("", "meshd.toml");
  EXPECT_EQ(c.liveness_silent_after_s, 300u);
  EXPECT_EQ(c.liveness_prune_after_s, 0u);  // never prune
  EXPECT_EQ(c.rotation_interval_s, 0u);     // only on request
  EXPECT_EQ(c.rotation_lead_ms, 3000u);
  EXPECT_EQ(c.rotation_grace_ms, 2000u);
  EXPECT_TRUE(c.egress_masquerade);
  // Empty sections keep every default.
  auto e = parse_config("[liveness]\n[rotation]\n[egress]\n", "meshd.toml");
  EXPECT_EQ(e.liveness_silent_after_s, 300u);
  EXPECT_EQ(e.rotation_lead_ms, 3000u);
  EXPECT_TRUE(e.egress_masquerade);
}

TEST(Config, EveryLivenessRotationAndEgressKey) {
  auto c = parse_config(R"(
[liveness]
silent_after_s = 60
prune_after_s = 3600
[rotation]
interval_s = 86400
lead_ms = 500
grace_ms = 0
[egress]
masquerade = false
)", "meshd.toml");
  EXPECT_EQ(c.liveness_silent_after_s, 60u);
  EXPECT_EQ(c.liveness_prune_after_s, 3600u);
  EXPECT_EQ(c.rotation_interval_s, 86400u);
  EXPECT_EQ(c.rotation_lead_ms, 500u);
  EXPECT_EQ(c.rotation_grace_ms, 0u);
  EXPECT_FALSE(c.egress_masquerade);
  EXPECT_TRUE(parse_config("[egress]\nmasquerade = true\n", "m").egress_masquerade);
  // The bounds.
  auto lo = parse_config("[liveness]\nsilent_after_s = 1\nprune_after_s = 2\n"
                         "[rotation]\nlead_ms = 100\ngrace_ms = 0\ninterval_s = 1\n",
                         "m");
  EXPECT_EQ(lo.liveness_silent_after_s, 1u);
  EXPECT_EQ(lo.liveness_prune_after_s, 2u);
  EXPECT_EQ(lo.rotation_lead_ms, 100u);
  EXPECT_EQ(lo.rotation_interval_s, 1u);  // 1000 ms > lead 100 + grace 0
  auto hi = parse_config("[liveness]\nsilent_after_s = 31536000\n"
                         "[rotation]\nlead_ms = 600000\ngrace_ms = 600000\ninterval_s = 31536000\n",
                         "m");
  EXPECT_EQ(hi.liveness_silent_after_s, 31536000u);
  EXPECT_EQ(hi.rotation_lead_ms, 600000u);
  EXPECT_EQ(hi.rotation_grace_ms, 600000u);
  EXPECT_EQ(hi.rotation_interval_s, 31536000u);
}

TEST(Config, LivenessRotationAndEgressErrorsSayTheKeyAndTheExpectedForm) {
  const std::pair<const char*, const char*> cases[] = {
      {"[liveness]\nsilent_after_s = 0\n",
       "meshd.toml: liveness.silent_after_s: expected an integer from 1 to 31536000, got 0"},
      {"[liveness]\nsilent_after_s = 31536001\n",
       "meshd.toml: liveness.silent_after_s: expected an integer from 1 to 31536000, got 31536001"},
      {"[liveness]\nsilent_after_s = \"5m\"\n",
       "meshd.toml: liveness.silent_after_s: expected an integer"},
      {"[liveness]\nprune_after_s = -1\n",
       "meshd.toml: liveness.prune_after_s: expected an integer from 0 to 31536000, got -1"},
      // Cross-key: pruning comes after being reported silent.
      {"[liveness]\nprune_after_s = 300\n",
       "meshd.toml: liveness.prune_after_s: 300 is not above liveness.silent_after_s (300); "
       "expected 0 (never prune) or more seconds than silent_after_s"},
      {"[liveness]\nsilent_after_s = 600\nprune_after_s = 60\n",
       "meshd.toml: liveness.prune_after_s: 60 is not above liveness.silent_after_s (600); "
       "expected 0 (never prune) or more seconds than silent_after_s"},
      {"[rotation]\nlead_ms = 99\n",
       "meshd.toml: rotation.lead_ms: expected an integer from 100 to 600000, got 99"},
      {"[rotation]\nlead_ms = 600001\n",
       "meshd.toml: rotation.lead_ms: expected an integer from 100 to 600000, got 600001"},
      {"[rotation]\ngrace_ms = -1\n",
       "meshd.toml: rotation.grace_ms: expected an integer from 0 to 600000, got -1"},
      {"[rotation]\ngrace_ms = 600001\n",
       "meshd.toml: rotation.grace_ms: expected an integer from 0 to 600000, got 600001"},
      {"[rotation]\ninterval_s = -5\n",
       "meshd.toml: rotation.interval_s: expected an integer from 0 to 31536000, got -5"},
      {"[rotation]\ninterval_s = 1.5\n", "meshd.toml: rotation.interval_s: expected an integer"},
      // Cross-key: one rotation must be over before the schedule starts the next.
      {"[rotation]\ninterval_s = 5\n",
       "meshd.toml: rotation.interval_s: 5 s is not longer than rotation.lead_ms + "
       "rotation.grace_ms (3000 + 2000 ms); expected 0 (rotate only on request) or a longer interval"},
      {"[egress]\nmasquerade = \"yes\"\n", "meshd.toml: egress.masquerade: expected true or false"},
      {"[egress]\nmasquerade = 1\n", "meshd.toml: egress.masquerade: expected true or false"},
      // Unknown keys and sections.
      {"[liveness]\nsilent_after = 60\n",
       "meshd.toml: liveness.silent_after: unknown key (check its spelling)"},
      {"[rotation]\ninterval = 60\n", "meshd.toml: rotation.interval: unknown key (check its spelling)"},
      {"[egress]\nmasq = true\n", "meshd.toml: egress.masq: unknown key (check its spelling)"},
      {"egress = true\n", "meshd.toml: egress: expected a table ([egress])"},
  };
  for (const auto& [text, message] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(error_of(text), message);
  }
  // Just above lead + grace is a valid schedule.
  EXPECT_EQ(error_of("[rotation]\ninterval_s = 6\n"), "<no error>");
}

// The example in docs/examples is what an operator copies: it must parse, as
// the founder's file it is and with its [join] lines switched on.
TEST(Config, TheExampleFileParsesAsAFounderAndAsAJoiner) {
  const std::string path = std::string(MESHD_SOURCE_DIR) + "/docs/examples/meshd.toml";
  auto founder = load_config(path);
  EXPECT_TRUE(founder.cluster_mode);
  EXPECT_FALSE(founder.pod_cidr);
  EXPECT_FALSE(founder.join_target);
  EXPECT_EQ(founder.node_name, "node-a");
  EXPECT_EQ(founder.cluster_cidr.to_string(), "10.244.0.0/16");
  EXPECT_FALSE(founder.api_listen);
  // Apart from the node's name, every value in it is the default.
  auto defaults = parse_config("[cluster]\n", path);
  EXPECT_EQ(founder.join_listen, defaults.join_listen);
  EXPECT_EQ(founder.sync_port, defaults.sync_port);
  EXPECT_EQ(founder.anti_entropy_interval_ms, defaults.anti_entropy_interval_ms);
  EXPECT_EQ(founder.advertise_endpoint, defaults.advertise_endpoint);
  EXPECT_EQ(founder.api_socket, defaults.api_socket);
  EXPECT_EQ(founder.api_max_connections, defaults.api_max_connections);
  EXPECT_EQ(founder.api_idle_timeout_ms, defaults.api_idle_timeout_ms);
  EXPECT_EQ(founder.resync_interval_ms, defaults.resync_interval_ms);
  EXPECT_EQ(founder.listen_port, defaults.listen_port);
  EXPECT_EQ(founder.liveness_silent_after_s, defaults.liveness_silent_after_s);
  EXPECT_EQ(founder.liveness_prune_after_s, defaults.liveness_prune_after_s);
  EXPECT_EQ(founder.rotation_interval_s, defaults.rotation_interval_s);
  EXPECT_EQ(founder.rotation_lead_ms, defaults.rotation_lead_ms);
  EXPECT_EQ(founder.rotation_grace_ms, defaults.rotation_grace_ms);
  EXPECT_EQ(founder.egress_masquerade, defaults.egress_masquerade);

  std::string text = testing::read_file(path);
  for (const char* line : {"# [join]\n", "# target = ", "# token_file = ", "# listen = ",
                           "# bearer_token_file = ", "# tls_cert_file = ", "# tls_key_file = "}) {
    auto at = text.find(line);
    ASSERT_NE(at, std::string::npos) << line;
    text.erase(at, 2);
  }
  auto joiner = parse_config(text, path);
  ASSERT_TRUE(joiner.join_target);
  EXPECT_EQ(joiner.join_target->to_string(), "192.0.2.10:51821");
  EXPECT_EQ(joiner.join_token_file, "/etc/meshd/join-token");
  ASSERT_TRUE(joiner.api_listen);
  EXPECT_EQ(joiner.api_listen->to_string(), "127.0.0.1:8443");
  EXPECT_EQ(joiner.api_bearer_token_file, "/etc/meshd/api-token");
  EXPECT_EQ(joiner.api_tls_cert_file, "/etc/meshd/api.crt");
  EXPECT_EQ(joiner.api_tls_key_file, "/etc/meshd/api.key");

  // The static mode's pod_cidr, switched on as well, is the documented error.
  const std::string with_pod_cidr = text.replace(text.find("# pod_cidr"), 2, "");
  EXPECT_NE(testing::config_error_of(with_pod_cidr).find("node.pod_cidr: is the static mode's"),
            std::string::npos);
}

}  // namespace
}  // namespace meshd::config
