// Pure rtnetlink message building and parsing (netlink/rtnl_msg.h): what we send
// is what we read back, and malformed replies are refused, not misread.
#include "netlink/rtnl.h"

#include "tests/unit/rtnl/replay_transport.h"

#include <gtest/gtest.h>

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstring>
#include <vector>

using meshd::IpAddress;
using meshd::IpPrefix;
using namespace meshd::nl;

namespace {

IpPrefix P(const char* s) { return IpPrefix::parse(s).value(); }
IpAddress A(const char* s) { return IpAddress::parse(s).value(); }

struct Buf {
  std::vector<std::uint8_t> bytes = std::vector<std::uint8_t>(kRtnlMsgBufferSize);
  std::span<std::uint8_t> span() { return bytes; }
};

// The parsers take what the kernel sends (RTM_NEW*); requests are built as
// the same types, so a built request is also a valid reply to parse.
Route round_trip(const Route& r) {
  Buf b;
  nlmsghdr* nlh = build_route_msg(b.span(), RTM_NEWROUTE, NLM_F_CREATE, r).value();
  return parse_route(*nlh).value().route;
}

TEST(RouteMsg, Ipv4RoundTripWithGatewaySourceMetricScope) {
  Route r;
  r.dst = P("10.1.0.0/24");
  r.oif = 7;
  r.gateway = A("10.0.0.2");
  r.prefsrc = A("10.0.0.1");
  r.metric = 100;
  EXPECT_EQ(round_trip(r), r);

  Route link;
  link.dst = P("10.2.0.0/16");
  link.oif = 3;
  link.scope = RT_SCOPE_LINK;
  link.protocol = kMeshdCniRouteProtocol;
  EXPECT_EQ(round_trip(link), link);
}

TEST(RouteMsg, Ipv6RoundTripWithGatewayAndOnlink) {
  Route r;
  r.dst = P("fd10::/64");
  r.oif = 4;
  r.gateway = A("fe80::1");
  r.prefsrc = A("fd00::1");
  r.onlink = true;
  r.metric = 1024;
  EXPECT_EQ(round_trip(r), r);
}

TEST(RouteMsg, DefaultRouteAndLargeTableNumbers) {
  Route r;
  r.dst = P("0.0.0.0/0");
  r.gateway = A("192.0.2.1");
  r.oif = 2;
  r.table = 1000;  // > 255: only RTA_TABLE can carry it
  Buf b;
  nlmsghdr* nlh = build_route_msg(b.span(), RTM_NEWROUTE, 0, r).value();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(rtm->rtm_table, RT_TABLE_UNSPEC);
  EXPECT_EQ(parse_route(*nlh).value().route, r);
}

TEST(RouteMsg, DestinationHostBitsAreCleared) {
  Route r;
  r.dst = P("10.1.0.77/24");
  r.oif = 1;
  EXPECT_EQ(round_trip(r).dst, P("10.1.0.0/24"));
}

TEST(RouteMsg, DeleteMatchesAnyScopeAndKeepsProtocol) {
  Route r;
  r.dst = P("10.1.0.0/24");
  r.scope = RT_SCOPE_LINK;
  Buf b;
  nlmsghdr* nlh = build_route_msg(b.span(), RTM_DELROUTE, 0, r).value();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(rtm->rtm_scope, RT_SCOPE_NOWHERE);
  // The protocol is what keeps a delete from removing someone else's route.
  EXPECT_EQ(rtm->rtm_protocol, kMeshdRouteProtocol);
  EXPECT_EQ(nlh->nlmsg_flags & NLM_F_REQUEST, NLM_F_REQUEST);
}

TEST(RouteMsg, BuildRefusesInconsistentRoutes) {
  Buf b;
  Route mixed;
  mixed.dst = P("10.1.0.0/24");
  mixed.gateway = A("fd00::1");
  auto r = build_route_msg(b.span(), RTM_NEWROUTE, 0, mixed);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EINVAL));
  EXPECT_NE(r.error().message.find("10.1.0.0/24 via fd00::1"), std::string::npos) << r.error().message;

  Route unset;  // no destination family
  EXPECT_TRUE(build_route_msg(b.span(), RTM_NEWROUTE, 0, unset).error().is(EINVAL));

  Route ok;
  ok.dst = P("10.1.0.0/24");
  std::vector<std::uint8_t> tiny(24);
  EXPECT_TRUE(build_route_msg(tiny, RTM_NEWROUTE, 0, ok).error().is(EMSGSIZE));
  std::vector<std::uint8_t> small(NLMSG_HDRLEN + sizeof(rtmsg) + 8);  // header fits, attributes do not
  EXPECT_TRUE(build_route_msg(small, RTM_NEWROUTE, 0, ok).error().is(EMSGSIZE));
}

