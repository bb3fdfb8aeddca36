#include "netlink/rtnl.h"

#include "common/ifname.h"
#include "netlink/netns.h"
#include "netlink/nl_socket.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>

namespace meshd::nl {
namespace {

// ---- attribute helpers ---------------------------------------------------
// libmnl's mnl_attr_for_each needs casts from C++; these walk attributes with
// the same bounds checks (mnl_attr_ok) and fill a table indexed by type. A
// later duplicate wins, as in the kernel's own nla_parse.

template <std::size_t N>
void attr_table(const nlmsghdr& nlh, std::size_t offset, std::array<const nlattr*, N>& tb) {
  tb.fill(nullptr);
  // The end is nlmsg_len itself, not libmnl's payload tail (which rounds it
  // up to 4): a message whose length is not a multiple of 4 must not let its
  // last attribute read the padding that is not there.
  const std::size_t start = MNL_NLMSG_HDRLEN + MNL_ALIGN(offset);
  if (nlh.nlmsg_len < start) return;
  const char* base = reinterpret_cast<const char*>(&nlh);
  const char* tail = base + nlh.nlmsg_len;
  const auto* a = reinterpret_cast<const nlattr*>(base + start);
  while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
    std::uint16_t t = mnl_attr_get_type(a);
    if (t < N) tb[t] = a;
    a = mnl_attr_next(a);
  }
}

template <std::size_t N>
void nested_table(const nlattr* nest, std::array<const nlattr*, N>& tb) {
  tb.fill(nullptr);
  const char* end = reinterpret_cast<const char*>(nest) + mnl_attr_get_len(nest);
  const auto* a = static_cast<const nlattr*>(mnl_attr_get_payload(nest));
  while (mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a)))) {
    std::uint16_t t = mnl_attr_get_type(a);
    if (t < N) tb[t] = a;
    a = mnl_attr_next(a);
  }
}

std::optional<std::uint32_t> attr_u32(const nlattr* a) {
  if (!a || mnl_attr_get_payload_len(a) < sizeof(std::uint32_t)) return std::nullopt;
  std::uint32_t v;
  std::memcpy(&v, mnl_attr_get_payload(a), sizeof v);
  return v;
}

std::string attr_str(const nlattr* a) {
  if (!a) return {};
  const char* p = static_cast<const char*>(mnl_attr_get_payload(a));
  return std::string(p, strnlen(p, mnl_attr_get_payload_len(a)));
}

// An address attribute must be exactly as long as its family says.
Result<IpAddress> attr_ip(const nlattr* a, int family, const char* what) {
  IpAddress ip;
  ip.family = family;
  std::size_t want = family == AF_INET ? 4 : 16;
  if (mnl_attr_get_payload_len(a) != want)
    return fail(EBADMSG, std::string("parse ") + what + ": address of " +
                             std::to_string(mnl_attr_get_payload_len(a)) + " bytes");
  std::memcpy(ip.bytes.data(), mnl_attr_get_payload(a), want);
  return ip;
}

bool family_ok(int f) { return f == AF_INET || f == AF_INET6; }

// ---- building helpers ----------------------------------------------------

struct Builder {
  std::span<std::uint8_t> buf;
  nlmsghdr* nlh = nullptr;
  bool overflow = false;

  Result<void> start(std::uint16_t type, std::uint16_t flags, std::size_t extra) {
    if (buf.size() < MNL_NLMSG_HDRLEN + MNL_ALIGN(extra)) return fail(EMSGSIZE, "build netlink message");
    std::memset(buf.data(), 0, MNL_NLMSG_HDRLEN + MNL_ALIGN(extra));
    nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    mnl_nlmsg_put_extra_header(nlh, extra);
    return {};
  }
  void put(std::uint16_t type, std::size_t len, const void* data) {
    if (!overflow && !mnl_attr_put_check(nlh, buf.size(), type, len, data)) overflow = true;
  }
  void u32(std::uint16_t type, std::uint32_t v) { put(type, sizeof v, &v); }
  void str(std::uint16_t type, std::string_view s) {
    // NUL-terminated, like mnl_attr_put_strz.
    if (overflow) return;
    std::string z(s);
    put(type, z.size() + 1, z.c_str());
  }
  void ip(std::uint16_t type, const IpAddress& a) { put(type, a.size(), a.bytes.data()); }
  nlattr* nest(std::uint16_t type) {
    if (overflow) return nullptr;
    nlattr* n = mnl_attr_nest_start_check(nlh, buf.size(), type);
    if (!n) overflow = true;
    return n;
  }
  void end(nlattr* n) {
    if (n && !overflow) mnl_attr_nest_end(nlh, n);
  }
  Result<nlmsghdr*> done(const std::string& what) {
    if (overflow) return fail(EMSGSIZE, "build " + what);
    return nlh;
  }
};

