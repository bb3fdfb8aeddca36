// rtnetlink against the real kernel, each test inside namespaces of its own
// (tests/support/netns.h), cross-checked with `ip -j` where the kernel's own
// view matters.
#include "netlink/netns.h"
#include "netlink/nl_socket.h"
#include "netlink/rtnl.h"
#include "tests/support/netns.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <boost/json.hpp>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <cstdio>

using meshd::IpAddress;
using meshd::IpPrefix;
using meshd::testing::Netns;
using namespace meshd::nl;

namespace {

IpPrefix P(const char* s) { return IpPrefix::parse(s).value(); }
IpAddress A(const char* s) { return IpAddress::parse(s).value(); }

boost::json::array ip_json(const Netns& ns, const std::string& args) {
  std::string out = meshd::testing::sh_out("ip -n " + ns.name() + " -j " + args);
  if (out.find_first_not_of(" \n") == std::string::npos) return {};
  return boost::json::parse(out).as_array();
}

class RtnlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(meshd::testing::is_root(), "needs root");
    ns_ = std::make_unique<Netns>("rtnl");
    auto r = Rtnl::open_in_netns(ns_->fd());
    ASSERT_TRUE(r) << r.error().message;
    rt_ = std::make_unique<Rtnl>(std::move(*r));
  }

  // A veth pair inside the namespace, both ends up, with an address on `a`.
  int make_veth_with_address(const char* a, const char* b, const char* addr) {
    EXPECT_TRUE(rt_->create_veth(a, b));
    EXPECT_TRUE(rt_->set_up(a, true));
    EXPECT_TRUE(rt_->set_up(b, true));
    int idx = rt_->get_link(a).value().index;
    EXPECT_TRUE(rt_->add_address({idx, P(addr)}));
    return idx;
  }

  std::unique_ptr<Netns> ns_;
  std::unique_ptr<Rtnl> rt_;
};

TEST_F(RtnlTest, VethPairCreateListUpMtuDelete) {
  ASSERT_TRUE(rt_->create_veth("va0", "vb0", -1, 1400));
  auto links = rt_->list_links().value();
  auto find = [&](const std::string& n) {
    return std::find_if(links.begin(), links.end(), [&](const Link& l) { return l.name == n; });
  };
  ASSERT_NE(find("va0"), links.end());
  ASSERT_NE(find("vb0"), links.end());
  EXPECT_EQ(find("va0")->kind, "veth");
  EXPECT_EQ(find("va0")->mtu, 1400u);
  EXPECT_FALSE(find("va0")->up);
  EXPECT_EQ(find("lo")->kind, "");

  ASSERT_TRUE(rt_->set_up("va0", true));
  ASSERT_TRUE(rt_->set_mtu("va0", 1300));
  Link l = rt_->get_link("va0").value();
  EXPECT_TRUE(l.up);
  EXPECT_EQ(l.mtu, 1300u);
  EXPECT_EQ(rt_->get_link(l.index).value().name, "va0");

  // The kernel's own view agrees.
  auto j = ip_json(*ns_, "link show va0");
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0].at("mtu").as_int64(), 1300);
  EXPECT_NE(boost::json::serialize(j[0].at("flags")).find("\"UP\""), std::string::npos);

  ASSERT_TRUE(rt_->set_up("va0", false));
  EXPECT_FALSE(rt_->get_link("va0").value().up);

  ASSERT_TRUE(rt_->delete_link("va0"));
  auto gone = rt_->get_link("vb0");  // deleting one end removes the pair
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().is(ENODEV)) << gone.error().message;
  EXPECT_NE(gone.error().message.find("vb0"), std::string::npos);
  // Missing is success: a second delete is a no-op.
  EXPECT_TRUE(rt_->delete_link("va0"));
}

TEST_F(RtnlTest, ErrorsNameTheOperationAndObject) {
  auto r = rt_->set_mtu("nosuch0", 1400);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ENODEV));
  EXPECT_EQ(r.error().message.rfind("set link nosuch0 mtu 1400: ", 0), 0u) << r.error().message;

  auto bad = rt_->create_link("this-name-is-too-long", "veth");
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(EINVAL));

  ASSERT_TRUE(rt_->create_veth("dup0", "dup1"));
  auto dup = rt_->create_veth("dup0", "dup2");
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(EEXIST)) << dup.error().message;
}