TEST(RouteMsg, ParseReportsWhatARouteCannotHold) {
  Route r;
  r.dst = P("10.1.0.0/24");
  Buf b;
  nlmsghdr* nlh = build_route_msg(b.span(), RTM_NEWROUTE, 0, r).value();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  rtm->rtm_type = RTN_BLACKHOLE;
  rtm->rtm_flags |= RTM_F_CLONED;
  nlattr* mx = mnl_attr_nest_start(nlh, RTA_METRICS);
  mnl_attr_put_u32(nlh, RTAX_MTU, 1380);
  mnl_attr_nest_end(nlh, mx);
  auto pr = parse_route(*nlh).value();
  EXPECT_EQ(pr.type, RTN_BLACKHOLE);
  EXPECT_TRUE(pr.cloned);
  EXPECT_EQ(pr.mtu, 1380u);
  EXPECT_FALSE(pr.multipath);
}

TEST(RouteMsg, MalformedRoutesAreRejected) {
  Route r;
  r.dst = P("10.1.0.0/24");
  r.gateway = A("10.0.0.1");
  Buf b;
  nlmsghdr* nlh = build_route_msg(b.span(), RTM_NEWROUTE, 0, r).value();

  // Gateway attribute of the wrong size for the family.
  Buf c = b;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(reinterpret_cast<nlmsghdr*>(c.bytes.data())));
  rtm->rtm_family = AF_INET6;
  rtm->rtm_dst_len = 24;
  EXPECT_TRUE(parse_route(*reinterpret_cast<nlmsghdr*>(c.bytes.data())).error().is(EBADMSG));

  // A prefix length beyond the family's.
  Buf d = b;
  static_cast<rtmsg*>(mnl_nlmsg_get_payload(reinterpret_cast<nlmsghdr*>(d.bytes.data())))->rtm_dst_len = 33;
  EXPECT_TRUE(parse_route(*reinterpret_cast<nlmsghdr*>(d.bytes.data())).error().is(EBADMSG));

  // Unknown family (e.g. an MPLS route) and a non-route message.
  Buf e = b;
  static_cast<rtmsg*>(mnl_nlmsg_get_payload(reinterpret_cast<nlmsghdr*>(e.bytes.data())))->rtm_family = 28;
  EXPECT_TRUE(parse_route(*reinterpret_cast<nlmsghdr*>(e.bytes.data())).error().is(EAFNOSUPPORT));
  Buf f = b;
  reinterpret_cast<nlmsghdr*>(f.bytes.data())->nlmsg_type = RTM_NEWLINK;
  EXPECT_TRUE(parse_route(*reinterpret_cast<nlmsghdr*>(f.bytes.data())).error().is(EBADMSG));

  // Every truncation, in a buffer exactly that long (ASan sees any over-read):
  // either refused or parsed from what is there, never more.
  const std::size_t full = nlh->nlmsg_len;
  for (std::size_t len = sizeof(nlmsghdr); len < full; ++len) {
    std::vector<std::uint8_t> cut(b.bytes.begin(), b.bytes.begin() + static_cast<long>(len));
    auto* h = reinterpret_cast<nlmsghdr*>(cut.data());
    h->nlmsg_len = static_cast<std::uint32_t>(len);
    auto pr = parse_route(*h);
    if (len < NLMSG_HDRLEN + sizeof(rtmsg)) {
      ASSERT_FALSE(pr) << len;
      EXPECT_TRUE(pr.error().is(EBADMSG));
    } else if (pr) {
      EXPECT_EQ(pr->route.dst.length, 24);
    }
  }
}

TEST(AddressMsg, RoundTripBothFamilies) {
  for (const char* p : {"10.77.0.1/24", "fd77::1/64", "192.0.2.5/32"}) {
    Address a{5, P(p)};
    Buf b;
    nlmsghdr* nlh = build_address_msg(b.span(), RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, a).value();
    EXPECT_EQ(parse_address(*nlh).value(), a) << p;
  }
}

