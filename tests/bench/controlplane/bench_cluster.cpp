// Control-plane figures with real meshd processes (issue 10's benchmarks):
// nodes in network namespaces on a bridge underlay, cluster mode, userspace
// backend, pods made by the real CNI plugin (tests/support/cluster_nodes.h).
// Prints figures; asserts nothing on them. Run through scripts/bench-cluster.sh.
//
// --datastore embedded|etcd|both (default both): join, change and idle run
// once per datastore mode, each on a cluster of its own: the default mode
// (embedded), then the etcd mode (issue 13) with a real 3-member etcd on a
// host of the same kind of underlay (tests/support/etcd_cluster.h), each
// node's etcd client starting at another member. With both, the join figures
// of the two modes are printed again side by side with their medians, since
// issue 13 asks for that comparison on the same machine in the same run.
//
//   join     nodes join one by one through the founder; for each joiner:
//            its process start -> "joined cluster" in its log (admitted) ->
//            its CNI conflist (settled) -> its pod made -> a reply from the
//            new pod to a continuous ping (every 20 ms, ping -D timestamps)
//            from every other node's pod.
//   change   a node restarts with another WireGuard listen port, so it
//            re-signs its record with a new endpoint; time from its restart
//            until its own API, then every other node's GET /v1/nodes,
//            shows the new version.
//   idle     CPU ticks and VmRSS of every meshd and wireguard-go over a quiet
//            window with all nodes up (N-1 peers each); in the etcd mode
//            also those of each etcd member.
//   records  one founder whose table holds R records (R-1 crafted members
//            signed and admitted as the founder would, written to its store
//            while it is stopped): RSS, the smaps split and CPU over the
//            same window, beside the same founder alone (default mode only:
//            the records are crafted into the SQLite store).
//
// The daemons run with the production timings (anti-entropy 1000 ms,
// resync 2000 ms, keepalive 25 s; in the etcd mode [datastore]'s defaults:
// timeout 2000 ms, re-list every 300 s, lease 30 s) unless told otherwise, at
// log level info.
#include "keys/identity.h"
#include "keys/wg_key.h"
#include "meshd/controlplane/node_record.h"
#include "store/cluster.h"
#include "store/records.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/etcd_cluster.h"

#include <boost/json.hpp>
#include <sys/un.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <thread>

namespace meshd::testing {
namespace {

namespace cp = meshd::controlplane;
using Clock = std::chrono::system_clock;  // ping -D prints wall-clock time

enum class Datastore { kEmbedded, kEtcd };
const char* mode_name(Datastore d) { return d == Datastore::kEtcd ? "etcd" : "default"; }

struct Options {
  int nodes = 10;
  std::set<int> highlight{3, 5, 10};
  int changes = 3;
  int idle_seconds = 30;
  int records = 1000;
  int anti_entropy_ms = 1000;
  int resync_ms = 2000;
  int keepalive = 25;
  std::set<std::string> parts{"join", "change", "idle", "records"};
  std::vector<Datastore> datastores{Datastore::kEmbedded, Datastore::kEtcd};
};

// The etcd mode's members: three addresses of one underlay host, far above
// the nodes' 172.31.78.<index> and below the nodes' unused gateway .254.
const std::vector<std::string> kEtcdAddresses{"172.31.78.211", "172.31.78.212", "172.31.78.213"};

// A node's [datastore] in the etcd mode: every member, the list starting at
// member (index % 3), so the nodes' clients (which stay on the first member
// that answers) spread over the three as a real deployment's would; the
// production defaults for everything else.
std::string datastore_config(int index) {
  std::string endpoints;
  for (std::size_t i = 0; i < kEtcdAddresses.size(); ++i) {
    const auto& a = kEtcdAddresses[(static_cast<std::size_t>(index) + i) % kEtcdAddresses.size()];
    endpoints += (endpoints.empty() ? "\"" : ", \"") + std::string("http://") + a + ":2379\"";
  }
  return "[datastore]\nkind = \"etcd\"\nendpoints = [" + endpoints + "]\nprefix = \"/meshd/\"\n";
}

double ms_since(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(t - t0).count();
}
std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count());
}
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

