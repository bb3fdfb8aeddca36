#include "netlink/wireguard_msg.h"

#include "common/ifname.h"
#include "netlink/nl_attr.h"
#include "netlink/nl_socket.h"

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

namespace meshd::nl {

// --- NlMessage ---

NlMessage& NlMessage::operator=(NlMessage&& o) noexcept {
  if (this != &o) {
    if (!bytes_.empty()) explicit_bzero(bytes_.data(), bytes_.size());
    bytes_ = std::move(o.bytes_);
  }
  return *this;
}

NlMessage::~NlMessage() {
  if (!bytes_.empty()) explicit_bzero(bytes_.data(), bytes_.size());
}

std::size_t default_message_size() { return static_cast<std::size_t>(MNL_SOCKET_BUFFER_SIZE); }

namespace {

// --- Reading: netlink/nl_attr.h's strict walker; every field is copied out
// with memcpy so that unaligned input (a fuzzer's, a sliced buffer) is never
// dereferenced.

Error bad_size(const char* what, std::size_t got, std::size_t want) {
  return Error::invalid(std::string("wireguard netlink attribute ") + what + " has " +
                        std::to_string(got) + " bytes, expected " + std::to_string(want));
}

// Calls fn(payload) for each attribute nested in a list attribute (peers,
// allowed IPs); `what` names the list in errors.
template <class Fn>
Result<void> for_each_nested(std::span<const std::uint8_t> list, const char* what, Fn&& fn) {
  NlAttrReader r(list);
  NlAttr a;
  for (;;) {
    auto more = r.next(a);
    if (!more) return Error::invalid(std::string(what) + ": " + more.error().message);
    if (!*more) return {};
    if (auto x = fn(a.payload); !x) return x.error();
  }
}

template <class T>
Result<T> read_int(const NlAttr& a, const char* what) {
  if (a.payload.size() != sizeof(T)) return bad_size(what, a.payload.size(), sizeof(T));
  T v;
  std::memcpy(&v, a.payload.data(), sizeof v);
  return v;
}

// Reads an integer attribute of exactly sizeof(T) bytes into `out`.
template <class T, class Out>
Result<void> read_int_into(const NlAttr& a, const char* what, Out& out) {
  auto v = read_int<T>(a, what);
  if (!v) return v.error();
  out = static_cast<Out>(*v);
  return {};
}

Result<keys::KeyBytes> read_key(const NlAttr& a, const char* what) {
  if (a.payload.size() != WG_KEY_LEN) return bad_size(what, a.payload.size(), WG_KEY_LEN);
  keys::KeyBytes k;
  std::memcpy(k.data(), a.payload.data(), k.size());
  return k;
}

// The message header checks shared by every parser: a whole nlmsghdr whose
// length fits the bytes, plus the genetlink header.
Result<std::span<const std::uint8_t>> genl_attributes(std::span<const std::uint8_t> message) {
  if (message.size() < NLMSG_HDRLEN) return Error::invalid("truncated netlink message header");
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > message.size())
    return Error::invalid("netlink message length " + std::to_string(h.nlmsg_len) +
                          " does not fit the " + std::to_string(message.size()) +
                          " bytes received");
  if (h.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
    return Error::invalid("generic netlink message of " + std::to_string(h.nlmsg_len) +
                          " bytes has no genetlink header");
  return message.subspan(NLMSG_HDRLEN + GENL_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
}

Result<IpPrefix> parse_allowed_ip(std::span<const std::uint8_t> bytes) {
  NlAttrReader r(bytes);
  NlAttr a;
  std::optional<std::uint16_t> family;
  std::span<const std::uint8_t> addr;
  std::optional<std::uint8_t> cidr;
  for (;;) {
    auto more = r.next(a);
    if (!more) return more.error();
    if (!*more) break;
    switch (a.type) {
      case WGALLOWEDIP_A_FAMILY:
        if (auto r = read_int_into<std::uint16_t>(a, "WGALLOWEDIP_A_FAMILY", family); !r)
          return r.error();
        break;
      case WGALLOWEDIP_A_IPADDR:
        addr = a.payload;
        break;
      case WGALLOWEDIP_A_CIDR_MASK:
        if (auto r = read_int_into<std::uint8_t>(a, "WGALLOWEDIP_A_CIDR_MASK", cidr); !r)
          return r.error();
        break;
      default:
        break;  // newer kernels may add attributes: ignore, as wg does
    }
  }
  if (!family || addr.empty() || !cidr)
    return Error::invalid("wireguard allowed IP lacks family, address or prefix length");
  IpPrefix p;
  if (*family == AF_INET) {
    if (addr.size() != 4) return bad_size("WGALLOWEDIP_A_IPADDR (IPv4)", addr.size(), 4);
    if (*cidr > 32) return Error::invalid("IPv4 allowed IP with prefix length " + std::to_string(*cidr));
  } else if (*family == AF_INET6) {
    if (addr.size() != 16) return bad_size("WGALLOWEDIP_A_IPADDR (IPv6)", addr.size(), 16);
    if (*cidr > 128) return Error::invalid("IPv6 allowed IP with prefix length " + std::to_string(*cidr));
  } else {
    return Error::invalid("wireguard allowed IP of unknown address family " + std::to_string(*family));
  }
  p.address.family = *family;
  std::memcpy(p.address.bytes.data(), addr.data(), addr.size());
  p.length = *cidr;
  return p;
}

Result<wg::WgPeer> parse_peer(std::span<const std::uint8_t> bytes) {
  wg::WgPeer peer;
  bool have_key = false;
  NlAttrReader r(bytes);
  NlAttr a;
  for (;;) {
    auto more = r.next(a);
    if (!more) return more.error();
    if (!*more) break;
    switch (a.type) {
      case WGPEER_A_PUBLIC_KEY: {
        auto k = read_key(a, "WGPEER_A_PUBLIC_KEY");
        if (!k) return k.error();
        peer.public_key = keys::PublicKey(*k);
        have_key = true;
        break;
      }
      case WGPEER_A_PRESHARED_KEY: {
        auto k = read_key(a, "WGPEER_A_PRESHARED_KEY");
        if (!k) return k.error();
        peer.preshared_key = keys::PresharedKey(*k);
        explicit_bzero(k->data(), k->size());
        break;
      }
      case WGPEER_A_FLAGS: {
        auto f = read_int<std::uint32_t>(a, "WGPEER_A_FLAGS");
        if (!f) return f.error();
        peer.remove = *f & WGPEER_F_REMOVE_ME;
        peer.replace_allowed_ips = *f & WGPEER_F_REPLACE_ALLOWEDIPS;
        peer.update_only = *f & WGPEER_F_UPDATE_ONLY;
        break;
      }
      case WGPEER_A_ENDPOINT: {
        // struct sockaddr_in or sockaddr_in6, exactly (the kernel checks the
        // same: wg_netlink set_peer compares the length with each size).
        if (a.payload.size() != sizeof(sockaddr_in) && a.payload.size() != sizeof(sockaddr_in6))
          return bad_size("WGPEER_A_ENDPOINT", a.payload.size(), sizeof(sockaddr_in));
        sockaddr_storage ss{};
        std::memcpy(&ss, a.payload.data(), a.payload.size());
        auto e = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), a.payload.size());
        if (!e) return Error::invalid("WGPEER_A_ENDPOINT: " + e.error().message);
        peer.endpoint = *e;
        break;
      }
      case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
        if (auto r = read_int_into<std::uint16_t>(a, "WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", peer.persistent_keepalive); !r)
          return r.error();
        break;
      case WGPEER_A_LAST_HANDSHAKE_TIME: {
        // struct __kernel_timespec: s64 seconds, s64 nanoseconds.
        if (a.payload.size() != 16) return bad_size("WGPEER_A_LAST_HANDSHAKE_TIME", a.payload.size(), 16);
        std::memcpy(&peer.last_handshake_sec, a.payload.data(), 8);
        std::memcpy(&peer.last_handshake_nsec, a.payload.data() + 8, 8);
        break;
      }
      case WGPEER_A_RX_BYTES:
        if (auto r = read_int_into<std::uint64_t>(a, "WGPEER_A_RX_BYTES", peer.rx_bytes); !r)
          return r.error();
        break;
      case WGPEER_A_TX_BYTES:
        if (auto r = read_int_into<std::uint64_t>(a, "WGPEER_A_TX_BYTES", peer.tx_bytes); !r)
          return r.error();
        break;
      case WGPEER_A_ALLOWEDIPS: {
        auto r = for_each_nested(a.payload, "WGPEER_A_ALLOWEDIPS",
                                 [&](std::span<const std::uint8_t> ip) -> Result<void> {
                                   auto p = parse_allowed_ip(ip);
                                   if (!p) return p.error();
                                   peer.allowed_ips.push_back(*p);
                                   return {};
                                 });
        if (!r) return r.error();
        break;
      }
      case WGPEER_A_PROTOCOL_VERSION:
        if (auto r = read_int_into<std::uint32_t>(a, "WGPEER_A_PROTOCOL_VERSION", peer.protocol_version); !r)
          return r.error();
        break;
      default:
        break;  // attributes of newer kernels
    }
  }
  if (!have_key) return Error::invalid("wireguard peer without WGPEER_A_PUBLIC_KEY");
  return peer;
}

}  // namespace