TEST(AddressMsg, LocalWinsOverPeerAndIpv6SendsOnlyAddress) {
  Buf b;
  nlmsghdr* nlh = mnl_nlmsg_put_header(b.bytes.data());
  nlh->nlmsg_type = RTM_NEWADDR;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = 32;
  ifa->ifa_index = 9;
  IpAddress peer = A("10.0.0.2"), local = A("10.0.0.1");
  mnl_attr_put(nlh, IFA_ADDRESS, 4, peer.bytes.data());  // point-to-point peer
  mnl_attr_put(nlh, IFA_LOCAL, 4, local.bytes.data());
  EXPECT_EQ(parse_address(*nlh).value().prefix, P("10.0.0.1/32"));

  Buf c;
  nlh = mnl_nlmsg_put_header(c.bytes.data());
  nlh->nlmsg_type = RTM_DELADDR;
  ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET6;
  ifa->ifa_prefixlen = 64;
  ifa->ifa_index = 3;
  IpAddress v6 = A("fd00::5");
  mnl_attr_put(nlh, IFA_ADDRESS, 16, v6.bytes.data());
  auto a = parse_address(*nlh).value();
  EXPECT_EQ(a.prefix, P("fd00::5/64"));
  EXPECT_EQ(a.ifindex, 3);

  // No address at all, or a 16-byte address on an IPv4 message: refused.
  Buf d;
  nlh = mnl_nlmsg_put_header(d.bytes.data());
  nlh->nlmsg_type = RTM_NEWADDR;
  ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  EXPECT_TRUE(parse_address(*nlh).error().is(EBADMSG));
  mnl_attr_put(nlh, IFA_LOCAL, 16, v6.bytes.data());
  EXPECT_TRUE(parse_address(*nlh).error().is(EBADMSG));
}

TEST(AddressMsg, BuildRefusesUnsetFamily) {
  Buf b;
  Address a;
  a.ifindex = 1;
  EXPECT_TRUE(build_address_msg(b.span(), RTM_NEWADDR, 0, a).error().is(EINVAL));
}

TEST(LinkMsg, RoundTripNameMtuKindUp) {
  Link l;
  l.index = 12;
  l.name = "wg0";
  l.kind = "wireguard";
  l.mtu = 1420;
  l.up = true;
  Buf b;
  nlmsghdr* nlh = build_link_msg(b.span(), RTM_NEWLINK, 0, l, true).value();
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(ifi->ifi_change, static_cast<unsigned>(IFF_UP));  // touches IFF_UP and nothing else
  Link back = parse_link(*nlh).value();
  EXPECT_EQ(back.index, 12);
  EXPECT_EQ(back.name, "wg0");
  EXPECT_EQ(back.kind, "wireguard");
  EXPECT_EQ(back.mtu, 1420u);
  EXPECT_TRUE(back.up);
  EXPECT_EQ(back.flags & IFF_UP, static_cast<unsigned>(IFF_UP));

  // Without set_up_flag the request leaves the up/down state alone.
  nlh = build_link_msg(b.span(), RTM_NEWLINK, 0, l, false).value();
  EXPECT_EQ(static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh))->ifi_change, 0u);
}

// The hardware address comes with every link reply (IFLA_ADDRESS): the CNI
// plugin reports the pod's MAC from it.
TEST(LinkMsg, HardwareAddressIsReadFromTheReply) {
  Link l;
  l.index = 7;
  l.name = "eth0";
  Buf b;
  nlmsghdr* nlh = build_link_msg(b.span(), RTM_NEWLINK, 0, l).value();
  EXPECT_EQ(parse_link(*nlh).value().mac, "");  // none: a tun, or a request
  const std::uint8_t mac[6] = {0x02, 0x42, 0xac, 0x11, 0x00, 0xff};
  mnl_attr_put(nlh, IFLA_ADDRESS, sizeof mac, mac);
  EXPECT_EQ(parse_link(*nlh).value().mac, "02:42:ac:11:00:ff");
}