// The config ClusterNodes wrote, with the timings of `o` instead of the
// integration tests' fast ones, and optionally another cluster CIDR.
void tune(const ClusterNodes::Node& n, const Options& o, int keepalive, const std::string& cidr = "") {
  std::string c = read_file(n.config_path());
  replace(c, "persistent_keepalive = 1\n", "persistent_keepalive = " + std::to_string(keepalive) + "\n");
  replace(c, "resync_interval_ms = 500\n", "resync_interval_ms = " + std::to_string(o.resync_ms) + "\n");
  replace(c, "anti_entropy_interval_ms = 300\n",
          "anti_entropy_interval_ms = " + std::to_string(o.anti_entropy_ms) + "\n");
  if (!cidr.empty()) replace(c, "cidr = \"10.244.0.0/16\"", "cidr = \"" + cidr + "\"");
  write_file(n.config_path(), c);
}

void set_listen_port(const ClusterNodes::Node& n, std::uint16_t port) {
  std::string c = read_file(n.config_path());
  auto at = c.find("listen_port = ");
  if (at == std::string::npos) throw std::runtime_error("config has no listen_port");
  c.replace(at, c.find('\n', at) - at, "listen_port = " + std::to_string(port));
  write_file(n.config_path(), c);
}

void need(bool ok, const std::string& what, const ClusterNodes& c, const ClusterNodes::Node& n) {
  if (!ok) throw std::runtime_error(what + "\n" + c.log_tail(n));
}

// --- process figures -------------------------------------------------------

struct ProcSample {
  long ticks = 0;  // utime + stime
  long rss_kb = 0;
};
ProcSample sample(pid_t pid) {
  ProcSample s;
  if (pid <= 0) return s;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return s;
  std::istringstream in(stat.substr(close_paren + 2));
  std::string field;
  // Fields after "(comm)": state is field 3; utime 14, stime 15.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) s.ticks += std::stol(field);
    if (i == 15) s.ticks += std::stol(field);
  }
  std::istringstream st(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(st, line);)
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stol(line.substr(6));
  return s;
}

std::string comm(pid_t pid) {
  std::string c = read_file("/proc/" + std::to_string(pid) + "/comm");
  while (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

pid_t wireguard_go_in(const Netns& ns) {
  std::istringstream in(sh_out("ip netns pids " + ns.name() + " 2>/dev/null"));
  for (pid_t pid; in >> pid;)
    if (comm(pid).rfind("wireguard-go", 0) == 0) return pid;
  return 0;
}

// /proc/PID/smaps_rollup: the anonymous (heap, arenas, stacks) and
// file-backed (binary, libraries) parts of the resident set.
std::map<std::string, long> rollup(pid_t pid) {
  std::map<std::string, long> m;
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/smaps_rollup"));
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos || line.find(" kB") == std::string::npos) continue;
    m[line.substr(0, colon)] = std::stol(line.substr(colon + 1));
  }
  return m;
}

// Resident kB per mapping name from /proc/PID/smaps ("[anon]" for unnamed).
std::vector<std::pair<std::string, long>> rss_by_mapping(pid_t pid) {
  std::map<std::string, long> by;
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/smaps"));
  std::string current;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') < line.find(' ')) {
      // "addr-addr perms offset dev inode   name"
      std::istringstream h(line);
      std::string f;
      for (int i = 0; i < 5; ++i) h >> f;
      std::string name;
      std::getline(h, name);
      name.erase(0, name.find_first_not_of(' '));
      current = name.empty() ? "[anon]" : std::filesystem::path(name).filename().string();
      if (name.rfind("[", 0) == 0) current = name;
    } else if (line.rfind("Rss:", 0) == 0) {
      by[current] += std::stol(line.substr(4));
    }
  }
  std::vector<std::pair<std::string, long>> v(by.begin(), by.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second > b.second; });
  return v;
}

void print_memory_split(pid_t pid, const std::string& who) {
  auto r = rollup(pid);
  std::printf("  %s smaps_rollup: Rss %ld kB = anonymous %ld kB + file-backed %ld kB (Pss %ld kB)\n",
              who.c_str(), r["Rss"], r["Anonymous"], r["Rss"] - r["Anonymous"], r["Pss"]);
  std::printf("  %s resident by mapping:", who.c_str());
  int shown = 0;
  for (auto& [name, kb] : rss_by_mapping(pid)) {
    if (kb == 0 || shown++ == 9) break;
    std::printf(" %s %ld kB;", name.c_str(), kb);
  }
  std::printf("\n");
}

