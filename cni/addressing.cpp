#include "cni/addressing.h"

namespace meshd::cni {

Result<IpAddress> gateway_address(const IpPrefix& pod_cidr) {
  if (!pod_cidr.address.is_v4() || pod_cidr.length == 0 || pod_cidr.length > 30)
    return Error::invalid("pod CIDR " + pod_cidr.to_string() +
                          " cannot host pods: expected an IPv4 prefix from /1 to /30");
  return IpAddress::from_v4_u32(pod_cidr.network().address.v4_u32() + 1);
}

Result<store::IpamPool> pool_for(const IpPrefix& pod_cidr) {
  auto gw = gateway_address(pod_cidr);
  if (!gw) return gw.error();
  return store::IpamPool{pod_cidr.network(), {*gw}};
}

std::uint64_t pool_capacity(const IpPrefix& pod_cidr) {
  if (!pod_cidr.address.is_v4() || pod_cidr.length > 30) return 0;
  std::uint64_t hosts = (std::uint64_t{1} << (32 - pod_cidr.length)) - 2;
  return hosts - 1;
}

unsigned choose_mtu(std::optional<unsigned> configured, unsigned node_mtu) {
  if (configured) return *configured;
  return node_mtu != 0 ? node_mtu : kFallbackMtu;
}

std::vector<ResultRoute> pod_result_routes(const IpAddress& gateway) {
  return {ResultRoute{*IpPrefix::parse("0.0.0.0/0"), gateway}};
}

}  // namespace meshd::cni
