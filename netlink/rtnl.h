// rtnetlink over libmnl: links (wireguard, veth), up/down, MTU, network
// namespace moves, addresses, routes and event subscriptions. One Rtnl owns
// one NETLINK_ROUTE socket bound to the network namespace it was opened in;
// not thread-safe. Every error names the operation and the object. The
// messages themselves are built and parsed by netlink/rtnl_msg.h.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "netlink/rtnl_msg.h"

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

struct RouteFilter {
  std::optional<std::uint8_t> protocol;  // only routes with this rtm_protocol
  int family = 0;                        // AF_INET, AF_INET6, 0 = both
  std::uint32_t table = 254;             // 0 = any table
  int oif = 0;                           // 0 = any
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
  // A socket inside the namespace file at `netns_path` (open_netns()), or in
  // the caller's own namespace when the path is empty.
  static Result<Rtnl> open_at(std::string_view netns_path);
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

// Brings the underlay's MTU: the MTU of the interface carrying the route to
// `dst` (or the default route when dst is empty).
Result<unsigned> route_mtu(Rtnl& rtnl, const std::optional<IpAddress>& dst);

}  // namespace meshd::nl
