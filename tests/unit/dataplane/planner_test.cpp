#include "meshd/dataplane/planner.h"
#include "tests/unit/dataplane/test_keys.h"

#include <gtest/gtest.h>

namespace meshd::dataplane {
namespace {

using meshd::testing::pk;

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }
Endpoint E(const char* s) { return *Endpoint::parse(s); }

wg::WgPeer peer(std::uint8_t n, const char* ep, std::vector<const char*> ips, std::uint16_t ka = 25) {
  wg::WgPeer p;
  p.public_key = pk(n);
  if (ep) p.endpoint = E(ep);
  p.persistent_keepalive = ka;
  for (auto* s : ips) p.allowed_ips.push_back(P(s));
  return p;
}

// WgPeer is move-only (it may hold a preshared key), so no initializer lists.
template <class... Peers>
wg::WgDevice device_on(std::uint16_t port, Peers&&... peers) {
  wg::WgDevice d;
  d.name = "meshd0";
  d.listen_port = port;
  (d.peers.push_back(std::forward<Peers>(peers)), ...);
  return d;
}
template <class... Peers>
wg::WgDevice device(Peers&&... peers) {
  return device_on(51820, std::forward<Peers>(peers)...);
}

const wg::WgPeer* find(const wg::WgDevice& d, std::uint8_t n) {
  for (const auto& p : d.peers)
    if (p.public_key == pk(n)) return &p;
  return nullptr;
}

TEST(PlanDevice, NothingToDoWhenEqual) {
  auto want = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}), peer(2, nullptr, {"10.244.2.0/24"}));
  auto have = device(peer(2, nullptr, {"10.244.2.0/24"}), peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}));
  auto plan = plan_device(want, have);
  EXPECT_FALSE(plan.change);
  EXPECT_TRUE(plan.notes.empty());
}

TEST(PlanDevice, AllowedIpsOrderAndHostBitsDoNotCount) {
  auto want = device(peer(1, nullptr, {"10.244.1.0/24", "10.99.0.5/32"}));
  auto have = device(peer(1, nullptr, {"10.99.0.5/32", "10.244.1.7/24"}));
  EXPECT_FALSE(plan_device(want, have).change);
}

TEST(PlanDevice, NewPeerIsAddedAloneWithItsAllowedIps) {
  auto want = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}), peer(2, "10.0.0.2:51820", {"10.244.2.0/24"}));
  auto have = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  EXPECT_FALSE(plan.change->replace_peers);
  ASSERT_EQ(plan.change->peers.size(), 1u);
  const auto& add = plan.change->peers[0];
  EXPECT_EQ(add.public_key, pk(2));
  EXPECT_TRUE(add.replace_allowed_ips);
  EXPECT_FALSE(add.remove);
  EXPECT_FALSE(add.update_only);
  EXPECT_EQ(add.endpoint, E("10.0.0.2:51820"));
  EXPECT_EQ(add.allowed_ips, std::vector<IpPrefix>{P("10.244.2.0/24")});
  EXPECT_EQ(plan.peers_added, 1u);
}

// Each line about a peer names its key (the daemon logs it with the peer's
// name as MESHD_PEER); the device's own lines name none.
TEST(PlanDevice, NotesNameThePeerTheyAreAbout) {
  auto want = device_on(51821, peer(2, "10.0.0.2:51820", {"10.244.2.0/24"}),
                        peer(3, "10.0.0.3:51820", {"10.244.3.0/24"}));
  auto have = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}), peer(3, "10.0.0.9:51820", {"10.244.3.0/24"}));
  auto plan = plan_device(want, have);
  auto note = [&](const std::string& start) -> const ChangeNote* {
    for (const auto& n : plan.notes)
      if (n.text.rfind(start, 0) == 0) return &n;
    return nullptr;
  };
  auto* port = note("listen port");
  ASSERT_TRUE(port);
  EXPECT_FALSE(port->peer);
  auto* add = note("add peer " + pk(2).short_id());
  ASSERT_TRUE(add);
  EXPECT_EQ(add->peer, pk(2));
  auto* moved = note("peer " + pk(3).short_id() + " endpoint");
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->peer, pk(3));
  auto* rm = note("remove peer " + pk(1).short_id());
  ASSERT_TRUE(rm);
  EXPECT_EQ(rm->peer, pk(1));
}

