// Test helper: builds GET_DEVICE dump replies the way the kernel's
// drivers/net/wireguard/netlink.c (wg_get_device_dump / get_peer) does:
// device attributes in the first message only; peers until the message is
// full; a peer whose allowed IPs do not fit is closed and continued at the
// start of the next message with its public key and the remaining allowed
// IPs only. Shared by the unit tests and the fuzzer's seed generator.
#pragma once

#include "netlink/wg_device.h"

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace meshd::testing {

inline constexpr std::uint16_t kTestFamily = 0x1d;  // any id >= NLMSG_MIN_TYPE

// Appends to `stream` the messages of a dump of `dev`, each at most `size`
// bytes, then NLMSG_DONE. Returns the number of data messages.
inline int append_kernel_dump(std::vector<std::uint8_t>& stream, const wg::WgDevice& dev,
                              std::size_t size, std::uint16_t family = kTestFamily,
                              std::uint16_t extra_flags = 0) {
  std::size_t peer_i = 0, ip_i = 0;
  bool first = true;
  int messages = 0;
  auto emit = [&](const std::vector<std::uint8_t>& buf) {
    auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    std::size_t at = stream.size();
    stream.resize(at + NLMSG_ALIGN(nlh->nlmsg_len), 0);
    std::memcpy(stream.data() + at, buf.data(), nlh->nlmsg_len);
  };
  do {
    std::vector<std::uint8_t> buf(size, 0);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = family;
    nlh->nlmsg_flags = NLM_F_MULTI | extra_flags;
    auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
    g->cmd = WG_CMD_GET_DEVICE;
    g->version = WG_GENL_VERSION;
    if (first) {
      mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, dev.listen_port.value_or(0));
      mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, dev.fwmark.value_or(0));
      mnl_attr_put_u32(nlh, WGDEVICE_A_IFINDEX, static_cast<std::uint32_t>(dev.ifindex));
      mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, dev.name.c_str());
      if (dev.private_key) {
        mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, dev.private_key->bytes().data());
        mnl_attr_put(nlh, WGDEVICE_A_PUBLIC_KEY, WG_KEY_LEN, dev.public_key.bytes().data());
      }
      first = false;
    }
    nlattr* peers = mnl_attr_nest_start_check(nlh, size, WGDEVICE_A_PEERS);
    for (; peers && peer_i < dev.peers.size(); ++peer_i) {
      const wg::WgPeer& p = dev.peers[peer_i];
      nlattr* pn = mnl_attr_nest_start_check(nlh, size, 0);
      bool ok = pn && mnl_attr_put_check(nlh, size, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN,
                                         p.public_key.bytes().data());
      if (ok && ip_i == 0) {
        keys::KeyBytes psk{};
        if (p.preshared_key) psk = p.preshared_key->bytes();
        std::int64_t ts[2] = {p.last_handshake_sec, p.last_handshake_nsec};
        ok = mnl_attr_put_check(nlh, size, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, psk.data()) &&
             mnl_attr_put_check(nlh, size, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof ts, ts) &&
             mnl_attr_put_u16_check(nlh, size, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
                                    p.persistent_keepalive.value_or(0)) &&
             mnl_attr_put_u64_check(nlh, size, WGPEER_A_TX_BYTES, p.tx_bytes) &&
             mnl_attr_put_u64_check(nlh, size, WGPEER_A_RX_BYTES, p.rx_bytes) &&
             mnl_attr_put_u32_check(nlh, size, WGPEER_A_PROTOCOL_VERSION, 1);
        if (ok && p.endpoint) {
          sockaddr_storage ss;
          std::size_t len = p.endpoint->to_sockaddr(ss);
          ok = mnl_attr_put_check(nlh, size, WGPEER_A_ENDPOINT, len, &ss);
        }
      }
      if (!ok) {
        if (pn) mnl_attr_nest_cancel(nlh, pn);
        break;
      }
      bool split = false;
      if (ip_i < p.allowed_ips.size()) {
        nlattr* ips = mnl_attr_nest_start_check(nlh, size, WGPEER_A_ALLOWEDIPS);
        if (!ips) {
          mnl_attr_nest_cancel(nlh, pn);
          break;
        }
        for (; ip_i < p.allowed_ips.size(); ++ip_i) {
          const IpPrefix& ip = p.allowed_ips[ip_i];
          nlattr* in = mnl_attr_nest_start_check(nlh, size, 0);
          bool f = in &&
                   mnl_attr_put_check(nlh, size, WGALLOWEDIP_A_IPADDR, ip.address.size(),
                                      ip.address.bytes.data()) &&
                   mnl_attr_put_u8_check(nlh, size, WGALLOWEDIP_A_CIDR_MASK, ip.length) &&
                   mnl_attr_put_u16_check(nlh, size, WGALLOWEDIP_A_FAMILY,
                                          static_cast<std::uint16_t>(ip.address.family));
          if (!f) {
            if (in) mnl_attr_nest_cancel(nlh, in);
            split = true;
            break;
          }
          mnl_attr_nest_end(nlh, in);
        }
        mnl_attr_nest_end(nlh, ips);
      }
      mnl_attr_nest_end(nlh, pn);
      if (split) break;  // same peer, from ip_i, in the next message
      ip_i = 0;
    }
    if (peers) mnl_attr_nest_end(nlh, peers);
    emit(buf);
    ++messages;
  } while (peer_i < dev.peers.size());
  std::vector<std::uint8_t> done(NLMSG_HDRLEN + sizeof(int), 0);
  nlmsghdr* d = mnl_nlmsg_put_header(done.data());
  d->nlmsg_type = NLMSG_DONE;
  d->nlmsg_flags = NLM_F_MULTI;
  mnl_nlmsg_put_extra_header(d, sizeof(int));
  emit(done);
  return messages;
}

}  // namespace meshd::testing
