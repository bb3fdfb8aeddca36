// Fuzz target: the generic-netlink controller's CTRL_CMD_GETFAMILY reply, read
// the way meshd reads it (resolve_genl_family and WgGenl::open_on over an
// NlSocket whose datagrams come from the input; format in
// tests/unit/rtnl/replay_transport.h), then every message of every datagram
// through parse_family_reply. Whatever resolves must be a usable family id.
#include "netlink/wireguard.h"
#include "netlink/wireguard_msg.h"
#include "tests/unit/rtnl/replay_transport.h"

#include <linux/genetlink.h>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd;
  auto frames = testing::split_frames({data, size});

  auto sock = testing::replay_socket(frames);
  if (auto id = nl::resolve_genl_family(sock, "nlctrl"); id && *id < GENL_MIN_ID) __builtin_trap();

  if (auto g = nl::WgGenl::open_on(testing::replay_socket(frames)); g && g->family_id() < GENL_MIN_ID)
    __builtin_trap();

  for (const auto& f : frames) {
    (void)nl::for_each_message(f, [](const nlmsghdr& m) -> Result<void> {
      auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(&m), m.nlmsg_len);
      if (auto r = nl::parse_family_reply(bytes)) {
        if (r->id < GENL_MIN_ID || r->name.size() >= GENL_NAMSIZ) __builtin_trap();
      }
      return {};
    });
  }
  return 0;
}
