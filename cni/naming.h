// Host-side veth names, derived from the attachment key alone so that DEL
// and GC find the interface without any state of their own.
#pragma once

#include <string>
#include <string_view>

namespace meshd::cni {

// "mc" + 4 hex digits of the network + 9 hex digits of (container id, ifname):
// 15 bytes, the kernel's limit (IFNAMSIZ - 1). The network part lets GC of
// one network leave another network's veths alone; 36 bits per attachment
// make a collision between two pods of one node vanishingly unlikely.
std::string host_veth_name(std::string_view network, std::string_view container_id,
                           std::string_view ifname);
// The prefix every host veth of `network` starts with ("mc" + 4 hex).
std::string host_veth_prefix(std::string_view network);

}  // namespace meshd::cni
