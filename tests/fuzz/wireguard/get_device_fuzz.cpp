// Fuzz target: a GET_DEVICE reply from "the kernel", read the way meshd reads
// it: WgGenl::get_device over an NlSocket whose datagrams come from the input
// (format: tests/unit/rtnl/replay_transport.h), so the socket's request loop,
// dump collection, ack parsing and the dump merger all run as in production.
// The same bytes then go, as one stream, through parse_get_device_stream (the
// helper tests and benchmarks use) and message by message through the merger.
// Any input must give a device or an error, never a crash, an out-of-bounds
// read (ASan) or undefined behaviour (UBSan).
#include "netlink/wireguard.h"
#include "netlink/wireguard_msg.h"
#include "tests/unit/rtnl/replay_transport.h"
#include "tests/unit/wireguard/kernel_dump.h"

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace {

// A parsed device is usable: every prefix valid.
void check(const meshd::wg::WgDevice& dev) {
  for (const auto& p : dev.peers)
    for (const auto& ip : p.allowed_ips)
      if (ip.length > ip.max_length()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd;
  auto frames = testing::split_frames({data, size});

  auto genl = nl::WgGenl::over(testing::replay_socket(frames), testing::kTestFamily);
  if (auto dev = genl.get_device("wg0")) check(*dev);

  std::vector<std::uint8_t> stream;
  for (const auto& f : frames) stream.insert(stream.end(), f.begin(), f.end());
  if (auto dev = nl::parse_get_device_stream(stream)) check(*dev);

  std::span<const std::uint8_t> in(stream);
  nl::WgDumpMerger merger;
  while (in.size() >= sizeof(nlmsghdr)) {
    nlmsghdr h;
    std::memcpy(&h, in.data(), sizeof h);
    std::size_t len = h.nlmsg_len < sizeof h ? sizeof h : h.nlmsg_len;
    if (len > in.size()) len = in.size();
    (void)nl::parse_device_message(in.first(len));
    (void)merger.add_message(in.first(len));
    std::size_t step = NLMSG_ALIGN(len);
    if (step >= in.size()) break;
    in = in.subspan(step);
  }
  check(merger.device());
  return 0;
}
