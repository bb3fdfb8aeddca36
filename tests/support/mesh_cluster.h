// A small cluster of real meshd processes, each node in its own network
// namespace on a shared bridge underlay, each with "pods" (veth pairs into
// namespaces of their own). Used by the data-plane integration tests on the
// userspace backend (host) and the kernel backend (vm). Everything it makes
// is removed in the destructor, also when a test fails.
#pragma once

#include "keys/wg_key.h"
#include "store/database.h"
#include "store/local_node.h"
#include "tests/support/api_client.h"
#include "tests/support/capture.h"
#include "tests/support/eventually.h"
#include "tests/support/netns.h"
#include "tests/support/underlay.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace meshd::testing {

struct MeshClusterOptions {
  int nodes = 3;
  int pods_per_node = 1;
  std::string backend = "userspace";  // or "kernel" (vm only)
  unsigned resync_interval_ms = 500;
  std::uint16_t persistent_keepalive = 1;
  // Each node's peers also carry an IPv6 allowed IP (fd77:N::/64), so meshd
  // keeps IPv6 mesh routes too. IPv6 stays off on the underlay and the pods.
  bool ipv6 = true;
  std::string meshd = std::string(MESHD_BIN_DIR) + "/meshd";
};

class MeshCluster {
 public:
  struct Pod {
    std::unique_ptr<Netns> ns;
    std::string address;  // e.g. 10.77.1.5
  };
  struct Node {
    int index = 0;  // 1-based
    std::unique_ptr<Netns> ns;
    std::string dir;         // state: db, config, logs, sockets
    std::string underlay;    // 172.31.77.N
    std::string pod_cidr;    // 10.77.N.0/24
    std::string gateway;     // 10.77.N.1
    std::string pod_prefix6; // fd77:N::/64 (an allowed IP with options.ipv6)
    std::string public_key;  // base64
    std::string private_key; // base64, for tests that check it never leaks
    pid_t meshd_pid = 0;
    std::vector<Pod> pods;
    std::string config_path() const { return dir + "/meshd.toml"; }
    std::string socket_dir() const { return dir + "/wg"; }
    std::string log_path() const { return dir + "/meshd.log"; }
    std::string cni_conf_dir() const { return dir + "/cni"; }
  };

  explicit MeshCluster(MeshClusterOptions o = {}) : o_(std::move(o)) {
    char tmpl[] = "/tmp/meshd-cluster-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    underlay_ = std::make_unique<Underlay>("mu");

    for (int i = 1; i <= o_.nodes; ++i) {
      Node n;
      n.index = i;
      n.ns = std::make_unique<Netns>("mn" + std::to_string(i));
      must(n.ns->run("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1"));
      n.dir = root_ + "/node" + std::to_string(i);
      std::filesystem::create_directories(n.dir + "/wg");
      n.underlay = "172.31.77." + std::to_string(i);
      n.pod_cidr = "10.77." + std::to_string(i) + ".0/24";
      n.gateway = "10.77." + std::to_string(i) + ".1";
      underlay_->attach(*n.ns, "ul" + std::to_string(i), n.underlay + "/24");
      must(n.ns->run("sysctl -qw net.ipv4.ip_forward=1"));

      // Seed the node's key into its store, as a previous meshd run would have.
      {
        store::Database db({n.dir + "/meshd.db"});
        store::LocalNodeRepo local(db);
        auto key = keys::PrivateKey::generate();
        n.public_key = key.public_key().to_base64();
        n.private_key = key.to_base64_secret();
        (void)local.set_wg_private_key(key);
      }
      for (int p = 0; p < o_.pods_per_node; ++p) add_pod(n, 5 + p);
      n.pod_prefix6 = "fd77:" + std::to_string(i) + "::/64";
      // Links made from now on (the WireGuard device) get IPv6; eth0 and the
      // pods' veths, made above, keep it off.
      if (o_.ipv6) must(n.ns->run("sysctl -qw net.ipv6.conf.default.disable_ipv6=0"));
      nodes_.push_back(std::move(n));
    }
    for (auto& n : nodes_) write_config(n);
  }

  ~MeshCluster() {
    for (auto& n : nodes_) stop(n, SIGKILL);
    for (auto& n : nodes_) {
      end_processes_in(*n.ns);
      n.pods.clear();
    }
    nodes_.clear();
    underlay_.reset();
    if (!getenv("MESHD_KEEP_TEST_DIRS")) std::filesystem::remove_all(root_);
  }

  MeshCluster(const MeshCluster&) = delete;
  MeshCluster& operator=(const MeshCluster&) = delete;

  Node& node(int i) { return nodes_.at(static_cast<std::size_t>(i - 1)); }
  std::vector<Node>& nodes() { return nodes_; }
  Netns& underlay() { return underlay_->ns(); }
  const MeshClusterOptions& options() const { return o_; }

