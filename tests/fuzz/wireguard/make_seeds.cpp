// Writes the seeds of fuzz_wireguard_get_device and fuzz_genl_family into
// SEED_DIR/get_device and SEED_DIR/genl_family, in the replay format of
// tests/unit/rtnl/replay_transport.h (framed datagrams, stamped with the
// replay socket's port id and the sequence number of its first request):
//  - GET_DEVICE dumps shaped like the kernel's (kernel_dump.h): one peer, two
//    peers, a peer continued across messages and datagrams, a dump the kernel
//    flagged interrupted followed by the re-requested one, an error;
//  - CTRL_CMD_GETFAMILY replies captured from this host's kernel: "nlctrl"
//    (always there) and "wireguard" (wireguard_absent_captured.bin: ENOENT
//    where the module is missing; wireguard_present_captured.bin where it is
//    there), plus a hand-built "wireguard" reply;
//  - where the kernel has WireGuard and a device wg0 exists, its real
//    GET_DEVICE dump (get_device/kernel_wg0_captured.bin; message types
//    rewritten to the fuzzer's family id). Made in the test VM:
//      scripts/vm/run.sh --out /tmp/seeds -- bash -c 'ip link add wg0 type
//        wireguard && wg set wg0 ... && build/bin/wireguard_fuzz_seeds /mnt/out'
// Usage: wireguard_fuzz_seeds SEED_DIR
#include "netlink/wireguard_msg.h"
#include "tests/unit/rtnl/replay_transport.h"
#include "tests/unit/wireguard/kernel_dump.h"

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

using namespace meshd;
using meshd::testing::ack_datagram;
using testing::Datagram;