// --- One message ---

Result<wg::WgDevice> parse_device_message(std::span<const std::uint8_t> message) {
  auto attrs = genl_attributes(message);
  if (!attrs) return attrs.error();
  wg::WgDevice dev;
  NlAttrReader r(*attrs);
  NlAttr a;
  for (;;) {
    auto more = r.next(a);
    if (!more) return more.error();
    if (!*more) break;
    switch (a.type) {
      case WGDEVICE_A_IFINDEX:
        if (auto r = read_int_into<std::uint32_t>(a, "WGDEVICE_A_IFINDEX", dev.ifindex); !r)
          return r.error();
        break;
      case WGDEVICE_A_IFNAME: {
        // NUL-terminated, at most IFNAMSIZ bytes with the NUL.
        if (a.payload.empty() || a.payload.size() > IFNAMSIZ)
          return bad_size("WGDEVICE_A_IFNAME", a.payload.size(), IFNAMSIZ);
        const char* s = reinterpret_cast<const char*>(a.payload.data());
        dev.name.assign(s, strnlen(s, a.payload.size()));
        break;
      }
      case WGDEVICE_A_PRIVATE_KEY: {
        auto k = read_key(a, "WGDEVICE_A_PRIVATE_KEY");
        if (!k) return k.error();
        dev.private_key = keys::PrivateKey(*k);
        explicit_bzero(k->data(), k->size());
        break;
      }
      case WGDEVICE_A_PUBLIC_KEY: {
        auto k = read_key(a, "WGDEVICE_A_PUBLIC_KEY");
        if (!k) return k.error();
        dev.public_key = keys::PublicKey(*k);
        break;
      }
      case WGDEVICE_A_FLAGS: {
        auto v = read_int<std::uint32_t>(a, "WGDEVICE_A_FLAGS");
        if (!v) return v.error();
        dev.replace_peers = *v & WGDEVICE_F_REPLACE_PEERS;
        break;
      }
      case WGDEVICE_A_LISTEN_PORT:
        if (auto r = read_int_into<std::uint16_t>(a, "WGDEVICE_A_LISTEN_PORT", dev.listen_port); !r)
          return r.error();
        break;
      case WGDEVICE_A_FWMARK:
        if (auto r = read_int_into<std::uint32_t>(a, "WGDEVICE_A_FWMARK", dev.fwmark); !r)
          return r.error();
        break;
      case WGDEVICE_A_PEERS: {
        auto r = for_each_nested(a.payload, "WGDEVICE_A_PEERS",
                                 [&](std::span<const std::uint8_t> pa) -> Result<void> {
                                   auto p = parse_peer(pa);
                                   if (!p) return p.error();
                                   dev.peers.push_back(std::move(*p));
                                   return {};
                                 });
        if (!r) return r.error();
        break;
      }
      default:
        break;
    }
  }
  return dev;
}