// Heap in use inside meshd, asked through gdb (the process stops for the
// moment of the attach): SQLite's own count (sqlite3_memory_used) and glibc's
// malloc_stats(), which the daemon prints on its stderr, i.e. its log.
void print_heap_inside(const ClusterNodes& c, const ClusterNodes::Node& n) {
  if (sh("command -v gdb >/dev/null") != 0) {
    std::printf("  (no gdb: heap in use not asked)\n");
    return;
  }
  std::size_t mark = c.log(n).size();
  std::string out = sh_out("gdb -p " + std::to_string(n.pid) +
                           " -batch -nx -ex 'call (long long)sqlite3_memory_used()'"
                           " -ex 'call (void)malloc_stats()' 2>/dev/null | grep '^\\$'");
  std::this_thread::sleep_for(200ms);
  std::string stats = c.log(n).substr(mark);
  long long sqlite = -1;
  if (auto at = out.find("= "); at != std::string::npos) sqlite = std::atoll(out.c_str() + at + 2);
  // "Total (incl. mmap):\nsystem bytes     = N\nin use bytes     = M"
  long long system = -1, in_use = -1;
  if (auto t = stats.find("Total (incl. mmap)"); t != std::string::npos) {
    auto sb = stats.find("system bytes", t), iu = stats.find("in use bytes", t);
    if (sb != std::string::npos) system = std::atoll(stats.c_str() + stats.find('=', sb) + 1);
    if (iu != std::string::npos) in_use = std::atoll(stats.c_str() + stats.find('=', iu) + 1);
  }
  if (sqlite < 0 || in_use < 0) {
    std::printf("  (gdb could not ask meshd %d for its heap)\n", n.pid);
    return;
  }
  std::printf("  meshd heap (gdb): malloc in use %lld kB of %lld kB taken from the system; SQLite's share %lld kB\n",
              in_use / 1024, system / 1024, sqlite / 1024);
}

// Peers on the userspace device, read over its UAPI socket ("get=1").
int uapi_peer_count(const ClusterNodes::Node& n, const std::string& iface) {
  std::string path = n.dir + "/wg/" + iface + ".sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::send(fd, "get=1\n\n", 7, MSG_NOSIGNAL) != 7) {
    ::close(fd);
    return -1;
  }
  std::string in;
  char buf[65536];
  while (in.find("\n\n") == std::string::npos) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    in.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  int peers = 0;
  for (std::size_t at = 0; (at = in.find("public_key=", at)) != std::string::npos; ++at) ++peers;
  return peers;
}

// --- the cluster ------------------------------------------------------------

std::string meshd_bin() { return std::string(MESHD_BIN_DIR) + "/meshd"; }

// The version of `name`'s record in the node's GET /v1/nodes (0: none).
std::uint64_t version_seen(const ClusterNodes::Node& at, const std::string& name) {
  std::string body = api_get(at.api_socket(), "/v1/nodes");
  if (body.empty()) return 0;
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return 0;
  for (auto& n : v.as_object().at("nodes").as_array()) {
    auto& o = n.as_object();
    if (o.at("name").as_string() == name) return boost::json::value_to<std::uint64_t>(o.at("version"));
  }
  return 0;
}

struct JoinFigures {
  double admitted = -1, settled = -1, pod = -1, all_reach = -1;
  std::vector<double> reach;  // per other node's pod
};

// A continuous ping (every 20 ms, -D wall-clock stamps) from `from` to
// `address`, output to `out`; its PID.
pid_t start_pinger(const Netns& from, const std::string& address, const std::string& out) {
  std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
  SpawnOptions s;
  s.stdout_path = out;
  s.stderr_path = "/dev/null";
  s.stdin_path = "/dev/null";
  return spawn({ip, "netns", "exec", from.name(), "ping", "-n", "-D", "-i", "0.02", "-W", "1", "-w", "30", address},
               s);
}
// The wall-clock time of the first reply in a ping -D output, if any.
std::optional<Clock::time_point> first_reply(const std::string& out) {
  std::istringstream in(read_file(out));
  for (std::string line; std::getline(in, line);) {
    if (line.find("bytes from") == std::string::npos || line[0] != '[') continue;
    double secs = std::stod(line.substr(1, line.find(']') - 1));
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs)));
  }
  return std::nullopt;
}

