// The "wireguard" generic-netlink family over one NlSocket: resolve the
// family, read a device (GET_DEVICE dump, parts merged) and apply a partial
// update (SET_DEVICE, split across as many messages as it takes). The message
// code is pure and lives in netlink/wireguard_msg.h; this file only moves
// bytes. Not thread-safe; the socket is bound to the network namespace that
// was current when open() ran.
#pragma once

#include "common/result.h"
#include "netlink/nl_socket.h"
#include "netlink/wg_device.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace meshd::nl {

// Asks the generic-netlink controller for the id of family `name`
// (CTRL_CMD_GETFAMILY over `sock`, a NETLINK_GENERIC socket). ENOENT when
// the kernel has no such family; EBADMSG when the reply is malformed, names
// another family or gives an id below GENL_MIN_ID.
Result<std::uint16_t> resolve_genl_family(NlSocket& sock, std::string_view name);

class WgGenl {
 public:
  // Opens a generic-netlink socket and resolves the "wireguard" family.
  // ENOENT when the kernel has no such family (no WireGuard module): the
  // error says so, for the `auto` backend choice and for operators.
  static Result<WgGenl> open();
  // The same over a socket the caller made (a replayed one in tests and fuzzers).
  static Result<WgGenl> open_on(NlSocket sock);
  // Over `sock` with a family id known already (tests and fuzzers).
  static WgGenl over(NlSocket sock, std::uint16_t family_id) { return WgGenl(std::move(sock), family_id); }

  std::uint16_t family_id() const { return family_; }

  // The whole device, every peer included. ENODEV if there is no such link;
  // EOPNOTSUPP if the link exists but is not a WireGuard device; EINVAL for a
  // name common/ifname.h refuses (a '%' would be a kernel name template).
  Result<wg::WgDevice> get_device(std::string_view ifname);
  Result<wg::WgDevice> get_device(int ifindex);

  // Applies `change` (named by change.ifindex if > 0, else change.name).
  // The messages are sent one after the other, each acknowledged before the
  // next: a failure stops there and says which part of how many failed (the
  // earlier parts are applied — the kernel has no transactions across
  // messages, as with wg(8)).
  Result<void> set_device(const wg::WgDevice& change);

  // Bytes per SET_DEVICE message (default: default_message_size()). For tests
  // and benchmarks that want to see the splitting with a real kernel.
  void set_message_size(std::size_t n) { message_size_ = n; }

 private:
  WgGenl(NlSocket sock, std::uint16_t family) : sock_(std::move(sock)), family_(family) {}
  Result<wg::WgDevice> get(std::string_view ifname, int ifindex);

  NlSocket sock_;
  std::uint16_t family_ = 0;
  std::size_t message_size_ = 0;  // 0 = default_message_size()
};

}  // namespace meshd::nl
