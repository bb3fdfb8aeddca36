#include "meshd/dataplane/event_filter.h"
#include "meshd/dataplane/reconciler.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace meshd::dataplane {
namespace {

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }

constexpr int kMesh = 7;      // meshd0
constexpr int kUnderlay = 2;  // eth0
constexpr int kPodVeth = 40;  // a pod's host-side veth

// A node whose mesh MTU comes from the route towards its first peer.
EventScope node() {
  EventScope s;
  s.device = "meshd0";
  s.device_index = kMesh;
  s.route_slots = {P("10.77.2.0/24"), P("10.77.3.0/24"), P("fd77:2::/64")};
  s.mtu_from_underlay = true;
  s.underlay_index = kUnderlay;
  s.mtu_probe = *IpAddress::parse("192.168.1.12");
  return s;
}

nl::Event link(int index, std::string name) {
  nl::Event e;
  e.type = nl::Event::Type::kLink;
  e.ifindex = index;
  e.ifname = std::move(name);
  return e;
}

nl::Event address(int index, const char* prefix) {
  nl::Event e;
  e.type = nl::Event::Type::kAddress;
  e.ifindex = index;
  e.address = nl::Address{index, P(prefix)};
  return e;
}

nl::Event route(const char* dst, int oif, std::uint8_t protocol, std::uint32_t table = 254) {
  nl::Event e;
  e.type = nl::Event::Type::kRoute;
  e.ifindex = oif;
  nl::Route r;
  r.dst = P(dst);
  r.oif = oif;
  r.protocol = protocol;
  r.table = table;
  e.route = r;
  return e;
}

struct Case {
  const char* what;
  nl::Event event;
  EventEffect want;
};

TEST(EventFilter, OnlyWhatTheMeshDependsOnTriggersAPass) {
  const std::vector<Case> cases = {
      // What a pod start makes on the node: all ignored.
      {"pod veth created", link(kPodVeth, "veth1a2b3c4d"), EventEffect::kNone},
      {"pod veth deleted", [] { auto e = link(kPodVeth, "veth1a2b3c4d"); e.removed = true; return e; }(),
       EventEffect::kNone},
      {"address on a pod veth", address(kPodVeth, "10.77.1.1/32"), EventEffect::kNone},
      {"host route to a pod (CNI, protocol 78)", route("10.77.1.5/32", kPodVeth, nl::kMeshdCniRouteProtocol),
       EventEffect::kNone},
      {"local-table route of a pod veth address", route("10.77.1.1/32", kPodVeth, 2, 255), EventEffect::kNone},
      {"IPv6 link-local route on a pod veth", route("fe80::/64", kPodVeth, 2), EventEffect::kNone},
      {"someone's route elsewhere", route("10.200.0.0/16", kUnderlay, 4), EventEffect::kNone},
      // Our device, by index or by name (made again, new index).
      {"our link changed", link(kMesh, "meshd0"), EventEffect::kMesh},
      {"our device made again", link(99, "meshd0"), EventEffect::kMesh},
      {"address on our device", address(kMesh, "10.77.1.1/32"), EventEffect::kMesh},
      // Routes of the mesh, or in its slots.
      {"a mesh route (ours, by protocol)", route("10.77.2.0/24", kMesh, nl::kMeshdRouteProtocol), EventEffect::kMesh},
      {"a stale mesh route on an old index", route("10.77.9.0/24", 5, nl::kMeshdRouteProtocol), EventEffect::kMesh},
      {"someone's route through our device", route("10.123.0.0/16", kMesh, 4), EventEffect::kMesh},
      {"someone's route in a mesh slot", route("10.77.3.0/24", kUnderlay, 4), EventEffect::kMesh},
      {"someone's IPv6 route in a mesh slot", route("fd77:2::/64", kUnderlay, 4), EventEffect::kMesh},
      {"a mesh slot's prefix in another table", route("10.77.3.0/24", kUnderlay, 4, 100), EventEffect::kNone},
      {"a wider route around a mesh slot", route("10.77.0.0/16", kUnderlay, 4), EventEffect::kNone},
      // The underlay the MTU comes from.
      {"underlay link (its MTU)", link(kUnderlay, "eth0"), EventEffect::kUnderlay},
      {"route towards the first peer", route("192.168.1.0/24", kUnderlay, 2), EventEffect::kUnderlay},
      {"default route", route("0.0.0.0/0", kUnderlay, 4), EventEffect::kUnderlay},
      {"route elsewhere on the underlay", route("192.168.9.0/24", kUnderlay, 2), EventEffect::kNone},
      {"address on the underlay", address(kUnderlay, "192.168.1.11/24"), EventEffect::kNone},
  };
  for (const auto& c : cases) EXPECT_EQ(event_effect(c.event, node()), c.want) << c.what;
}

TEST(EventFilter, AConfiguredMtuIgnoresTheUnderlay) {
  EventScope s = node();
  s.mtu_from_underlay = false;
  EXPECT_EQ(event_effect(link(kUnderlay, "eth0"), s), EventEffect::kNone);
  EXPECT_EQ(event_effect(route("0.0.0.0/0", kUnderlay, 4), s), EventEffect::kNone);
  EXPECT_EQ(event_effect(route("192.168.1.0/24", kUnderlay, 2), s), EventEffect::kNone);
}

TEST(EventFilter, WithoutAPeerEndpointTheDefaultRouteIsTheUnderlay) {
  EventScope s = node();
  s.mtu_probe.reset();
  EXPECT_EQ(event_effect(route("::/0", kUnderlay, 4), s), EventEffect::kUnderlay);
  EXPECT_EQ(event_effect(route("192.168.1.0/24", kUnderlay, 2), s), EventEffect::kNone);
}

TEST(EventFilter, BeforeTheDeviceIndexIsKnownOnlyItsNameMatches) {
  EventScope s = node();
  s.device_index = 0;
  EXPECT_EQ(event_effect(link(kMesh, "meshd0"), s), EventEffect::kMesh);
  EXPECT_EQ(event_effect(link(0, "veth0"), s), EventEffect::kNone);
  EXPECT_EQ(event_effect(address(0, "10.1.1.1/32"), s), EventEffect::kNone);
}

TEST(EventFilter, ARouteEventWithoutItsRouteIsTakenSeriously) {
  nl::Event e;
  e.type = nl::Event::Type::kRoute;
  EXPECT_EQ(event_effect(e, node()), EventEffect::kMesh);
}

// What an event does not announce, the periodic resync catches: WireGuard
// every time, everything every 30th time.
TEST(PeriodicResync, WireGuardEveryTimeEverythingEveryThirtieth) {
  for (unsigned n = 1; n < 30; ++n) EXPECT_EQ(periodic_pass_scope(n), PassScope::kWireGuard) << n;
  EXPECT_EQ(periodic_pass_scope(30), PassScope::kFull);
  EXPECT_EQ(periodic_pass_scope(31), PassScope::kFull);  // a late one is not skipped
}

}  // namespace
}  // namespace meshd::dataplane
