// meshd's configuration file (TOML). Parsing is strict about form — a wrong
// type, an unknown key or a malformed value is an error naming the file, the
// key and the expected form — but tolerant about static peers: one bad peer
// is reported and skipped while the others still apply.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::config {

enum class BackendKind { kAuto, kKernel, kUserspace };
std::string_view to_string(BackendKind k);

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
  std::optional<IpPrefix> pod_cidr;  // static pod CIDR (until the control plane allocates)

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

// Throws ErrorException with a message naming the file, key and expected form.
Config parse_config(std::string_view text, const std::string& source_name);
Config load_config(const std::string& path);

}  // namespace meshd::config
