#include "netlink/rtnl.h"

#include "common/ifname.h"
#include "netlink/netns.h"
#include "netlink/nl_socket.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <map>

namespace meshd::nl {

// ---- Rtnl ----------------------------------------------------------------

struct Rtnl::Impl {
  NlSocket sock;
  std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(kRtnlMsgBufferSize);

  // Runs one non-dump request; `on_reply` sees any data message.
  Result<void> call(nlmsghdr* req, std::string_view what, const MessageFn& on_reply = {}) {
    return sock.request(req, what, on_reply);
  }

  Result<Link> get_one_link(const Link& key, const std::string& what);

  // The interface name behind `oif`, for error messages; "" if unknown.
  std::string ifname_of(int oif) {
    if (oif <= 0) return {};
    Link l;
    l.index = oif;
    auto req = build_link_msg(buf, RTM_GETLINK, 0, l);
    if (!req) return {};
    std::string name;
    auto r = sock.request(*req, "get link", [&](const nlmsghdr& m) -> Result<void> {
      if (auto p = parse_link(m)) name = p->name;
      return {};
    });
    return r ? name : std::string();
  }

  std::string route_what(std::string_view verb, const Route& r) {
    return std::string(verb) + " route " + describe_route(r, ifname_of(r.oif));
  }

  Result<void> route_op(std::uint16_t type, std::uint16_t flags, const Route& r, std::string_view verb) {
    auto req = build_route_msg(buf, type, flags, r);
    if (!req) return Error{req.error().code, std::string(verb) + " route: " + req.error().message};
    // Name the object by its interface's name only when reporting a failure:
    // the lookup costs a round trip.
    auto res = call(*req, "route");
    if (res) return res;
    Error e = res.error();
    e.message = route_what(verb, r) + e.message.substr(std::string_view("route").size());
    return e;
  }