TEST(LinkMsg, NamesAreCheckedAndNamelessLinksRefused) {
  Buf b;
  Link l;
  l.name = "sixteen-chars-xx";
  EXPECT_TRUE(build_link_msg(b.span(), RTM_NEWLINK, 0, l).error().is(EINVAL));
  l.name = "fifteen-chars-x";
  EXPECT_TRUE(build_link_msg(b.span(), RTM_NEWLINK, 0, l));
  l.name = "a/b";
  EXPECT_TRUE(build_link_msg(b.span(), RTM_NEWLINK, 0, l).error().is(EINVAL));
  l.name = "wg%d";  // a template to the kernel: every retry would make a new link
  EXPECT_TRUE(build_link_msg(b.span(), RTM_NEWLINK, 0, l).error().is(EINVAL));

  Link anon;
  anon.index = 3;  // by index only: a GETLINK request, not a reply we can use
  nlmsghdr* nlh = build_link_msg(b.span(), RTM_GETLINK, 0, anon).value();
  nlh->nlmsg_type = RTM_NEWLINK;
  EXPECT_TRUE(parse_link(*nlh).error().is(EBADMSG));
}

// A nested attribute that runs past its nest is a malformed message, not a
// link without a kind (which would read as "not ours" to a caller matching
// on the kind).
TEST(LinkMsg, KindOverrunningItsLinkinfoIsRefusedNotOverread) {
  Buf b;
  Link l;
  l.name = "v0";
  l.kind = "veth";
  nlmsghdr* nlh = build_link_msg(b.span(), RTM_NEWLINK, 0, l).value();
  // Make the IFLA_INFO_KIND inside IFLA_LINKINFO claim more than the nest holds.
  auto* linkinfo = static_cast<nlattr*>(mnl_nlmsg_get_payload_tail(nlh));
  linkinfo = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(linkinfo) - MNL_ALIGN(sizeof(nlattr) + 5) -
                                       sizeof(nlattr));
  ASSERT_EQ(mnl_attr_get_type(linkinfo), IFLA_LINKINFO);
  auto* kind = static_cast<nlattr*>(mnl_attr_get_payload(linkinfo));
  kind->nla_len = 200;
  auto back = parse_link(*nlh);
  ASSERT_FALSE(back);
  EXPECT_TRUE(back.error().is(EBADMSG));
  EXPECT_NE(back.error().message.find("v0"), std::string::npos) << back.error().message;
}

// Cuts the built message `msg` 1 to 3 bytes short (inside its last
// attribute), nlmsg_len too, each in a buffer exactly that long, and expects
// `parse` to refuse every cut with EBADMSG.
template <class Parse>
void expect_every_cut_refused(const nlmsghdr* msg, Parse parse, const char* what) {
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(msg);
  for (std::size_t drop = 1; drop < 4; ++drop) {
    std::vector<std::uint8_t> cut(bytes, bytes + msg->nlmsg_len - drop);
    reinterpret_cast<nlmsghdr*>(cut.data())->nlmsg_len = static_cast<std::uint32_t>(cut.size());
    auto r = parse(*reinterpret_cast<const nlmsghdr*>(cut.data()));
    ASSERT_FALSE(r) << what << " cut by " << drop;
    EXPECT_TRUE(r.error().is(EBADMSG)) << r.error().message;
  }
}

// A message cut inside its last attribute (a short read, a fuzzer) is refused
// by every parser: before the one strict walker, a cut gateway, MTU or
// address silently disappeared and the rest parsed as a different object.
TEST(RtnlMsg, AnAttributeCutShortIsRefusedByEveryParser) {
  Buf rb, lb, ab;
  Route r;
  r.dst = P("10.1.0.0/24");
  r.oif = 4;
  r.gateway = A("10.0.0.1");  // the last attribute: RTA_GATEWAY
  expect_every_cut_refused(build_route_msg(rb.span(), RTM_NEWROUTE, 0, r).value(),
                           [](const nlmsghdr& m) { return parse_route(m); }, "route");
  Link l;
  l.name = "wg0";
  l.mtu = 1420;  // IFLA_MTU comes after IFLA_IFNAME
  expect_every_cut_refused(build_link_msg(lb.span(), RTM_NEWLINK, 0, l).value(),
                           [](const nlmsghdr& m) { return parse_link(m); }, "link");
  expect_every_cut_refused(build_address_msg(ab.span(), RTM_NEWADDR, 0, Address{2, P("10.0.0.1/24")}).value(),
                           [](const nlmsghdr& m) { return parse_address(m); }, "address");
}