  void write_config(Node& n, const std::string& extra_peers = "") {
    std::ostringstream c;
    c << "[node]\nname = \"node" << n.index << "\"\npod_cidr = \"" << n.pod_cidr << "\"\n"
      << "[wireguard]\ninterface = \"meshd0\"\nlisten_port = 51820\nbackend = \"" << o_.backend
      << "\"\npersistent_keepalive = " << o_.persistent_keepalive << "\n"
      << "[userspace]\nsocket_dir = \"" << n.socket_dir() << "\"\n"
      << "[state]\ndatabase = \"" << n.dir << "/meshd.db\"\nruntime_dir = \"" << n.dir << "/run\"\n"
      << "[reconcile]\nresync_interval_ms = " << o_.resync_interval_ms << "\n"
      << "[cni]\nconf_dir = \"" << n.cni_conf_dir() << "\"\n";
    for (auto& m : nodes_) {
      if (m.index == n.index) continue;
      c << "[[peers]]\nname = \"node" << m.index << "\"\npublic_key = \"" << m.public_key
        << "\"\nendpoint = \"" << m.underlay << ":51820\"\nallowed_ips = [\"" << m.pod_cidr << "\""
        << (o_.ipv6 ? ", \"" + m.pod_prefix6 + "\"" : std::string()) << "]\n";
    }
    c << extra_peers;
    std::ofstream(n.config_path(), std::ios::trunc) << c.str();
  }

  // Starts meshd inside the node's namespace; output goes to the node's log.
  void start(Node& n) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      std::string log = n.log_path();
      std::freopen(log.c_str(), "a", stdout);
      std::freopen(log.c_str(), "a", stderr);
      std::string cfg = n.config_path();
      ::execlp("ip", "ip", "netns", "exec", n.ns->name().c_str(), o_.meshd.c_str(), "--config",
               cfg.c_str(), "--log-level", "debug", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    n.meshd_pid = pid;
  }
  void start_all() {
    for (auto& n : nodes_) start(n);
  }

  // Stops meshd (SIGTERM: graceful; SIGKILL: crash) and reaps it.
  void stop(Node& n, int sig = SIGTERM) {
    if (n.meshd_pid <= 0) return;
    ::kill(n.meshd_pid, sig);
    int status = 0;
    ::waitpid(n.meshd_pid, &status, 0);
    n.meshd_pid = 0;
  }

  // The node's status as its API answers GET /v1/status ("" until meshd
  // serves it).
  std::string status(const Node& n) const { return api_get(n.dir + "/run/meshd.sock", "/v1/status"); }

  // `wg` against the node's device: for the userspace backend, inside a
  // private mount namespace where the node's socket dir is /var/run/wireguard.
  std::string wg(const Node& n, const std::string& args) const {
    return n.ns->out(wg_prefix(n) + "wg " + args + "'" + " 2>&1");
  }
  int wg_rc(const Node& n, const std::string& args) const {
    return n.ns->run(wg_prefix(n) + "wg " + args + "' >/dev/null 2>&1");
  }

  // tests/support/eventually.h at the cluster's pace (polled every 50 ms).
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds deadline) {
    return testing::eventually(pred, deadline, std::chrono::milliseconds(50));
  }

  // Every node's meshd reports in_sync with all its peers.
  bool converged(std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    return eventually(
        [&] {
          for (auto& n : nodes_)
            if (status(n).find("\"in_sync\":true") == std::string::npos) return false;
          return true;
        },
        deadline);
  }

  std::string log(const Node& n) const {
    std::ifstream f(n.log_path());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  std::string wg_prefix(const Node& n) const {
    if (o_.backend != "userspace") return "env WG_COLOR_MODE=never sh -c '";
    return "env WG_COLOR_MODE=never unshare -m sh -c 'mount --make-rprivate / && mkdir -p /var/run/wireguard && mount --bind " +
           n.socket_dir() + " /var/run/wireguard && ";
  }

  void add_pod(Node& n, int host) {
    Pod p;
    p.ns = std::make_unique<Netns>("mp" + std::to_string(n.index));
    p.address = "10.77." + std::to_string(n.index) + "." + std::to_string(host);
    std::string hv = "vp" + std::to_string(host);
    must(sh("ip link add " + hv + " netns " + n.ns->name() + " type veth peer name eth0 netns " +
            p.ns->name()));
    must(n.ns->run("ip addr add " + n.gateway + "/32 dev " + hv));
    must(n.ns->run("ip link set " + hv + " up"));
    must(n.ns->run("ip route add " + p.address + "/32 dev " + hv));
    must(p.ns->run("ip addr add " + p.address + "/32 dev eth0"));
    must(p.ns->run("ip link set eth0 up"));
    must(p.ns->run("ip route add " + n.gateway + " dev eth0 scope link"));
    must(p.ns->run("ip route add default via " + n.gateway + " dev eth0"));
    n.pods.push_back(std::move(p));
  }

  MeshClusterOptions o_;
  std::string root_;
  std::unique_ptr<Underlay> underlay_;
  std::vector<Node> nodes_;
};

}  // namespace meshd::testing