// --- Merging ---

namespace {

// Folds `part` (one message's worth) into `into`, continuing the last peer
// when the part's first peer has the same public key.
void merge_part(wg::WgDevice& into, wg::WgDevice&& part) {
  if (!part.name.empty()) into.name = std::move(part.name);
  if (part.ifindex) into.ifindex = part.ifindex;
  if (part.private_key) into.private_key = std::move(part.private_key);
  if (!part.public_key.is_zero()) into.public_key = part.public_key;
  if (part.listen_port) into.listen_port = part.listen_port;
  if (part.fwmark) into.fwmark = part.fwmark;
  into.replace_peers = into.replace_peers || part.replace_peers;
  std::size_t i = 0;
  if (!part.peers.empty() && !into.peers.empty() &&
      into.peers.back().public_key == part.peers.front().public_key) {
    // The kernel repeats only the key and the remaining allowed IPs, but take
    // any attribute it does repeat.
    wg::WgPeer& last = into.peers.back();
    wg::WgPeer& cont = part.peers.front();
    if (cont.preshared_key) last.preshared_key = std::move(cont.preshared_key);
    if (cont.endpoint) last.endpoint = cont.endpoint;
    if (cont.persistent_keepalive) last.persistent_keepalive = cont.persistent_keepalive;
    if (cont.last_handshake_sec || cont.last_handshake_nsec) {
      last.last_handshake_sec = cont.last_handshake_sec;
      last.last_handshake_nsec = cont.last_handshake_nsec;
    }
    if (cont.protocol_version) last.protocol_version = cont.protocol_version;
    if (cont.rx_bytes) last.rx_bytes = cont.rx_bytes;
    if (cont.tx_bytes) last.tx_bytes = cont.tx_bytes;
    last.allowed_ips.insert(last.allowed_ips.end(), cont.allowed_ips.begin(),
                            cont.allowed_ips.end());
    i = 1;
  }
  for (; i < part.peers.size(); ++i) into.peers.push_back(std::move(part.peers[i]));
}

}  // namespace