// common/ifname.h's rule, not the kernel's looser dev_valid_name(): a name
// with '%' is a template to the kernel (RTM_NEWLINK "wg%d" creates wg0, then
// wg1 on a retry, ...), so a retried create would leak devices.
Result<void> check_ifname(std::string_view name, std::string_view what) {
  return check_interface_name(name, what);
}

std::string table_suffix(std::uint32_t table) {
  return table == RT_TABLE_MAIN ? std::string() : " table " + std::to_string(table);
}

}  // namespace

// ---- pure builders -------------------------------------------------------

Result<nlmsghdr*> build_link_msg(std::span<std::uint8_t> buf, std::uint16_t type, std::uint16_t flags,
                                 const Link& link, bool set_up_flag) {
  if (!link.name.empty()) {
    if (auto r = check_ifname(link.name, "build link message"); !r) return r.error();
  }
  if (link.kind.size() > 64) return Error::invalid("build link message: kind \"" + link.kind + "\" too long");
  Builder b{buf};
  if (auto r = b.start(type, flags, sizeof(ifinfomsg)); !r) return r.error();
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(b.nlh));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = link.index;
  if (set_up_flag) {
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = link.up ? IFF_UP : 0;
  }
  if (!link.name.empty()) b.str(IFLA_IFNAME, link.name);
  if (link.mtu) b.u32(IFLA_MTU, link.mtu);
  if (!link.kind.empty()) {
    nlattr* info = b.nest(IFLA_LINKINFO);
    b.str(IFLA_INFO_KIND, link.kind);
    b.end(info);
  }
  return b.done("link message for " + link.name);
}

Result<nlmsghdr*> build_address_msg(std::span<std::uint8_t> buf, std::uint16_t type, std::uint16_t flags,
                                    const Address& a) {
  const IpAddress& ip = a.prefix.address;
  if (!family_ok(ip.family)) return Error::invalid("build address message: address family unset");
  if (a.prefix.length > a.prefix.max_length())
    return Error::invalid("build address message: prefix length " + std::to_string(a.prefix.length));
  Builder b{buf};
  if (auto r = b.start(type, flags, sizeof(ifaddrmsg)); !r) return r.error();
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_get_payload(b.nlh));
  ifa->ifa_family = static_cast<std::uint8_t>(ip.family);
  ifa->ifa_prefixlen = a.prefix.length;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<std::uint32_t>(a.ifindex);
  // As iproute2 does for a non point-to-point address: local == address.
  b.ip(IFA_LOCAL, ip);
  b.ip(IFA_ADDRESS, ip);
  return b.done("address message for " + a.prefix.to_string());
}

Result<nlmsghdr*> build_route_msg(std::span<std::uint8_t> buf, std::uint16_t type, std::uint16_t flags,
                                  const Route& r) {
  const int family = r.dst.address.family;
  const std::string what = "route message for " + describe_route(r);
  if (!family_ok(family)) return Error::invalid("build " + what + ": destination family unset");
  if (r.dst.length > r.dst.max_length())
    return Error::invalid("build " + what + ": prefix length " + std::to_string(r.dst.length));
  if (r.gateway && r.gateway->family != family)
    return Error::invalid("build " + what + ": gateway family differs from the destination's");
  if (r.prefsrc && r.prefsrc->family != family)
    return Error::invalid("build " + what + ": source family differs from the destination's");
  Builder b{buf};
  if (auto res = b.start(type, flags, sizeof(rtmsg)); !res) return res.error();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(b.nlh));
  rtm->rtm_family = static_cast<std::uint8_t>(family);
  rtm->rtm_dst_len = r.dst.length;
  rtm->rtm_protocol = r.protocol;
  rtm->rtm_type = RTN_UNICAST;
  // Deleting matches any scope (iproute2 does the same): the caller's Route
  // may say universe for a route the kernel stored as link-scoped.
  rtm->rtm_scope = type == RTM_DELROUTE ? static_cast<std::uint8_t>(RT_SCOPE_NOWHERE) : r.scope;
  rtm->rtm_table = r.table < 256 ? static_cast<std::uint8_t>(r.table) : static_cast<std::uint8_t>(RT_TABLE_UNSPEC);
  if (r.onlink) rtm->rtm_flags |= RTNH_F_ONLINK;
  b.u32(RTA_TABLE, r.table);
  // The kernel wants the network address: a destination with host bits set is EINVAL.
  b.ip(RTA_DST, r.dst.network().address);
  if (r.oif) b.u32(RTA_OIF, static_cast<std::uint32_t>(r.oif));
  if (r.gateway) b.ip(RTA_GATEWAY, *r.gateway);
  if (r.prefsrc) b.ip(RTA_PREFSRC, *r.prefsrc);
  if (r.metric) b.u32(RTA_PRIORITY, r.metric);
  return b.done(what);
}