TEST(PlanDevice, EndpointChangeUpdatesOnlyTheEndpoint) {
  auto want = device(peer(1, "10.0.0.9:51820", {"10.244.1.0/24"}));
  auto have = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  ASSERT_EQ(plan.change->peers.size(), 1u);
  const auto& u = plan.change->peers[0];
  EXPECT_TRUE(u.update_only);
  EXPECT_EQ(u.endpoint, E("10.0.0.9:51820"));
  EXPECT_FALSE(u.replace_allowed_ips);
  EXPECT_TRUE(u.allowed_ips.empty());
  EXPECT_FALSE(u.persistent_keepalive);
  EXPECT_EQ(plan.peers_updated, 1u);
}

TEST(PlanDevice, AllowedIpsChangeReplacesThem) {
  auto want = device(peer(1, nullptr, {"10.244.1.0/24", "10.244.9.0/24"}));
  auto have = device(peer(1, nullptr, {"10.244.1.0/24"}));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  const auto& u = plan.change->peers.at(0);
  EXPECT_TRUE(u.replace_allowed_ips);
  EXPECT_EQ(u.allowed_ips.size(), 2u);
  EXPECT_FALSE(u.endpoint);
}

TEST(PlanDevice, KeepaliveChangeIsApplied) {
  auto want = device(peer(1, nullptr, {"10.244.1.0/24"}, 0));
  auto have = device(peer(1, nullptr, {"10.244.1.0/24"}, 25));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  EXPECT_EQ(plan.change->peers.at(0).persistent_keepalive, std::optional<std::uint16_t>(0));
}

TEST(PlanDevice, KeyChangeRemovesTheOldPeerAndAddsTheNew) {
  auto want = device(peer(3, "10.0.0.1:51820", {"10.244.1.0/24"}));
  auto have = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  ASSERT_EQ(plan.change->peers.size(), 2u);
  ASSERT_TRUE(find(*plan.change, 1));
  EXPECT_TRUE(find(*plan.change, 1)->remove);
  ASSERT_TRUE(find(*plan.change, 3));
  EXPECT_FALSE(find(*plan.change, 3)->remove);
  EXPECT_EQ(find(*plan.change, 3)->allowed_ips, std::vector<IpPrefix>{P("10.244.1.0/24")});
}

TEST(PlanDevice, UnknownPeerIsRemovedAndOthersUntouched) {
  auto want = device(peer(1, nullptr, {"10.244.1.0/24"}));
  auto have = device(peer(1, nullptr, {"10.244.1.0/24"}), peer(2, nullptr, {"10.244.2.0/24"}));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  ASSERT_EQ(plan.change->peers.size(), 1u);
  EXPECT_EQ(plan.change->peers[0].public_key, pk(2));
  EXPECT_TRUE(plan.change->peers[0].remove);
  EXPECT_EQ(plan.peers_removed, 1u);
}

TEST(PlanDevice, ListenPortAndKeyChangesAreDeviceLevel) {
  auto want = device_on(51999);
  want.private_key = keys::PrivateKey::generate();
  auto have = device_on(51820);
  have.public_key = pk(9);
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  EXPECT_EQ(plan.change->listen_port, std::optional<std::uint16_t>(51999));
  ASSERT_TRUE(plan.change->private_key);
  EXPECT_TRUE(plan.change->peers.empty());

  // Same key already on the device: nothing to send.
  auto have2 = device_on(51999);
  have2.public_key = want.private_key->public_key();
  EXPECT_FALSE(plan_device(want, have2).change);
}

TEST(PlanDevice, EmptyDesiredRemovesEveryPeerOneByOne) {
  auto want = device();
  auto have = device(peer(1, nullptr, {"10.1.0.0/24"}), peer(2, nullptr, {"10.2.0.0/24"}), peer(3, nullptr, {}));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  EXPECT_FALSE(plan.change->replace_peers);
  EXPECT_EQ(plan.change->peers.size(), 3u);
  for (const auto& p : plan.change->peers) EXPECT_TRUE(p.remove);
}

// WireGuard roams: a peer's authenticated packets from a new address move
// its endpoint on the device. The planner sets an endpoint when the peer is
// added or its desired endpoint moves from the one last applied, never
// because the device's differs.
TEST(PlanDeviceEndpoints, ARoamedEndpointIsLeftAlone) {
  auto want = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}));
  auto have = device(peer(1, "192.0.2.7:40001", {"10.244.1.0/24"}));  // roamed
  AppliedEndpoints applied{{pk(1), E("10.0.0.1:51820")}};
  auto plan = plan_device(want, have, applied);
  EXPECT_FALSE(plan.change);
  EXPECT_EQ(plan.endpoints, applied);

  // Another field of the roamed peer changes: that field alone is sent.
  auto want2 = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24", "10.244.9.0/24"}));
  auto plan2 = plan_device(want2, have, applied);
  ASSERT_TRUE(plan2.change);
  ASSERT_EQ(plan2.change->peers.size(), 1u);
  EXPECT_FALSE(plan2.change->peers[0].endpoint);
  EXPECT_TRUE(plan2.change->peers[0].replace_allowed_ips);
}

