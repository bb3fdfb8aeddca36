// rtnetlink over libmnl: links (wireguard, veth), up/down, MTU, network
// namespace moves, addresses, routes and event subscriptions. One Rtnl owns
// one NETLINK_ROUTE socket bound to the network namespace it was opened in;
// not thread-safe. Every error names the operation and the object.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct nlmsghdr;

namespace meshd::nl {

class NlSocket;

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
struct RouteFilter {
  std::optional<std::uint8_t> protocol;  // only routes with this rtm_protocol
  int family = 0;                        // AF_INET, AF_INET6, 0 = both
  std::uint32_t table = 254;             // 0 = any table
  int oif = 0;                           // 0 = any
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

class Rtnl {
 public:
  Rtnl(Rtnl&&) noexcept;
  Rtnl& operator=(Rtnl&&) noexcept;
  ~Rtnl();

  // A socket in the caller's current network namespace.
  static Result<Rtnl> open();
  // A socket inside the namespace behind `netns_fd` (e.g. open("/var/run/netns/x")).
  // The calling thread returns to its own namespace before this returns.
  static Result<Rtnl> open_in_netns(int netns_fd);
  // Over a socket the caller made: NlSocket::open(NETLINK_ROUTE), or a
  // replayed one (NlSocket::over) in tests and fuzzers.
  static Rtnl over(NlSocket sock);

  // Links
  Result<std::vector<Link>> list_links();
  Result<Link> get_link(std::string_view name);  // ENODEV if missing
  Result<Link> get_link(int index);
  Result<void> create_link(std::string_view name, std::string_view kind);  // e.g. "wireguard"
  // A veth pair `name` <-> `peer`; the peer end is created directly in the
  // namespace of `peer_netns_fd` when it is >= 0.
  Result<void> create_veth(std::string_view name, std::string_view peer, int peer_netns_fd = -1,
                           unsigned mtu = 0);
  Result<void> delete_link(std::string_view name);  // missing link = success
  Result<void> set_up(std::string_view name, bool up);
  Result<void> set_mtu(std::string_view name, unsigned mtu);
  Result<void> move_to_netns(std::string_view name, int netns_fd);

  // Addresses
  Result<std::vector<Address>> list_addresses(int ifindex = 0, int family = 0);
  Result<void> add_address(const Address& a);      // already there = success
  Result<void> delete_address(const Address& a);   // missing = success

  // Routes
  Result<std::vector<Route>> list_routes(const RouteFilter& f = {});
  Result<void> add_route(const Route& r);      // EEXIST is an error (use replace)
  Result<void> replace_route(const Route& r);  // NLM_F_REPLACE | NLM_F_CREATE
  Result<void> delete_route(const Route& r);   // missing = success
  // The route the kernel would use towards `dst` (as `ip route get`).
  Result<ParsedRoute> get_route(const IpAddress& dst);

  // Many route changes in one netlink batch (one round trip per few hundred
  // routes); element i is the outcome for routes[i], with the same rules as
  // replace_route / delete_route. The outer Result fails only on socket trouble.
  Result<std::vector<Result<void>>> replace_routes(std::span<const Route> routes);
  Result<std::vector<Result<void>>> delete_routes(std::span<const Route> routes);

  // Dumps discarded and re-requested because the kernel flagged them
  // NLM_F_DUMP_INTR (a table changed mid-dump); for metrics.
  std::uint64_t dump_restarts() const;

 private:
  struct Impl;
  explicit Rtnl(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A subscription to link, IPv4/IPv6 address and route changes.
class RtnlEvents {
 public:
  RtnlEvents(RtnlEvents&&) noexcept;
  RtnlEvents& operator=(RtnlEvents&&) noexcept;
  ~RtnlEvents();

  static Result<RtnlEvents> open();
  // Over a socket the caller made and subscribed (tests and fuzzers).
  static RtnlEvents over(NlSocket sock);
  int fd() const;  // non-blocking; poll it (or hand it to Asio) for readability
  // Drains what is queued; an empty vector when nothing was. ENOBUFS (the
  // kernel dropped events) is reported as an error: resync everything.
  Result<std::vector<Event>> read();

 private:
  struct Impl;
  explicit RtnlEvents(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// --- Message building and parsing (pure: no I/O) -------------------------
// Builders write one complete request into `buf` and return its header; they
// fail with EMSGSIZE when it does not fit and EINVAL on values the kernel
// would reject (an interface name longer than 15 bytes, a family mismatch).
// Parsers accept one message of the given kind (NEW or DEL) and reject
// truncated or malformed ones with EBADMSG; they never read past nlmsg_len.

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

Result<Link> parse_link(const nlmsghdr& nlh);
Result<Address> parse_address(const nlmsghdr& nlh);
Result<ParsedRoute> parse_route(const nlmsghdr& nlh);
// Any RTM_NEW/DEL LINK/ADDR/ROUTE as an Event; other types are EBADMSG.
Result<Event> parse_event(const nlmsghdr& nlh);

// "10.1.0.0/24 via 10.0.0.1 dev #3 proto 77 table 254": the object part of
// route errors; `ifname` replaces "#<oif>" when known.
std::string describe_route(const Route& r, std::string_view ifname = {});

// Brings the underlay's MTU: the MTU of the interface carrying the route to
// `dst` (or the default route when dst is empty).
Result<unsigned> route_mtu(Rtnl& rtnl, const std::optional<IpAddress>& dst);

}  // namespace meshd::nl