TEST_F(RtnlTest, WireguardLinkIsMadeOrRefusedWithACleanError) {
  auto r = rt_->create_link("wg0", "wireguard");
  if (r) {
    // A kernel with the module (the VM, or a host that has it): the link is real.
    auto l = rt_->get_link("wg0");
    ASSERT_TRUE(l) << l.error().message;
    EXPECT_EQ(l->kind, "wireguard");
    EXPECT_TRUE(rt_->delete_link("wg0"));
    return;
  }
  EXPECT_TRUE(r.error().is(EOPNOTSUPP)) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("create link wg0 (wireguard): ", 0), 0u) << r.error().message;
  // The kernel's extended-ack text travels into the message.
  EXPECT_NE(r.error().message.find("kernel: "), std::string::npos) << r.error().message;
  std::printf("create wireguard link: %s\n", r.error().message.c_str());
  EXPECT_FALSE(rt_->get_link("wg0"));
}

TEST_F(RtnlTest, VethPeerCreatedInAnotherNetnsAndMovedBetweenThem) {
  Netns other("rtnlb");
  ASSERT_TRUE(rt_->create_veth("host0", "pod0", other.fd(), 1420));
  EXPECT_FALSE(rt_->get_link("pod0"));  // not here...
  auto rt2 = Rtnl::open_in_netns(other.fd()).value();
  Link pod = rt2.get_link("pod0").value();  // ...but there
  EXPECT_EQ(pod.kind, "veth");
  EXPECT_EQ(pod.mtu, 1420u);
  EXPECT_EQ(ip_json(other, "link show pod0").size(), 1u);

  // Back into the first namespace, then check both views.
  ASSERT_TRUE(rt2.move_to_netns("pod0", ns_->fd()));
  EXPECT_FALSE(rt2.get_link("pod0"));
  EXPECT_TRUE(rt_->get_link("pod0"));

  auto missing = rt2.move_to_netns("pod0", ns_->fd());
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(ENODEV));
}

TEST_F(RtnlTest, AddressesAddListDeleteAreIdempotent) {
  ASSERT_TRUE(rt_->create_veth("a0", "a1"));
  int idx = rt_->get_link("a0").value().index;
  Address v4{idx, P("10.77.0.1/24")};
  Address v6{idx, P("fd77::1/64")};
  ASSERT_TRUE(rt_->add_address(v4));
  ASSERT_TRUE(rt_->add_address(v4));  // already there = success
  ASSERT_TRUE(rt_->add_address(v6));

  auto addrs = rt_->list_addresses(idx).value();
  EXPECT_NE(std::find(addrs.begin(), addrs.end(), v4), addrs.end());
  EXPECT_NE(std::find(addrs.begin(), addrs.end(), v6), addrs.end());
  auto only4 = rt_->list_addresses(idx, AF_INET).value();
  ASSERT_EQ(only4.size(), 1u);
  EXPECT_EQ(only4[0], v4);
  // Other interfaces' addresses are not mixed in.
  for (const auto& a : rt_->list_addresses(idx).value()) EXPECT_EQ(a.ifindex, idx);
  EXPECT_EQ(rt_->list_addresses(0, AF_INET).value().size(), 2u);  // + 127.0.0.1 on lo

  auto j = ip_json(*ns_, "addr show dev a0");
  std::string s = boost::json::serialize(j);
  EXPECT_NE(s.find("\"10.77.0.1\""), std::string::npos);
  EXPECT_NE(s.find("\"fd77::1\""), std::string::npos);

  ASSERT_TRUE(rt_->delete_address(v4));
  ASSERT_TRUE(rt_->delete_address(v4));  // missing = success
  ASSERT_TRUE(rt_->delete_address(v6));
  auto left = rt_->list_addresses(idx).value();
  EXPECT_EQ(std::find(left.begin(), left.end(), v4), left.end());
  EXPECT_EQ(std::find(left.begin(), left.end(), v6), left.end());
  EXPECT_EQ(meshd::testing::sh_out("ip -n " + ns_->name() + " -4 addr show dev a0"), "");
}

