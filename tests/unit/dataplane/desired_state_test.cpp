#include "meshd/dataplane/desired_state.h"
#include "tests/unit/dataplane/test_keys.h"

#include <gtest/gtest.h>

namespace meshd::dataplane {
namespace {

using meshd::testing::pk;

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }

LocalSpec local() {
  LocalSpec l;
  l.interface = "meshd0";
  l.public_key = pk(100);
  l.listen_port = 51820;
  l.mtu = 1420;
  l.pod_cidr = P("10.244.1.0/24");
  return l;
}

config::StaticPeer sp(const std::string& name, std::uint8_t key, std::string ep,
                      std::vector<std::string> ips) {
  return config::StaticPeer{name, pk(key).to_base64(), std::move(ep), std::move(ips), std::nullopt};
}

TEST(GatewayAddress, IsTheFirstHostAddress) {
  EXPECT_EQ(gateway_address(P("10.244.1.0/24")).to_string(), "10.244.1.1");
  EXPECT_EQ(gateway_address(P("10.244.1.77/24")).to_string(), "10.244.1.1");
  EXPECT_EQ(gateway_address(P("10.0.255.0/23")).to_string(), "10.0.254.1");
}

TEST(ValidateStaticPeers, GoodPeersPassWithDefaults) {
  std::vector<Rejection> rej;
  auto peers = validate_static_peers(
      {sp("b", 2, "10.0.0.2:51820", {"10.244.2.0/24"}), sp("c", 3, "", {"10.244.3.5/24"})},
      local(), 25, rej);
  EXPECT_TRUE(rej.empty());
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].persistent_keepalive, 25);
  EXPECT_EQ(peers[1].allowed_ips, std::vector<IpPrefix>{P("10.244.3.0/24")});  // normalised
  EXPECT_FALSE(peers[1].endpoint);
}

TEST(ValidateStaticPeers, EachBadPeerIsRejectedByNameAndTheRestApply) {
  std::vector<Rejection> rej;
  auto peers = validate_static_peers(
      {
          sp("good", 2, "10.0.0.2:51820", {"10.244.2.0/24"}),
          {"badkey", "not-a-key", "", {"10.244.4.0/24"}, std::nullopt},
          sp("badendpoint", 4, "10.0.0.4", {"10.244.5.0/24"}),
          sp("badip", 5, "", {"10.244.6.0/33"}),
          sp("overlapspods", 6, "", {"10.244.0.0/16"}),
          sp("overlapspeer", 7, "", {"10.244.2.128/25"}),
          sp("self", 100, "", {"10.244.8.0/24"}),
          sp("dupkey", 2, "", {"10.244.9.0/24"}),
          sp("good2", 8, "[fd00::8]:51820", {"10.244.10.0/24"}),
      },
      local(), 25, rej);
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].name, "good");
  EXPECT_EQ(peers[1].name, "good2");
  ASSERT_EQ(rej.size(), 7u);
  auto reason = [&](const std::string& name) {
    for (const auto& r : rej)
      if (r.peer == name) return r.reason;
    return std::string("<not rejected>");
  };
  EXPECT_NE(reason("badkey").find("public_key"), std::string::npos);
  EXPECT_NE(reason("badendpoint").find("endpoint"), std::string::npos);
  EXPECT_NE(reason("badip").find("allowed_ips"), std::string::npos);
  EXPECT_NE(reason("overlapspods").find("pod CIDR"), std::string::npos);
  EXPECT_NE(reason("overlapspeer").find("peer good"), std::string::npos);
  EXPECT_NE(reason("self").find("own key"), std::string::npos);
  EXPECT_NE(reason("dupkey").find("already used"), std::string::npos);
}

TEST(ComputeDesired, DeviceAddressAndRoutes) {
  std::vector<Rejection> rej;
  auto peers = validate_static_peers(
      {sp("c", 3, "10.0.0.3:51820", {"10.244.3.0/24"}),
       sp("b", 2, "10.0.0.2:51820", {"10.244.2.0/24", "10.99.0.2/32"})},
      local(), 25, rej);
  auto d = compute_desired(local(), peers);
  EXPECT_EQ(d.device.name, "meshd0");
  EXPECT_EQ(d.device.listen_port, std::optional<std::uint16_t>(51820));
  EXPECT_FALSE(d.device.private_key);  // the caller owns the secret
  EXPECT_EQ(d.mtu, 1420u);
  ASSERT_EQ(d.device.peers.size(), 2u);
  EXPECT_EQ(d.device.peers[0].public_key, pk(2));  // sorted by key
  EXPECT_EQ(d.addresses, std::vector<IpPrefix>{P("10.244.1.1/32")});
  ASSERT_EQ(d.routes.size(), 3u);
  for (const auto& r : d.routes) {
    EXPECT_EQ(r.protocol, nl::kMeshdRouteProtocol);
    EXPECT_EQ(r.scope, 253);
    EXPECT_EQ(r.prefsrc, IpAddress::parse("10.244.1.1").value());
    EXPECT_FALSE(r.gateway);
  }
}

TEST(ComputeDesired, NoPodCidrMeansNoAddressAndNoPreferredSource) {
  auto l = local();
  l.pod_cidr.reset();
  std::vector<Rejection> rej;
  auto peers = validate_static_peers({sp("b", 2, "", {"10.244.2.0/24"})}, l, 0, rej);
  auto d = compute_desired(l, peers);
  EXPECT_TRUE(d.addresses.empty());
  ASSERT_EQ(d.routes.size(), 1u);
  EXPECT_FALSE(d.routes[0].prefsrc);
  EXPECT_EQ(d.device.peers[0].persistent_keepalive, std::optional<std::uint16_t>(0));
}

}  // namespace
}  // namespace meshd::dataplane
