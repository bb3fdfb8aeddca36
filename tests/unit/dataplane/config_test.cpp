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
       "reconcile, cni, cluster, join, liveness, rotation, egress, datastore, api, peers)"},
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

// --------------------------------------------------------------- datastore

// The smallest valid etcd file: cluster mode, one endpoint.
const std::string kEtcd = "[cluster]\n[datastore]\nkind = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n";

TEST(Config, DatastoreDefaultsAreTheEmbeddedMode) {
  auto c = parse_config("", "meshd.toml");
  EXPECT_EQ(c.datastore_kind, DatastoreKind::kEmbedded);
  EXPECT_EQ(to_string(c.datastore_kind), "embedded");
  EXPECT_EQ(to_string(DatastoreKind::kEtcd), "etcd");
  EXPECT_TRUE(c.etcd_endpoints.empty());
  EXPECT_EQ(c.etcd_ca_file, "");
  EXPECT_EQ(c.etcd_cert_file, "");
  EXPECT_EQ(c.etcd_key_file, "");
  EXPECT_EQ(c.etcd_username, "");
  EXPECT_EQ(c.etcd_password_file, "");
  EXPECT_EQ(c.etcd_prefix, "/meshd/");
  EXPECT_EQ(c.etcd_timeout_ms, 2000u);
  EXPECT_EQ(c.etcd_resync_interval_s, 300u);
  EXPECT_EQ(c.etcd_lease_ttl_s, 30u);
  // An empty section, or kind = "embedded" said out loud, is the same.
  EXPECT_EQ(parse_config("[datastore]\n", "m").datastore_kind, DatastoreKind::kEmbedded);
  EXPECT_EQ(parse_config("[datastore]\nkind = \"embedded\"\n", "m").datastore_kind,
            DatastoreKind::kEmbedded);
  // etcd's own defaults with only the required key.
  auto e = parse_config(kEtcd, "m");
  EXPECT_EQ(e.datastore_kind, DatastoreKind::kEtcd);
  EXPECT_EQ(e.etcd_endpoints, std::vector<std::string>{"http://127.0.0.1:2379"});
  EXPECT_EQ(e.etcd_prefix, "/meshd/");
  EXPECT_EQ(e.etcd_timeout_ms, 2000u);
}

TEST(Config, EveryDatastoreKey) {
  auto c = parse_config(R"(
[join]
target = "192.0.2.1:51821"
token_file = "/etc/meshd/join-token"
[datastore]
kind = "etcd"
endpoints = ["https://10.0.0.1:2379", "https://[2001:db8::2]:2379", "https://etcd-3.example.org:12379"]
ca_file = "/etc/meshd/etcd-ca.crt"
cert_file = "/etc/meshd/etcd-client.crt"
key_file = "/etc/meshd/etcd-client.key"
username = "meshd"
password_file = "/etc/meshd/etcd-password"
prefix = "/clusters/prod/meshd/"
timeout_ms = 500
resync_interval_s = 60
lease_ttl_s = 10
)", "meshd.toml");
  EXPECT_EQ(c.datastore_kind, DatastoreKind::kEtcd);
  EXPECT_EQ(c.etcd_endpoints,
            (std::vector<std::string>{"https://10.0.0.1:2379", "https://[2001:db8::2]:2379",
                                      "https://etcd-3.example.org:12379"}));
  EXPECT_EQ(c.etcd_ca_file, "/etc/meshd/etcd-ca.crt");
  EXPECT_EQ(c.etcd_cert_file, "/etc/meshd/etcd-client.crt");
  EXPECT_EQ(c.etcd_key_file, "/etc/meshd/etcd-client.key");
  EXPECT_EQ(c.etcd_username, "meshd");
  EXPECT_EQ(c.etcd_password_file, "/etc/meshd/etcd-password");
  EXPECT_EQ(c.etcd_prefix, "/clusters/prod/meshd/");
  EXPECT_EQ(c.etcd_timeout_ms, 500u);
  EXPECT_EQ(c.etcd_resync_interval_s, 60u);
  EXPECT_EQ(c.etcd_lease_ttl_s, 10u);

  // The bounds.
  auto lo = parse_config(kEtcd + "prefix = \"/\"\ntimeout_ms = 100\nresync_interval_s = 10\nlease_ttl_s = 5\n", "m");
  EXPECT_EQ(lo.etcd_prefix, "/");
  EXPECT_EQ(lo.etcd_timeout_ms, 100u);
  EXPECT_EQ(lo.etcd_resync_interval_s, 10u);
  EXPECT_EQ(lo.etcd_lease_ttl_s, 5u);
  const std::string long_prefix = "/" + std::string(126, 'p') + "/";  // 128 characters
  auto hi = parse_config(kEtcd + "prefix = \"" + long_prefix +
                             "\"\ntimeout_ms = 60000\nresync_interval_s = 86400\nlease_ttl_s = 3600\n",
                         "m");
  EXPECT_EQ(hi.etcd_prefix, long_prefix);
  EXPECT_EQ(hi.etcd_timeout_ms, 60000u);
  EXPECT_EQ(hi.etcd_resync_interval_s, 86400u);
  EXPECT_EQ(hi.etcd_lease_ttl_s, 3600u);
  // A timeout of exactly a third of the lease.
  EXPECT_EQ(error_of(kEtcd + "lease_ttl_s = 6\ntimeout_ms = 2000\n"), "<no error>");
  // A client certificate over https without a user; a user over http.
  EXPECT_EQ(error_of("[cluster]\n[datastore]\nkind = \"etcd\"\nendpoints = [\"https://e:2379\"]\n"
                     "ca_file = \"/ca\"\ncert_file = \"/c\"\nkey_file = \"/k\"\n"),
            "<no error>");
  EXPECT_EQ(error_of(kEtcd + "username = \"meshd\"\npassword_file = \"/p\"\n"), "<no error>");
}