JoinFigures measure_join(ClusterNodes& c, ClusterNodes::Node& joiner, const std::string& work) {
  JoinFigures f;
  auto t0 = Clock::now();
  c.start(joiner, meshd_bin(), "info");
  auto deadline = t0 + 60s;
  while (Clock::now() < deadline && (f.admitted < 0 || f.settled < 0)) {
    if (f.admitted < 0 && c.log_of_this_run(joiner).find("joined cluster") != std::string::npos)
      f.admitted = ms_since(t0, Clock::now());
    std::error_code ec;
    if (f.settled < 0 && std::filesystem::file_size(joiner.conflist(), ec) > 0 && !ec)
      f.settled = ms_since(t0, Clock::now());
    std::this_thread::sleep_for(5ms);
  }
  need(f.settled >= 0, joiner.name + " did not settle within 60 s", c, joiner);
  auto& pod = c.add_pod(joiner);
  f.pod = ms_since(t0, Clock::now());
  struct Pinger {
    pid_t pid;
    std::string out;
    std::string from;
  };
  std::vector<Pinger> pingers;
  for (auto& n : c.nodes()) {
    if (&n == &joiner || n.pods.empty()) continue;
    std::string out = work + "/ping-" + joiner.name + "-from-" + n.name;
    pingers.push_back({start_pinger(*n.pods.front().ns, pod.address, out), out, n.name});
  }
  f.reach.assign(pingers.size(), -1);
  std::size_t left = pingers.size();
  while (left > 0 && Clock::now() < t0 + 60s) {
    for (std::size_t i = 0; i < pingers.size(); ++i) {
      if (f.reach[i] >= 0) continue;
      if (auto t = first_reply(pingers[i].out)) {
        f.reach[i] = ms_since(t0, *t);
        ::kill(pingers[i].pid, SIGTERM);
        wait_exit(pingers[i].pid);
        --left;
      }
    }
    std::this_thread::sleep_for(10ms);
  }
  for (std::size_t i = 0; i < pingers.size(); ++i)
    if (f.reach[i] < 0) {
      ::kill(pingers[i].pid, SIGTERM);
      wait_exit(pingers[i].pid);
      std::printf("  (pod on %s never reached %s's pod)\n", pingers[i].from.c_str(), joiner.name.c_str());
    }
  if (left == 0)
    f.all_reach = f.reach.empty() ? f.pod : *std::max_element(f.reach.begin(), f.reach.end());
  return f;
}

struct JoinRow {
  int n = 0;
  JoinFigures f;
  std::string load;
};

double median_of(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return x < 0; }), v.end());
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// The join rows of both modes side by side, then the median of each column
// over N = 2..nodes (a join that never reached everyone counts as missing).
void print_side_by_side(const std::vector<JoinRow>& a, const std::vector<JoinRow>& b) {
  std::printf("\n== join, default mode | etcd mode (ms from the joiner's process start)\n");
  std::printf("%-4s %9s %9s %9s %11s | %9s %9s %9s %11s\n", "N", "admitted", "settled", "pod made", "every reach",
              "admitted", "settled", "pod made", "every reach");
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    auto cells = [&](const std::vector<JoinRow>& rows) {
      char buf[64];
      if (i >= rows.size()) return std::string(42, ' ');
      const auto& f = rows[i].f;
      std::snprintf(buf, sizeof buf, "%9.0f %9.0f %9.0f %11.0f", f.admitted, f.settled, f.pod, f.all_reach);
      return std::string(buf);
    };
    int n = i < a.size() ? a[i].n : b[i].n;
    std::printf("%-4d %s | %s\n", n, cells(a).c_str(), cells(b).c_str());
  }
  auto medians = [](const std::vector<JoinRow>& rows) {
    std::vector<double> ad, se, po, ev;
    for (const auto& r : rows) {
      ad.push_back(r.f.admitted);
      se.push_back(r.f.settled);
      po.push_back(r.f.pod);
      ev.push_back(r.f.all_reach);
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%9.0f %9.0f %9.0f %11.0f", median_of(ad), median_of(se), median_of(po),
                  median_of(ev));
    return std::string(buf);
  };
  std::printf("%-4s %s | %s\n", "med", medians(a).c_str(), medians(b).c_str());
  std::printf("   load avg at each join: default");
  for (const auto& r : a) std::printf(" %s;", r.load.substr(0, r.load.find(' ')).c_str());
  std::printf("  etcd");
  for (const auto& r : b) std::printf(" %s;", r.load.substr(0, r.load.find(' ')).c_str());
  std::printf("\n");
}

