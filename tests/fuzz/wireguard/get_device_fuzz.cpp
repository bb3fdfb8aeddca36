// Fuzz target: a GET_DEVICE reply stream (netlink messages back to back) into
// parse + merge. Any input must give a device or an error, never a crash, an
// out-of-bounds read (ASan) or undefined behaviour (UBSan). Also the
// single-message parser and the merger, fed message by message.
#include "netlink/wireguard_msg.h"

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  auto dev = meshd::nl::parse_get_device_stream(in);
  if (dev) {
    // A parsed device is usable: every prefix valid, peers addressable.
    for (const auto& p : dev->peers)
      for (const auto& ip : p.allowed_ips)
        if (ip.length > ip.max_length()) __builtin_trap();
  }
  meshd::nl::WgDumpMerger merger;
  while (in.size() >= sizeof(nlmsghdr)) {
    nlmsghdr h;
    std::memcpy(&h, in.data(), sizeof h);
    std::size_t len = h.nlmsg_len < sizeof h ? sizeof h : h.nlmsg_len;
    if (len > in.size()) len = in.size();
    (void)meshd::nl::parse_device_message(in.first(len));
    (void)merger.add_message(in.first(len));
    std::size_t step = NLMSG_ALIGN(len);
    if (step >= in.size()) break;
    in = in.subspan(step);
  }
  return 0;
}