TEST(Config, EtcdEndpointsParseIntoSchemeHostAndPort) {
  struct Case {
    const char* text;
    bool tls;
    const char* host;
    bool ipv6;
    std::uint16_t port;
  };
  const Case good[] = {
      {"http://127.0.0.1:2379", false, "127.0.0.1", false, 2379},
      {"https://10.0.0.1:1", true, "10.0.0.1", false, 1},
      {"https://[2001:db8::2]:65535", true, "2001:db8::2", true, 65535},
      {"http://[::1]:2379", false, "::1", true, 2379},
      {"https://etcd:2379", true, "etcd", false, 2379},
      {"https://ETCD-1.Example.org:2379", true, "ETCD-1.Example.org", false, 2379},
      {"https://1e100.net:443", true, "1e100.net", false, 443},
  };
  for (const auto& g : good) {
    SCOPED_TRACE(g.text);
    auto e = parse_etcd_endpoint(g.text);
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_EQ(e->tls, g.tls);
    EXPECT_EQ(e->host, g.host);
    EXPECT_EQ(e->host_is_ipv6, g.ipv6);
    EXPECT_EQ(e->port, g.port);
  }
  const std::string form =
      "expected \"http://host:port\" or \"https://host:port\" (host: a.b.c.d, [ipv6] or a DNS name), got ";
  const std::pair<const char*, const char*> bad[] = {
      {"10.0.0.1:2379", ""},
      {"etcd:2379", ""},
      {"ftp://10.0.0.1:2379", ""},
      {"HTTPS://10.0.0.1:2379", ""},
      {"unix:///run/etcd.sock", ""},
      {"https://10.0.0.1", " (the port is required)"},
      {"https://10.0.0.1:", " (the port is required)"},
      {"https://[2001:db8::2]", " (the port is required)"},
      {"https://[2001:db8::2]2379", " (the port is required)"},
      {"https://10.0.0.1:0", " (the port is from 1 to 65535)"},
      {"https://10.0.0.1:65536", " (the port is from 1 to 65535)"},
      {"https://10.0.0.1:123456", ""},
      {"https://10.0.0.1:+80", ""},
      {"https://10.0.0.1:2379/", " (no path)"},
      {"https://10.0.0.1:2379/v3", " (no path)"},
      {"https://10.0.0.1:2379?x=1", " (no path)"},
      {"https://2001:db8::2:2379", " (an IPv6 address needs brackets)"},
      {"https://[10.0.0.1]:2379", ""},
      {"https://[fe80::1%eth0]:2379", ""},
      {"https://[2001:db8::2:2379", ""},
      {"https://10.0.0.256:2379", ""},
      {"https://10.0.0:2379", ""},
      {"https://:2379", ""},
      {"https://-etcd:2379", ""},
      {"https://etcd-:2379", ""},
      {"https://et_cd:2379", ""},
      {"https://etcd..example:2379", ""},
      {"https://etcd.example.:2379", ""},
      {"https://etcd.123:2379", ""},
      {"https://et cd:2379", ""},
      {"http://etcd\n:2379", ""},
  };
  for (const auto& [text, why] : bad) {
    SCOPED_TRACE(text);
    auto e = parse_etcd_endpoint(text);
    ASSERT_FALSE(e);
    EXPECT_TRUE(e.error().is(EINVAL));
    std::string quoted = text;
    for (char& ch : quoted)
      if (ch == '\n') ch = '?';  // a control character never reaches a message
    EXPECT_EQ(e.error().message, form + "\"" + quoted + "\"" + why);
  }
  // Labels of 63 characters and names of 253 at most.
  const std::string label63(63, 'a');
  EXPECT_TRUE(parse_etcd_endpoint("https://" + label63 + ".example:2379"));
  EXPECT_FALSE(parse_etcd_endpoint("https://" + label63 + "a.example:2379"));
  std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_TRUE(parse_etcd_endpoint("https://" + name253 + ":2379"));
  EXPECT_FALSE(parse_etcd_endpoint("https://" + name253 + "b:2379"));
}

