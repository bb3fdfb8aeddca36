// Desired state of a node's data plane, computed as a plain value from the
// local node and its peer list: the WireGuard device (key, port, every peer),
// the link MTU, the addresses on the device and the routes through it. No
// I/O, no clock, no logging: problems come back as explanations.
#pragma once

#include "common/ip.h"
#include "keys/wg_key.h"
#include "meshd/config/config.h"
#include "meshd/dataplane/egress.h"
#include "netlink/rtnl.h"
#include "netlink/wg_device.h"

#include <optional>
#include <string>
#include <vector>

namespace meshd::dataplane {

// A peer that passed validation: what the control plane (or the static list)
// says the mesh should hold.
struct PeerSpec {
  std::string name;
  keys::PublicKey public_key;
  std::optional<Endpoint> endpoint;
  std::vector<IpPrefix> allowed_ips;  // normalised (host bits cleared)
  std::uint16_t persistent_keepalive = 0;
};

struct LocalSpec {
  std::string interface;
  keys::PublicKey public_key;  // of the node's private key (to refuse ourselves as a peer)
  // The node's private key, only to refuse it when pasted as a peer's public
  // key (it would otherwise be accepted: any 32 bytes form a public key).
  // Not owned; may be null.
  const keys::PrivateKey* private_key = nullptr;
  std::uint16_t listen_port = 0;
  unsigned mtu = 0;
  std::optional<IpPrefix> pod_cidr;
  // In a cluster: the whole cluster CIDR is routed into the device, below
  // every peer's more specific route, so a packet for a cluster address that
  // no peer holds yet (a node still joining, a CIDR not allocated) is dropped
  // by WireGuard instead of leaving in the clear by the underlay's default
  // route.
  std::optional<IpPrefix> cluster_cidr;
  // [egress] masquerade: pod traffic to outside the cluster CIDR takes the
  // node's address (only with a cluster CIDR: dataplane/egress.h).
  bool masquerade_egress = false;
};

struct Rejection {
  std::string peer;    // the peer's name
  std::string reason;  // which field, which value, what was expected
};

struct DesiredState {
  wg::WgDevice device;  // private key filled in by the caller; peers sorted by key
  unsigned mtu = 0;
  std::vector<IpPrefix> addresses;  // on the WireGuard interface
  std::vector<nl::Route> routes;    // oif left 0: the interface's index is resolved at apply time
  std::optional<EgressSpec> egress;  // nothing: meshd's nftables table should not exist
};

// Validates static peers; each bad one becomes a Rejection, the rest pass.
// Refused: a bad or all-zero key, our own key (public or private), a key
// listed twice, a bad endpoint, a bad allowed IP, an allowed IP overlapping
// our pod CIDR or an earlier peer's. A rejected key's text never appears in
// the reason (it may be a private key pasted in the wrong place): only its
// length and the expected form do.
std::vector<PeerSpec> validate_static_peers(const std::vector<config::StaticPeer>& peers,
                                            const LocalSpec& local, std::uint16_t default_keepalive,
                                            std::vector<Rejection>& rejected);

// A route as the kernel stores and reports it, so that comparing what we
// plan with a dump is exact. IPv6 has no route scopes (the kernel reports
// RT_SCOPE_UNIVERSE whatever was asked) and gives a route without
// RTA_PRIORITY the metric IP6_RT_PRIO_USER (1024); IPv4 keeps both as given.
nl::Route kernel_route_form(nl::Route r);

// IPv6's minimum link MTU (RFC 8200, section 5): the floor of the mesh MTU.
inline constexpr unsigned kMinMeshMtu = 1280;

// The mesh MTU for an underlay MTU: minus WireGuard's overhead (outer IPv4
// or IPv6 header, UDP, WireGuard's 32 bytes: 60 or 80), never below
// kMinMeshMtu. `note` says how it was derived, and says so when the floor
// applied (the underlay then fragments the largest packets).
struct MeshMtu {
  unsigned mtu = 0;
  std::string note;
  bool floored = false;  // the underlay was too small: worth a warning
};
unsigned wireguard_overhead(bool v6_underlay);
MeshMtu mesh_mtu_for_underlay(unsigned underlay_mtu, bool v6_underlay, const std::string& source);

// Pure: the data plane the node should have. The device's private key is not
// set here (the caller owns the secret).
DesiredState compute_desired(const LocalSpec& local, const std::vector<PeerSpec>& peers);

}  // namespace meshd::dataplane