// Join, change and idle on a cluster of `ds`'s mode; the join rows go to `rows`.
void run_join_change_idle(const Options& o, Datastore ds, std::vector<JoinRow>& rows) {
  ClusterNodes c;
  // Declared after the nodes, so destroyed before them: the nodes then lose
  // etcd for their last moments, which nothing measures any more.
  std::unique_ptr<EtcdCluster> etcd;
  TempDir work("meshd-bench-cluster");
  std::printf("\n##### %s mode%s\n", mode_name(ds),
              ds == Datastore::kEtcd ? ": [datastore] kind = \"etcd\", a 3-member etcd on an underlay host" : "");
  if (ds == Datastore::kEtcd) {
    auto& host = c.add_host(kEtcdAddresses);
    // The production raft timings (heartbeat 100 ms, election 1000 ms), not
    // the tests' short ones: nothing here kills a leader.
    EtcdClusterOptions eo;
    eo.heartbeat_ms = 100;
    eo.election_ms = 1000;
    auto t0 = Clock::now();
    etcd = std::make_unique<EtcdCluster>(host, kEtcdAddresses, eo);
    std::string version = sh_out("/usr/bin/etcd --version | head -1");
    while (!version.empty() && version.back() == '\n') version.pop_back();
    std::printf("etcd: %d members healthy %.0f ms after their start (%s)\n", etcd->size(),
                ms_since(t0, Clock::now()), version.c_str());
  }
  // A node of this mode: its [datastore] before its config is tuned.
  auto add = [&](const std::string& name, const ClusterNodes::Node* through) -> ClusterNodes::Node& {
    auto& n = c.add_node(name, through);
    if (etcd) {
      n.extra_config = datastore_config(n.index);
      c.write_config(n);
    }
    tune(n, o, o.keepalive);
    return n;
  };
  auto& founder = add("n1", nullptr);
  c.start(founder, meshd_bin(), "info");
  need(c.wait_settled(founder), "n1 did not found a cluster", c, founder);
  c.add_pod(founder);

  if (o.parts.count("join")) {
    std::printf("\n== join (%s mode): a node joins a cluster of N-1 nodes with a pod each (ms from its process start)\n",
                mode_name(ds));
    std::printf("%-4s %10s %10s %10s %12s %12s %10s  %s\n", "N", "admitted", "settled", "pod made",
                "first reach", "every reach", "median", "load avg");
  }
  for (int k = 2; k <= o.nodes; ++k) {
    auto& joiner = add("n" + std::to_string(k), &founder);
    c.write_token(joiner, ClusterNodes::create_token(founder));
    // Each join starts from a quiet cluster: the previous joiner settled
    // everywhere and the pods' first handshakes are done.
    std::this_thread::sleep_for(2s);
    std::string load = loadavg();
    auto f = measure_join(c, joiner, work.path());
    if (!o.parts.count("join")) continue;
    auto sorted = f.reach;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted.empty() ? -1 : sorted[sorted.size() / 2];
    double first = sorted.empty() ? -1 : sorted.front();
    std::printf("%-4d %10.0f %10.0f %10.0f %12.0f %12.0f %10.0f  %s%s\n", k, f.admitted, f.settled, f.pod, first,
                f.all_reach, median, load.c_str(), o.highlight.count(k) ? "   <-" : "");
    std::fflush(stdout);
    rows.push_back({k, f, load});
  }

  if (o.parts.count("change")) {
    std::printf("\n== change (%s mode): a node restarts with another listen port (a new endpoint in its record);\n"
                "   ms from its restart until its own API shows the new version, then until every other node does\n",
                mode_name(ds));
    std::printf("%-8s %10s %12s %12s %12s  %s\n", "node", "published", "first other", "median", "every node",
                "load avg");
    int count = static_cast<int>(c.nodes().size());
    for (int r = 0; r < o.changes && count > 1; ++r) {
      auto& n = c.node("n" + std::to_string(count - (r % (count - 1))));
      std::uint64_t before = version_seen(n, n.name);
      set_listen_port(n, static_cast<std::uint16_t>(kWireGuardPort + 10 + r));
      std::this_thread::sleep_for(3s);
      std::string load = loadavg();
      c.stop(n);
      auto t0 = Clock::now();
      c.start(n, meshd_bin(), "info");
      std::map<std::string, double> seen;
      while (seen.size() < c.nodes().size() && Clock::now() < t0 + 60s) {
        for (auto& m : c.nodes()) {
          if (seen.count(m.name)) continue;
          if (version_seen(m, n.name) > before) seen[m.name] = ms_since(t0, Clock::now());
        }
        std::this_thread::sleep_for(10ms);
      }
      if (seen.size() < c.nodes().size()) {
        std::printf("%-8s the new version reached %zu of %zu nodes within 60 s\n", n.name.c_str(), seen.size(),
                    c.nodes().size());
        continue;
      }
      std::vector<double> others;
      for (auto& [name, t] : seen)
        if (name != n.name) others.push_back(t);
      std::sort(others.begin(), others.end());
      std::printf("%-8s %10.0f %12.0f %12.0f %12.0f  %s\n", n.name.c_str(), seen[n.name], others.front(),
                  others[others.size() / 2], others.back(), load.c_str());
      std::fflush(stdout);
    }
  }

  if (o.parts.count("idle")) {
    std::this_thread::sleep_for(5s);
    const long tck = ::sysconf(_SC_CLK_TCK);
    std::printf("\n== idle (%s mode): %zu nodes (%zu peers each), %d s quiet, anti-entropy every %d ms, keepalive %d s\n",
                mode_name(ds), c.nodes().size(), c.nodes().size() - 1, o.idle_seconds, o.anti_entropy_ms,
                o.keepalive);
    std::printf("   load avg before: %s\n", loadavg().c_str());
    std::vector<std::pair<pid_t, pid_t>> pids;
    std::vector<std::pair<ProcSample, ProcSample>> start;
    for (auto& n : c.nodes()) {
      pids.push_back({n.pid, wireguard_go_in(*n.ns)});
      start.push_back({sample(n.pid), pids.back().second ? sample(pids.back().second) : ProcSample{}});
    }
    std::vector<ProcSample> etcd_start;
    for (int m = 0; etcd && m < etcd->size(); ++m) etcd_start.push_back(sample(etcd->pid(m)));
    std::this_thread::sleep_for(std::chrono::seconds(o.idle_seconds));
    double rounds = o.idle_seconds * 1000.0 / o.anti_entropy_ms;
    std::printf("%-6s %12s %14s %14s %12s %14s\n", "node", "meshd RSS", "meshd CPU %", "ms CPU/round",
                "wg-go RSS", "wg-go CPU %");
    double sum_rss = 0, sum_cpu = 0, max_rss = 0;
    std::size_t i = 0;
    for (auto& n : c.nodes()) {
      auto a = sample(pids[i].first);
      auto w = pids[i].second ? sample(pids[i].second) : ProcSample{};
      double cpu_ms = (a.ticks - start[i].first.ticks) * 1000.0 / tck;
      double wcpu_ms = (w.ticks - start[i].second.ticks) * 1000.0 / tck;
      std::printf("%-6s %9ld kB %13.2f%% %14.2f %9ld kB %13.2f%%\n", n.name.c_str(), a.rss_kb,
                  cpu_ms / (o.idle_seconds * 10.0), cpu_ms / rounds, w.rss_kb, wcpu_ms / (o.idle_seconds * 10.0));
      sum_rss += a.rss_kb;
      sum_cpu += cpu_ms;
      max_rss = std::max(max_rss, double(a.rss_kb));
      ++i;
    }
    double nn = double(c.nodes().size());
    std::printf("mean   %9.0f kB %13.2f%% %14.2f   (max meshd RSS %.0f kB; CPU from utime+stime, %ld ticks/s)\n",
                sum_rss / nn, sum_cpu / nn / (o.idle_seconds * 10.0), sum_cpu / nn / rounds, max_rss, tck);
    for (int m = 0; etcd && m < etcd->size(); ++m) {
      auto e = sample(etcd->pid(m));
      std::printf("etcd member %d: RSS %ld kB, CPU %.2f%% of a core\n", m, e.rss_kb,
                  (e.ticks - etcd_start[static_cast<std::size_t>(m)].ticks) * 1000.0 / tck / (o.idle_seconds * 10.0));
    }
    std::printf("   load avg after: %s\n", loadavg().c_str());
    print_memory_split(founder.pid, "n1 meshd");
    print_heap_inside(c, founder);
  }
}

