// Figures for the wireguard genl code: how many SET_DEVICE messages a mesh of
// N peers takes, how long building and parsing take, and (with --kernel, as
// root on a kernel with WireGuard, e.g. inside the vm guest) how long the
// kernel takes to apply and report them, next to `wg setconf` of the same
// configuration. Prints figures; asserts nothing about time.
#include "meshd/dataplane/kernel_backend.h"
#include "netlink/wireguard_msg.h"
#include "tests/support/netns.h"
#include "tests/unit/wireguard/kernel_dump.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace meshd;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

template <class F>
double median_ms(int runs, F&& f) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) {
    auto t = Clock::now();
    f();
    v.push_back(ms_since(t));
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A mesh node's view: n peers, each with an endpoint, keepalive, a pod /24
// and the node's /32 mesh address.
wg::WgDevice mesh(std::size_t n) {
  wg::WgDevice d;
  d.name = "wg-bench";
  d.private_key = keys::PrivateKey::generate();
  d.listen_port = 51820;
  for (std::uint32_t i = 0; i < n; ++i) {
    wg::WgPeer p;
    keys::KeyBytes k{};
    k[0] = 0x55;
    std::memcpy(k.data() + 1, &i, sizeof i);
    p.public_key = keys::PublicKey(k);
    p.endpoint = Endpoint{IpAddress::from_v4_u32(0xc6120000u + i), 51820};
    p.persistent_keepalive = 25;
    p.allowed_ips = {IpPrefix{IpAddress::from_v4_u32(0x0a000000u + (i << 8)), 24},
                     IpPrefix{IpAddress::from_v4_u32(0x64400000u + i), 32}};
    d.peers.push_back(std::move(p));
  }
  return d;
}

void pure(std::size_t n) {
  wg::WgDevice d = mesh(n);
  std::size_t msgs = 0, bytes = 0;
  double build = median_ms(5, [&] {
    auto m = nl::build_set_device(0x20, d).value();
    msgs = m.size();
    bytes = 0;
    for (const auto& x : m) bytes += x.size();
  });
  std::vector<std::uint8_t> stream;
  int parts = testing::append_kernel_dump(stream, d, 4096);
  std::size_t got = 0;
  double parse = median_ms(5, [&] { got = nl::parse_get_device_stream(stream).value().peers.size(); });
  std::printf("pure  %5zu peers: SET %4zu messages %8zu bytes, build %7.2f ms | GET dump %4d messages, parse+merge %7.2f ms (%zu peers)\n",
              n, msgs, bytes, build, parts, parse, got);
}

void kernel(std::size_t n) {
  testing::Netns ns("wgbench");
  dataplane::KernelBackend be(dataplane::KernelBackendOptions{ns.path()});
  if (auto r = be.ensure_device("wg-bench"); !r) {
    std::printf("kernel: %s\n", r.error().message.c_str());
    return;
  }
  wg::WgDevice d = mesh(n);
  auto t = Clock::now();
  auto r = be.set_device(d);
  double set_ms = ms_since(t);
  if (!r) {
    std::printf("kernel: %s\n", r.error().message.c_str());
    return;
  }
  t = Clock::now();
  auto g = be.get_device("wg-bench");
  double get_ms = ms_since(t);
  wg::WgDevice one;
  one.name = "wg-bench";
  wg::WgPeer p = d.peers[n / 2].clone();
  p.update_only = true;
  p.endpoint = Endpoint::parse("192.0.2.99:51820").value();
  one.peers.push_back(std::move(p));
  std::string one_err;
  double one_ms = median_ms(5, [&] {
    if (auto u = be.set_device(one); !u) one_err = u.error().message;
  });
  auto seen = be.get_device("wg-bench");
  const wg::WgPeer* moved = nullptr;
  if (seen)
    for (const auto& q : seen->peers)
      if (q.public_key == d.peers[n / 2].public_key) moved = &q;
  if (!one_err.empty() || !moved || moved->endpoint != one.peers[0].endpoint)
    std::printf("kernel: one-peer update did not apply: %s\n", one_err.c_str());
  std::printf("kernel %5zu peers: set_device %8.1f ms, get_device %7.1f ms (%zu peers), one-peer update %5.1f ms\n",
              n, set_ms, get_ms, g ? g->peers.size() : 0, one_ms);

  // The same configuration through wg(8), on a fresh device.
  ns.run("ip link add wg-ref type wireguard");
  std::string conf = "/tmp/meshd-bench-" + std::to_string(getpid()) + ".conf";
  {
    std::ofstream f(conf);
    f << "[Interface]\nPrivateKey = " << d.private_key->to_base64_secret() << "\nListenPort = 51821\n";
    for (const auto& q : d.peers) {
      f << "[Peer]\nPublicKey = " << q.public_key.to_base64() << "\nEndpoint = "
        << q.endpoint->to_string() << "\nPersistentKeepalive = 25\nAllowedIPs = "
        << q.allowed_ips[0].to_string() << ", " << q.allowed_ips[1].to_string() << "\n";
    }
  }
  t = Clock::now();
  int rc = ns.run("wg setconf wg-ref " + conf);
  double wg_ms = ms_since(t);
  t = Clock::now();
  std::string dump = ns.out("wg show wg-ref dump | wc -l");
  double wg_show_ms = ms_since(t);
  std::remove(conf.c_str());
  std::printf("wg(8) %5zu peers: setconf %8.1f ms (rc %d), show dump %7.1f ms (%s lines)\n", n, wg_ms,
              rc, wg_show_ms, dump.substr(0, dump.find('\n')).c_str());
  (void)be.delete_device("wg-bench");
}

}  // namespace

int main(int argc, char** argv) {
  bool with_kernel = argc > 1 && std::string(argv[1]) == "--kernel";
  for (std::size_t n : {100, 1000, 5000}) pure(n);
  if (with_kernel) {
    if (!dataplane::kernel_wireguard_available()) {
      std::printf("kernel: no WireGuard here (%s)\n",
                  dataplane::probe_kernel_wireguard().error().message.c_str());
      return 0;
    }
    for (std::size_t n : {100, 1000, 5000}) kernel(n);
  }
  return 0;
}
