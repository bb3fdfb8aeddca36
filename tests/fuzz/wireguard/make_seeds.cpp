// Writes the fuzz seeds of fuzz_wireguard_get_device into the directory given
// as argument: GET_DEVICE dumps shaped like the kernel's (kernel_dump.h).
#include "tests/unit/wireguard/kernel_dump.h"

#include <cstdio>
#include <fstream>
#include <string>

using namespace meshd;

static wg::WgPeer peer(std::uint8_t n, const char* endpoint) {
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

static void write(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SEED_DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
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
  write(dir + "/one_peer.bin", s);

  d.peers.push_back(peer(2, "[2001:db8::1]:51820"));
  d.peers[1].preshared_key = keys::PresharedKey(sk);
  s.clear();
  testing::append_kernel_dump(s, d, 4096);
  write(dir + "/two_peers_v4_v6.bin", s);

  for (std::uint32_t i = 0; i < 30; ++i)
    d.peers[0].allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0b000000u + i), 32});
  s.clear();
  testing::append_kernel_dump(s, d, 512);  // small messages: the peer continues
  write(dir + "/split_peer.bin", s);

  std::vector<std::uint8_t> e(NLMSG_HDRLEN + sizeof(nlmsgerr), 0);
  nlmsghdr* h = mnl_nlmsg_put_header(e.data());
  h->nlmsg_type = NLMSG_ERROR;
  auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(h, sizeof(nlmsgerr)));
  err->error = -ENODEV;
  write(dir + "/error.bin", e);
  return 0;
}
