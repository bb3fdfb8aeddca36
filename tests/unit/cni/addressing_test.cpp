// The node-side address layout every pod depends on.
#include "cni/addressing.h"

#include <gtest/gtest.h>

namespace meshd::cni {
namespace {

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }

TEST(Addressing, GatewayIsTheFirstHostAddressOfThePodCidr) {
  EXPECT_EQ(gateway_address(P("10.244.1.0/24"))->to_string(), "10.244.1.1");
  EXPECT_EQ(gateway_address(P("10.244.1.77/24"))->to_string(), "10.244.1.1");
  EXPECT_EQ(gateway_address(P("10.0.0.0/30"))->to_string(), "10.0.0.1");
  EXPECT_FALSE(gateway_address(P("10.0.0.0/31")));
  EXPECT_FALSE(gateway_address(P("fd00::/64")));
}

TEST(Addressing, PoolReservesTheGatewayAndCountsFreeAddresses) {
  auto pool = pool_for(P("10.244.1.7/24"));
  ASSERT_TRUE(pool);
  EXPECT_EQ(pool->subnet.to_string(), "10.244.1.0/24");
  ASSERT_EQ(pool->reserved.size(), 1u);
  EXPECT_EQ(pool->reserved[0].to_string(), "10.244.1.1");
  EXPECT_EQ(pool_capacity(P("10.244.1.0/24")), 253u);
  EXPECT_EQ(pool_capacity(P("10.0.0.0/30")), 1u);
}

TEST(Addressing, MtuPrefersConfigThenNodeThenFallback) {
  EXPECT_EQ(choose_mtu(1300u, 1420), 1300u);
  EXPECT_EQ(choose_mtu(std::nullopt, 1380), 1380u);
  EXPECT_EQ(choose_mtu(std::nullopt, 0), kFallbackMtu);
}

TEST(Addressing, PodGetsADefaultRouteThroughTheGateway) {
  auto r = pod_result_routes(*IpAddress::parse("10.244.1.1"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].dst.to_string(), "0.0.0.0/0");
  EXPECT_EQ(r[0].gw->to_string(), "10.244.1.1");
}

}  // namespace
}  // namespace meshd::cni
