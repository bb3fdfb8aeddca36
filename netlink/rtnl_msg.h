// Pure rtnetlink message code: the link, address and route values, request
// builders and reply/event parsers. No sockets here: every function takes or
// returns bytes, so the rules are unit-tested and fuzzed without a kernel.
// The I/O around it (Rtnl, RtnlEvents) is netlink/rtnl.h.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

struct nlmsghdr;

namespace meshd::nl {

// Routes meshd installs carry this protocol number (rtm_protocol), so it
// recognises — and only ever removes — its own. Unused by iproute2's
// /etc/iproute2/rt_protos and by the routing daemons we know of.
inline constexpr std::uint8_t kMeshdRouteProtocol = 77;
// Host routes the CNI plugin installs towards pods carry this one instead, so
// the mesh reconciler (which removes stale protocol-77 routes) never touches
// them, and the plugin's own cleanup never touches mesh routes.
inline constexpr std::uint8_t kMeshdCniRouteProtocol = 78;

struct Link {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: "wireguard", "veth", "bridge", "" if none
  unsigned mtu = 0;
  bool up = false;   // IFF_UP (administratively)
  unsigned flags = 0;  // ifi_flags
  std::string mac;     // IFLA_ADDRESS as lower-case "aa:bb:..", "" if none
};

struct Address {
  int ifindex = 0;
  IpPrefix prefix;  // address with its prefix length, e.g. 10.1.0.1/24
  auto operator<=>(const Address&) const = default;
};

struct Route {
  IpPrefix dst;
  int oif = 0;                          // output interface index (0 = none)
  std::optional<IpAddress> gateway;
  std::optional<IpAddress> prefsrc;     // RTA_PREFSRC
  std::uint8_t protocol = kMeshdRouteProtocol;
  std::uint8_t scope = 0;               // RT_SCOPE_UNIVERSE; RT_SCOPE_LINK = 253
  std::uint32_t table = 254;            // RT_TABLE_MAIN
  std::uint32_t metric = 0;
  bool onlink = false;                  // RTNH_F_ONLINK (gateway not on a subnet)
  auto operator<=>(const Route&) const = default;
};

// A route as the kernel reported it, with what a Route cannot hold (so that
// listings can skip it, and MTU lookups can see a route-level MTU).
struct ParsedRoute {
  Route route;
  std::uint8_t type = 0;      // rtm_type: RTN_UNICAST, RTN_LOCAL, RTN_BLACKHOLE...
  bool cloned = false;        // RTM_F_CLONED: a cache entry, not a configured route
  bool multipath = false;     // RTA_MULTIPATH: several next hops (oif stays 0)
  std::uint32_t mtu = 0;      // RTA_METRICS/RTAX_MTU, 0 if none
};
// Event from a subscription: what changed (a link, address or route), and how.
struct Event {
  enum class Type { kLink, kAddress, kRoute } type = Type::kLink;
  bool removed = false;  // RTM_DEL*
  int ifindex = 0;       // link index (links, addresses) or route oif
  std::string ifname;    // links only
  // The object as the kernel described it, for the type above.
  std::optional<Link> link;
  std::optional<Address> address;
  std::optional<Route> route;
};

// --- Message building and parsing ----------------------------------------
// Builders write one complete request into `buf` and return its header; they
// fail with EMSGSIZE when it does not fit and EINVAL on values the kernel
// would reject (an interface name longer than 15 bytes, a family mismatch).
// Parsers accept one message of the given kind (NEW or DEL) and reject
// truncated or malformed ones with EBADMSG (an attribute cut short included:
// netlink/nl_attr.h's strict walker); they never read past nlmsg_len.

// Big enough for every request these builders make.
inline constexpr std::size_t kRtnlMsgBufferSize = 1024;

// RTM_NEWLINK/RTM_DELLINK/RTM_GETLINK for `link` (index, name, MTU, kind, and
// IFF_UP when `set_up_flag` is set: ifi_change covers IFF_UP only then).
Result<nlmsghdr*> build_link_msg(std::span<std::uint8_t> buf, std::uint16_t type,
                                 std::uint16_t flags, const Link& link, bool set_up_flag = false);
Result<nlmsghdr*> build_address_msg(std::span<std::uint8_t> buf, std::uint16_t type,
                                    std::uint16_t flags, const Address& a);
Result<nlmsghdr*> build_route_msg(std::span<std::uint8_t> buf, std::uint16_t type,
                                  std::uint16_t flags, const Route& r);
// RTM_NEWLINK creating the veth pair `name` <-> `peer`; the peer end is made
// in the namespace of `peer_netns_fd` when it is >= 0; `mtu` 0 = default.
Result<nlmsghdr*> build_veth_msg(std::span<std::uint8_t> buf, std::string_view name,
                                 std::string_view peer, int peer_netns_fd, unsigned mtu);
// RTM_NEWLINK moving link `name` into the namespace of `netns_fd`.
Result<nlmsghdr*> build_move_link_msg(std::span<std::uint8_t> buf, std::string_view name,
                                      int netns_fd);
// Dump requests: every link (without statistics), every address or route of
// `family` (0 = all families).
Result<nlmsghdr*> build_link_dump(std::span<std::uint8_t> buf);
Result<nlmsghdr*> build_address_dump(std::span<std::uint8_t> buf, int family);
Result<nlmsghdr*> build_route_dump(std::span<std::uint8_t> buf, int family);
// RTM_GETROUTE for the route the kernel would use towards `dst`.
Result<nlmsghdr*> build_route_get(std::span<std::uint8_t> buf, const IpAddress& dst);

Result<Link> parse_link(const nlmsghdr& nlh);
Result<Address> parse_address(const nlmsghdr& nlh);
Result<ParsedRoute> parse_route(const nlmsghdr& nlh);
// Any RTM_NEW/DEL LINK/ADDR/ROUTE as an Event; other types are EBADMSG.
Result<Event> parse_event(const nlmsghdr& nlh);

// "10.1.0.0/24 via 10.0.0.1 dev #3 proto 77 table 254": the object part of
// route errors; `ifname` replaces "#<oif>" when known.
std::string describe_route(const Route& r, std::string_view ifname = {});

}  // namespace meshd::nl
