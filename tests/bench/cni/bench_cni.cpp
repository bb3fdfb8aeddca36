// ADD and DEL latency of meshd-cni against the reference bridge + host-local
// plugins (Debian's containernetworking-plugins), side by side in one run,
// inside a test node namespace: each iteration runs meshd ADD, meshd DEL,
// reference ADD, reference DEL into the same kind of fresh pod namespace, so
// both see the same machine noise. Prints medians and p90; asserts nothing.
#include "netlink/netns.h"
#include "tests/integration/cni/cni_harness.h"

#include <sys/resource.h>

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
  Stats m_add, m_del, r_add, r_del;          // wall time
  Stats cm_add, cm_del, cr_add, cr_del;      // CPU time (user + sys) of the plugin processes
  auto children_cpu_ms = [] {
    rusage ru{};
    getrusage(RUSAGE_CHILDREN, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  };
  auto timed = [&](Stats& s, Stats& cpu, const std::string& bin, const std::string& cmd, const std::string& conf,
                   const std::string& cid, const std::string& netns, const std::string& cni_path) {
    std::map<std::string, std::string> env = {{"CNI_COMMAND", cmd},    {"CNI_CONTAINERID", cid},
                                              {"CNI_NETNS", netns},    {"CNI_IFNAME", "eth0"},
                                              {"CNI_PATH", cni_path}};
    const double c0 = children_cpu_ms();
    auto t0 = std::chrono::steady_clock::now();
    auto r = run_process({bin}, env, conf);
    s.v.push_back(ms_since(t0));
    cpu.v.push_back(children_cpu_ms() - c0);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "bench_cni: %s %s failed: %s\n", bin.c_str(), cmd.c_str(), r.out.c_str());
      std::exit(1);
    }
    return r;
  };
  for (int i = 0; i < runs; ++i) {
    Netns pm("bp"), pr("bp");
    const std::string cid = "bench" + std::to_string(i);
    auto add = timed(m_add, cm_add, plugin_path(), "ADD", meshd_conf, cid, pm.path(), ref_dir);
    timed(m_del, cm_del, plugin_path(), "DEL", with_prev_result(meshd_conf, add.out), cid, pm.path(), ref_dir);
    auto radd = timed(r_add, cr_add, ref_dir + "/bridge", "ADD", ref_conf, cid, pr.path(), ref_dir);
    timed(r_del, cr_del, ref_dir + "/bridge", "DEL", with_prev_result(ref_conf, radd.out), cid, pr.path(), ref_dir);
  }
  std::printf("CNI plugin latency, %d runs each, inside a test node namespace (ms)\n", runs);
  std::printf("%-24s %12s %10s %12s\n", "", "wall median", "wall p90", "CPU median");
  auto row = [](const char* name, Stats& w, Stats& c) {
    std::printf("%-24s %12.2f %10.2f %12.2f\n", name, w.median(), w.pct(0.9), c.median());
  };
  row("meshd-cni ADD", m_add, cm_add);
  row("bridge+host-local ADD", r_add, cr_add);
  row("meshd-cni DEL", m_del, cm_del);
  row("bridge+host-local DEL", r_del, cr_del);
  std::printf("ratio meshd/reference, wall: ADD %.2f, DEL %.2f; CPU: ADD %.2f, DEL %.2f (goal: <= 0.50)\n",
              m_add.median() / r_add.median(), m_del.median() / r_del.median(),
              cm_add.median() / cr_add.median(), cm_del.median() / cr_del.median());
  std::printf("load average at the end: %s", sh_out("cat /proc/loadavg").c_str());
  return 0;
}
