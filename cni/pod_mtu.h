// Pods whose interface MTU is above the mesh MTU. A pod's MTU is set once,
// at ADD; when the mesh MTU later drops (a new underlay, an IPv6 endpoint),
// its larger packets to other nodes rely on path MTU discovery (the node
// answers "fragmentation needed" for DF packets) or are dropped. meshd names
// these pods so an operator can recreate them.
#pragma once

#include <string>
#include <vector>

namespace meshd::cni {

struct PodLink {
  std::string container_id;
  std::string ifname;
  std::string host_interface;  // the host veth, whose MTU is the pod's (created as a pair)
  unsigned mtu = 0;            // 0 = unknown (the host veth is gone)
};

// Pure: "container/ifname (host veth NAME, mtu M)" for every pod whose MTU is
// above `mesh_mtu`, in the order given.
std::vector<std::string> pods_above_mtu(const std::vector<PodLink>& pods, unsigned mesh_mtu);

}  // namespace meshd::cni