// A founder alone, then with `records - 1` crafted members in its table.
void run_records(const Options& o) {
  ClusterNodes c;
  auto& n = c.add_node("big");
  // /8 cluster, /24 nodes: room for 65536 nodes. No keepalive: with it,
  // wireguard-go would be handshaking with 999 endpoints nobody answers.
  tune(n, o, 0, "10.0.0.0/8");
  c.start(n, meshd_bin(), "info");
  need(c.wait_settled(n), "the founder did not settle", c, n);
  std::this_thread::sleep_for(5s);
  const long tck = ::sysconf(_SC_CLK_TCK);
  auto measure = [&](const std::string& what) {
    pid_t wg = wireguard_go_in(*n.ns);
    std::string load = loadavg();
    auto a0 = sample(n.pid), w0 = sample(wg);
    std::this_thread::sleep_for(std::chrono::seconds(o.idle_seconds));
    auto a1 = sample(n.pid), w1 = sample(wg);
    double cpu_ms = (a1.ticks - a0.ticks) * 1000.0 / tck;
    double rounds = o.idle_seconds * 1000.0 / o.anti_entropy_ms;
    std::printf("%s: meshd RSS %ld kB, CPU %.2f%% of a core (%.2f ms per anti-entropy round); "
                "wireguard-go RSS %ld kB, CPU %.2f%%; load avg %s\n",
                what.c_str(), a1.rss_kb, cpu_ms / (o.idle_seconds * 10.0), cpu_ms / rounds, w1.rss_kb,
                (w1.ticks - w0.ticks) * 1000.0 / tck / (o.idle_seconds * 10.0), load.c_str());
    print_memory_split(n.pid, "meshd");
    print_heap_inside(c, n);
    std::fflush(stdout);
  };
  std::printf("\n== records: one founder, %d s quiet, anti-entropy every %d ms, keepalive off\n", o.idle_seconds,
              o.anti_entropy_ms);
  measure("founder alone (1 record)");
  c.stop(n);

  // Crafted members, as the founder would have admitted them.
  std::string cluster_id;
  {
    auto db = ClusterNodes::open_store(n, false);
    auto info = store::ClusterRepo(*db).get();
    if (!info || !*info) throw std::runtime_error("the founder's store has no cluster");
    cluster_id = (*info)->id;
    auto founder_key = ClusterNodes::identity(n);
    std::vector<store::SignedRow> rows;
    std::uint64_t now = now_ms();
    auto t0 = Clock::now();
    for (int i = 0; i < o.records - 1; ++i) {
      auto id = keys::IdentitySecretKey::generate();
      cp::NodeRecord r;
      r.cluster_id = cluster_id;
      char name[32];
      std::snprintf(name, sizeof name, "r%05d", i);
      r.name = name;
      r.wg_public_key = keys::PrivateKey::generate().public_key();
      r.identity = id.public_key();
      r.endpoints.push_back(*Endpoint::parse("198.18." + std::to_string(i / 250) + "." +
                                             std::to_string(i % 250 + 1) + ":51820"));
      // The founder holds 10.0.0.0/24; members from 10.1.0.0/24 up.
      r.pod_cidr = *IpPrefix::parse("10." + std::to_string(1 + i / 256) + "." + std::to_string(i % 256) + ".0/24");
      r.version = now;
      r.admission = cp::admit(founder_key, cluster_id, r.name, r.identity, r.pod_cidr, now);
      auto s = cp::sign_record(r, id);
      store::SignedRow row;
      row.identity = r.identity.bytes();
      row.version = r.version;
      row.body = s.body;
      row.signature = s.signature;
      rows.push_back(std::move(row));
    }
    if (auto put = store::RecordRepo(*db).put(rows); !put)
      throw std::runtime_error("writing the crafted records: " + put.error().message);
    std::printf("crafted and stored %d records in %.0f ms\n", o.records - 1, ms_since(t0, Clock::now()));
  }
  auto t0 = Clock::now();
  c.start(n, meshd_bin(), "info");
  int want = o.records - 1;
  bool up = eventually([&] { return uapi_peer_count(n, c.interface()) >= want; }, 120s, 100ms);
  need(up, "the device did not get " + std::to_string(want) + " peers within 120 s", c, n);
  std::printf("restart -> %d peers on the device: %.0f ms\n", want, ms_since(t0, Clock::now()));
  std::this_thread::sleep_for(5s);
  measure("with " + std::to_string(o.records) + " records");
}

