// meshd's configuration file (TOML). Parsing is strict about form — a wrong
// type, an unknown key or a malformed value is an error naming the file, the
// key and the expected form — but tolerant about static peers: one bad peer
// is reported and skipped while the others still apply.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::config {

enum class BackendKind { kAuto, kKernel, kUserspace };
std::string_view to_string(BackendKind k);

// Where a cluster's node table and CIDR claims live: exchanged between the
// members themselves (embedded, the default) or in etcd (docs/configuration.md,
// "[datastore]").
enum class DatastoreKind { kEmbedded, kEtcd };
std::string_view to_string(DatastoreKind k);  // "embedded", "etcd"

// One etcd endpoint as [datastore] endpoints holds it: "http://host:port" or
// "https://host:port". `host` is an IPv4 address, an IPv6 address (without
// its brackets) or a DNS name, as written.
struct EtcdEndpoint {
  bool tls = false;  // https
  std::string host;
  bool host_is_ipv6 = false;  // written as "[...]"
  std::uint16_t port = 0;
  auto operator<=>(const EtcdEndpoint&) const = default;
};
// EINVAL with the expected form; never quotes text holding '@' (credentials
// pasted into a URL).
Result<EtcdEndpoint> parse_etcd_endpoint(std::string_view text);

// A peer listed by hand: outside the cluster (a laptop, a VM) or, before the
// control plane exists, every other node. Kept as text until desired-state
// computation validates it, so a bad entry rejects only itself.
struct StaticPeer {
  std::string name;
  std::string public_key;
  std::string endpoint;                 // "" = none (the peer connects to us)
  std::vector<std::string> allowed_ips;
  std::optional<std::uint16_t> persistent_keepalive;  // overrides the default
};

struct Config {
  std::string source;  // file the config came from, for messages

  // [node]
  std::string node_name;
  std::optional<IpPrefix> pod_cidr;  // static mode's pod CIDR; refused together with [cluster]/[join]

  // Cluster mode: on when the file has a [cluster] or [join] section (the
  // daemon also stays in cluster mode when its store already holds a
  // cluster). `[node] pod_cidr` is the static mode's; setting it together
  // with [cluster] or [join] is an error that says so.
  bool cluster_mode = false;

  // [cluster]
  IpPrefix cluster_cidr = IpPrefix{IpAddress::v4(10, 244, 0, 0), 16};  // "cidr"; founding only
  std::uint8_t node_prefix_length = 24;  // "node_prefix": longer than cluster_cidr's, <= 30 (v4) / 126 (v6)
  // "join_listen": where members answer joins (TCP). An unspecified address
  // (0.0.0.0, [::]) means every address; Endpoint holds it as such.
  Endpoint join_listen = Endpoint{IpAddress::v4(0, 0, 0, 0), 51821};
  std::uint16_t sync_port = 51822;           // "sync_port": the sync channel, on the node's mesh address
  unsigned anti_entropy_interval_ms = 1000;  // "anti_entropy_interval_ms", 100 .. 600000
  // "advertise_endpoint": where peers reach this node's WireGuard. Absent or
  // "" = auto (the address of the route towards the join target, else the
  // default route, with [wireguard] listen_port).
  std::optional<Endpoint> advertise_endpoint;

  // [join]
  std::optional<Endpoint> join_target;  // "target": a member's join_listen "address:port"
  std::string join_token_file;          // "token_file": holds "id.secret"; NOT the API's bearer token file

  // [liveness] A member is "silent" when neither a WireGuard handshake nor a
  // sync message has come from it for silent_after_s; pruning (a tombstone,
  // as a removal) after prune_after_s is off by default (0).
  unsigned liveness_silent_after_s = 300;  // "silent_after_s", 1 .. 31536000
  unsigned liveness_prune_after_s = 0;     // "prune_after_s", 0 = never; else > silent_after_s

  // [rotation] Hitless WireGuard key rotation (docs/lifecycle.md, "Key rotation").
  unsigned rotation_interval_s = 0;      // "interval_s": rotate on this schedule; 0 = only on request
  unsigned rotation_lead_ms = 3000;      // "lead_ms": the new key is announced this long before the switch, 100 .. 600000
  unsigned rotation_grace_ms = 2000;     // "grace_ms": peers switch at the latest this long after the announced time, 0 .. 600000

  // [egress] Pod traffic to destinations outside the cluster CIDR is
  // masqueraded to the node's address (nftables table "meshd").
  bool egress_masquerade = true;  // "masquerade"