Result<void> WgDumpMerger::add_message(std::span<const std::uint8_t> message) {
  auto part = parse_device_message(message);
  if (!part) return part.error();
  // GET replies carry the preshared key always, all zero when there is none:
  // in the model "no preshared key" is an unset optional (as wg shows it).
  for (auto& p : part->peers)
    if (p.preshared_key && p.preshared_key->is_zero()) p.preshared_key.reset();
  merge_part(device_, std::move(*part));
  ++messages_;
  return {};
}

Result<wg::WgDevice> parse_get_device_stream(std::span<const std::uint8_t> stream) {
  WgDumpMerger merger;
  while (!stream.empty()) {
    if (stream.size() < NLMSG_HDRLEN) return Error::invalid("truncated netlink message header");
    nlmsghdr h;
    std::memcpy(&h, stream.data(), sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > stream.size())
      return Error::invalid("netlink message length " + std::to_string(h.nlmsg_len) +
                            " does not fit the " + std::to_string(stream.size()) +
                            " bytes received");
    auto message = stream.first(h.nlmsg_len);
    // The device changed while the kernel was dumping it: the parts do not
    // add up to one state. The caller retries, a bounded number of times.
    if (h.nlmsg_flags & NLM_F_DUMP_INTR)
      return fail(EINTR, "get wireguard device: dump interrupted by a concurrent change");
    if (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR) {
      // The socket's own ack parser, so that an error reads as it does in
      // production: a status outside -4095..-1 (INT_MIN, a positive value)
      // is EPROTO rather than negated (negating INT_MIN is undefined).
      // Copied out: the stream may be unaligned.
      std::vector<std::uint32_t> aligned((message.size() + 3) / 4);
      std::memcpy(aligned.data(), message.data(), message.size());
      auto ack = parse_ack(reinterpret_cast<const nlmsghdr*>(aligned.data()));
      if (!ack) return ack.error();
      if (ack->error != 0) return ack_error(*ack, "get wireguard device");
      return merger.take();  // NLMSG_DONE, or an ACK: the exchange is over
    }
    if (h.nlmsg_type >= NLMSG_MIN_TYPE) {
      auto r = merger.add_message(message);
      if (!r) return r.error();
    }
    std::size_t step = NLMSG_ALIGN(h.nlmsg_len);
    stream = step >= stream.size() ? std::span<const std::uint8_t>{} : stream.subspan(step);
  }
  return Error::invalid("wireguard device dump ended without NLMSG_DONE");
}