TEST(Config, AnEndpointWithCredentialsIsRefusedWithoutQuotingThem) {
  for (const char* text : {"https://meshd:s3cr3t@10.0.0.1:2379", "https://s3cr3t@etcd:2379",
                           "http://u:s3cr3t@[::1]:2379"}) {
    SCOPED_TRACE(text);
    auto e = parse_etcd_endpoint(text);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message.find("s3cr3t"), std::string::npos) << e.error().message;
    EXPECT_NE(e.error().message.find("credentials go in username and password_file"),
              std::string::npos)
        << e.error().message;
    const std::string in_file = error_of("[cluster]\n[datastore]\nkind = \"etcd\"\nendpoints = [\"" +
                                         std::string(text) + "\"]\n");
    EXPECT_EQ(in_file.find("s3cr3t"), std::string::npos) << in_file;
    EXPECT_EQ(in_file.find("meshd.toml: datastore.endpoints[0]: expected "), 0u) << in_file;
  }
}

// Each message in full: the file, the key, what is wrong and what to write.
TEST(Config, DatastoreErrorsSayTheKeyAndTheExpectedForm) {
  const std::string etcd = "[cluster]\n[datastore]\nkind = \"etcd\"\n";
  const std::string tls = etcd + "endpoints = [\"https://10.0.0.1:2379\"]\nca_file = \"/ca\"\n";
  const std::pair<std::string, std::string> cases[] = {
      {"[datastore]\nkind = \"consul\"\n",
       "meshd.toml: datastore.kind: expected \"embedded\" or \"etcd\", got \"consul\""},
      {"[datastore]\nkind = \"etcd\\n\"\n",
       "meshd.toml: datastore.kind: expected \"embedded\" or \"etcd\", got \"etcd?\""},
      {"[datastore]\nkind = 1\n", "meshd.toml: datastore.kind: expected a string"},
      // Cluster mode only: the error names both sections and the datastore.
      {"[datastore]\nkind = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n",
       "meshd.toml: datastore.kind: \"etcd\" holds a cluster's node table, and this file has no "
       "[cluster] or [join] section; add [cluster] (to found a cluster) or [join] (to join one), "
       "or remove [datastore]"},
      // Endpoints.
      {etcd,
       "meshd.toml: datastore.endpoints: missing: kind = \"etcd\" needs at least one endpoint, "
       "\"http://host:port\" or \"https://host:port\" (host: a.b.c.d, [ipv6] or a DNS name)"},
      {etcd + "endpoints = []\n",
       "meshd.toml: datastore.endpoints: missing: kind = \"etcd\" needs at least one endpoint, "
       "\"http://host:port\" or \"https://host:port\" (host: a.b.c.d, [ipv6] or a DNS name)"},
      {etcd + "endpoints = \"http://127.0.0.1:2379\"\n",
       "meshd.toml: datastore.endpoints: expected an array of strings"},
      {etcd + "endpoints = [\"http://127.0.0.1:2379\", \"127.0.0.2:2379\"]\n",
       "meshd.toml: datastore.endpoints[1]: expected \"http://host:port\" or \"https://host:port\" "
       "(host: a.b.c.d, [ipv6] or a DNS name), got \"127.0.0.2:2379\""},
      {etcd + "endpoints = [\"http://etcd:2379\"]\n[join]\ntarget = \"192.0.2.1:51821\"\n"
              "token_file = \"/t\"\n",
       "<no error>"},
      {etcd + "endpoints = [\"http://etcd:2379\", \"http://ETCD:2379\"]\n",
       "meshd.toml: datastore.endpoints[1]: \"http://ETCD:2379\" is listed twice; expected each "
       "endpoint once"},
      {etcd + "endpoints = [\"http://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]\nca_file = \"/ca\"\n",
       "meshd.toml: datastore.endpoints: mixes http:// and https:// endpoints; expected one scheme "
       "for all (failing over to an http endpoint would send credentials in clear text)"},
      // TLS files.
      {etcd + "endpoints = [\"https://10.0.0.1:2379\"]\n",
       "meshd.toml: datastore.ca_file: missing: https endpoints need ca_file, the absolute path of "
       "the CA certificate that signed etcd's server certificates"},
      {etcd + "endpoints = [\"http://10.0.0.1:2379\"]\nca_file = \"/ca\"\n",
       "meshd.toml: datastore.ca_file: applies only to https endpoints, and datastore.endpoints are "
       "http; use https:// endpoints or remove it"},
      {etcd + "endpoints = [\"http://10.0.0.1:2379\"]\ncert_file = \"/c\"\nkey_file = \"/k\"\n",
       "meshd.toml: datastore.cert_file: applies only to https endpoints, and datastore.endpoints "
       "are http; use https:// endpoints or remove it"},
      {tls + "cert_file = \"/c\"\n",
       "meshd.toml: datastore.key_file: missing: a client certificate needs both "
       "datastore.cert_file and datastore.key_file"},
      {tls + "key_file = \"/k\"\n",
       "meshd.toml: datastore.cert_file: missing: a client certificate needs both "
       "datastore.cert_file and datastore.key_file"},
      {tls + "cert_file = \"client.crt\"\nkey_file = \"/k\"\n",
       "meshd.toml: datastore.cert_file: expected an absolute path, got \"client.crt\""},
      {etcd + "endpoints = [\"https://10.0.0.1:2379\"]\nca_file = \"ca.crt\"\n",
       "meshd.toml: datastore.ca_file: expected an absolute path, got \"ca.crt\""},
      // Credentials.
      {tls + "username = \"meshd\"\n",
       "meshd.toml: datastore.password_file: missing: datastore.username needs password_file, the "
       "absolute path of a 0600 file holding the etcd user's password"},
      {tls + "password_file = \"/etc/meshd/etcd-password\"\n",
       "meshd.toml: datastore.username: missing: datastore.password_file needs username, the etcd "
       "user the password belongs to"},
      {tls + "username = \"\"\npassword_file = \"/p\"\n",
       "meshd.toml: datastore.username: missing: datastore.password_file needs username, the etcd "
       "user the password belongs to"},
      {tls + "username = \"\"\n", "meshd.toml: datastore.username: expected an etcd user name, got \"\""},
      {tls + "username = \"me shd\"\npassword_file = \"/p\"\n",
       "meshd.toml: datastore.username: expected at most 128 printable ASCII characters without "
       "spaces, got \"me shd\""},
      {tls + "username = \"meshd\"\npassword_file = \"etcd-password\"\n",
       "meshd.toml: datastore.password_file: expected an absolute path, got \"etcd-password\""},
      // The prefix.
      {kEtcd + "prefix = \"meshd/\"\n",
       "meshd.toml: datastore.prefix: expected a key prefix starting and ending with '/', of at "
       "most 128 printable ASCII characters without spaces, like \"/meshd/\", got \"meshd/\""},
      {kEtcd + "prefix = \"/meshd\"\n",
       "meshd.toml: datastore.prefix: expected a key prefix starting and ending with '/', of at "
       "most 128 printable ASCII characters without spaces, like \"/meshd/\", got \"/meshd\""},
      {kEtcd + "prefix = \"\"\n",
       "meshd.toml: datastore.prefix: expected a key prefix starting and ending with '/', of at "
       "most 128 printable ASCII characters without spaces, like \"/meshd/\", got \"\""},
      {kEtcd + "prefix = \"/my mesh/\"\n",
       "meshd.toml: datastore.prefix: expected a key prefix starting and ending with '/', of at "
       "most 128 printable ASCII characters without spaces, like \"/meshd/\", got \"/my mesh/\""},
      {kEtcd + "prefix = \"/a\\tb/\"\n",
       "meshd.toml: datastore.prefix: expected a key prefix starting and ending with '/', of at "
       "most 128 printable ASCII characters without spaces, like \"/meshd/\", got \"/a?b/\""},
      {kEtcd + "prefix = \"/m\u00e9shd/\"\n",
       "meshd.toml: datastore.prefix: expected a key prefix starting and ending with '/', of at "
       "most 128 printable ASCII characters without spaces, like \"/meshd/\", got \"/m??shd/\""},
      {kEtcd + "prefix = \"/" + std::string(127, 'p') + "/\"\n",
       "meshd.toml: datastore.prefix: expected a key prefix starting and ending with '/', of at "
       "most 128 printable ASCII characters without spaces, like \"/meshd/\", got \"/" +
           std::string(127, 'p') + "/\""},
      // Ranges.
      {kEtcd + "timeout_ms = 99\n",
       "meshd.toml: datastore.timeout_ms: expected an integer from 100 to 60000, got 99"},
      {kEtcd + "timeout_ms = 60001\n",
       "meshd.toml: datastore.timeout_ms: expected an integer from 100 to 60000, got 60001"},
      {kEtcd + "resync_interval_s = 9\n",
       "meshd.toml: datastore.resync_interval_s: expected an integer from 10 to 86400, got 9"},
      {kEtcd + "resync_interval_s = 86401\n",
       "meshd.toml: datastore.resync_interval_s: expected an integer from 10 to 86400, got 86401"},
      {kEtcd + "lease_ttl_s = 4\n",
       "meshd.toml: datastore.lease_ttl_s: expected an integer from 5 to 3600, got 4"},
      {kEtcd + "lease_ttl_s = 3601\n",
       "meshd.toml: datastore.lease_ttl_s: expected an integer from 5 to 3600, got 3601"},
      {kEtcd + "lease_ttl_s = \"30s\"\n", "meshd.toml: datastore.lease_ttl_s: expected an integer"},
      // Cross-key: a keepalive that timed out can be retried before the lease expires.
      {kEtcd + "lease_ttl_s = 5\n",
       "meshd.toml: datastore.timeout_ms: 2000 ms is more than a third of datastore.lease_ttl_s "
       "(5 s); expected a shorter timeout or a longer lease, so that a timed-out keepalive can be "
       "retried before the lease expires"},
      {kEtcd + "timeout_ms = 10001\n",
       "meshd.toml: datastore.timeout_ms: 10001 ms is more than a third of datastore.lease_ttl_s "
       "(30 s); expected a shorter timeout or a longer lease, so that a timed-out keepalive can be "
       "retried before the lease expires"},
      // The etcd keys without kind = "etcd".
      {"[cluster]\n[datastore]\nendpoints = [\"http://127.0.0.1:2379\"]\n",
       "meshd.toml: datastore.endpoints: applies only to kind = \"etcd\", and datastore.kind is "
       "\"embedded\"; set kind = \"etcd\" or remove it"},
      {"[datastore]\nkind = \"embedded\"\nprefix = \"/meshd/\"\n",
       "meshd.toml: datastore.prefix: applies only to kind = \"etcd\", and datastore.kind is "
       "\"embedded\"; set kind = \"etcd\" or remove it"},
      // Unknown keys and sections.
      {kEtcd + "endpoint = \"http://127.0.0.1:2379\"\n",
       "meshd.toml: datastore.endpoint: unknown key (check its spelling)"},
      {kEtcd + "password = \"hunter2\"\n",
       "meshd.toml: datastore.password: unknown key (check its spelling)"},
      {"datastore = \"etcd\"\n", "meshd.toml: datastore: expected a table ([datastore])"},
      {"[datastor]\n",
       "meshd.toml: datastor: unknown section (expected one of node, wireguard, userspace, state, "
       "reconcile, cni, cluster, join, liveness, rotation, egress, datastore, api, peers)"},
  };
  for (const auto& [text, message] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(error_of(text), message);
  }
  // Every etcd key is refused without kind = "etcd", each by its name.
  for (const char* line :
       {"endpoints = [\"http://127.0.0.1:2379\"]", "ca_file = \"/ca\"", "cert_file = \"/c\"",
        "key_file = \"/k\"", "username = \"meshd\"", "password_file = \"/p\"", "prefix = \"/meshd/\"",
        "timeout_ms = 2000", "resync_interval_s = 300", "lease_ttl_s = 30"}) {
    SCOPED_TRACE(line);
    const std::string key = std::string(line).substr(0, std::string(line).find(' '));
    EXPECT_EQ(error_of(std::string("[cluster]\n[datastore]\n") + line + "\n"),
              "meshd.toml: datastore." + key + ": applies only to kind = \"etcd\", and "
              "datastore.kind is \"embedded\"; set kind = \"etcd\" or remove it");
  }
}

