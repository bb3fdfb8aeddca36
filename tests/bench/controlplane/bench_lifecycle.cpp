// Lifecycle figures with real meshd processes (issue 12's benchmarks): N
// nodes in network namespaces on a bridge underlay, cluster mode, userspace
// backend, pods made by the real CNI plugin (tests/support/cluster_nodes.h).
// Prints figures; asserts nothing on them. Run through scripts/bench-lifecycle.sh.
//
//   removal   DELETE /v1/nodes/{name} at the founder, for the last node, then
//             the one before, ...: the time from the DELETE's answer until
//             the removed node's public key has left each other node's
//             WireGuard device (read over UAPI every 2 ms), and until its
//             pod CIDR has left every route table; median and worst of the
//             "every node" times, and of every node but the remover (which
//             keeps the peer about a second for the removed node to hear).
//   rotation  POST /v1/key/rotate on node 2 under a 100/s ping from node 1's
//             pod to node 2's (ping -D timestamps): the largest interval
//             between consecutive replies and the loss, per run; median and
//             worst.
//
// The daemons run with the production timings (anti-entropy 1000 ms,
// resync 2000 ms, keepalive 25 s, rotation lead 3000 ms and grace 2000 ms)
// unless told otherwise, at log level info.
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/mesh_probe.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