Result<wg::WgDevice> parse_set_device_messages(std::span<const NlMessage> messages) {
  wg::WgDevice dev;
  for (const auto& m : messages) {
    auto part = parse_device_message(m.bytes());
    if (!part) return part.error();
    merge_part(dev, std::move(*part));
  }
  return dev;
}

// --- Building ---

namespace {

// A message under construction in a buffer of the maximum size; libmnl's
// *_check functions refuse anything that would overflow it.
class Builder {
 public:
  Builder(std::size_t max_size, std::uint16_t type, std::uint16_t flags, std::uint8_t cmd,
          std::uint8_t version)
      : buf_(max_size, 0) {
    nlh_ = mnl_nlmsg_put_header(buf_.data());
    nlh_->nlmsg_type = type;
    nlh_->nlmsg_flags = flags;
    auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(genlmsghdr)));
    g->cmd = cmd;
    g->version = version;
  }
  nlmsghdr* nlh() { return nlh_; }
  std::size_t cap() const { return buf_.size(); }
  NlMessage finish() {
    std::size_t len = nlh_->nlmsg_len;
    std::vector<std::uint8_t> out(buf_.begin(), buf_.begin() + static_cast<long>(len));
    explicit_bzero(buf_.data(), buf_.size());
    return NlMessage(std::move(out));
  }
  ~Builder() { explicit_bzero(buf_.data(), buf_.size()); }

 private:
  std::vector<std::uint8_t> buf_;
  nlmsghdr* nlh_ = nullptr;
};

}  // namespace

NlMessage build_get_family(std::string_view family_name) {
  Builder b(default_message_size(), GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, CTRL_CMD_GETFAMILY, 1);
  std::string name(family_name);
  mnl_attr_put_strz(b.nlh(), CTRL_ATTR_FAMILY_NAME, name.c_str());
  return b.finish();
}

Result<GenlFamily> parse_family_reply(std::span<const std::uint8_t> message) {
  auto attrs = genl_attributes(message);
  if (!attrs) return attrs.error();
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  genlmsghdr g;
  std::memcpy(&g, message.data() + NLMSG_HDRLEN, sizeof g);
  if (h.nlmsg_type != GENL_ID_CTRL || g.cmd != CTRL_CMD_NEWFAMILY)
    return Error::invalid("generic netlink message of type " + std::to_string(h.nlmsg_type) +
                          ", command " + std::to_string(g.cmd) +
                          " is not a controller CTRL_CMD_NEWFAMILY reply");
  GenlFamily f;
  bool have_id = false, have_name = false;
  NlAttrReader r(*attrs);
  NlAttr a;
  for (;;) {
    auto more = r.next(a);
    if (!more) return more.error();
    if (!*more) break;
    switch (a.type) {
      case CTRL_ATTR_FAMILY_ID: {
        auto id = read_int<std::uint16_t>(a, "CTRL_ATTR_FAMILY_ID");
        if (!id) return id.error();
        // Ids below GENL_MIN_ID are netlink's own message types (NLMSG_ERROR,
        // NLMSG_DONE...): requests to such a "family" would be misread.
        if (*id < GENL_MIN_ID)
          return Error::invalid("generic netlink family id " + std::to_string(*id) + " is below " +
                                std::to_string(GENL_MIN_ID));
        f.id = *id;
        have_id = true;
        break;
      }
      case CTRL_ATTR_FAMILY_NAME: {
        // A NUL-terminated string of at most GENL_NAMSIZ bytes.
        const auto* p = reinterpret_cast<const char*>(a.payload.data());
        std::size_t len = strnlen(p, a.payload.size());
        if (len == a.payload.size() || a.payload.size() > GENL_NAMSIZ)
          return Error::invalid("CTRL_ATTR_FAMILY_NAME is not a string of at most " +
                                std::to_string(GENL_NAMSIZ - 1) + " characters");
        f.name.assign(p, len);
        have_name = true;
        break;
      }
      case CTRL_ATTR_VERSION: {
        auto v = read_int<std::uint32_t>(a, "CTRL_ATTR_VERSION");
        if (!v) return v.error();
        f.version = *v;
        break;
      }
      default:
        break;  // header size, operations, multicast groups, policies
    }
  }
  if (!have_id) return Error::invalid("generic netlink family reply without CTRL_ATTR_FAMILY_ID");
  if (!have_name) return Error::invalid("generic netlink family reply without CTRL_ATTR_FAMILY_NAME");
  return f;
}

