// Arbitrary bytes as a netlink reply datagram: walking it and parsing every
// message as a link, address, route, event or ack must never crash or read
// out of bounds, whatever the lengths claim. Seeds are real kernel replies
// (link/address/route dumps from a test namespace, an ext-ack error).
#include "netlink/nl_socket.h"
#include "netlink/rtnl.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The kernel's buffers are 4-byte aligned and so is ours; the fuzzer's are
  // not, and the parsers may assume what the socket guarantees.
  std::vector<std::uint32_t> aligned((size + 3) / 4);
  if (size) std::memcpy(aligned.data(), data, size);
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(aligned.data()), size);

  (void)meshd::nl::for_each_message(bytes, [](const nlmsghdr& m) -> meshd::Result<void> {
    using namespace meshd::nl;
    switch (m.nlmsg_type) {
      case NLMSG_ERROR:
      case NLMSG_DONE:
        if (auto a = parse_ack(&m)) (void)ack_error(*a, "fuzz");
        break;
      default:
        // Every parser on every message: type checks are part of what is tested.
        (void)parse_link(m);
        (void)parse_address(m);
        if (auto r = parse_route(m)) (void)describe_route(r->route, "x");
        (void)parse_event(m);
        break;
    }
    return {};
  });
  return 0;
}