  // [datastore] kind = "etcd" keeps the node table and the CIDR claims in
  // etcd instead of syncing them between members (cluster mode only). Every
  // other key is refused unless kind is "etcd". Nothing here applies on a
  // reload: the daemon keeps the running values (datastore_keys_changed).
  DatastoreKind datastore_kind = DatastoreKind::kEmbedded;  // "kind": "embedded" | "etcd"
  std::vector<std::string> etcd_endpoints;  // "endpoints": ["https://10.0.0.1:2379", ...]; one scheme for all
  // "ca_file" (required with https), "cert_file" and "key_file" (a client
  // certificate: both or neither; https only). Absolute paths.
  std::string etcd_ca_file, etcd_cert_file, etcd_key_file;
  std::string etcd_username;       // "username"; needs password_file
  std::string etcd_password_file;  // "password_file": 0600 file (the daemon checks owner/mode); needs username
  std::string etcd_prefix = "/meshd/";  // "prefix": starts and ends with '/', printable ASCII, no spaces, <= 128
  unsigned etcd_timeout_ms = 2000;         // "timeout_ms", 100 .. 60000; at most lease_ttl_s / 3
  unsigned etcd_resync_interval_s = 300;   // "resync_interval_s": full re-list, 10 .. 86400
  unsigned etcd_lease_ttl_s = 30;          // "lease_ttl_s": liveness keys' lease, 5 .. 3600

  // [api]
  // "socket": default <runtime_dir>/meshd.sock (/run/meshd/meshd.sock); "" = no unix socket
  std::string api_socket = "/run/meshd/meshd.sock";
  std::string api_socket_group;          // "socket_group": group owning the socket (mode 0660); "" = meshd's
  std::optional<Endpoint> api_listen;    // "listen": TCP "address:port"; none by default
  std::string api_bearer_token_file;     // "bearer_token_file": 0600 file; required for a TCP listener
  // "tls_cert_file", "tls_key_file": both or neither; the daemon requires
  // them on any listen address other than loopback or the node's mesh
  // address (which the parser cannot know).
  std::string api_tls_cert_file, api_tls_key_file;
  std::size_t api_max_connections = 64;  // "max_connections", 1 .. 4096
  unsigned api_idle_timeout_ms = 30000;  // "idle_timeout_ms", 100 .. 3600000

  // [wireguard]
  std::string interface = "meshd0";
  std::uint16_t listen_port = 51820;
  BackendKind backend = BackendKind::kAuto;
  unsigned mtu = 0;                     // 0 = derive from the underlay
  std::string underlay_interface;       // "" = the interface of the default route
  std::uint16_t persistent_keepalive = 25;

  // [userspace]
  std::string userspace_binary = "wireguard-go";
  std::string userspace_socket_dir = "/var/run/wireguard";

  // [state]
  std::string database = "/var/lib/meshd/meshd.db";
  std::string runtime_dir = "/run/meshd";

  // [reconcile]: how often the WireGuard peers are read back (nothing
  // announces their drift). At 1000 peers a read-back every second cost
  // meshd and wireguard-go together 0.5-1 % of a core; every 2 s, half.
  unsigned resync_interval_ms = 2000;

  // [cni]: where meshd installs the conflist for meshd-cni once the node has
  // a settled pod CIDR. "" = do not write one.
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::string cni_network = "meshd";
  std::string cni_conflist;  // file name in cni_conf_dir; "" = 05-<network>.conflist
  // Where runtimes look for plugin binaries: a chained plugin is listed only
  // when its binary is in one of them.
  std::vector<std::string> cni_bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  std::vector<std::string> cni_chained = {"portmap", "bandwidth"};
  unsigned cni_mtu = 0;       // the plugin's "mtu"; 0 = the node's mesh MTU (from the store)
  std::string cni_log_file;   // the plugin's "logFile"; "" = none

  std::vector<StaticPeer> peers;
};

// The conflist's path: cni_conf_dir + "/" + its file name; "" when
// cni_conf_dir is "" (meshd writes none).
std::string cni_conflist_path(const Config& c);

// The [datastore] keys ("datastore.kind", "datastore.endpoints", ...) whose
// values differ between `running` and `next`, in file order: none of them
// applies on a reload (the client, its watch and its lease live as long as
// the process), so the daemon keeps the running values and warns for each.
std::vector<std::string> datastore_keys_changed(const Config& running, const Config& next);

// Throws ErrorException with a message naming the file, key and expected form.
Config parse_config(std::string_view text, const std::string& source_name);
Config load_config(const std::string& path);

}  // namespace meshd::config