namespace {

wg::WgPeer peer(std::uint8_t n, const char* endpoint) {
  wg::WgPeer p;
  keys::KeyBytes k{};
  k[0] = n;
  p.public_key = keys::PublicKey(k);
  p.endpoint = Endpoint::parse(endpoint).value();
  p.persistent_keepalive = 25;
  p.last_handshake_sec = 1700000000;
  p.rx_bytes = 10;
  p.tx_bytes = 20;
  p.allowed_ips = {IpPrefix::parse("10.1.0.0/24").value(), IpPrefix::parse("fd00::/64").value()};
  return p;
}

void write(const std::string& path, const std::vector<Datagram>& datagrams) {
  auto bytes = testing::join_frames(datagrams);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::printf("%s: %zu datagrams, %zu bytes\n", path.c_str(), datagrams.size(), bytes.size());
}

// The messages of `stream` one per datagram (the kernel packs several; the
// socket must not care).
std::vector<Datagram> one_per_datagram(const std::vector<std::uint8_t>& stream) {
  std::vector<Datagram> out;
  (void)nl::for_each_message(stream, [&](const nlmsghdr& m) -> Result<void> {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
    out.emplace_back(p, p + m.nlmsg_len);
    return {};
  });
  return out;
}

// Sends `req` to this host's kernel on a NETLINK_GENERIC socket and returns
// the datagrams of its answer, up to the ack or NLMSG_DONE, stamped for the
// replay socket.
std::vector<Datagram> capture(nl::NlMessage req) {
  mnl_socket* s = mnl_socket_open(NETLINK_GENERIC);
  if (!s || mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) {
    std::perror("netlink socket");
    std::exit(1);
  }
  int on = 1;
  mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &on, sizeof on);
  mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &on, sizeof on);
  req.header()->nlmsg_seq = 1;
  if (mnl_socket_sendto(s, req.bytes().data(), req.size()) < 0) {
    std::perror("send");
    std::exit(1);
  }
  std::vector<Datagram> out;
  std::vector<std::uint8_t> buf(32768);
  for (bool done = false; !done;) {
    ssize_t n = mnl_socket_recvfrom(s, buf.data(), buf.size());
    if (n <= 0) {
      std::perror("receive");
      std::exit(1);
    }
    Datagram d(buf.begin(), buf.begin() + n);
    (void)nl::for_each_message(d, [&](const nlmsghdr& m) -> Result<void> {
      if (m.nlmsg_type == NLMSG_ERROR || m.nlmsg_type == NLMSG_DONE) done = true;
      return {};
    });
    testing::stamp(d, 1);
    out.push_back(std::move(d));
  }
  mnl_socket_close(s);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SEED_DIR\n", argv[0]);
    return 2;
  }
  const std::string gd = std::string(argv[1]) + "/get_device";
  const std::string gf = std::string(argv[1]) + "/genl_family";
  std::filesystem::create_directories(gd);
  std::filesystem::create_directories(gf);

  wg::WgDevice d;
  d.name = "wg0";
  d.ifindex = 3;
  d.listen_port = 51820;
  keys::KeyBytes sk{};
  sk[5] = 9;
  d.private_key = keys::PrivateKey(sk);
  d.public_key = keys::PublicKey(sk);
  d.peers.push_back(peer(1, "192.0.2.1:51820"));
  std::vector<std::uint8_t> s;
  testing::append_kernel_dump(s, d, 4096);
  testing::stamp(s, 1);
  write(gd + "/one_peer.bin", {s});

  d.peers.push_back(peer(2, "[2001:db8::1]:51820"));
  d.peers[1].preshared_key = keys::PresharedKey(sk);
  s.clear();
  testing::append_kernel_dump(s, d, 4096);
  testing::stamp(s, 1);
  write(gd + "/two_peers_v4_v6.bin", {s});

  // Interrupted, then asked again (the socket's second request has seq 2).
  std::vector<std::uint8_t> intr;
  testing::append_kernel_dump(intr, d, 4096, testing::kTestFamily, NLM_F_DUMP_INTR);
  testing::stamp(intr, 1);
  std::vector<std::uint8_t> again = s;
  testing::stamp(again, 2);
  write(gd + "/interrupted_then_whole.bin", {intr, again});

  for (std::uint32_t i = 0; i < 30; ++i)
    d.peers[0].allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0b000000u + i), 32});
  s.clear();
  testing::append_kernel_dump(s, d, 512);  // small messages: the peer continues
  testing::stamp(s, 1);
  write(gd + "/split_peer.bin", one_per_datagram(s));

  write(gd + "/error_enodev.bin", {ack_datagram(-ENODEV, 1)});

  write(gf + "/nlctrl_captured.bin", capture(nl::build_get_family("nlctrl")));
  auto wg_family = capture(nl::build_get_family(WG_GENL_NAME));
  auto wg_id = nl::parse_family_id(wg_family.at(0));
  write(gf + (wg_id ? "/wireguard_present_captured.bin" : "/wireguard_absent_captured.bin"), wg_family);
  if (wg_id && if_nametoindex("wg0") != 0) {
    auto dump = capture(nl::build_get_device(*wg_id, "wg0"));
    for (auto& d : dump) {
      // The fuzzer's WgGenl reads family kTestFamily: retype the data messages.
      std::size_t off = 0;
      while (d.size() - off >= NLMSG_HDRLEN) {
        auto* h = reinterpret_cast<nlmsghdr*>(d.data() + off);
        if (h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > d.size() - off) break;
        if (h->nlmsg_type == *wg_id) h->nlmsg_type = testing::kTestFamily;
        off += NLMSG_ALIGN(h->nlmsg_len);
      }
    }
    write(gd + "/kernel_wg0_captured.bin", dump);
  }

  Datagram reply(256, 0);
  nlmsghdr* h = mnl_nlmsg_put_header(reply.data());
  h->nlmsg_type = GENL_ID_CTRL;
  auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(h, sizeof(genlmsghdr)));
  g->cmd = CTRL_CMD_NEWFAMILY;
  g->version = 2;
  mnl_attr_put_strz(h, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
  mnl_attr_put_u16(h, CTRL_ATTR_FAMILY_ID, 0x22);
  mnl_attr_put_u32(h, CTRL_ATTR_VERSION, WG_GENL_VERSION);
  reply.resize(h->nlmsg_len);
  testing::stamp(reply, 1);
  write(gf + "/wireguard_built.bin", {reply, ack_datagram(0, 1)});
  return 0;
}