// ---- pure parsers --------------------------------------------------------

Result<Link> parse_link(const nlmsghdr& nlh) {
  if (nlh.nlmsg_type != RTM_NEWLINK && nlh.nlmsg_type != RTM_DELLINK)
    return fail(EBADMSG, "parse link: message type " + std::to_string(nlh.nlmsg_type));
  if (nlh.nlmsg_len < NLMSG_HDRLEN + sizeof(ifinfomsg)) return fail(EBADMSG, "parse link: truncated");
  ifinfomsg ifi;
  std::memcpy(&ifi, mnl_nlmsg_get_payload(&nlh), sizeof ifi);
  Link link;
  link.index = ifi.ifi_index;
  link.flags = ifi.ifi_flags;
  link.up = (ifi.ifi_flags & IFF_UP) != 0;
  std::array<const nlattr*, IFLA_MAX + 1> tb;
  attr_table(nlh, sizeof(ifinfomsg), tb);
  link.name = attr_str(tb[IFLA_IFNAME]);
  if (link.name.empty()) return fail(EBADMSG, "parse link " + std::to_string(link.index) + ": no name");
  if (auto mtu = attr_u32(tb[IFLA_MTU])) link.mtu = *mtu;
  if (tb[IFLA_LINKINFO]) {
    std::array<const nlattr*, IFLA_INFO_MAX + 1> info;
    nested_table(tb[IFLA_LINKINFO], info);
    link.kind = attr_str(info[IFLA_INFO_KIND]);
  }
  return link;
}

Result<Address> parse_address(const nlmsghdr& nlh) {
  if (nlh.nlmsg_type != RTM_NEWADDR && nlh.nlmsg_type != RTM_DELADDR)
    return fail(EBADMSG, "parse address: message type " + std::to_string(nlh.nlmsg_type));
  if (nlh.nlmsg_len < NLMSG_HDRLEN + sizeof(ifaddrmsg)) return fail(EBADMSG, "parse address: truncated");
  ifaddrmsg ifa;
  std::memcpy(&ifa, mnl_nlmsg_get_payload(&nlh), sizeof ifa);
  if (!family_ok(ifa.ifa_family))
    return fail(EAFNOSUPPORT, "parse address: family " + std::to_string(ifa.ifa_family));
  std::array<const nlattr*, IFA_MAX + 1> tb;
  attr_table(nlh, sizeof(ifaddrmsg), tb);
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
  // point-to-point links and the same as IFA_LOCAL elsewhere (IPv6 sends only it).
  const nlattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (!a) return fail(EBADMSG, "parse address on ifindex " + std::to_string(ifa.ifa_index) + ": no address");
  auto ip = attr_ip(a, ifa.ifa_family, "address");
  if (!ip) return ip.error();
  Address out;
  out.ifindex = static_cast<int>(ifa.ifa_index);
  out.prefix.address = *ip;
  out.prefix.length = ifa.ifa_prefixlen;
  if (out.prefix.length > out.prefix.max_length())
    return fail(EBADMSG, "parse address: prefix length " + std::to_string(ifa.ifa_prefixlen));
  return out;
}

