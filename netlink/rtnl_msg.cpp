#include "netlink/rtnl_msg.h"

#include "common/ifname.h"
#include "netlink/nl_attr.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace meshd::nl {
namespace {

// ---- attribute helpers ---------------------------------------------------
// netlink/nl_attr.h walks the attributes: one cut short is an error (EBADMSG
// here, as the parsers promise), never a shorter message.

using Bytes = std::span<const std::uint8_t>;

// The attributes after the fixed header of `nlh` (ifinfomsg, rtmsg...), up
// to nlmsg_len itself, not libmnl's payload tail (which rounds it up to 4): a
// message whose length is not a multiple of 4 must not let its last attribute
// read the padding that is not there.
template <std::size_t N>
Result<NlAttrTable<N>> attrs_of(const nlmsghdr& nlh, std::size_t fixed, const std::string& what) {
  const std::size_t start = MNL_NLMSG_HDRLEN + MNL_ALIGN(fixed);
  Bytes region;
  if (nlh.nlmsg_len > start)
    region = Bytes(reinterpret_cast<const std::uint8_t*>(&nlh) + start, nlh.nlmsg_len - start);
  auto tb = attr_table<N>(region);
  if (!tb) return fail(EBADMSG, what + ": " + tb.error().message);
  return tb;
}

template <std::size_t N>
Result<NlAttrTable<N>> nested_attrs(Bytes nest, const std::string& what) {
  auto tb = attr_table<N>(nest);
  if (!tb) return fail(EBADMSG, what + ": " + tb.error().message);
  return tb;
}

std::optional<std::uint32_t> attr_u32(const std::optional<Bytes>& a) {
  if (!a || a->size() < sizeof(std::uint32_t)) return std::nullopt;
  std::uint32_t v;
  std::memcpy(&v, a->data(), sizeof v);
  return v;
}

std::string attr_str(const std::optional<Bytes>& a) {
  if (!a) return {};
  const char* p = reinterpret_cast<const char*>(a->data());
  return std::string(p, strnlen(p, a->size()));
}

// An address attribute must be exactly as long as its family says.
Result<IpAddress> attr_ip(Bytes a, int family, const char* what) {
  IpAddress ip;
  ip.family = family;
  std::size_t want = family == AF_INET ? 4 : 16;
  if (a.size() != want)
    return fail(EBADMSG, std::string("parse ") + what + ": address of " +
                             std::to_string(a.size()) + " bytes");
  std::memcpy(ip.bytes.data(), a.data(), want);
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

Result<nlmsghdr*> build_veth_msg(std::span<std::uint8_t> buf, std::string_view name,
                                 std::string_view peer, int peer_netns_fd, unsigned mtu) {
  const std::string what = "veth message for " + std::string(name) + " <-> " + std::string(peer);
  if (auto r = check_ifname(name, "build " + what); !r) return r.error();
  if (auto r = check_ifname(peer, "build " + what); !r) return r.error();
  Builder b{buf};
  if (auto r = b.start(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(ifinfomsg)); !r) return r.error();
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
  return b.done(what);
}

Result<nlmsghdr*> build_move_link_msg(std::span<std::uint8_t> buf, std::string_view name,
                                      int netns_fd) {
  Link l;
  l.name = std::string(name);
  auto req = build_link_msg(buf, RTM_NEWLINK, 0, l);
  if (!req) return req.error();
  Builder b{buf, *req};
  b.u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(netns_fd));
  return b.done("move message for link " + l.name);
}

Result<nlmsghdr*> build_link_dump(std::span<std::uint8_t> buf) {
  Builder b{buf};
  if (auto r = b.start(RTM_GETLINK, NLM_F_DUMP, sizeof(ifinfomsg)); !r) return r.error();
  // Statistics are most of a link dump's bytes and we never read them.
  b.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return b.done("link dump request");
}

Result<nlmsghdr*> build_address_dump(std::span<std::uint8_t> buf, int family) {
  Builder b{buf};
  if (auto r = b.start(RTM_GETADDR, NLM_F_DUMP, sizeof(ifaddrmsg)); !r) return r.error();
  static_cast<ifaddrmsg*>(mnl_nlmsg_get_payload(b.nlh))->ifa_family = static_cast<std::uint8_t>(family);
  return b.done("address dump request");
}

Result<nlmsghdr*> build_route_dump(std::span<std::uint8_t> buf, int family) {
  Builder b{buf};
  if (auto r = b.start(RTM_GETROUTE, NLM_F_DUMP, sizeof(rtmsg)); !r) return r.error();
  static_cast<rtmsg*>(mnl_nlmsg_get_payload(b.nlh))->rtm_family = static_cast<std::uint8_t>(family);
  return b.done("route dump request");
}

Result<nlmsghdr*> build_route_get(std::span<std::uint8_t> buf, const IpAddress& dst) {
  const std::string what = "route lookup for " + dst.to_string();
  if (!family_ok(dst.family)) return Error::invalid("build route lookup: address family unset");
  // RTM_GETROUTE without NLM_F_DUMP resolves one destination.
  Builder b{buf};
  if (auto r = b.start(RTM_GETROUTE, 0, sizeof(rtmsg)); !r) return r.error();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(b.nlh));
  rtm->rtm_family = static_cast<std::uint8_t>(dst.family);
  rtm->rtm_dst_len = static_cast<std::uint8_t>(dst.is_v4() ? 32 : 128);
  b.ip(RTA_DST, dst);
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
  auto tb = attrs_of<IFLA_MAX + 1>(nlh, sizeof(ifinfomsg), "parse link " + std::to_string(link.index));
  if (!tb) return tb.error();
  link.name = attr_str((*tb)[IFLA_IFNAME]);
  if (link.name.empty()) return fail(EBADMSG, "parse link " + std::to_string(link.index) + ": no name");
  if (auto mtu = attr_u32((*tb)[IFLA_MTU])) link.mtu = *mtu;
  if (const auto& hw = (*tb)[IFLA_ADDRESS]) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::uint8_t byte : *hw) {
      if (!link.mac.empty()) link.mac += ':';
      link.mac += kHex[byte >> 4];
      link.mac += kHex[byte & 0xf];
    }
  }
  if (const auto& nest = (*tb)[IFLA_LINKINFO]) {
    auto info = nested_attrs<IFLA_INFO_MAX + 1>(*nest, "parse link " + link.name + " info");
    if (!info) return info.error();
    link.kind = attr_str((*info)[IFLA_INFO_KIND]);
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
  auto tb = attrs_of<IFA_MAX + 1>(nlh, sizeof(ifaddrmsg),
                                  "parse address on ifindex " + std::to_string(ifa.ifa_index));
  if (!tb) return tb.error();
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
  // point-to-point links and the same as IFA_LOCAL elsewhere (IPv6 sends only it).
  const auto& a = (*tb)[IFA_LOCAL] ? (*tb)[IFA_LOCAL] : (*tb)[IFA_ADDRESS];
  if (!a) return fail(EBADMSG, "parse address on ifindex " + std::to_string(ifa.ifa_index) + ": no address");
  auto ip = attr_ip(*a, ifa.ifa_family, "address");
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

  auto attrs = attrs_of<RTA_MAX + 1>(nlh, sizeof(rtmsg), "parse route");
  if (!attrs) return attrs.error();
  const NlAttrTable<RTA_MAX + 1>& tb = *attrs;
  // No RTA_DST: the default route of the family.
  if (tb[RTA_DST]) {
    auto ip = attr_ip(*tb[RTA_DST], rtm.rtm_family, "route destination");
    if (!ip) return ip.error();
    r.dst.address = *ip;
  }
  if (auto t = attr_u32(tb[RTA_TABLE])) r.table = *t;
  if (auto oif = attr_u32(tb[RTA_OIF])) r.oif = static_cast<int>(*oif);
  if (auto m = attr_u32(tb[RTA_PRIORITY])) r.metric = *m;
  if (tb[RTA_GATEWAY]) {
    auto ip = attr_ip(*tb[RTA_GATEWAY], rtm.rtm_family, "route gateway");
    if (!ip) return ip.error();
    r.gateway = *ip;
  }
  if (tb[RTA_PREFSRC]) {
    auto ip = attr_ip(*tb[RTA_PREFSRC], rtm.rtm_family, "route source");
    if (!ip) return ip.error();
    r.prefsrc = *ip;
  }
  out.multipath = tb[RTA_MULTIPATH].has_value();
  if (tb[RTA_METRICS]) {
    auto mx = nested_attrs<RTAX_MAX + 1>(*tb[RTA_METRICS], "parse route metrics");
    if (!mx) return mx.error();
    if (auto mtu = attr_u32((*mx)[RTAX_MTU])) out.mtu = *mtu;
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

}  // namespace meshd::nl
