// The node-side address layout every pod depends on.
#include "cni/addressing.h"

#include <gtest/gtest.h>

namespace meshd::cni {
namespace {

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }

TEST(Addressing, PoolReservesTheGatewayAndCountsFreeAddresses) {
  auto pool = pool_for(P("10.244.1.7/24"));
  ASSERT_TRUE(pool);
  EXPECT_EQ(pool->subnet.to_string(), "10.244.1.0/24");
  ASSERT_EQ(pool->reserved.size(), 1u);
  EXPECT_EQ(pool->reserved[0].to_string(), "10.244.1.1");
  EXPECT_EQ(pool_capacity(P("10.244.1.0/24")), 253u);
  EXPECT_EQ(pool_capacity(P("10.0.0.0/30")), 1u);
  EXPECT_EQ(pool_capacity(P("10.0.0.0/31")), 0u);
  EXPECT_EQ(pool_capacity(P("fd00::/64")), 0u);
  // A CIDR without a gateway has no pool (it once counted 2^32-3 for a /0).
  EXPECT_EQ(pool_capacity(P("0.0.0.0/0")), 0u);
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

namespace meshd::cni {
namespace {

// The pure part of IPAM as the plugin uses it: its pool never hands out the
// network, the gateway or the broadcast address, and says when it is full.
TEST(Addressing, PoolHandsOutAddressesAfterTheGatewayUntilFull) {
  auto pool = *pool_for(*IpPrefix::parse("10.244.1.0/24"));
  EXPECT_EQ(store::lowest_free(pool, {})->to_string(), "10.244.1.2");
  std::vector<IpAddress> used = {*IpAddress::parse("10.244.1.2"), *IpAddress::parse("10.244.1.4")};
  EXPECT_EQ(store::lowest_free(pool, used)->to_string(), "10.244.1.3");
  std::vector<IpAddress> all;
  for (int i = 2; i <= 254; ++i) all.push_back(IpAddress::v4(10, 244, 1, static_cast<std::uint8_t>(i)));
  EXPECT_EQ(all.size(), pool_capacity(*IpPrefix::parse("10.244.1.0/24")));
  EXPECT_FALSE(store::lowest_free(pool, all));
  all.pop_back();
  EXPECT_EQ(store::lowest_free(pool, all)->to_string(), "10.244.1.254");
}

}  // namespace
}  // namespace meshd::cni
