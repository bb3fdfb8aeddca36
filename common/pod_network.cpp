#include "common/pod_network.h"

namespace meshd {

Result<IpAddress> pod_gateway(const IpPrefix& pod_cidr) {
  if (!pod_cidr.address.is_v4() || pod_cidr.length == 0 || pod_cidr.length > 30)
    return Error::invalid("pod CIDR " + pod_cidr.to_string() +
                          " cannot host pods: expected an IPv4 prefix from /1 to /30");
  return IpAddress::from_v4_u32(pod_cidr.network().address.v4_u32() + 1);
}

}  // namespace meshd