std::set<int> parse_list(const std::string& s) {
  std::set<int> out;
  std::istringstream in(s);
  for (std::string x; std::getline(in, x, ',');) out.insert(std::stoi(x));
  return out;
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
    else if (a == "--highlight") o.highlight = parse_list(value());
    else if (a == "--changes") o.changes = std::stoi(value());
    else if (a == "--idle-seconds") o.idle_seconds = std::stoi(value());
    else if (a == "--records") o.records = std::stoi(value());
    else if (a == "--anti-entropy-ms") o.anti_entropy_ms = std::stoi(value());
    else if (a == "--resync-ms") o.resync_ms = std::stoi(value());
    else if (a == "--keepalive") o.keepalive = std::stoi(value());
    else if (a == "--datastore") {
      std::string d = value();
      if (d == "embedded") o.datastores = {Datastore::kEmbedded};
      else if (d == "etcd") o.datastores = {Datastore::kEtcd};
      else if (d == "both") o.datastores = {Datastore::kEmbedded, Datastore::kEtcd};
      else throw std::runtime_error("--datastore: embedded, etcd or both, not " + d);
    }
    else if (a == "--part") {
      if (!parts_given) o.parts.clear();
      parts_given = true;
      o.parts.insert(value());
    } else {
      std::fprintf(stderr,
                   "usage: bench_cluster [--nodes N] [--highlight 3,5,10] [--changes K] [--idle-seconds S]\n"
                   "       [--records R] [--anti-entropy-ms MS] [--resync-ms MS] [--keepalive S]\n"
                   "       [--part join|change|idle|records]... [--datastore embedded|etcd|both]\n"
                   "  join, change and idle run in each --datastore mode (default both: the default\n"
                   "  mode, then the etcd mode with a 3-member etcd); records in the default mode only\n");
      return 2;
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_cluster: needs root (network namespaces)\n");
    return 1;
  }
  std::time_t t = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::gmtime(&t));
  std::printf("bench_cluster: %s UTC, %ld cores, load avg %s\n", when, ::sysconf(_SC_NPROCESSORS_ONLN),
              loadavg().c_str());
  std::map<Datastore, std::vector<JoinRow>> joins;
  if (o.parts.count("join") || o.parts.count("change") || o.parts.count("idle")) {
    if (std::count(o.datastores.begin(), o.datastores.end(), Datastore::kEtcd) &&
        !EtcdCluster::missing().empty())
      throw std::runtime_error("the etcd mode needs " + EtcdCluster::missing() + " (or --datastore embedded)");
    for (auto ds : o.datastores) run_join_change_idle(o, ds, joins[ds]);
  }
  if (o.parts.count("join") && joins.size() == 2)
    print_side_by_side(joins[Datastore::kEmbedded], joins[Datastore::kEtcd]);
  if (o.parts.count("records")) run_records(o);
  return 0;
}

}  // namespace
}  // namespace meshd::testing

int main(int argc, char** argv) {
  try {
    return meshd::testing::main_(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cluster: %s\n", e.what());
    return 1;
  }
}