Result<ParsedRoute> parse_route(const nlmsghdr& nlh) {
  if (nlh.nlmsg_type != RTM_NEWROUTE && nlh.nlmsg_type != RTM_DELROUTE)
    return fail(EBADMSG, "parse route: message type " + std::to_string(nlh.nlmsg_type));
  if (nlh.nlmsg_len < NLMSG_HDRLEN + sizeof(rtmsg)) return fail(EBADMSG, "parse route: truncated");
  rtmsg rtm;
  std::memcpy(&rtm, mnl_nlmsg_get_payload(&nlh), sizeof rtm);
  if (!family_ok(rtm.rtm_family))
    return fail(EAFNOSUPPORT, "parse route: family " + std::to_string(rtm.rtm_family));
  ParsedRoute out;
  Route& r = out.route;
  out.type = rtm.rtm_type;
  out.cloned = (rtm.rtm_flags & RTM_F_CLONED) != 0;
  r.protocol = rtm.rtm_protocol;
  r.scope = rtm.rtm_scope;
  r.table = rtm.rtm_table;
  r.onlink = (rtm.rtm_flags & RTNH_F_ONLINK) != 0;
  r.dst.address.family = rtm.rtm_family;
  r.dst.length = rtm.rtm_dst_len;
  if (r.dst.length > r.dst.max_length())
    return fail(EBADMSG, "parse route: prefix length " + std::to_string(rtm.rtm_dst_len));

  std::array<const nlattr*, RTA_MAX + 1> tb;
  attr_table(nlh, sizeof(rtmsg), tb);
  // No RTA_DST: the default route of the family.
  if (tb[RTA_DST]) {
    auto ip = attr_ip(tb[RTA_DST], rtm.rtm_family, "route destination");
    if (!ip) return ip.error();
    r.dst.address = *ip;
  }
  if (auto t = attr_u32(tb[RTA_TABLE])) r.table = *t;
  if (auto oif = attr_u32(tb[RTA_OIF])) r.oif = static_cast<int>(*oif);
  if (auto m = attr_u32(tb[RTA_PRIORITY])) r.metric = *m;
  if (tb[RTA_GATEWAY]) {
    auto ip = attr_ip(tb[RTA_GATEWAY], rtm.rtm_family, "route gateway");
    if (!ip) return ip.error();
    r.gateway = *ip;
  }
  if (tb[RTA_PREFSRC]) {
    auto ip = attr_ip(tb[RTA_PREFSRC], rtm.rtm_family, "route source");
    if (!ip) return ip.error();
    r.prefsrc = *ip;
  }
  out.multipath = tb[RTA_MULTIPATH] != nullptr;
  if (tb[RTA_METRICS]) {
    std::array<const nlattr*, RTAX_MAX + 1> mx;
    nested_table(tb[RTA_METRICS], mx);
    if (auto mtu = attr_u32(mx[RTAX_MTU])) out.mtu = *mtu;
  }
  return out;
}

Result<Event> parse_event(const nlmsghdr& nlh) {
  Event ev;
  switch (nlh.nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK: {
      auto l = parse_link(nlh);
      if (!l) return l.error();
      ev.type = Event::Type::kLink;
      ev.removed = nlh.nlmsg_type == RTM_DELLINK;
      ev.ifindex = l->index;
      ev.ifname = l->name;
      ev.link = std::move(*l);
      return ev;
    }
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      auto a = parse_address(nlh);
      if (!a) return a.error();
      ev.type = Event::Type::kAddress;
      ev.removed = nlh.nlmsg_type == RTM_DELADDR;
      ev.ifindex = a->ifindex;
      ev.address = *a;
      return ev;
    }
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      auto r = parse_route(nlh);
      if (!r) return r.error();
      ev.type = Event::Type::kRoute;
      ev.removed = nlh.nlmsg_type == RTM_DELROUTE;
      ev.ifindex = r->route.oif;
      ev.route = r->route;
      return ev;
    }
    default:
      return fail(EBADMSG, "parse rtnetlink event: message type " + std::to_string(nlh.nlmsg_type));
  }
}

std::string describe_route(const Route& r, std::string_view ifname) {
  std::string s = r.dst.address.empty() ? std::string("?") : r.dst.to_string();
  if (r.gateway) s += " via " + r.gateway->to_string();
  if (!ifname.empty())
    s += " dev " + std::string(ifname);
  else if (r.oif)
    s += " dev #" + std::to_string(r.oif);
  if (r.prefsrc) s += " src " + r.prefsrc->to_string();
  if (r.metric) s += " metric " + std::to_string(r.metric);
  if (r.onlink) s += " onlink";
  s += " proto " + std::to_string(r.protocol);
  s += table_suffix(r.table);
  return s;
}

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

std::uint64_t Rtnl::dump_restarts() const { return impl_->sock.dump_restarts(); }

