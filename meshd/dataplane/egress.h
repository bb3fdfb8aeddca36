// Egress masquerade: pod traffic to destinations outside the cluster CIDR
// leaves through its node with the node's address (docs/dataplane.md,
// "Egress"), by one nftables rule in a table meshd owns, `table inet meshd`,
// applied through libnftables. Pod-to-pod traffic (to the cluster CIDR) and
// anything through the mesh device keep their addresses: WireGuard's allowed
// IPs and the other nodes' routes are made for pod addresses.
//
// The ruleset text is a pure function; the applier replaces the whole table
// in one nftables transaction (all or nothing: a packet sees the old rule or
// the new one, never none), and the remover treats an absent table as done.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <optional>
#include <string>

namespace meshd::dataplane {

// The table's family and name: meshd creates, replaces and deletes it as a
// whole, and leaves every other table alone.
inline constexpr const char* kEgressTable = "inet meshd";

// What one node masquerades: from its pod CIDR to outside the cluster CIDR,
// except through the mesh device. Both prefixes are of one family.
struct EgressSpec {
  IpPrefix pod_cidr;
  IpPrefix cluster_cidr;
  std::string mesh_interface;
  bool operator==(const EgressSpec&) const = default;
};

// The table's definition in nft syntax, e.g. for 10.244.1.0/24 in
// 10.244.0.0/16 on meshd0:
//   table inet meshd {
//     chain postrouting {
//       type nat hook postrouting priority srcnat; policy accept;
//       ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 oifname != "meshd0" masquerade
//     }
//   }
// (ip6 saddr / ip6 daddr for an IPv6 cluster). The interface name follows
// common/ifname.h, so it needs no escaping inside the quotes.
std::string egress_table_text(const EgressSpec& spec);

// One transaction that replaces meshd's table with spec's whether or not it
// exists: declare it (a no-op when present), delete it, define it again.
std::string egress_apply_script(const EgressSpec& spec);

// Where the node masquerades, or nothing: only in cluster mode (a cluster
// CIDR tells pod-to-pod traffic from outside traffic; a static node has
// none), with a pod CIDR of the cluster CIDR's family, and when configured.
std::optional<EgressSpec> egress_for(const std::optional<IpPrefix>& pod_cidr,
                                     const std::optional<IpPrefix>& cluster_cidr,
                                     const std::string& mesh_interface, bool masquerade);

// One line for logs and status: "masquerade 10.244.1.0/24 to outside
// 10.244.0.0/16 (nftables table inet meshd)".
std::string describe(const EgressSpec& spec);

// The table in the kernel. An interface so the reconciler can be driven
// without nftables in tests.
class EgressTable {
 public:
  virtual ~EgressTable() = default;
  // Replaces meshd's table with spec's, atomically.
  virtual Result<void> apply(const EgressSpec& spec) = 0;
  // Deletes meshd's table; true when there was one, false when there was
  // none (also when nftables is not usable at all: then no table exists).
  virtual Result<bool> remove() = 0;
  // The table as nftables lists it, nothing when it does not exist: to tell
  // whether someone changed or deleted it since the last apply.
  virtual Result<std::optional<std::string>> current() = 0;
};

// EgressTable over libnftables, in the calling thread's network namespace.
// Errors carry nftables' own message, prefixed with what was being done.
class NftEgressTable final : public EgressTable {
 public:
  Result<void> apply(const EgressSpec& spec) override;
  Result<bool> remove() override;
  Result<std::optional<std::string>> current() override;
};

}  // namespace meshd::dataplane