namespace meshd::testing {
namespace {

using Clock = std::chrono::steady_clock;
namespace json = boost::json;

struct Options {
  int nodes = 10;
  int removals = 3;
  int rotations = 10;
  int anti_entropy_ms = 1000;
  int resync_ms = 2000;
  int keepalive = 25;
  int lead_ms = 0;   // 0: meshd's default (3000)
  int grace_ms = 0;  // 0: meshd's default (2000)
  std::set<std::string> parts{"removal", "rotation"};
};

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
std::string loadavg() {
  std::string s = read_file("/proc/loadavg");
  auto cut = s.find(' ', s.find(' ', s.find(' ') + 1) + 1);
  return s.substr(0, cut);
}
void replace(std::string& text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  if (at == std::string::npos) throw std::runtime_error("config has no '" + from + "'");
  text.replace(at, from.size(), to);
}
void need(bool ok, const std::string& what, const ClusterNodes& c, const ClusterNodes::Node& n) {
  if (!ok) throw std::runtime_error(what + "\n" + c.log_tail(n));
}

// The config ClusterNodes wrote, with the timings of `o` instead of the
// integration tests' fast ones.
void tune(ClusterNodes& c, ClusterNodes::Node& n, const Options& o) {
  std::string extra;
  if (o.lead_ms > 0 || o.grace_ms > 0) {
    extra = "[rotation]\n";
    if (o.lead_ms > 0) extra += "lead_ms = " + std::to_string(o.lead_ms) + "\n";
    if (o.grace_ms > 0) extra += "grace_ms = " + std::to_string(o.grace_ms) + "\n";
  }
  n.extra_config = extra;
  c.write_config(n);
  std::string t = read_file(n.config_path());
  replace(t, "persistent_keepalive = 1\n", "persistent_keepalive = " + std::to_string(o.keepalive) + "\n");
  replace(t, "resync_interval_ms = 500\n", "resync_interval_ms = " + std::to_string(o.resync_ms) + "\n");
  replace(t, "anti_entropy_interval_ms = 300\n",
          "anti_entropy_interval_ms = " + std::to_string(o.anti_entropy_ms) + "\n");
  write_file(n.config_path(), t);
}

std::string wg_public_key(const ClusterNodes::Node& n) {
  auto db = ClusterNodes::open_store(n);
  auto key = store::LocalNodeRepo(*db).wg_private_key().value();
  return key ? key->public_key().to_base64() : "";
}

bool device_has(const ClusterNodes& c, const ClusterNodes::Node& n, const std::string& key) {
  auto peers = wg_peers(c.uapi_socket(n));
  return peers && find_peer(*peers, key).has_value();
}

// No rotation of `n` is pending in its own table.
bool rotation_done(const ClusterNodes::Node& n) {
  std::string body = api_get(n.api_socket(), "/v1/nodes/" + n.name);
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  auto* p = v.as_object().if_contains("pending_public_key");
  return !p || p->is_null();
}

struct Spread {
  double median = 0, worst = 0;
};
Spread spread(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  double median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return {median, v.back()};
}

void run_removal(ClusterNodes& c, std::vector<ClusterNodes::Node*>& live, const Options& o) {
  std::printf("\nremoval: DELETE at %s, until the key has left every other node's device (UAPI, polled every 2 ms)\n",
              live.front()->name.c_str());
  std::vector<double> all_devices, all_others, all_routes;
  for (int k = 0; k < o.removals && live.size() > 2; ++k) {
    auto* victim = live.back();
    const std::string key = wg_public_key(*victim);
    const std::string cidr = ClusterNodes::settled_cidr(*victim)->to_string();
    live.pop_back();
    bool ready = eventually([&] {
      for (auto* n : live)
        if (!device_has(c, *n, key)) return false;
      return true;
    }, 60s, 100ms);
    need(ready, "not every node has " + victim->name + "'s key before its removal", c, *victim);
    const auto sent = Clock::now();
    auto a = api_request(live.front()->api_socket(), "DELETE", "/v1/nodes/" + victim->name);
    const double answer_ms = ms_since(sent);
    need(a.status == 200, "DELETE /v1/nodes/" + victim->name + ": " + std::to_string(a.status) + " " + a.body, c,
         *live.front());
    const auto t0 = Clock::now();
    std::vector<double> gone(live.size(), -1);
    std::size_t left = live.size();
    while (left > 0 && ms_since(t0) < 30000) {
      for (std::size_t i = 0; i < live.size(); ++i)
        if (gone[i] < 0 && !device_has(c, *live[i], key)) {
          gone[i] = ms_since(t0);
          --left;
        }
      std::this_thread::sleep_for(2ms);
    }
    // Routes: `ip route` per node, slower to poll; measured after the keys.
    double routes = -1;
    if (eventually([&] {
          for (auto* n : live)
            if (has_route(*n->ns, cidr)) return false;
          return true;
        }, 30s, 5ms))
      routes = ms_since(t0);
    if (left > 0) {
      std::printf("  %s: %zu nodes still hold its key after 30 s\n", victim->name.c_str(), left);
      continue;
    }
    auto s = spread(gone);
    // The remover (live[0]) keeps the removed node's peer about a second, so
    // the tombstone can still reach the removed node: the others show how
    // fast the push itself travels.
    auto others = spread(std::vector<double>(gone.begin() + 1, gone.end()));
    all_devices.push_back(s.worst);
    all_others.push_back(others.worst);
    if (routes >= 0) all_routes.push_back(routes);
    std::printf("  %s (%zu other nodes): DELETE answered in %.1f ms; key gone from the other members' devices "
                "after median %.1f ms, all %.1f ms; from the remover's %.1f ms; route gone everywhere %.1f ms  "
                "[load %s]\n",
                victim->name.c_str(), live.size(), answer_ms, others.median, others.worst, gone[0], routes,
                loadavg().c_str());
  }
  auto d = spread(all_devices), x = spread(all_others), r = spread(all_routes);
  std::printf("removal reaching every device: median %.1f ms, worst %.1f ms over %zu removals "
              "(every device but the remover's: median %.1f ms, worst %.1f ms); "
              "every route table: median %.1f ms, worst %.1f ms\n",
              d.median, d.worst, all_devices.size(), x.median, x.worst, r.median, r.worst);
}

void run_rotation(ClusterNodes& c, std::vector<ClusterNodes::Node*>& live, const Options& o) {
  auto& from = *live.at(0);
  auto& to = *live.at(1);
  auto& pa = from.pods.empty() ? c.add_pod(from) : from.pods.front();
  auto& pb = to.pods.empty() ? c.add_pod(to) : to.pods.front();
  need(ClusterNodes::reaches(*pa.ns, pb.address), "pod on " + from.name + " cannot reach " + to.name, c, to);
  const int lead = o.lead_ms > 0 ? o.lead_ms : 3000, grace = o.grace_ms > 0 ? o.grace_ms : 2000;
  const int count = (500 + lead + grace + 1500) / 10;
  std::printf("\nrotation: POST /v1/key/rotate on %s under a 100/s ping from %s's pod (%d probes a run)\n",
              to.name.c_str(), from.name.c_str(), count);
  std::vector<double> gaps, lost;
  for (int run = 1; run <= o.rotations; ++run) {
    need(eventually([&] { return rotation_done(to); }, 30s, 100ms), "a rotation stays pending", c, to);
    PingRun ping(*pa.ns, pb.address, count, 0.01);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto a = api_request(to.api_socket(), "POST", "/v1/key/rotate");
    need(a.status == 202, "POST /v1/key/rotate: " + std::to_string(a.status) + " " + a.body, c, to);
    auto s = ping.wait();
    gaps.push_back(s.max_gap_ms);
    lost.push_back(s.lost());
    std::printf("  run %2d: gap %.1f ms, lost %d of %d  [load %s]\n", run, s.max_gap_ms, s.lost(), s.sent,
                loadavg().c_str());
  }
  auto g = spread(gaps), l = spread(lost);
  std::printf("rotation gap over %zu runs: median %.1f ms, worst %.1f ms; lost median %.0f, worst %.0f\n",
              gaps.size(), g.median, g.worst, l.median, l.worst);
}

int main_(int argc, char** argv) {
  Options o;
  bool parts_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--nodes") o.nodes = std::stoi(value());
    else if (a == "--removals") o.removals = std::stoi(value());
    else if (a == "--rotations") o.rotations = std::stoi(value());
    else if (a == "--anti-entropy-ms") o.anti_entropy_ms = std::stoi(value());
    else if (a == "--resync-ms") o.resync_ms = std::stoi(value());
    else if (a == "--keepalive") o.keepalive = std::stoi(value());
    else if (a == "--lead-ms") o.lead_ms = std::stoi(value());
    else if (a == "--grace-ms") o.grace_ms = std::stoi(value());
    else if (a == "--part") {
      if (!parts_given) o.parts.clear();
      parts_given = true;
      o.parts.insert(value());
    } else {
      std::fprintf(stderr,
                   "usage: bench_lifecycle [--nodes N] [--removals K] [--rotations R] [--anti-entropy-ms MS]\n"
                   "       [--resync-ms MS] [--keepalive S] [--lead-ms MS] [--grace-ms MS]\n"
                   "       [--part removal|rotation]...\n");
      return 2;
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_lifecycle: needs root (network namespaces)\n");
    return 1;
  }
  if (o.nodes < 3) throw std::runtime_error("--nodes must be at least 3");
  std::time_t t = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::gmtime(&t));
  std::printf("bench_lifecycle: %s UTC, %ld cores, load avg %s, %d nodes\n", when, ::sysconf(_SC_NPROCESSORS_ONLN),
              loadavg().c_str(), o.nodes);

