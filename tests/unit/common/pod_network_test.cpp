// The pod gateway rule that meshd (the address on its WireGuard device) and
// the CNI plugin (the address reserved in IPAM and set on host veths) share.
#include "common/pod_network.h"

#include <gtest/gtest.h>

namespace meshd {
namespace {

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }

TEST(PodGateway, IsTheFirstHostAddressOfThePodCidr) {
  EXPECT_EQ(pod_gateway(P("10.244.1.0/24"))->to_string(), "10.244.1.1");
  EXPECT_EQ(pod_gateway(P("10.244.1.77/24"))->to_string(), "10.244.1.1");
  EXPECT_EQ(pod_gateway(P("10.0.255.0/23"))->to_string(), "10.0.254.1");
  EXPECT_EQ(pod_gateway(P("10.0.0.0/30"))->to_string(), "10.0.0.1");
  EXPECT_EQ(pod_gateway(P("128.0.0.0/1"))->to_string(), "128.0.0.1");
}

// meshd used to put network+1 on its device for any prefix (an IPv6 one, a
// /31, /32 or /0) while the plugin refused the same CIDR: the two sides of a
// node disagreed on whether it had a gateway at all.
TEST(PodGateway, RefusesCidrsThatCannotHoldAGatewayAndAPod) {
  for (const char* c : {"10.0.0.0/31", "10.0.0.1/32", "0.0.0.0/0", "fd00::/64", "fd00::/120"}) {
    auto gw = pod_gateway(P(c));
    ASSERT_FALSE(gw) << c;
    EXPECT_TRUE(gw.error().is(EINVAL)) << c;
    EXPECT_NE(gw.error().message.find(P(c).to_string()), std::string::npos) << gw.error().message;
  }
}

}  // namespace
}  // namespace meshd
