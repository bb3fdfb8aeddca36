// The one address rule meshd and its CNI plugin must agree on: a node's pod
// gateway is the first host address of its pod CIDR. meshd puts it on the
// WireGuard device (so the node's own traffic to remote pods leaves with a
// pod-network source); the plugin reserves it in IPAM and puts it on every
// host-side veth (ptp-style, as the reference ptp plugin does).
#pragma once

#include "common/ip.h"
#include "common/result.h"

namespace meshd {

// The gateway of `pod_cidr` (host bits are ignored). EINVAL, naming the CIDR
// and the expected form, for anything but an IPv4 prefix of length 1 to 30:
// a pod CIDR must hold a gateway and at least one pod address besides its
// network and broadcast addresses (a /31 or /32 cannot), and /0 is not a
// pod subnet.
Result<IpAddress> pod_gateway(const IpPrefix& pod_cidr);

}  // namespace meshd
