// Fuzz target: rtnetlink replies from "the kernel", read the way meshd reads
// them. The first byte picks an Rtnl operation; the rest is the datagrams an
// NlSocket receives for it (format: tests/unit/rtnl/replay_transport.h), so
// the socket's request loop, dump collection (NLM_F_DUMP_INTR restarts
// included), batch ack matching, event draining and the message parsers all
// run as in production. Then every message of every datagram goes through
// every parser. Any input must give a result or an error, never a crash, an
// out-of-bounds read (ASan) or undefined behaviour (UBSan).
#include "netlink/nl_socket.h"
#include "netlink/rtnl.h"
#include "tests/unit/rtnl/replay_transport.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

using namespace meshd;
using namespace meshd::nl;

// The operations of the seeds' first byte (tests/fuzz/rtnl/make_seeds.cpp).
enum Op : std::uint8_t {
  kListLinks,
  kListAddresses,
  kListRoutes,
  kRouteMtu,
  kEvents,
  kReplaceRoutes,
  kCreateLink,
  kDeleteRoute,
  kOpCount
};

Route some_route(const char* dst) {
  Route r;
  r.dst = IpPrefix::parse(dst).value();
  r.oif = 3;
  return r;
}

void run(Op op, std::vector<testing::Datagram> frames) {
  if (op == kEvents) {
    auto ev = RtnlEvents::over(testing::replay_socket(std::move(frames)));
    (void)ev.read();
    return;
  }
  Rtnl rtnl = Rtnl::over(testing::replay_socket(std::move(frames)));
  switch (op) {
    case kListLinks:
      (void)rtnl.list_links();
      break;
    case kListAddresses:
      (void)rtnl.list_addresses();
      break;
    case kListRoutes:
      (void)rtnl.list_routes(RouteFilter{.protocol = kMeshdRouteProtocol, .family = 0, .table = 0, .oif = 0});
      break;
    case kRouteMtu:
      (void)route_mtu(rtnl, IpAddress::parse("192.0.2.1").value());
      break;
    case kReplaceRoutes: {
      std::vector<Route> routes = {some_route("10.1.0.0/24"), some_route("fd00:1::/64")};
      (void)rtnl.replace_routes(routes);
      break;
    }
    case kCreateLink:
      (void)rtnl.create_link("wg0", "wireguard");
      break;
    case kDeleteRoute:
      (void)rtnl.delete_route(some_route("10.2.0.0/24"));
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto frames = testing::split_frames({data + 1, size - 1});
  run(static_cast<Op>(data[0] % kOpCount), frames);

  for (const auto& f : frames) {
    (void)for_each_message(f, [](const nlmsghdr& m) -> Result<void> {
      switch (m.nlmsg_type) {
        case NLMSG_ERROR:
        case NLMSG_DONE:
          if (auto a = parse_ack(&m)) (void)ack_error(*a, "fuzz");
          break;
        default:
          // Every parser on every message: type checks are part of what is tested.
          (void)parse_link(m);
          (void)parse_address(m);
          if (auto r = parse_route(m)) (void)describe_route(r->route, "x");
          (void)parse_event(m);
          break;
      }
      return {};
    });
  }
  return 0;
}