TEST_F(RtnlTest, RoutesAddReplaceListByOurProtocolDelete) {
  int idx = make_veth_with_address("r0", "r1", "10.0.0.1/24");
  ASSERT_TRUE(rt_->add_address({idx, P("fd00::1/64")}));
  // Someone else's routes, one with the same destination we later delete.
  ASSERT_EQ(meshd::testing::sh("ip -n " + ns_->name() + " route add 10.9.0.0/24 dev r0 proto static"), 0);
  ASSERT_EQ(meshd::testing::sh("ip -n " + ns_->name() + " route add 10.8.0.0/24 dev r0 proto 78"), 0);

  Route a;
  a.dst = P("10.1.0.0/24");
  a.oif = idx;
  a.gateway = A("10.0.0.2");
  a.prefsrc = A("10.0.0.1");
  a.metric = 10;
  Route b;
  b.dst = P("10.2.0.0/16");
  b.oif = idx;
  b.scope = RT_SCOPE_LINK;
  Route c;  // onlink: gateway outside the interface's subnet
  c.dst = P("10.3.0.0/24");
  c.oif = idx;
  c.gateway = A("192.168.255.1");
  c.onlink = true;
  Route d;  // IPv6 with gateway
  d.dst = P("fd10::/64");
  d.oif = idx;
  d.gateway = A("fd00::2");
  d.metric = 1024;  // what the kernel stores for IPv6 when none is given
  for (const Route* r : {&a, &b, &c, &d}) ASSERT_TRUE(rt_->add_route(*r)) << describe_route(*r);

  auto dup = rt_->add_route(a);
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(EEXIST));
  // The error names the route by its interface name.
  EXPECT_NE(dup.error().message.find("add route 10.1.0.0/24 via 10.0.0.2 dev r0"), std::string::npos)
      << dup.error().message;

  RouteFilter ours;
  ours.protocol = kMeshdRouteProtocol;
  auto listed = rt_->list_routes(ours).value();
  ASSERT_EQ(listed.size(), 4u);
  for (const Route* r : {&a, &b, &c, &d})
    EXPECT_NE(std::find(listed.begin(), listed.end(), *r), listed.end()) << describe_route(*r);

  RouteFilter v6 = ours;
  v6.family = AF_INET6;
  auto listed6 = rt_->list_routes(v6).value();
  ASSERT_EQ(listed6.size(), 1u);
  EXPECT_EQ(listed6[0], d);
  RouteFilter cni;
  cni.protocol = kMeshdCniRouteProtocol;
  ASSERT_EQ(rt_->list_routes(cni).value().size(), 1u);
  RouteFilter other_oif = ours;
  other_oif.oif = idx + 1000;
  EXPECT_TRUE(rt_->list_routes(other_oif).value().empty());

  // Replace changes the gateway in place.
  Route a2 = a;
  a2.gateway = A("10.0.0.3");
  ASSERT_TRUE(rt_->replace_route(a2));
  auto j = ip_json(*ns_, "route show 10.1.0.0/24");
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0].at("gateway").as_string(), "10.0.0.3");
  EXPECT_EQ(j[0].at("prefsrc").as_string(), "10.0.0.1");
  EXPECT_EQ(j[0].at("metric").as_int64(), 10);
  EXPECT_EQ(ip_json(*ns_, "route show proto 77").size(), 3u);  // IPv4 only

  // Deleting ours with the destination of someone else's route leaves theirs.
  Route theirs;
  theirs.dst = P("10.9.0.0/24");
  theirs.oif = idx;
  ASSERT_TRUE(rt_->delete_route(theirs));  // "missing" (no proto-77 route there) = success
  EXPECT_EQ(ip_json(*ns_, "route show 10.9.0.0/24 proto static").size(), 1u);

  for (const Route* r : {&a2, &b, &c, &d}) ASSERT_TRUE(rt_->delete_route(*r));
  ASSERT_TRUE(rt_->delete_route(a2));  // missing = success
  EXPECT_TRUE(rt_->list_routes(ours).value().empty());
  // Others' routes survived, and a protocol-less listing still sees them.
  RouteFilter all;
  auto rest = rt_->list_routes(all).value();
  EXPECT_TRUE(std::any_of(rest.begin(), rest.end(), [](const Route& r) { return r.protocol == RTPROT_STATIC; }));
  EXPECT_EQ(ip_json(*ns_, "route show proto 78").size(), 1u);
}