TEST(PlanDeviceEndpoints, ADesiredChangeIsAppliedOverARoamedOne) {
  auto want = device(peer(1, "10.0.0.9:51820", {"10.244.1.0/24"}));
  auto have = device(peer(1, "192.0.2.7:40001", {"10.244.1.0/24"}));
  AppliedEndpoints applied{{pk(1), E("10.0.0.1:51820")}};
  auto plan = plan_device(want, have, applied);
  ASSERT_TRUE(plan.change);
  ASSERT_EQ(plan.change->peers.size(), 1u);
  EXPECT_TRUE(plan.change->peers[0].update_only);
  EXPECT_EQ(plan.change->peers[0].endpoint, E("10.0.0.9:51820"));
  EXPECT_EQ(plan.endpoints, (AppliedEndpoints{{pk(1), E("10.0.0.9:51820")}}));
}

TEST(PlanDeviceEndpoints, ADesiredChangeToWhereThePeerRoamedSendsNothing) {
  auto want = device(peer(1, "192.0.2.7:40001", {"10.244.1.0/24"}));
  auto have = device(peer(1, "192.0.2.7:40001", {"10.244.1.0/24"}));
  auto plan = plan_device(want, have, {{pk(1), E("10.0.0.1:51820")}});
  EXPECT_FALSE(plan.change);
  EXPECT_EQ(plan.endpoints, (AppliedEndpoints{{pk(1), E("192.0.2.7:40001")}}));
}

TEST(PlanDeviceEndpoints, ANewPeerGetsItsEndpoint) {
  auto want = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}), peer(2, "10.0.0.2:51820", {"10.244.2.0/24"}));
  auto have = device(peer(1, "192.0.2.7:40001", {"10.244.1.0/24"}));
  // Peer 2 was on the device before and someone removed it (`wg set ...
  // remove`): its memory says the same endpoint, and it is still added with it.
  AppliedEndpoints applied{{pk(1), E("10.0.0.1:51820")}, {pk(2), E("10.0.0.2:51820")}};
  auto plan = plan_device(want, have, applied);
  ASSERT_TRUE(plan.change);
  ASSERT_EQ(plan.change->peers.size(), 1u);
  EXPECT_EQ(plan.change->peers[0].public_key, pk(2));
  EXPECT_FALSE(plan.change->peers[0].update_only);
  EXPECT_EQ(plan.change->peers[0].endpoint, E("10.0.0.2:51820"));
  EXPECT_EQ(plan.peers_added, 1u);
}

TEST(PlanDeviceEndpoints, APeerRemovedAndAddedAgainGetsItsEndpointAgain) {
  AppliedEndpoints applied;
  auto want = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}));
  auto added = plan_device(want, device(), applied);
  ASSERT_TRUE(added.change);
  applied = added.endpoints;
  EXPECT_EQ(applied.count(pk(1)), 1u);

  // It roamed, then its record went away: removed, and forgotten.
  auto roamed = device(peer(1, "192.0.2.7:40001", {"10.244.1.0/24"}));
  auto removed = plan_device(device(), roamed, applied);
  ASSERT_TRUE(removed.change);
  EXPECT_TRUE(removed.change->peers.at(0).remove);
  applied = removed.endpoints;
  EXPECT_TRUE(applied.empty());

  // Back again: added with the desired endpoint, not the one it had roamed to.
  auto again = plan_device(want, device(), applied);
  ASSERT_TRUE(again.change);
  ASSERT_EQ(again.change->peers.size(), 1u);
  EXPECT_FALSE(again.change->peers[0].update_only);
  EXPECT_EQ(again.change->peers[0].endpoint, E("10.0.0.1:51820"));

  // Removed and back within one pass (the removal never reached the device,
  // which still has the roamed peer): forgotten, so the endpoint is set.
  auto quick = plan_device(want, roamed, removed.endpoints);
  ASSERT_TRUE(quick.change);
  EXPECT_EQ(quick.change->peers.at(0).endpoint, E("10.0.0.1:51820"));
}