Result<std::uint16_t> parse_family_reply(std::span<const std::uint8_t> message, std::string_view name) {
  auto f = parse_family_reply(message);
  if (!f) return f.error();
  if (f->name != name)
    return Error{{EBADMSG, boost::system::generic_category()},
                 "the controller answered for family \"" + f->name + "\", not \"" + std::string(name) + "\""};
  return f->id;
}

Result<std::uint16_t> parse_family_id(std::span<const std::uint8_t> message) {
  auto f = parse_family_reply(message);
  if (!f) return f.error();
  return f->id;
}

NlMessage build_get_device(std::uint16_t family_id, std::string_view ifname, int ifindex) {
  // GET_DEVICE exists only as a dump (the kernel registers dumpit, no doit).
  Builder b(default_message_size(), family_id, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
            WG_CMD_GET_DEVICE, WG_GENL_VERSION);
  if (ifindex > 0) {
    mnl_attr_put_u32(b.nlh(), WGDEVICE_A_IFINDEX, static_cast<std::uint32_t>(ifindex));
  } else {
    std::string name(ifname.substr(0, IFNAMSIZ - 1));
    mnl_attr_put_strz(b.nlh(), WGDEVICE_A_IFNAME, name.c_str());
  }
  return b.finish();
}

Result<std::vector<NlMessage>> build_set_device(std::uint16_t family_id,
                                                const wg::WgDevice& change,
                                                std::size_t max_size) {
  if (change.ifindex <= 0)
    if (auto r = check_interface_name(change.name, "set wireguard device"); !r) return r.error();
  for (const auto& p : change.peers)
    for (const auto& ip : p.allowed_ips)
      if ((!ip.address.is_v4() && !ip.address.is_v6()) || ip.length > ip.max_length())
        return Error::invalid("set wireguard device " + change.name + ": peer " +
                              p.public_key.short_id() + " has an invalid allowed IP " +
                              ip.to_string());

  std::vector<NlMessage> out;
  const std::size_t n = change.peers.size();
  std::size_t peer_i = 0;  // next peer to write
  std::size_t ip_i = 0;    // next allowed IP of peers[peer_i] when continuing
  bool continuing = false;  // peers[peer_i] was started in an earlier message
  bool first = true;

  auto too_small = [&] {
    return fail(EMSGSIZE, "set wireguard device " + change.name + ": a message of " +
                              std::to_string(max_size) + " bytes cannot hold one peer");
  };

  do {
    Builder b(max_size, family_id, NLM_F_REQUEST | NLM_F_ACK, WG_CMD_SET_DEVICE, WG_GENL_VERSION);
    nlmsghdr* nlh = b.nlh();
    const std::size_t cap = b.cap();
    bool ok = true;
    if (change.ifindex > 0)
      ok = mnl_attr_put_u32_check(nlh, cap, WGDEVICE_A_IFINDEX, static_cast<std::uint32_t>(change.ifindex));
    else
      ok = mnl_attr_put_strz_check(nlh, cap, WGDEVICE_A_IFNAME, change.name.c_str());
    if (first) {
      if (ok && change.private_key)
        ok = mnl_attr_put_check(nlh, cap, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN,
                                change.private_key->bytes().data());
      if (ok && change.listen_port)
        ok = mnl_attr_put_u16_check(nlh, cap, WGDEVICE_A_LISTEN_PORT, *change.listen_port);
      if (ok && change.fwmark) ok = mnl_attr_put_u32_check(nlh, cap, WGDEVICE_A_FWMARK, *change.fwmark);
      if (ok && change.replace_peers)
        ok = mnl_attr_put_u32_check(nlh, cap, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
    }
    if (!ok) return too_small();
    first = false;

    if (peer_i < n) {
      nlattr* peers_nest = mnl_attr_nest_start_check(nlh, cap, WGDEVICE_A_PEERS);
      if (!peers_nest) return too_small();
      bool progress = false;  // this message carries something new
      for (; peer_i < n; ++peer_i) {
        const wg::WgPeer& peer = change.peers[peer_i];
        const bool first_in_message = !progress;
        nlattr* peer_nest = mnl_attr_nest_start_check(nlh, cap, 0);
        bool fits = peer_nest != nullptr;
        fits = fits && mnl_attr_put_check(nlh, cap, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN,
                                          peer.public_key.bytes().data());
        std::uint32_t flags = 0;
        if (peer.remove) flags |= WGPEER_F_REMOVE_ME;
        if (peer.update_only) flags |= WGPEER_F_UPDATE_ONLY;
        if (!continuing && peer.replace_allowed_ips && !peer.remove)
          flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
        if (fits && flags) fits = mnl_attr_put_u32_check(nlh, cap, WGPEER_A_FLAGS, flags);
        if (!continuing && !peer.remove) {
          if (fits && peer.preshared_key)
            fits = mnl_attr_put_check(nlh, cap, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN,
                                      peer.preshared_key->bytes().data());
          if (fits && peer.endpoint && !peer.endpoint->empty()) {
            sockaddr_storage ss;
            std::size_t len = peer.endpoint->to_sockaddr(ss);
            fits = mnl_attr_put_check(nlh, cap, WGPEER_A_ENDPOINT, len, &ss);
          }
          if (fits && peer.persistent_keepalive)
            fits = mnl_attr_put_u16_check(nlh, cap, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
                                          *peer.persistent_keepalive);
        }
        if (!fits) {
          // The peer's header does not fit: retry it whole in the next message.
          if (peer_nest) mnl_attr_nest_cancel(nlh, peer_nest);
          if (first_in_message) return too_small();
          break;
        }
        bool split = false;
        if (!peer.remove && ip_i < peer.allowed_ips.size()) {
          nlattr* ips_nest = mnl_attr_nest_start_check(nlh, cap, WGPEER_A_ALLOWEDIPS);
          std::size_t written = 0;
          if (ips_nest) {
            for (; ip_i < peer.allowed_ips.size(); ++ip_i) {
              const IpPrefix& ip = peer.allowed_ips[ip_i];
              nlattr* ip_nest = mnl_attr_nest_start_check(nlh, cap, 0);
              bool f = ip_nest != nullptr;
              f = f && mnl_attr_put_u16_check(nlh, cap, WGALLOWEDIP_A_FAMILY,
                                              static_cast<std::uint16_t>(ip.address.family));
              f = f && mnl_attr_put_check(nlh, cap, WGALLOWEDIP_A_IPADDR, ip.address.size(),
                                          ip.address.bytes.data());
              f = f && mnl_attr_put_u8_check(nlh, cap, WGALLOWEDIP_A_CIDR_MASK, ip.length);
              if (!f) {
                if (ip_nest) mnl_attr_nest_cancel(nlh, ip_nest);
                break;
              }
              mnl_attr_nest_end(nlh, ip_nest);
              ++written;
            }
          }
          if (ip_i < peer.allowed_ips.size()) {
            // Not all allowed IPs fit. A peer with none of them written that
            // is not alone in the message moves whole to the next message
            // (a cleaner split than wg's header-only fragment); otherwise
            // close it here and continue it in the next message.
            if (written == 0 && !first_in_message) {
              if (ips_nest) mnl_attr_nest_cancel(nlh, ips_nest);
              mnl_attr_nest_cancel(nlh, peer_nest);
              if (!continuing) ip_i = 0;
              break;
            }
            if (written == 0 && continuing) {
              if (ips_nest) mnl_attr_nest_cancel(nlh, ips_nest);
              mnl_attr_nest_cancel(nlh, peer_nest);
              return too_small();
            }
            split = true;
          }
          if (ips_nest) mnl_attr_nest_end(nlh, ips_nest);
        }
        mnl_attr_nest_end(nlh, peer_nest);
        progress = true;
        if (split) {
          continuing = true;  // same peer_i, from ip_i, in the next message
          break;
        }
        continuing = false;
        ip_i = 0;
      }
      mnl_attr_nest_end(nlh, peers_nest);
    }
    out.push_back(b.finish());
  } while (peer_i < n);
  return out;
}

}  // namespace meshd::nl