  Result<std::vector<Result<void>>> route_batch(std::uint16_t type, std::uint16_t flags,
                                                std::span<const Route> routes, std::string_view verb) {
    std::vector<std::vector<std::uint8_t>> bufs;
    std::vector<NlBatchEntry> entries;
    std::vector<Result<void>> out(routes.size());
    std::vector<std::size_t> index;  // entry -> position in routes
    std::map<int, std::string> names;  // oif -> name, looked up for failures only
    bufs.reserve(routes.size());
    for (std::size_t i = 0; i < routes.size(); ++i) {
      bufs.emplace_back(kRtnlMsgBufferSize);
      auto req = build_route_msg(bufs.back(), type, flags, routes[i]);
      if (!req) {
        out[i] = Error{req.error().code, std::string(verb) + " route: " + req.error().message};
        continue;
      }
      entries.push_back({*req, std::string(verb) + " route " + describe_route(routes[i])});
      index.push_back(i);
    }
    auto acks = sock.batch(entries);
    if (!acks) return acks.error();
    for (std::size_t k = 0; k < entries.size(); ++k) {
      Result<void>& res = (*acks)[k];
      if (!res) {
        // As for single requests: name the interface, on failure only.
        const Route& r = routes[index[k]];
        Error e = res.error();
        if (e.message.rfind(entries[k].what, 0) == 0) {
          std::string name = names.contains(r.oif) ? names[r.oif] : (names[r.oif] = ifname_of(r.oif));
          e.message = std::string(verb) + " route " + describe_route(r, name) +
                      e.message.substr(entries[k].what.size());
        }
        res = e;
      }
      out[index[k]] = std::move(res);
    }
    return out;
  }
};

Rtnl::Rtnl(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Rtnl::Rtnl(Rtnl&&) noexcept = default;
Rtnl& Rtnl::operator=(Rtnl&&) noexcept = default;
Rtnl::~Rtnl() = default;

Result<Rtnl> Rtnl::open() {
  auto s = NlSocket::open(NETLINK_ROUTE);
  if (!s) return s.error();
  return Rtnl(std::make_unique<Impl>(Impl{std::move(*s)}));
}

Rtnl Rtnl::over(NlSocket sock) { return Rtnl(std::make_unique<Impl>(Impl{std::move(sock)})); }

Result<Rtnl> Rtnl::open_in_netns(int netns_fd) {
  // A netlink socket stays bound to the namespace it was created in, so the
  // thread only needs to be inside for the socket() call.
  return run_in_netns(netns_fd, [] { return Rtnl::open(); });
}

Result<Rtnl> Rtnl::open_at(std::string_view netns_path) {
  return run_in_netns_at(netns_path, [] { return Rtnl::open(); });
}

std::uint64_t Rtnl::dump_restarts() const { return impl_->sock.dump_restarts(); }

Result<std::vector<Link>> Rtnl::list_links() {
  std::vector<Link> out;
  auto req = build_link_dump(impl_->buf);
  if (!req) return req.error();
  auto r = impl_->call(*req, "list links", [&](const nlmsghdr& m) -> Result<void> {
    auto l = parse_link(m);
    if (!l) return l.error();
    out.push_back(std::move(*l));
    return {};
  });
  if (!r) return r.error();
  return out;
}

Result<Link> Rtnl::Impl::get_one_link(const Link& key, const std::string& what) {
  Impl& impl = *this;
  auto req = build_link_msg(impl.buf, RTM_GETLINK, 0, key);
  if (!req) return Error{req.error().code, what + ": " + req.error().message};
  std::optional<Link> found;
  auto r = impl.call(*req, what, [&](const nlmsghdr& m) -> Result<void> {
    auto l = parse_link(m);
    if (!l) return l.error();
    found = std::move(*l);
    return {};
  });
  if (!r) return r.error();
  if (!found) return fail(ENODEV, what);
  return *found;
}

Result<Link> Rtnl::get_link(std::string_view name) {
  const std::string what = "get link " + std::string(name);
  if (auto r = check_interface_name(name, what); !r) return r.error();
  Link key;
  key.name = std::string(name);
  return impl_->get_one_link(key, what);
}

Result<Link> Rtnl::get_link(int index) {
  const std::string what = "get link #" + std::to_string(index);
  if (index <= 0) return fail(ENODEV, what);
  Link key;
  key.index = index;
  return impl_->get_one_link(key, what);
}

Result<void> Rtnl::create_link(std::string_view name, std::string_view kind) {
  const std::string what = "create link " + std::string(name) + " (" + std::string(kind) + ")";
  if (auto r = check_interface_name(name, what); !r) return r;
  if (kind.empty()) return Error::invalid(what + ": no link kind");
  Link l;
  l.name = std::string(name);
  l.kind = std::string(kind);
  auto req = build_link_msg(impl_->buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, l);
  if (!req) return Error{req.error().code, what + ": " + req.error().message};
  auto r = impl_->call(*req, what);
  // The kernel answers an unknown kind (no module, e.g. no WireGuard) with
  // EOPNOTSUPP: say what that means for an operator.
  if (!r && r.error().is(EOPNOTSUPP))
    r.error().message += "; this kernel has no \"" + std::string(kind) + "\" link type (module missing?)";
  return r;
}

Result<void> Rtnl::create_veth(std::string_view name, std::string_view peer, int peer_netns_fd,
                               unsigned mtu) {
  const std::string what = "create veth " + std::string(name) + " <-> " + std::string(peer);
  if (auto r = check_interface_name(name, what); !r) return r;
  if (auto r = check_interface_name(peer, what); !r) return r;
  auto req = build_veth_msg(impl_->buf, name, peer, peer_netns_fd, mtu);
  if (!req) return Error{req.error().code, what + ": " + req.error().message};
  return impl_->call(*req, what);
}

Result<void> Rtnl::delete_link(std::string_view name) {
  const std::string what = "delete link " + std::string(name);
  if (auto r = check_interface_name(name, what); !r) return r;
  Link l;
  l.name = std::string(name);
  auto req = build_link_msg(impl_->buf, RTM_DELLINK, 0, l);
  if (!req) return req.error();
  auto r = impl_->call(*req, what);
  if (!r && r.error().is(ENODEV)) return {};  // already gone: what the caller wanted
  return r;
}

Result<void> Rtnl::set_up(std::string_view name, bool up) {
  const std::string what = std::string("set link ") + std::string(name) + (up ? " up" : " down");
  if (auto r = check_interface_name(name, what); !r) return r;
  Link l;
  l.name = std::string(name);
  l.up = up;
  auto req = build_link_msg(impl_->buf, RTM_NEWLINK, 0, l, /*set_up_flag=*/true);
  if (!req) return req.error();
  return impl_->call(*req, what);
}

Result<void> Rtnl::set_mtu(std::string_view name, unsigned mtu) {
  const std::string what = "set link " + std::string(name) + " mtu " + std::to_string(mtu);
  if (auto r = check_interface_name(name, what); !r) return r;
  if (mtu == 0) return Error::invalid(what + ": MTU must be positive");
  Link l;
  l.name = std::string(name);
  l.mtu = mtu;
  auto req = build_link_msg(impl_->buf, RTM_NEWLINK, 0, l);
  if (!req) return req.error();
  return impl_->call(*req, what);
}

Result<void> Rtnl::move_to_netns(std::string_view name, int netns_fd) {
  const std::string what = "move link " + std::string(name) + " to netns fd " + std::to_string(netns_fd);
  if (auto r = check_interface_name(name, what); !r) return r;
  auto req = build_move_link_msg(impl_->buf, name, netns_fd);
  if (!req) return Error{req.error().code, what + ": " + req.error().message};
  return impl_->call(*req, what);
}

Result<std::vector<Address>> Rtnl::list_addresses(int ifindex, int family) {
  std::vector<Address> out;
  auto req = build_address_dump(impl_->buf, family);
  if (!req) return req.error();
  auto r = impl_->call(*req, "list addresses", [&](const nlmsghdr& m) -> Result<void> {
    auto a = parse_address(m);
    if (!a) return a.error();
    if ((ifindex == 0 || a->ifindex == ifindex) && (family == 0 || a->prefix.address.family == family))
      out.push_back(*a);
    return {};
  });
  if (!r) return r.error();
  return out;
}

Result<void> Rtnl::add_address(const Address& a) {
  const std::string what = "add address " + a.prefix.to_string() + " on ifindex " + std::to_string(a.ifindex);
  auto req = build_address_msg(impl_->buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, a);
  if (!req) return Error{req.error().code, what + ": " + req.error().message};
  auto r = impl_->call(*req, what);
  if (!r && r.error().is(EEXIST)) return {};  // already there
  return r;
}

Result<void> Rtnl::delete_address(const Address& a) {
  const std::string what =
      "delete address " + a.prefix.to_string() + " on ifindex " + std::to_string(a.ifindex);
  auto req = build_address_msg(impl_->buf, RTM_DELADDR, 0, a);
  if (!req) return Error{req.error().code, what + ": " + req.error().message};
  auto r = impl_->call(*req, what);
  // Missing address, or its whole interface gone: either way it is not there.
  if (!r && (r.error().is(EADDRNOTAVAIL) || r.error().is(ENODEV))) return {};
  return r;
}

Result<std::vector<Route>> Rtnl::list_routes(const RouteFilter& f) {
  std::vector<Route> out;
  auto req = build_route_dump(impl_->buf, f.family);
  if (!req) return req.error();
  // Filtered here rather than by the kernel (NETLINK_GET_STRICT_CHK): the
  // rules are ours to test, and a kernel that ignores a filter cannot make us
  // treat someone else's route as our own.
  auto r = impl_->call(*req, "list routes", [&](const nlmsghdr& m) -> Result<void> {
    auto pr = parse_route(m);
    if (!pr) {
      if (pr.error().is(EAFNOSUPPORT)) return {};  // e.g. AF_MPLS tables
      return pr.error();
    }
    // A Route describes a configured unicast route: skip cache clones and
    // local/broadcast/blackhole entries it could not express.
    if (pr->cloned || pr->type != RTN_UNICAST) return {};
    const Route& rt = pr->route;
    if (f.family && rt.dst.address.family != f.family) return {};
    if (f.protocol && rt.protocol != *f.protocol) return {};
    if (f.table && rt.table != f.table) return {};
    if (f.oif && rt.oif != f.oif) return {};
    out.push_back(rt);
    return {};
  });
  if (!r) return r.error();
  return out;
}

Result<void> Rtnl::add_route(const Route& r) {
  return impl_->route_op(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, r, "add");
}

Result<void> Rtnl::replace_route(const Route& r) {
  return impl_->route_op(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, r, "replace");
}

Result<void> Rtnl::delete_route(const Route& r) {
  auto res = impl_->route_op(RTM_DELROUTE, 0, r, "delete");
  if (!res && res.error().is(ESRCH)) return {};  // not there: done
  return res;
}

Result<std::vector<Result<void>>> Rtnl::replace_routes(std::span<const Route> routes) {
  return impl_->route_batch(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, routes, "replace");
}

Result<std::vector<Result<void>>> Rtnl::delete_routes(std::span<const Route> routes) {
  auto out = impl_->route_batch(RTM_DELROUTE, 0, routes, "delete");
  if (!out) return out;
  for (auto& r : *out)
    if (!r && r.error().is(ESRCH)) r = Result<void>();
  return out;
}

Result<ParsedRoute> Rtnl::get_route(const IpAddress& dst) {
  const std::string what = "get route to " + dst.to_string();
  auto req = build_route_get(impl_->buf, dst);
  if (!req) return Error{req.error().code, what + ": " + req.error().message};
  std::optional<ParsedRoute> found;
  auto r = impl_->call(*req, what, [&](const nlmsghdr& m) -> Result<void> {
    auto pr = parse_route(m);
    if (!pr) return pr.error();
    found = std::move(*pr);
    return {};
  });
  if (!r) return r.error();
  if (!found) return fail(ENETUNREACH, what);
  return *found;
}

// ---- RtnlEvents ----------------------------------------------------------

struct RtnlEvents::Impl {
  NlSocket sock;
};

RtnlEvents::RtnlEvents(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RtnlEvents::RtnlEvents(RtnlEvents&&) noexcept = default;
RtnlEvents& RtnlEvents::operator=(RtnlEvents&&) noexcept = default;
RtnlEvents::~RtnlEvents() = default;

Result<RtnlEvents> RtnlEvents::open() {
  auto s = NlSocket::open(NETLINK_ROUTE, /*nonblocking=*/true);
  if (!s) return s.error();
  for (unsigned g : {RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE,
                     RTNLGRP_IPV6_ROUTE}) {
    if (auto r = s->join_group(g); !r) return Error{r.error().code, "subscribe to rtnetlink events: " + r.error().message};
  }
  return RtnlEvents(std::make_unique<Impl>(Impl{std::move(*s)}));
}

RtnlEvents RtnlEvents::over(NlSocket sock) {
  return RtnlEvents(std::make_unique<Impl>(Impl{std::move(sock)}));
}

int RtnlEvents::fd() const { return impl_->sock.fd(); }

Result<std::vector<Event>> RtnlEvents::read() {
  std::vector<Event> out;
  auto r = impl_->sock.drain("read rtnetlink events", [&](const nlmsghdr& m) -> Result<void> {
    // Unknown or odd messages (another family's route, a NOOP) are not
    // events we act on; skipping them keeps one strange message from hiding
    // the rest of the batch.
    if (auto ev = parse_event(m)) out.push_back(std::move(*ev));
    return {};
  });
  if (!r) return r.error();
  return out;
}

// ---- route_mtu -------------------------------------------------------------

Result<unsigned> route_mtu(Rtnl& rtnl, const std::optional<IpAddress>& dst) {
  int oif = 0;
  std::uint32_t route_mtu_metric = 0;
  std::string what;
  if (dst && !dst->empty()) {
    what = "find the MTU towards " + dst->to_string();
    auto pr = rtnl.get_route(*dst);
    if (!pr) return Error{pr.error().code, what + ": " + pr.error().message};
    oif = pr->route.oif;
    route_mtu_metric = pr->mtu;
  } else {
    what = "find the MTU of the default route";
    // The default route with the lowest metric, IPv4 first.
    for (int family : {AF_INET, AF_INET6}) {
      RouteFilter f;
      f.family = family;
      auto routes = rtnl.list_routes(f);
      if (!routes) return Error{routes.error().code, what + ": " + routes.error().message};
      const Route* best = nullptr;
      for (const Route& rt : *routes)
        if (rt.dst.length == 0 && rt.oif && (!best || rt.metric < best->metric)) best = &rt;
      if (best) {
        oif = best->oif;
        break;
      }
    }
    if (!oif) return fail(ENETUNREACH, what + ": there is no default route; set the MTU in the config");
  }
  if (!oif) return fail(ENETUNREACH, what + ": the route has no output interface");
  auto link = rtnl.get_link(oif);
  if (!link) return Error{link.error().code, what + ": " + link.error().message};
  unsigned mtu = link->mtu;
  if (route_mtu_metric && route_mtu_metric < mtu) mtu = route_mtu_metric;
  return mtu;
}

}  // namespace meshd::nl