TEST(PlanDeviceEndpoints, WithoutMemoryTheDevicesEndpointIsCompared) {
  // A first pass (meshd started over a device that kept its peers): the
  // desired endpoint is set where the device's differs, and remembered.
  auto want = device(peer(1, "10.0.0.1:51820", {"10.244.1.0/24"}), peer(2, nullptr, {"10.244.2.0/24"}));
  auto have = device(peer(1, "192.0.2.7:40001", {"10.244.1.0/24"}), peer(2, "192.0.2.8:40002", {"10.244.2.0/24"}));
  auto plan = plan_device(want, have);
  ASSERT_TRUE(plan.change);
  ASSERT_EQ(plan.change->peers.size(), 1u);
  EXPECT_EQ(plan.change->peers[0].endpoint, E("10.0.0.1:51820"));
  // A peer with no desired endpoint keeps whatever it has and is not remembered.
  EXPECT_EQ(plan.endpoints, (AppliedEndpoints{{pk(1), E("10.0.0.1:51820")}}));
}

nl::Route route(const char* dst, int oif, std::uint8_t proto = nl::kMeshdRouteProtocol,
                const char* src = nullptr) {
  nl::Route r;
  r.dst = P(dst);
  r.oif = oif;
  r.protocol = proto;
  r.scope = 253;
  if (src) r.prefsrc = *IpAddress::parse(src);
  return r;
}

TEST(PlanRoutes, AddsMissingRemovesOnlyOurStaleOnes) {
  std::vector<nl::Route> want{route("10.244.2.0/24", 7), route("10.244.3.0/24", 7)};
  std::vector<nl::Route> have{route("10.244.2.0/24", 7),
                              route("10.244.9.0/24", 7),              // ours, stale
                              route("192.168.5.0/24", 2, 4),          // static route (proto static)
                              route("10.250.0.0/16", 3, 186)};        // a BGP daemon's
  auto ops = plan_routes(want, have);
  ASSERT_EQ(ops.add.size(), 1u);
  EXPECT_EQ(ops.add[0].dst, P("10.244.3.0/24"));
  ASSERT_EQ(ops.remove.size(), 1u);
  EXPECT_EQ(ops.remove[0].dst, P("10.244.9.0/24"));
  EXPECT_TRUE(ops.replace.empty());
}

TEST(PlanRoutes, ReplacesOursWhenAttributesDriftButNeverOthers) {
  std::vector<nl::Route> want{route("10.244.2.0/24", 7, nl::kMeshdRouteProtocol, "10.244.1.1"),
                              route("10.244.3.0/24", 7)};
  std::vector<nl::Route> have{route("10.244.2.0/24", 5),        // ours, wrong device
                              route("10.244.3.0/24", 4, 3)};    // boot-proto route of someone else
  auto ops = plan_routes(want, have);
  ASSERT_EQ(ops.replace.size(), 1u);
  EXPECT_EQ(ops.replace[0].oif, 7);
  EXPECT_TRUE(ops.add.empty());
  EXPECT_TRUE(ops.remove.empty());
  ASSERT_EQ(ops.conflicts.size(), 1u);  // the boot-proto route, reported
  EXPECT_EQ(ops.conflicts[0].holder.protocol, 3);
}

// IPv6 routes come back from the kernel with metric 1024 and universe scope,
// whatever was asked: planned in that form, a converged table stays untouched.
TEST(PlanRoutes, Ipv6RouteAsTheKernelStoresItIsInSync) {
  nl::Route asked = route("fd77:2::/64", 7);  // scope link, metric 0
  nl::Route stored = asked;
  stored.scope = 0;
  stored.metric = 1024;
  struct Case {
    const char* name;
    std::vector<nl::Route> want;
  };
  for (const Case& c : {Case{"as asked", {asked}}, Case{"kernel form", {kernel_route_form(asked)}}}) {
    std::vector<nl::Route> have{stored, route("10.244.2.0/24", 7)};
    std::vector<nl::Route> want = c.want;
    want.push_back(route("10.244.2.0/24", 7));
    auto ops = plan_routes(want, have);
    EXPECT_TRUE(ops.empty()) << c.name << ": " << ops.add.size() << " add, " << ops.replace.size()
                             << " replace, " << ops.remove.size() << " remove";
    EXPECT_TRUE(ops.conflicts.empty()) << c.name;
  }
  // Missing: added once, in the stored form; stale: removed with its metric.
  auto ops = plan_routes(std::vector<nl::Route>{asked}, std::vector<nl::Route>{});
  ASSERT_EQ(ops.add.size(), 1u);
  EXPECT_EQ(ops.add[0].metric, 1024u);
  ops = plan_routes(std::vector<nl::Route>{}, std::vector<nl::Route>{stored});
  ASSERT_EQ(ops.remove.size(), 1u);
  EXPECT_EQ(ops.remove[0].metric, 1024u);
  // A user's IPv6 route in another metric slot is not ours and no conflict.
  nl::Route user = stored;
  user.protocol = 4;
  user.metric = 100;
  user.oif = 2;
  ops = plan_routes(std::vector<nl::Route>{asked}, std::vector<nl::Route>{stored, user});
  EXPECT_TRUE(ops.empty());
  EXPECT_TRUE(ops.conflicts.empty());
}

