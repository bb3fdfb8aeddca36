#include "cni/addressing.h"

namespace meshd::cni {

Result<store::IpamPool> pool_for(const IpPrefix& pod_cidr) {
  auto gw = pod_gateway(pod_cidr);
  if (!gw) return gw.error();
  return store::IpamPool{pod_cidr.network(), {*gw}};
}

std::uint64_t pool_capacity(const IpPrefix& pod_cidr) {
  auto pool = pool_for(pod_cidr);
  return pool ? store::pool_capacity(*pool) : 0;
}

unsigned choose_mtu(std::optional<unsigned> configured, unsigned node_mtu) {
  if (configured) return *configured;
  return node_mtu != 0 ? node_mtu : kFallbackMtu;
}

std::vector<ResultRoute> pod_result_routes(const IpAddress& gateway) {
  return {ResultRoute{*IpPrefix::parse("0.0.0.0/0"), gateway}};
}

}  // namespace meshd::cni
