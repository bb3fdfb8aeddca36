// Pure address arithmetic of the ptp-style layout: the node's gateway is the
// first host address of its pod CIDR, reserved in IPAM and set as /32 on
// every host-side veth; each pod gets its address with the CIDR's prefix
// length, a scope-link route to the gateway, a default route and the pod
// CIDR through it (so even same-subnet pods go through the host, as ptp does).
#pragma once

#include "cni/result.h"
#include "common/ip.h"
#include "common/pod_network.h"
#include "common/result.h"
#include "store/ipam.h"

#include <vector>

namespace meshd::cni {

// The MTU pods get when neither the conflist nor the store says: 1500 minus
// WireGuard's worst-case IPv6 overhead (80), as wg-quick picks.
inline constexpr unsigned kFallbackMtu = 1420;

// The pod CIDR's pool: its host addresses minus the gateway (pod_gateway()
// of common/pod_network.h, which also says which CIDRs are refused).
Result<store::IpamPool> pool_for(const IpPrefix& pod_cidr);
// How many pods the pool holds: store::pool_capacity of pool_for; 0 for a
// CIDR pool_for refuses.
std::uint64_t pool_capacity(const IpPrefix& pod_cidr);

unsigned choose_mtu(std::optional<unsigned> configured, unsigned node_mtu);

// The routes ADD puts into the pod (and reports in the result).
std::vector<ResultRoute> pod_result_routes(const IpAddress& gateway);

}  // namespace meshd::cni