  ClusterNodes c;
  const std::string meshd = std::string(MESHD_BIN_DIR) + "/meshd";
  std::vector<ClusterNodes::Node*> live;
  auto& founder = c.add_node("n1");
  tune(c, founder, o);
  c.start(founder, meshd, "info");
  need(c.wait_settled(founder), "n1 did not found a cluster", c, founder);
  live.push_back(&founder);
  for (int i = 2; i <= o.nodes; ++i) {
    auto& n = c.add_node("n" + std::to_string(i), &founder);
    tune(c, n, o);
    c.write_token(n, ClusterNodes::create_token(founder));
    c.start(n, meshd, "info");
    need(c.wait_log(n, "joined cluster", 60s), n.name + " did not join", c, n);
    need(c.wait_settled(n, 60s), n.name + " did not settle", c, n);
    live.push_back(&n);
  }
  std::printf("%d nodes up  [load %s]\n", o.nodes, loadavg().c_str());
  // Rotation first: it needs nodes 1 and 2 only, and removal shrinks the mesh.
  if (o.parts.count("rotation")) run_rotation(c, live, o);
  if (o.parts.count("removal")) run_removal(c, live, o);
  return 0;
}

}  // namespace
}  // namespace meshd::testing

int main(int argc, char** argv) {
  try {
    return meshd::testing::main_(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_lifecycle: %s\n", e.what());
    return 1;
  }
}
