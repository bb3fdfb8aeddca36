// ADD and DEL latency of meshd-cni against the reference bridge + host-local
// plugins (Debian's containernetworking-plugins), side by side in one run,
// inside a test node namespace: each iteration runs meshd ADD, meshd DEL,
// reference ADD, reference DEL into the same kind of fresh pod namespace, so
// both see the same machine noise. Prints medians and p90; asserts nothing.
// Then bursts, as a node that restarts or schedules a deployment sees them: N
// ADDs started at once, then N DELs at once (N = 20, 100 by default), wall
// time of each batch and the plugins' CPU time, meshd-cni and the reference
// alternating in the same run.
#include "netlink/netns.h"
#include "tests/support/cni_harness.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

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
  std::vector<int> bursts = {20, 100};
  if (argc > 3) {
    bursts.clear();
    std::stringstream ss(argv[3]);
    for (std::string n; std::getline(ss, n, ',');)
      if (std::atoi(n.c_str()) > 0) bursts.push_back(std::min(200, std::atoi(n.c_str())));
  }
  const int burst_runs = argc > 4 ? std::max(1, std::atoi(argv[4])) : 3;
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

  // Bursts: N plugin processes started together from N threads (each thread
  // inherits this thread's network namespace at creation), the batch timed
  // from the first start to the last exit.
  auto batch = [&](const std::string& bin, const std::string& cmd, std::vector<std::string> confs,
                   const std::string& prefix, std::vector<std::unique_ptr<Netns>>& pods, double& wall,
                   double& cpu) {
    std::vector<PluginRun> out(pods.size());
    const double c0 = children_cpu_ms();
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (std::size_t i = 0; i < pods.size(); ++i)
      ts.emplace_back([&, i] {
        std::map<std::string, std::string> env = {
            {"CNI_COMMAND", cmd}, {"CNI_CONTAINERID", prefix + std::to_string(i)},
            {"CNI_NETNS", pods[i]->path()}, {"CNI_IFNAME", "eth0"}, {"CNI_PATH", ref_dir}};
        out[i] = run_process({bin}, env, confs[i]);
      });
    for (auto& t : ts) t.join();
    wall = ms_since(t0);
    cpu = children_cpu_ms() - c0;
    for (std::size_t i = 0; i < out.size(); ++i)
      if (out[i].exit_code != 0) {
        std::fprintf(stderr, "bench_cni: burst %s %s #%zu failed: %s\n", bin.c_str(), cmd.c_str(), i,
                     out[i].out.c_str());
        std::exit(1);
      }
    return out;
  };
  if (!bursts.empty())
    std::printf("\nBursts: N ADDs at once, then N DELs at once; medians of %d runs (ms)\n", burst_runs);
  for (int n : bursts) {
    Stats bm_add, bm_del, br_add, br_del, bcm_add, bcm_del, bcr_add, bcr_del;
    for (int run = 0; run < burst_runs; ++run) {
      auto one = [&](const std::string& bin, const std::string& conf, Stats& wa, Stats& ca, Stats& wd,
                     Stats& cd) {
        std::vector<std::unique_ptr<Netns>> pods;
        for (int i = 0; i < n; ++i) pods.push_back(std::make_unique<Netns>("bb"));
        const std::string prefix = "burst" + std::to_string(run) + "-";
        double w = 0, c = 0;
        auto adds = batch(bin, "ADD", std::vector<std::string>(n, conf), prefix, pods, w, c);
        wa.v.push_back(w);
        ca.v.push_back(c);
        std::vector<std::string> dconfs;
        for (auto& a : adds) dconfs.push_back(with_prev_result(conf, a.out));
        batch(bin, "DEL", dconfs, prefix, pods, w, c);
        wd.v.push_back(w);
        cd.v.push_back(c);
      };
      one(plugin_path(), meshd_conf, bm_add, bcm_add, bm_del, bcm_del);
      one(ref_dir + "/bridge", ref_conf, br_add, bcr_add, br_del, bcr_del);
    }
    std::printf("N = %d\n%-24s %12s %12s\n", n, "", "wall median", "CPU median");
    std::printf("%-24s %12.1f %12.1f\n", "meshd-cni ADD", bm_add.median(), bcm_add.median());
    std::printf("%-24s %12.1f %12.1f\n", "bridge+host-local ADD", br_add.median(), bcr_add.median());
    std::printf("%-24s %12.1f %12.1f\n", "meshd-cni DEL", bm_del.median(), bcm_del.median());
    std::printf("%-24s %12.1f %12.1f\n", "bridge+host-local DEL", br_del.median(), bcr_del.median());
    std::printf("ratio meshd/reference, wall: ADD %.2f (goal <= 0.50), DEL %.2f (goal <= 0.70); "
                "CPU: ADD %.2f, DEL %.2f\n",
                bm_add.median() / br_add.median(), bm_del.median() / br_del.median(),
                bcm_add.median() / bcr_add.median(), bcm_del.median() / bcr_del.median());
  }
  std::printf("load average at the end: %s", sh_out("cat /proc/loadavg").c_str());
  return 0;
}