Result<std::vector<Link>> Rtnl::list_links() {
  std::vector<Link> out;
  Builder b{impl_->buf};
  if (auto r = b.start(RTM_GETLINK, NLM_F_DUMP, sizeof(ifinfomsg)); !r) return r.error();
  // Statistics are most of a link dump's bytes and we never read them.
  b.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  auto req = b.done("list links");
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
  if (auto r = check_ifname(name, what); !r) return r.error();
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
  if (auto r = check_ifname(name, what); !r) return r;
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
  if (auto r = check_ifname(name, what); !r) return r;
  if (auto r = check_ifname(peer, what); !r) return r;
  Builder b{impl_->buf};
  if (auto r = b.start(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(ifinfomsg)); !r) return r;
  b.str(IFLA_IFNAME, name);
  if (mtu) b.u32(IFLA_MTU, mtu);
  nlattr* info = b.nest(IFLA_LINKINFO);
  b.str(IFLA_INFO_KIND, "veth");
  nlattr* data = b.nest(IFLA_INFO_DATA);
  nlattr* peer_nest = b.nest(VETH_INFO_PEER);
  // The peer is described by a full ifinfomsg followed by its own attributes.
  if (!b.overflow) {
    ifinfomsg pifi{};
    pifi.ifi_family = AF_UNSPEC;
    auto* dst = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload_tail(b.nlh));
    if (b.nlh->nlmsg_len + sizeof pifi > b.buf.size()) {
      b.overflow = true;
    } else {
      std::memcpy(dst, &pifi, sizeof pifi);
      b.nlh->nlmsg_len += MNL_ALIGN(sizeof pifi);
    }
  }
  b.str(IFLA_IFNAME, peer);
  if (mtu) b.u32(IFLA_MTU, mtu);
  if (peer_netns_fd >= 0) b.u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(peer_netns_fd));
  b.end(peer_nest);
  b.end(data);
  b.end(info);
  auto req = b.done(what);
  if (!req) return req.error();
  return impl_->call(*req, what);
}

Result<void> Rtnl::delete_link(std::string_view name) {
  const std::string what = "delete link " + std::string(name);
  if (auto r = check_ifname(name, what); !r) return r;
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
  if (auto r = check_ifname(name, what); !r) return r;
  Link l;
  l.name = std::string(name);
  l.up = up;
  auto req = build_link_msg(impl_->buf, RTM_NEWLINK, 0, l, /*set_up_flag=*/true);
  if (!req) return req.error();
  return impl_->call(*req, what);
}

Result<void> Rtnl::set_mtu(std::string_view name, unsigned mtu) {
  const std::string what = "set link " + std::string(name) + " mtu " + std::to_string(mtu);
  if (auto r = check_ifname(name, what); !r) return r;
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
  if (auto r = check_ifname(name, what); !r) return r;
  Link l;
  l.name = std::string(name);
  auto req0 = build_link_msg(impl_->buf, RTM_NEWLINK, 0, l);
  if (!req0) return req0.error();
  Builder b{impl_->buf, *req0};
  b.u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(netns_fd));
  auto req = b.done(what);
  if (!req) return req.error();
  return impl_->call(*req, what);
}

Result<std::vector<Address>> Rtnl::list_addresses(int ifindex, int family) {
  std::vector<Address> out;
  Builder b{impl_->buf};
  if (auto r = b.start(RTM_GETADDR, NLM_F_DUMP, sizeof(ifaddrmsg)); !r) return r.error();
  static_cast<ifaddrmsg*>(mnl_nlmsg_get_payload(b.nlh))->ifa_family = static_cast<std::uint8_t>(family);
  auto req = b.done("list addresses");
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
  Builder b{impl_->buf};
  if (auto r = b.start(RTM_GETROUTE, NLM_F_DUMP, sizeof(rtmsg)); !r) return r.error();
  static_cast<rtmsg*>(mnl_nlmsg_get_payload(b.nlh))->rtm_family = static_cast<std::uint8_t>(f.family);
  auto req = b.done("list routes");
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
  if (!family_ok(dst.family)) return Error::invalid(what + ": address family unset");
  // RTM_GETROUTE without NLM_F_DUMP resolves one destination.
  Builder b{impl_->buf};
  if (auto r = b.start(RTM_GETROUTE, 0, sizeof(rtmsg)); !r) return r.error();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(b.nlh));
  rtm->rtm_family = static_cast<std::uint8_t>(dst.family);
  rtm->rtm_dst_len = static_cast<std::uint8_t>(dst.is_v4() ? 32 : 128);
  b.ip(RTA_DST, dst);
  auto req = b.done(what);
  if (!req) return req.error();
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
