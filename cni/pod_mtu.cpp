#include "cni/pod_mtu.h"

namespace meshd::cni {

std::vector<std::string> pods_above_mtu(const std::vector<PodLink>& pods, unsigned mesh_mtu) {
  std::vector<std::string> out;
  for (const auto& p : pods)
    if (p.mtu > mesh_mtu)
      out.push_back(p.container_id + "/" + p.ifname + " (host veth " + p.host_interface + ", mtu " +
                    std::to_string(p.mtu) + ")");
  return out;
}

}  // namespace meshd::cni
