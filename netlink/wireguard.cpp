#include "netlink/wireguard.h"

#include "common/ifname.h"
#include "netlink/wireguard_msg.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>

#include <optional>
#include <string>

namespace meshd::nl {

namespace {

std::span<const std::uint8_t> message_bytes(const nlmsghdr& m) {
  return {reinterpret_cast<const std::uint8_t*>(&m), m.nlmsg_len};
}

}  // namespace

Result<std::uint16_t> resolve_genl_family(NlSocket& sock, std::string_view name) {
  const std::string what = "resolve generic netlink family " + std::string(name);
  NlMessage req = build_get_family(name);
  std::optional<std::uint16_t> id;
  auto r = sock.request(req.header(), what, [&](const nlmsghdr& m) -> Result<void> {
    auto f = parse_family_reply(message_bytes(m), name);
    if (!f) return Error{f.error().code, what + ": " + f.error().message};
    id = *f;
    return {};
  });
  if (!r) return r.error();
  if (!id) return fail(EBADMSG, what + ": the kernel acknowledged without a reply");
  return *id;
}

Result<WgGenl> WgGenl::open() {
  auto sock = NlSocket::open(NETLINK_GENERIC);
  if (!sock) return sock.error();
  return open_on(std::move(*sock));
}

Result<WgGenl> WgGenl::open_on(NlSocket sock) {
  // The controller autoloads the module behind a family it does not know
  // (MODULE_ALIAS_GENL_FAMILY), so ENOENT here means: no WireGuard at all.
  auto id = resolve_genl_family(sock, WG_GENL_NAME);
  if (!id) {
    if (id.error().is(ENOENT))
      return fail(ENOENT, "resolve generic netlink family " WG_GENL_NAME
                          " (the kernel has no WireGuard module; use the userspace backend)");
    return id.error();
  }
  return WgGenl(std::move(sock), *id);
}

Result<wg::WgDevice> WgGenl::get(std::string_view ifname, int ifindex) {
  const std::string what = "get wireguard device " +
                           (ifindex > 0 ? "ifindex " + std::to_string(ifindex) : std::string(ifname));
  NlMessage req = build_get_device(family_, ifname, ifindex);
  WgDumpMerger merger;
  auto r = sock_.request(req.header(), what, [&](const nlmsghdr& m) -> Result<void> {
    if (m.nlmsg_type != family_) return {};
    auto a = merger.add_message(message_bytes(m));
    if (!a) return Error{a.error().code, what + ": " + a.error().message};
    return {};
  });
  if (!r) return r.error();
  if (merger.messages() == 0) return fail(ENODATA, what + ": the kernel sent an empty dump");
  return merger.take();
}

Result<wg::WgDevice> WgGenl::get_device(std::string_view ifname) {
  if (auto r = check_interface_name(ifname, "get wireguard device"); !r) return r.error();
  return get(ifname, 0);
}

Result<wg::WgDevice> WgGenl::get_device(int ifindex) { return get({}, ifindex); }

Result<void> WgGenl::set_device(const wg::WgDevice& change) {
  auto msgs = build_set_device(family_, change,
                               message_size_ ? message_size_ : default_message_size());
  if (!msgs) return msgs.error();
  const std::string dev = change.ifindex > 0 ? "ifindex " + std::to_string(change.ifindex) : change.name;
  for (std::size_t i = 0; i < msgs->size(); ++i) {
    std::string what = "set wireguard device " + dev;
    if (msgs->size() > 1)
      what += " (message " + std::to_string(i + 1) + " of " + std::to_string(msgs->size()) + ")";
    if (auto r = sock_.request((*msgs)[i].header(), what); !r) return r.error();
  }
  return {};
}

}  // namespace meshd::nl