// A route's RTA_METRICS nest whose RTAX_MTU runs past it: refused, not read
// as a route without an MTU.
TEST(RouteMsg, MetricsOverrunningTheirNestAreRefused) {
  Buf b;
  nlmsghdr* nlh = mnl_nlmsg_put_header(b.bytes.data());
  nlh->nlmsg_type = RTM_NEWROUTE;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_type = RTN_UNICAST;
  nlattr* mx = mnl_attr_nest_start(nlh, RTA_METRICS);
  mnl_attr_put_u32(nlh, RTAX_MTU, 1400);
  mnl_attr_nest_end(nlh, mx);
  EXPECT_EQ(parse_route(*nlh).value().mtu, 1400u);
  static_cast<nlattr*>(mnl_attr_get_payload(mx))->nla_len = 12;  // 4 bytes past the nest
  auto pr = parse_route(*nlh);
  ASSERT_FALSE(pr);
  EXPECT_TRUE(pr.error().is(EBADMSG)) << pr.error().message;
}

TEST(EventMsg, EveryKindBecomesAnEvent) {
  Buf b;
  Link l;
  l.index = 4;
  l.name = "e0";
  nlmsghdr* nlh = build_link_msg(b.span(), RTM_DELLINK, 0, l).value();
  Event ev = parse_event(*nlh).value();
  EXPECT_EQ(ev.type, Event::Type::kLink);
  EXPECT_TRUE(ev.removed);
  EXPECT_EQ(ev.ifname, "e0");
  EXPECT_EQ(ev.ifindex, 4);

  nlh = build_address_msg(b.span(), RTM_NEWADDR, 0, Address{4, P("10.0.0.1/24")}).value();
  ev = parse_event(*nlh).value();
  EXPECT_EQ(ev.type, Event::Type::kAddress);
  EXPECT_FALSE(ev.removed);
  ASSERT_TRUE(ev.address);
  EXPECT_EQ(ev.address->prefix, P("10.0.0.1/24"));

  Route r;
  r.dst = P("10.9.0.0/24");
  r.oif = 4;
  nlh = build_route_msg(b.span(), RTM_DELROUTE, 0, r).value();
  ev = parse_event(*nlh).value();
  EXPECT_EQ(ev.type, Event::Type::kRoute);
  EXPECT_TRUE(ev.removed);
  EXPECT_EQ(ev.ifindex, 4);
  ASSERT_TRUE(ev.route);
  EXPECT_EQ(ev.route->protocol, kMeshdRouteProtocol);

  nlh->nlmsg_type = NLMSG_NOOP;
  EXPECT_TRUE(parse_event(*nlh).error().is(EBADMSG));
}

TEST(DescribeRoute, ReadsLikeIproute2) {
  Route r;
  r.dst = P("10.1.0.0/24");
  r.gateway = A("10.0.0.2");
  r.oif = 3;
  EXPECT_EQ(describe_route(r), "10.1.0.0/24 via 10.0.0.2 dev #3 proto 77");
  EXPECT_EQ(describe_route(r, "wg0"), "10.1.0.0/24 via 10.0.0.2 dev wg0 proto 77");
  r.table = 100;
  r.metric = 5;
  r.onlink = true;
  EXPECT_EQ(describe_route(r, "wg0"), "10.1.0.0/24 via 10.0.0.2 dev wg0 metric 5 onlink proto 77 table 100");
}

// RTM_NEWLINK "wg%d" would make the kernel pick wg0, then wg1 on a retry...:
// the name is refused before anything reaches the kernel.
TEST(RtnlNames, TemplatesAndOptionLikeNamesNeverReachTheKernel) {
  meshd::testing::ReplayTransport* t = nullptr;
  Rtnl rtnl = Rtnl::over(meshd::testing::replay_socket({}, &t));
  for (const char* name : {"wg%d", "-wg0", "wg 0", "..", ""}) {
    auto r = rtnl.create_link(name, "wireguard");
    ASSERT_FALSE(r) << name;
    EXPECT_TRUE(r.error().is(EINVAL)) << name;
    EXPECT_NE(r.error().message.find("interface name"), std::string::npos) << r.error().message;
    EXPECT_TRUE(rtnl.get_link(name).error().is(EINVAL)) << name;
    EXPECT_TRUE(rtnl.create_veth("v0", name).error().is(EINVAL)) << name;
  }
  EXPECT_TRUE(t->sent.empty());
  // A valid name goes out (and, with nobody answering, times out).
  EXPECT_TRUE(rtnl.create_link("wg0", "wireguard").error().is(ETIMEDOUT));
  EXPECT_EQ(t->sent.size(), 1u);
}

}  // namespace
