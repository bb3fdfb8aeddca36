#include "meshd/dataplane/desired_state.h"
#include "tests/unit/dataplane/test_keys.h"

#include <gtest/gtest.h>

#include <algorithm>

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

// In a cluster the whole cluster CIDR goes into the device too, below the
// peers' routes: an address no peer holds yet never takes the default route.
TEST(ComputeDesired, TheClusterCidrIsRoutedIntoTheDeviceOnce) {
  auto l = local();
  l.cluster_cidr = P("10.244.0.0/16");
  std::vector<Rejection> rej;
  auto peers = validate_static_peers({sp("b", 2, "10.0.0.2:51820", {"10.244.2.0/24"})}, l, 25, rej);
  auto d = compute_desired(l, peers);
  ASSERT_EQ(d.routes.size(), 2u);
  auto whole = std::find_if(d.routes.begin(), d.routes.end(),
                            [](const nl::Route& r) { return r.dst == P("10.244.0.0/16"); });
  ASSERT_NE(whole, d.routes.end());
  EXPECT_EQ(whole->protocol, nl::kMeshdRouteProtocol);
  EXPECT_EQ(whole->scope, 253);
  EXPECT_EQ(whole->prefsrc, IpAddress::parse("10.244.1.1").value());
  // Host bits of the configured prefix are cleared; a static peer that
  // routes exactly that prefix leaves a single route.
  l.cluster_cidr = P("10.244.7.9/16");
  PeerSpec wide;
  wide.name = "wide";
  wide.public_key = pk(2);
  wide.allowed_ips = {P("10.244.0.0/16")};
  d = compute_desired(l, {wide});
  ASSERT_EQ(d.routes.size(), 1u);
  EXPECT_EQ(d.routes[0].dst, P("10.244.0.0/16"));
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

// Every 8-character piece of `secret` that appears in `text`: a rejected
// key's text must not be echoed, not even in part.
std::vector<std::string> pieces_in(const std::string& secret, const std::string& text) {
  std::vector<std::string> found;
  for (std::size_t i = 0; i + 8 <= secret.size(); ++i)
    if (text.find(secret.substr(i, 8)) != std::string::npos) found.push_back(secret.substr(i, 8));
  return found;
}

TEST(ValidateStaticPeers, RejectedKeyTextIsNeverEchoed) {
  auto own = keys::PrivateKey::generate();
  auto other = keys::PrivateKey::generate();
  auto l = local();
  l.public_key = own.public_key();
  l.private_key = &own;
  const std::vector<std::string> texts = {
      own.to_base64_secret(),                        // this node's private key
      "PrivateKey = " + other.to_base64_secret(),    // a wg-quick line pasted whole
      other.to_base64_secret() + "\n",               // a key with its newline
      "Zq9xWvT3garbage-that-is-no-key-at-all/Kp0",  // garbage
  };
  std::vector<config::StaticPeer> peers;
  for (std::size_t i = 0; i < texts.size(); ++i)
    peers.push_back({"p" + std::to_string(i), texts[i], "", {"10.99." + std::to_string(i) + ".0/24"},
                     std::nullopt});
  std::vector<Rejection> rej;
  EXPECT_TRUE(validate_static_peers(peers, l, 25, rej).empty());
  ASSERT_EQ(rej.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(rej[i].peer, "p" + std::to_string(i));
    EXPECT_NE(rej[i].reason.find("public_key"), std::string::npos) << rej[i].reason;
    EXPECT_EQ(pieces_in(texts[i], rej[i].reason), std::vector<std::string>{}) << rej[i].reason;
  }
  EXPECT_NE(rej[0].reason.find("PRIVATE key"), std::string::npos) << rej[0].reason;
  // The form and the length instead of the text.
  EXPECT_NE(rej[1].reason.find("got 57 characters"), std::string::npos) << rej[1].reason;
  EXPECT_NE(rej[1].reason.find("44 characters of standard base64"), std::string::npos) << rej[1].reason;
}

TEST(KernelRouteForm, Ipv6RoutesAreUniverseScopeWithMetric1024AndIpv4IsKept) {
  struct Case {
    const char* dst;
    std::uint8_t scope;
    std::uint32_t metric;
    std::uint8_t want_scope;
    std::uint32_t want_metric;
  };
  for (const Case& c : {Case{"fd77:2::/64", 253, 0, 0, 1024}, Case{"fd77:2::/64", 0, 0, 0, 1024},
                        Case{"fd77:2::/64", 253, 200, 0, 200}, Case{"2001:db8::1/128", 253, 0, 0, 1024},
                        Case{"10.244.2.0/24", 253, 0, 253, 0}, Case{"10.244.2.0/24", 0, 5, 0, 5}}) {
    nl::Route r;
    r.dst = P(c.dst);
    r.scope = c.scope;
    r.metric = c.metric;
    nl::Route k = kernel_route_form(r);
    EXPECT_EQ(k.scope, c.want_scope) << c.dst;
    EXPECT_EQ(k.metric, c.want_metric) << c.dst;
    EXPECT_EQ(kernel_route_form(k), k) << c.dst << ": not idempotent";
  }
}

TEST(ComputeDesired, Ipv6RoutesArePlannedAsTheKernelStoresThem) {
  std::vector<Rejection> rej;
  auto peers = validate_static_peers({sp("b", 2, "", {"10.244.2.0/24", "fd77:2::/64"})}, local(), 25, rej);
  ASSERT_TRUE(rej.empty());
  auto d = compute_desired(local(), peers);
  ASSERT_EQ(d.routes.size(), 2u);
  for (const auto& r : d.routes) {
    if (r.dst.address.is_v6()) {
      EXPECT_EQ(r.scope, 0);
      EXPECT_EQ(r.metric, 1024u);
      EXPECT_FALSE(r.prefsrc);  // the gateway address is IPv4
    } else {
      EXPECT_EQ(r.scope, 253);
      EXPECT_EQ(r.metric, 0u);
    }
  }
}

TEST(MeshMtu, UnderlayMinusOverheadWithA1280Floor) {
  struct Case {
    unsigned underlay;
    bool v6;
    unsigned want;
    bool floored;
  };
  for (const Case& c : {Case{1500, false, 1440, false}, Case{1500, true, 1420, false},
                        Case{9000, false, 8940, false}, Case{1340, false, 1280, false},
                        Case{1360, true, 1280, false}, Case{1339, false, 1280, true},
                        Case{1300, true, 1280, true}, Case{68, false, 1280, true},
                        Case{60, false, 1280, true}, Case{59, false, 1280, true},
                        Case{40, true, 1280, true}, Case{0, true, 1280, true}}) {
    MeshMtu m = mesh_mtu_for_underlay(c.underlay, c.v6, "underlay eth0");
    EXPECT_EQ(m.mtu, c.want) << c.underlay << (c.v6 ? " v6" : " v4");
    EXPECT_NE(m.note.find("underlay eth0 " + std::to_string(c.underlay)), std::string::npos) << m.note;
    EXPECT_EQ(m.note.find("below 1280") != std::string::npos, c.floored) << m.note;
    EXPECT_EQ(m.floored, c.floored) << c.underlay;
  }
}

}  // namespace
}  // namespace meshd::dataplane
