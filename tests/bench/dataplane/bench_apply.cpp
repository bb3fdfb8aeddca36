// Applies 1000 peers to an empty WireGuard device, then a one-peer change,
// through meshd's backend, and the same with `wg setconf` / `wg set` on the
// same kind of device, in the same run. Prints medians; asserts nothing.
//
// Run it through scripts/bench-dataplane.sh, which gives it a network
// namespace (and, for the userspace backend, a private /var/run/wireguard).
#include "meshd/dataplane/kernel_backend.h"
#include "meshd/dataplane/planner.h"
#include "meshd/dataplane/userspace_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

using namespace meshd;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct PeerSet {
  std::vector<keys::PublicKey> keys;
  wg::WgDevice device(const std::string& name, const keys::PrivateKey& priv) const {
    wg::WgDevice d;
    d.name = name;
    d.private_key = priv.clone();
    d.listen_port = 51820;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      wg::WgPeer p;
      p.public_key = keys[i];
      p.endpoint = Endpoint{IpAddress::from_v4_u32(0xac1f0000u + static_cast<std::uint32_t>(i) + 2), 51820};
      p.persistent_keepalive = 25;
      p.allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0a000000u + (static_cast<std::uint32_t>(i) << 8)), 24});
      d.peers.push_back(std::move(p));
    }
    return d;
  }
  std::string wg_config(const keys::PrivateKey& priv) const {
    std::string c = "[Interface]\nPrivateKey = " + priv.to_base64_secret() + "\nListenPort = 51821\n";
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto ip = IpAddress::from_v4_u32(0xac1f0000u + static_cast<std::uint32_t>(i) + 2);
      auto net = IpAddress::from_v4_u32(0x0a000000u + (static_cast<std::uint32_t>(i) << 8));
      c += "[Peer]\nPublicKey = " + keys[i].to_base64() + "\nEndpoint = " + ip.to_string() +
           ":51820\nPersistentKeepalive = 25\nAllowedIPs = " + net.to_string() + "/24\n";
    }
    return c;
  }
};

void check(const Result<void>& r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "bench: %s: %s\n", what, r.error().message.c_str());
    std::exit(1);
  }
}

int run_cmd(const std::string& cmd) { return std::system(cmd.c_str()); }

}  // namespace

int main(int argc, char** argv) {
  std::string backend_kind = argc > 1 ? argv[1] : "userspace";
  int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::size_t kPeers = 1000;

  std::unique_ptr<dataplane::WgBackend> backend;
  if (backend_kind == "kernel")
    backend = std::make_unique<dataplane::KernelBackend>();
  else
    backend = std::make_unique<dataplane::UserspaceBackend>();

  PeerSet set;
  for (std::size_t i = 0; i < kPeers; ++i) set.keys.push_back(keys::PrivateKey::generate().public_key());
  auto priv = keys::PrivateKey::generate();
  std::string conf_path = "/tmp/meshd-bench-" + std::to_string(getpid()) + ".conf";
  std::ofstream(conf_path) << set.wg_config(priv);

  std::vector<double> ours_full, ours_one, ours_pass, wg_full, wg_one;
  for (int r = 0; r < rounds; ++r) {
    // meshd: plan against the empty device, apply the diff.
    check(backend->ensure_device("wgb0"), "create wgb0");
    auto desired = set.device("wgb0", priv);
    auto t0 = Clock::now();
    auto empty = backend->get_device("wgb0");
    auto plan = dataplane::plan_device(desired, *empty);
    check(backend->set_device(*plan.change), "apply 1000 peers");
    ours_full.push_back(ms_since(t0));

    // One peer's endpoint moves: a full pass (observe + plan + execute) ...
    desired.peers[7].endpoint->port = static_cast<std::uint16_t>(40000 + r);
    t0 = Clock::now();
    auto current = backend->get_device("wgb0");
    auto one = dataplane::plan_device(desired, *current);
    check(backend->set_device(*one.change), "one-peer change");
    ours_pass.push_back(ms_since(t0));
    // ... and just the one-peer change itself (what `wg set` does).
    desired.peers[8].endpoint->port = static_cast<std::uint16_t>(41000 + r);
    wg::WgDevice single;
    single.name = "wgb0";
    wg::WgPeer p;
    p.public_key = desired.peers[8].public_key;
    p.endpoint = desired.peers[8].endpoint;
    p.update_only = true;
    single.peers.push_back(std::move(p));
    t0 = Clock::now();
    check(backend->set_device(single), "one-peer change");
    ours_one.push_back(ms_since(t0));
    check(backend->delete_device("wgb0"), "delete wgb0");

    // wg: the same peers on the same kind of device.
    check(backend->ensure_device("wgb1"), "create wgb1");
    t0 = Clock::now();
    if (run_cmd("wg setconf wgb1 " + conf_path) != 0) return 1;
    wg_full.push_back(ms_since(t0));
    t0 = Clock::now();
    if (run_cmd("wg set wgb1 peer " + set.keys[7].to_base64() + " endpoint 172.31.0.9:" +
                std::to_string(40000 + r)) != 0)
      return 1;
    wg_one.push_back(ms_since(t0));
    check(backend->delete_device("wgb1"), "delete wgb1");
  }
  std::remove(conf_path.c_str());

  std::printf("backend %s, %zu peers, %d rounds (medians, ms)\n", backend_kind.c_str(), kPeers, rounds);
  std::printf("  %-44s %9s %9s %7s\n", "", "meshd", "wg", "ratio");
  std::printf("  %-44s %9.2f %9.2f %7.2f\n", "1000 peers onto an empty device", median(ours_full),
              median(wg_full), median(ours_full) / median(wg_full));
  std::printf("  %-44s %9.2f %9.2f %7.2f\n", "one-peer change", median(ours_one), median(wg_one),
              median(ours_one) / median(wg_one));
  std::printf("  %-44s %9.2f %9s\n", "one-peer change as a full pass (get+plan+set)", median(ours_pass), "-");
  return 0;
}