// What the daemon's reload compares: every key, none twice, in file order.
TEST(Config, DatastoreKeysChangedNamesEachChangedKey) {
  const auto base = parse_config(kEtcd, "m");
  EXPECT_TRUE(datastore_keys_changed(base, parse_config(kEtcd, "m")).empty());
  using Keys = std::vector<std::string>;
  const std::string https = "[cluster]\n[datastore]\nkind = \"etcd\"\nendpoints = [\"https://127.0.0.1:2379\"]\n"
                            "ca_file = \"/ca\"\n";
  const std::pair<std::string, Keys> cases[] = {
      {"[cluster]\n", {"datastore.kind", "datastore.endpoints"}},
      {kEtcd.substr(0, kEtcd.size() - 2) + ", \"http://127.0.0.2:2379\"]\n", {"datastore.endpoints"}},
      {https, {"datastore.endpoints", "datastore.ca_file"}},
      {https + "cert_file = \"/c\"\nkey_file = \"/k\"\n",
       {"datastore.endpoints", "datastore.ca_file", "datastore.cert_file", "datastore.key_file"}},
      {kEtcd + "username = \"u\"\npassword_file = \"/p\"\n", {"datastore.username", "datastore.password_file"}},
      {kEtcd + "prefix = \"/other/\"\n", {"datastore.prefix"}},
      {kEtcd + "timeout_ms = 1000\n", {"datastore.timeout_ms"}},
      {kEtcd + "resync_interval_s = 30\n", {"datastore.resync_interval_s"}},
      {kEtcd + "lease_ttl_s = 60\n", {"datastore.lease_ttl_s"}},
  };
  for (const auto& [text, keys] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(datastore_keys_changed(base, parse_config(text, "m")), keys);
    EXPECT_EQ(datastore_keys_changed(parse_config(text, "m"), base), keys);
  }
  // Keys outside [datastore] are not its business.
  EXPECT_TRUE(datastore_keys_changed(base, parse_config(kEtcd + "[wireguard]\nlisten_port = 1\n", "m")).empty());
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
  EXPECT_EQ(founder.datastore_kind, DatastoreKind::kEmbedded);

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

  // The [datastore] block switched on: a complete etcd setup, with every
  // other value its default.
  std::string etcd = text;
  const auto block = etcd.find("# [datastore]\n");
  ASSERT_NE(block, std::string::npos);
  for (auto at = block; at < etcd.size() && etcd.compare(at, 2, "# ") == 0;
       at = etcd.find('\n', at) + 1)
    etcd.erase(at, 2);
  auto with_etcd = parse_config(etcd, path);
  EXPECT_EQ(with_etcd.datastore_kind, DatastoreKind::kEtcd);
  EXPECT_EQ(with_etcd.etcd_endpoints.size(), 3u);
  EXPECT_EQ(with_etcd.etcd_ca_file, "/etc/meshd/etcd-ca.crt");
  EXPECT_EQ(with_etcd.etcd_cert_file, "/etc/meshd/etcd-client.crt");
  EXPECT_EQ(with_etcd.etcd_key_file, "/etc/meshd/etcd-client.key");
  EXPECT_EQ(with_etcd.etcd_username, "meshd");
  EXPECT_EQ(with_etcd.etcd_password_file, "/etc/meshd/etcd-password");
  EXPECT_EQ(with_etcd.etcd_prefix, defaults.etcd_prefix);
  EXPECT_EQ(with_etcd.etcd_timeout_ms, defaults.etcd_timeout_ms);
  EXPECT_EQ(with_etcd.etcd_resync_interval_s, defaults.etcd_resync_interval_s);
  EXPECT_EQ(with_etcd.etcd_lease_ttl_s, defaults.etcd_lease_ttl_s);

  // The static mode's pod_cidr, switched on as well, is the documented error.
  const std::string with_pod_cidr = text.replace(text.find("# pod_cidr"), 2, "");
  EXPECT_NE(testing::config_error_of(with_pod_cidr).find("node.pod_cidr: is the static mode's"),
            std::string::npos);
}

}  // namespace
}  // namespace meshd::config