TEST(PlanRoutes, ForeignRouteInOurSlotIsAConflictNotAnOperation) {
  struct Case {
    const char* name;
    nl::Route holder;
  };
  nl::Route same_but_static = route("10.244.2.0/24", 7, 4);
  nl::Route other_dev = route("10.244.2.0/24", 2, 186);
  nl::Route v6_boot = route("fd77:2::/64", 3, 3);
  v6_boot.scope = 0;
  v6_boot.metric = 1024;
  for (const Case& c : {Case{"static, our attributes", same_but_static}, Case{"bgp, other device", other_dev},
                        Case{"v6 boot", v6_boot}}) {
    std::vector<nl::Route> want{route(c.holder.dst.address.is_v6() ? "fd77:2::/64" : "10.244.2.0/24", 7),
                                route("10.244.3.0/24", 7)};
    std::vector<nl::Route> have{c.holder, route("10.244.3.0/24", 7)};
    auto ops = plan_routes(want, have);
    EXPECT_TRUE(ops.empty()) << c.name << ": someone else's route must not be touched";
    ASSERT_EQ(ops.conflicts.size(), 1u) << c.name;
    EXPECT_EQ(ops.conflicts[0].holder, kernel_route_form(c.holder)) << c.name;
    EXPECT_EQ(ops.conflicts[0].wanted.dst, c.holder.dst) << c.name;
    EXPECT_EQ(ops.conflicts[0].wanted.oif, 7) << c.name;
  }
  // Another metric is another slot: ours is added next to it.
  nl::Route elsewhere = route("10.244.2.0/24", 2, 4);
  elsewhere.metric = 100;
  auto ops = plan_routes(std::vector<nl::Route>{route("10.244.2.0/24", 7)}, std::vector<nl::Route>{elsewhere});
  EXPECT_EQ(ops.add.size(), 1u);
  EXPECT_TRUE(ops.conflicts.empty());
}

TEST(RouteProtocolName, NamesAsIproute2) {
  EXPECT_EQ(route_protocol_name(4), "static (4)");
  EXPECT_EQ(route_protocol_name(2), "kernel (2)");
  EXPECT_EQ(route_protocol_name(186), "bgp (186)");
  EXPECT_EQ(route_protocol_name(250), "250");
}

TEST(PlanRoutes, NothingToDo) {
  std::vector<nl::Route> want{route("10.244.2.0/24", 7)};
  EXPECT_TRUE(plan_routes(want, want).empty());
}

TEST(PlanAddresses, AddsAndRemoves) {
  std::vector<IpPrefix> want{P("10.244.1.1/32")};
  std::vector<IpPrefix> have{P("10.99.0.1/32")};
  auto ops = plan_addresses(want, have);
  EXPECT_EQ(ops.add, want);
  EXPECT_EQ(ops.remove, have);
  EXPECT_TRUE(plan_addresses(want, want).empty());
}

TEST(PlanAddresses, LeavesTheKernelsIpv6LinkLocalAddressAlone) {
  std::vector<IpPrefix> want{P("10.244.1.1/32")};
  std::vector<IpPrefix> have{P("10.244.1.1/32"), P("fe80::487:145:5ed6:b085/64"), P("febf::1/64"),
                             P("fec0::1/64"), P("fd77::1/64")};
  auto ops = plan_addresses(want, have);
  EXPECT_TRUE(ops.add.empty());
  EXPECT_EQ(ops.remove, (std::vector<IpPrefix>{P("fec0::1/64"), P("fd77::1/64")}));
}

TEST(PlanLink, MtuAndUp) {
  nl::Link l;
  l.mtu = 1420;
  l.up = false;
  auto ops = plan_link(1380, l);
  EXPECT_EQ(ops.set_mtu, std::optional<unsigned>(1380));
  EXPECT_TRUE(ops.set_up);
  l.up = true;
  l.mtu = 1380;
  EXPECT_TRUE(plan_link(1380, l).empty());
  EXPECT_TRUE(plan_link(0, l).empty());  // 0 = leave the MTU alone
}

}  // namespace
}  // namespace meshd::dataplane
