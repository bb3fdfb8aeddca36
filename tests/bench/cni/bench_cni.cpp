// ADD and DEL latency of meshd-cni against the reference bridge + host-local
// plugins (Debian's containernetworking-plugins), side by side in one run,
// inside a test node namespace: each iteration runs meshd ADD, meshd DEL,
// reference ADD, reference DEL into the same kind of fresh pod namespace, so
// both see the same machine noise. Prints medians and p90; asserts nothing.
#include "netlink/netns.h"
#include "tests/integration/cni/cni_harness.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

using namespace meshd::testing;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Stats {
  std::vector<double> v;
  double pct(double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  }
  double median() {
    std::sort(v.begin(), v.end());
    auto n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 50;
  const std::string ref_dir = argc > 2 ? argv[2] : "/usr/lib/cni";
  if (!is_root()) {
    std::fprintf(stderr, "bench_cni: needs root (network namespaces)\n");
    return 2;
  }
  CniNode node("bn");
  node.set_pod_cidr("10.244.0.0/24", true, 1380);
  const std::string meshd_conf = node.config("1.0.0");
  const std::string ref_conf =
      R"({"cniVersion":"1.0.0","name":"refnet","type":"bridge","bridge":"cnibr0","isGateway":true,)"
      R"("ipMasq":false,"ipam":{"type":"host-local","subnet":"10.88.0.0/24","dataDir":")" +
      node.dir() + R"(/host-local"}})";

  // This process (and so every plugin it starts) runs inside the node namespace.
  auto guard = meshd::nl::NetnsGuard::enter(node.ns().fd());
  if (!guard) {
    std::fprintf(stderr, "bench_cni: %s\n", guard.error().message.c_str());
    return 1;
  }
  Stats m_add, m_del, r_add, r_del;
  auto timed = [&](Stats& s, const std::string& bin, const std::string& cmd, const std::string& conf,
                   const std::string& cid, const std::string& netns, const std::string& cni_path) {
    std::map<std::string, std::string> env = {{"CNI_COMMAND", cmd},    {"CNI_CONTAINERID", cid},
                                              {"CNI_NETNS", netns},    {"CNI_IFNAME", "eth0"},
                                              {"CNI_PATH", cni_path}};
    auto t0 = std::chrono::steady_clock::now();
    auto r = run_process({bin}, env, conf);
    s.v.push_back(ms_since(t0));
    if (r.exit_code != 0) {
      std::fprintf(stderr, "bench_cni: %s %s failed: %s\n", bin.c_str(), cmd.c_str(), r.out.c_str());
      std::exit(1);
    }
    return r;
  };
  for (int i = 0; i < runs; ++i) {
    Netns pm("bp"), pr("bp");
    const std::string cid = "bench" + std::to_string(i);
    auto add = timed(m_add, plugin_path(), "ADD", meshd_conf, cid, pm.path(), ref_dir);
    timed(m_del, plugin_path(), "DEL", with_prev_result(meshd_conf, add.out), cid, pm.path(), ref_dir);
    auto radd = timed(r_add, ref_dir + "/bridge", "ADD", ref_conf, cid, pr.path(), ref_dir);
    timed(r_del, ref_dir + "/bridge", "DEL", with_prev_result(ref_conf, radd.out), cid, pr.path(), ref_dir);
  }
  std::printf("CNI plugin latency, %d runs each, inside a test node namespace (ms)\n", runs);
  std::printf("%-28s %10s %10s\n", "", "median", "p90");
  std::printf("%-28s %10.2f %10.2f\n", "meshd-cni ADD", m_add.median(), m_add.pct(0.9));
  std::printf("%-28s %10.2f %10.2f\n", "bridge+host-local ADD", r_add.median(), r_add.pct(0.9));
  std::printf("%-28s %10.2f %10.2f\n", "meshd-cni DEL", m_del.median(), m_del.pct(0.9));
  std::printf("%-28s %10.2f %10.2f\n", "bridge+host-local DEL", r_del.median(), r_del.pct(0.9));
  std::printf("ratio meshd/reference: ADD %.2f, DEL %.2f (goal: <= 0.50)\n",
              m_add.median() / r_add.median(), m_del.median() / r_del.median());
  return 0;
}