TEST_F(RtnlTest, RouteMtuFollowsTheOutputInterface) {
  int idx = make_veth_with_address("m0", "m1", "10.0.0.1/24");
  ASSERT_TRUE(rt_->set_mtu("m0", 1360));
  EXPECT_EQ(route_mtu(*rt_, A("10.0.0.9")).value(), 1360u);
  auto none = route_mtu(*rt_, std::nullopt);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(ENETUNREACH));
  Route def;
  def.dst = P("0.0.0.0/0");
  def.oif = idx;
  def.gateway = A("10.0.0.254");
  ASSERT_TRUE(rt_->add_route(def));
  EXPECT_EQ(route_mtu(*rt_, std::nullopt).value(), 1360u);
  auto pr = rt_->get_route(A("8.8.8.8")).value();  // lookup only: nothing is sent
  EXPECT_EQ(pr.route.oif, idx);
  EXPECT_EQ(pr.route.gateway, A("10.0.0.254"));
}

// Waits (bounded) until `pred` holds for an event read from `ev`.
template <class Pred>
bool wait_for_event(RtnlEvents& ev, Pred pred) {
  for (int i = 0; i < 50; ++i) {
    pollfd p{ev.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    auto got = ev.read();
    if (!got) {
      ADD_FAILURE() << got.error().message;
      return false;
    }
    for (const Event& e : *got)
      if (pred(e)) return true;
  }
  return false;
}

TEST_F(RtnlTest, EventsReportLinkDownUpAndRouteDeletion) {
  int idx = make_veth_with_address("e0", "e1", "10.0.0.1/24");
  Route r;
  r.dst = P("10.5.0.0/24");
  r.oif = idx;
  ASSERT_TRUE(rt_->add_route(r));
  auto ev = run_in_netns(ns_->fd(), [] { return RtnlEvents::open(); }).value();
  EXPECT_TRUE(ev.read().value().empty());  // nothing happened yet

  ASSERT_TRUE(rt_->set_up("e0", false));
  EXPECT_TRUE(wait_for_event(ev, [&](const Event& e) {
    return e.type == Event::Type::kLink && e.ifname == "e0" && e.link && !e.link->up && !e.removed;
  }));
  ASSERT_TRUE(rt_->set_up("e0", true));
  EXPECT_TRUE(wait_for_event(ev, [&](const Event& e) {
    return e.type == Event::Type::kLink && e.ifindex == idx && e.link && e.link->up;
  }));
  // Link down removed our route; put it back and delete it explicitly.
  ASSERT_TRUE(rt_->add_route(r));
  ASSERT_TRUE(rt_->delete_route(r));
  EXPECT_TRUE(wait_for_event(ev, [&](const Event& e) {
    return e.type == Event::Type::kRoute && e.removed && e.route && e.route->dst == r.dst &&
           e.route->protocol == kMeshdRouteProtocol;
  }));
  ASSERT_TRUE(rt_->delete_address({idx, P("10.0.0.1/24")}));
  EXPECT_TRUE(wait_for_event(ev, [&](const Event& e) {
    return e.type == Event::Type::kAddress && e.removed && e.address &&
           e.address->prefix == P("10.0.0.1/24");
  }));
}

TEST_F(RtnlTest, EventOverflowIsReportedAsEnobufs) {
  int idx = make_veth_with_address("o0", "o1", "10.0.0.1/24");
  auto ev = run_in_netns(ns_->fd(), [] { return RtnlEvents::open(); }).value();
  int small = 1;  // the kernel rounds it up to its minimum (a few KiB)
  ASSERT_EQ(setsockopt(ev.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  std::vector<Route> many;
  for (int i = 0; i < 500; ++i) {
    Route r;
    r.dst = IpPrefix{IpAddress::v4(10, 100, static_cast<std::uint8_t>(i / 256), static_cast<std::uint8_t>(i % 256)), 32};
    r.oif = idx;
    many.push_back(r);
  }
  auto res = rt_->replace_routes(many).value();
  for (auto& r : res) ASSERT_TRUE(r);
  auto got = ev.read();
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().is(ENOBUFS)) << got.error().message;
  EXPECT_NE(got.error().message.find("resync"), std::string::npos);
  // After the overflow is reported the subscription keeps working.
  EXPECT_TRUE(ev.read());
}

TEST_F(RtnlTest, DumpOfTwoThousandRoutes) {
  int idx = make_veth_with_address("d0", "d1", "10.0.0.1/24");
  std::vector<Route> many;
  for (int i = 0; i < 2000; ++i) {
    Route r;
    r.dst = IpPrefix{IpAddress::v4(10, 200, static_cast<std::uint8_t>(i / 256), static_cast<std::uint8_t>(i % 256)), 32};
    r.oif = idx;
    r.gateway = A("10.0.0.2");
    many.push_back(r);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto res = rt_->replace_routes(many).value();
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ(res.size(), many.size());
  for (auto& r : res) ASSERT_TRUE(r) << r.error().message;

  RouteFilter ours;
  ours.protocol = kMeshdRouteProtocol;
  auto listed = rt_->list_routes(ours).value();
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_EQ(listed.size(), 2000u);
  std::sort(listed.begin(), listed.end());
  auto want = many;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(listed, want);
  EXPECT_EQ(ip_json(*ns_, "route show proto 77").size(), 2000u);

  // A batch with one bad entry reports it at its position; the rest apply.
  std::vector<Route> del(many.begin(), many.begin() + 1000);
  del[500].dst = P("10.250.0.0/24");  // not there: success
  auto t3 = std::chrono::steady_clock::now();
  auto dres = rt_->delete_routes(del).value();
  auto t4 = std::chrono::steady_clock::now();
  for (auto& r : dres) EXPECT_TRUE(r);
  EXPECT_EQ(rt_->list_routes(ours).value().size(), 1001u);  // many[500] stayed

  Route bad = many[0];
  bad.gateway = A("10.99.0.1");  // not on any subnet: ENETUNREACH
  std::vector<Route> mixed{many[1000], bad, many[1001]};
  auto mres = rt_->replace_routes(mixed).value();
  EXPECT_TRUE(mres[0]);
  ASSERT_FALSE(mres[1]);
  EXPECT_NE(mres[1].error().message.find("replace route 10.200.0.0/32 via 10.99.0.1 dev d0"), std::string::npos)
      << mres[1].error().message;
  EXPECT_TRUE(mres[2]);

  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  std::printf("2000 routes: batch replace %.1f ms, dump+parse %.1f ms; 1000 batch deletes %.1f ms\n",
              ms(t0, t1), ms(t1, t2), ms(t3, t4));
}

}  // namespace

namespace {

// Address dumps are checked for consistency by the kernel (NLM_F_DUMP_INTR
// when addresses change mid-dump). While another socket keeps adding and
// removing addresses, every listing must still hold each stable address
// exactly once, or fail with EINTR after the bounded retries: never half.
TEST_F(RtnlTest, DumpsStayConsistentWhileTheTableChanges) {
  ASSERT_TRUE(rt_->create_veth("c0", "c1"));
  int idx = rt_->get_link("c0").value().index;
  const int kStable = 1000;
  for (int i = 0; i < kStable; ++i)
    ASSERT_TRUE(rt_->add_address(
        {idx, IpPrefix{IpAddress::v4(10, 210, static_cast<std::uint8_t>(i / 256), static_cast<std::uint8_t>(i % 256)), 32}}));

  std::atomic<bool> stop{false};
  std::thread churn([&] {
    auto rt2 = Rtnl::open_in_netns(ns_->fd()).value();
    for (int i = 0; i < 20000 && !stop; ++i) {
      Address a{idx, IpPrefix{IpAddress::v4(10, 211, 0, static_cast<std::uint8_t>(i % 64)), 32}};
      (void)(i % 2 ? rt2.delete_address(a) : rt2.add_address(a));
    }
  });
  int complete = 0, gave_up = 0;
  for (int round = 0; round < 30; ++round) {
    auto got = rt_->list_addresses(idx, AF_INET);
    if (!got) {
      EXPECT_TRUE(got.error().is(EINTR)) << got.error().message;
      ++gave_up;
      continue;
    }
    ++complete;
    std::vector<Address> stable;
    for (const auto& a : *got)
      if (IpPrefix::parse("10.210.0.0/16").value().contains(a.prefix.address)) stable.push_back(a);
    std::sort(stable.begin(), stable.end());
    EXPECT_EQ(stable.size(), static_cast<std::size_t>(kStable));
    EXPECT_EQ(std::adjacent_find(stable.begin(), stable.end()), stable.end()) << "duplicate in one dump";
  }
  stop = true;
  churn.join();
  EXPECT_GT(complete, 0);
  std::printf("address dumps under churn: %d complete, %d gave up after %d attempts, %llu restarts\n",
              complete, gave_up, meshd::nl::kNlMaxDumpAttempts,
              static_cast<unsigned long long>(rt_->dump_restarts()));
}

}  // namespace
