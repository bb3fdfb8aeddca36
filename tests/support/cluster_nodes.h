// Nodes of a meshd cluster as real meshd processes on the userspace backend:
// each node in its own network namespace on a bridge underlay
// (tests/support/underlay.h), configured for cluster mode (a founder without
// [join], joiners with [join] target and token file), with pods made by the
// real CNI plugin from the conflist meshd installs. Everything it makes is
// removed in the destructor, also when a test fails: meshd and wireguard-go
// are ended by PID, the namespaces and the state directory go.
#pragma once

#include "common/ip.h"
#include "common/pod_network.h"
#include "keys/identity.h"
#include "keys/token.h"
#include "store/database.h"
#include "store/local_node.h"
#include "store/records.h"
#include "tests/support/cni_harness.h"
#include "tests/support/eventually.h"
#include "tests/support/mesh_probe.h"
#include "tests/support/netns.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/underlay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace meshd::testing {

using namespace std::chrono_literals;

inline constexpr std::uint16_t kJoinPort = 51821;
inline constexpr std::uint16_t kSyncPort = 51822;
inline constexpr std::uint16_t kWireGuardPort = 51820;

class ClusterNodes {
 public:
  struct Pod {
    std::unique_ptr<Netns> ns;
    std::string address;  // e.g. 10.244.1.2
    std::string container_id;
  };
  struct Node {
    std::string name;
    int index = 0;  // 1-based, in the order of add_node
    std::unique_ptr<Netns> ns;
    std::string dir;          // config, store, logs, sockets, token file
    std::string underlay;     // 172.31.78.N
    std::string join_target;  // "" for the founder, else "<member underlay>:51821"
    pid_t pid = 0;
    std::size_t log_mark = 0;  // size of the log when the running meshd started
    std::vector<Pod> pods;
    // Appended to the config write_config() writes: whole sections
    // ("[liveness]\nsilent_after_s = 3\n"), for the tests that tune them.
    std::string extra_config;
    std::string config_path() const { return dir + "/meshd.toml"; }
    std::string db_path() const { return dir + "/meshd.db"; }
    std::string log_path() const { return dir + "/meshd.log"; }
    std::string api_socket() const { return dir + "/run/meshd.sock"; }
    std::string token_file() const { return dir + "/join-token"; }
    std::string cni_conf_dir() const { return dir + "/net.d"; }
    std::string conflist() const { return cni_conf_dir() + "/05-meshd.conflist"; }
    std::string join_endpoint() const { return underlay + ":" + std::to_string(kJoinPort); }
  };

  explicit ClusterNodes(std::string meshd = std::string(MESHD_BIN_DIR) + "/meshd")
      : meshd_(std::move(meshd)), root_("meshd-cluster"), underlay_(std::make_unique<Underlay>("cu")) {
    // Unique per test run: the interface names the userspace socket.
    interface_ = "mc" + std::to_string(::getpid() % 100000);
  }
  ~ClusterNodes() {
    for (auto& n : nodes_) kill_now(n);
    for (auto& n : nodes_) end_processes_in(*n.ns);
    for (auto& h : hosts_) end_processes_in(*h);
    nodes_.clear();
    hosts_.clear();
    underlay_.reset();
    // For a post-mortem: the nodes' logs, stores and configs outlive the run.
    if (std::getenv("MESHD_KEEP_TEST_DIRS")) {
      std::string kept = root_.path() + "-kept";
      sh("mkdir -p " + kept + " && cd " + root_.path() + " && find . -type f -exec cp --parents {} " + kept +
         " \\;");
      std::fprintf(stderr, "cluster state kept in %s\n", kept.c_str());
    }
  }
  ClusterNodes(const ClusterNodes&) = delete;
  ClusterNodes& operator=(const ClusterNodes&) = delete;

  const std::string& interface() const { return interface_; }
  Netns& underlay() { return underlay_->ns(); }
  std::list<Node>& nodes() { return nodes_; }
  Node& node(const std::string& name) {
    for (auto& n : nodes_)
      if (n.name == name) return n;
    throw std::runtime_error("no node " + name);
  }

  // A node namespace on the underlay with its config written; `through`:
  // the member it joins through (nothing: it founds). Not started.
  Node& add_node(const std::string& name, const Node* through = nullptr) {
    Node n;
    n.name = name;
    n.index = ++attached_;
    n.ns = std::make_unique<Netns>("cn" + std::to_string(n.index));
    must(n.ns->run("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1"));
    n.dir = root_.path() + "/" + name;
    std::filesystem::create_directories(n.dir + "/wg");
    std::filesystem::create_directories(n.dir + "/run");
    n.underlay = underlay_address(n.index);
    underlay_->attach(*n.ns, "cu" + std::to_string(n.index), n.underlay + "/24");
    must(n.ns->run("sysctl -qw net.ipv4.ip_forward=1"));
    // A default route, as a real node has: the founder advertises the
    // address of this route (it has no join target to route towards). Its
    // gateway does not exist: nothing leaves through it but ARP.
    must(n.ns->run("ip route add default via 172.31.78.254 dev eth0"));
    if (through) n.join_target = through->join_endpoint();
    nodes_.push_back(std::move(n));
    write_config(nodes_.back());
    return nodes_.back();
  }

  // A plain host on the underlay (no meshd) with these addresses (the first
  // its primary), for clients the tests drive themselves.
  Netns& add_host(const std::vector<std::string>& addresses) {
    int index = ++attached_;
    auto ns = std::make_unique<Netns>("ch" + std::to_string(index));
    underlay_->attach(*ns, "cu" + std::to_string(index), addresses.at(0) + "/24");
    for (std::size_t i = 1; i < addresses.size(); ++i)
      must(ns->run("ip addr add " + addresses[i] + "/24 dev eth0"));
    hosts_.push_back(std::move(ns));
    return *hosts_.back();
  }
  static std::string underlay_address(int index) { return "172.31.78." + std::to_string(index); }

  void write_config(const Node& n) const {
    std::ostringstream c;
    c << "[node]\nname = \"" << n.name << "\"\n"
      << "[wireguard]\ninterface = \"" << interface_ << "\"\nlisten_port = " << kWireGuardPort
      << "\nbackend = \"userspace\"\npersistent_keepalive = 1\n"
      << "[userspace]\nsocket_dir = \"" << n.dir << "/wg\"\n"
      << "[state]\ndatabase = \"" << n.db_path() << "\"\nruntime_dir = \"" << n.dir << "/run\"\n"
      << "[reconcile]\nresync_interval_ms = 500\n"
      << "[cluster]\ncidr = \"10.244.0.0/16\"\nnode_prefix = 24\njoin_listen = \"" << n.join_endpoint()
      << "\"\nsync_port = " << kSyncPort << "\nanti_entropy_interval_ms = 300\n";
    if (!n.join_target.empty())
      c << "[join]\ntarget = \"" << n.join_target << "\"\ntoken_file = \"" << n.token_file() << "\"\n";
    c << "[cni]\nconf_dir = \"" << n.cni_conf_dir() << "\"\n"
      << "[api]\nsocket = \"" << n.api_socket() << "\"\n"
      << n.extra_config;
    std::ofstream(n.config_path(), std::ios::trunc) << c.str();
  }

  // Cuts the node's underlay link: its bridge port leaves the bridge (in the
  // underlay namespace the test made), so nothing reaches the node or leaves
  // it while its own eth0 stays up with its addresses and routes, as when a
  // switch port or a link further away fails. heal() puts the port back.
  void partition(const Node& n) {
    must(underlay().run("ip link set cu" + std::to_string(n.index) + " nomaster"), "partition " + n.name);
  }
  void heal(const Node& n) {
    must(underlay().run("ip link set cu" + std::to_string(n.index) + " master br0"), "heal " + n.name);
  }

  // The node's WireGuard UAPI socket (the userspace device in its socket_dir).
  std::string uapi_socket(const Node& n) const { return n.dir + "/wg/" + interface_ + ".sock"; }

  // The join token file: `text` plus a newline, mode 0600.
  void write_token(const Node& n, const std::string& text) const {
    write_file(n.token_file(), text + "\n");
    ::chmod(n.token_file().c_str(), 0600);
  }

  // Starts meshd in the node's namespace; its output goes to the node's log.
  // `binary`: another meshd build (meshd-next); `log_level`: info where debug
  // lines would be part of what a benchmark measures.
  void start(Node& n, const std::string& binary = "", const std::string& log_level = "debug") {
    n.log_mark = read_file(n.log_path()).size();
    std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
    SpawnOptions o;
    o.stdout_path = n.log_path();
    o.stderr_path = n.log_path();
    o.stdin_path = "/dev/null";
    // ip netns exec execs meshd in place: the PID is meshd's.
    n.pid = spawn({ip, "netns", "exec", n.ns->name(), binary.empty() ? meshd_ : binary, "--config",
                   n.config_path(), "--log-level", log_level},
                  o);
  }

  // Signals meshd and reaps it: its exit status (128 + signal when killed).
  int stop(Node& n, int sig = SIGTERM) {
    if (n.pid <= 0) return -1;
    ::kill(n.pid, sig);
    int rc = wait_exit(n.pid);
    n.pid = 0;
    return rc;
  }

  // meshd's exit status once it has ended by itself within `bound`, else nothing.
  std::optional<int> exit_status(Node& n, std::chrono::milliseconds bound) {
    std::optional<int> rc;
    eventually(
        [&] {
          if (n.pid <= 0) return true;
          int status = 0;
          if (::waitpid(n.pid, &status, WNOHANG) != n.pid) return false;
          rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          n.pid = 0;
          return true;
        },
        bound, 50ms);
    return rc;
  }

  std::string log(const Node& n) const { return read_file(n.log_path()); }
  // The last `lines` lines of the node's log, for failure messages.
  std::string log_tail(const Node& n, std::size_t lines = 40) const {
    std::string all = log(n);
    std::size_t at = all.size();
    for (std::size_t i = 0; i <= lines && at != std::string::npos && at > 0; ++i) at = all.rfind('\n', at - 1);
    return "[" + n.name + " log, last lines]\n" + (at == std::string::npos ? all : all.substr(at + 1));
  }
  // What the running (or last) meshd of the node wrote.
  std::string log_of_this_run(const Node& n) const {
    std::string all = log(n);
    return n.log_mark <= all.size() ? all.substr(n.log_mark) : all;
  }
  bool wait_log(const Node& n, const std::string& needle, std::chrono::milliseconds bound = 30s) const {
    return eventually([&] { return log_of_this_run(n).find(needle) != std::string::npos; }, bound, 50ms);
  }
  // The line of this run's log that holds `needle` ("" if none).
  std::string log_line(const Node& n, const std::string& needle) const {
    std::istringstream in(log_of_this_run(n));
    for (std::string line; std::getline(in, line);)
      if (line.find(needle) != std::string::npos) return line;
    return "";
  }

  // The node's store, opened read-only (meshd keeps it open).
  static std::unique_ptr<store::Database> open_store(const Node& n, bool read_only = true) {
    return std::make_unique<store::Database>(
        store::DatabaseOptions{.path = n.db_path(), .read_only = read_only, .migrate = !read_only});
  }
  static std::optional<store::LocalNode> local_node(const Node& n) {
    try {
      auto db = open_store(n);
      auto l = store::LocalNodeRepo(*db).get();
      if (!l) return std::nullopt;
      return *l;
    } catch (const std::exception&) {
      return std::nullopt;  // not created yet
    }
  }
  // The pod CIDR once it is settled (allocated and confirmed), else nothing.
  static std::optional<IpPrefix> settled_cidr(const Node& n) {
    auto l = local_node(n);
    if (!l || !l->pod_cidr || !l->pod_cidr_settled) return std::nullopt;
    return l->pod_cidr;
  }
  bool wait_settled(const Node& n, std::chrono::milliseconds bound = 30s) const {
    return eventually([&] { return settled_cidr(n).has_value(); }, bound, 100ms);
  }
  // The node's mesh address: the first host of its pod CIDR ("" before it has one).
  static std::string mesh_address(const Node& n) {
    auto l = local_node(n);
    if (!l || !l->pod_cidr) return "";
    auto gw = pod_gateway(*l->pod_cidr);
    return gw ? gw->to_string() : "";
  }
  // The WireGuard public key the node's store holds ("" when none).
  static std::string wg_public_key(const Node& n) {
    auto db = open_store(n);
    auto key = store::LocalNodeRepo(*db).wg_private_key().value();
    return key ? key->public_key().to_base64() : "";
  }
  // The key `at`'s device holds for the peer that routes `cidr` ("" when none).
  std::string peer_key_for(const Node& at, const IpPrefix& cidr) const {
    auto peers = wg_peers(uapi_socket(at));
    if (!peers) return "";
    for (const auto& p : *peers)
      if (std::find(p.allowed_ips.begin(), p.allowed_ips.end(), cidr.to_string()) != p.allowed_ips.end())
        return p.public_key;
    return "";
  }
  static keys::IdentitySecretKey identity(const Node& n) {
    auto db = open_store(n);
    auto k = store::LocalNodeRepo(*db).identity_key();
    if (!k || !*k) throw std::runtime_error(n.name + " has no identity key in its store");
    return std::move(**k);
  }

  // A bootstrap token redeemable at `member`: "id.secret", made as an
  // operator makes it (`meshctl token create` through the member's API).
  static std::string create_token(const Node& member, std::optional<std::int64_t> uses = 1,
                                  std::int64_t ttl_seconds = 3600) {
    std::vector<std::string> argv{meshctl_path(), "--socket", member.api_socket(), "--json", "token", "create",
                                  "--ttl", std::to_string(ttl_seconds), "--description", "cluster test"};
    if (uses) {
      argv.push_back("--uses");
      argv.push_back(std::to_string(*uses));
    }
    auto r = run_process(argv, "");
    if (r.exit_code != 0)
      throw std::runtime_error("meshctl token create at " + member.name + ": " + r.out + r.err);
    boost::system::error_code ec;
    auto v = boost::json::parse(r.out, ec);
    if (ec || !v.is_object() || !v.as_object().contains("token"))
      throw std::runtime_error("meshctl token create at " + member.name + " printed no token");
    return std::string(v.as_object().at("token").as_string().c_str());
  }
  static void revoke_token(const Node& member, const std::string& id) {
    auto r = run_process({meshctl_path(), "--socket", member.api_socket(), "token", "revoke", id}, "");
    if (r.exit_code != 0)
      throw std::runtime_error("meshctl token revoke at " + member.name + ": " + r.out + r.err);
  }
  static std::string meshctl_path() { return std::string(MESHD_BIN_DIR) + "/meshctl"; }

  // A pod made by the real CNI plugin from the conflist meshd installed on
  // `n` (ADD as a runtime runs the chain's first plugin). Throws when it
  // cannot be made.
  Pod& add_pod(Node& n) {
    if (!eventually([&] { return sh("test -s " + n.conflist()) == 0; }, 20s, 50ms))
      throw std::runtime_error("meshd did not install " + n.conflist());
    Pod p;
    p.ns = std::make_unique<Netns>("cp" + std::to_string(n.index));
    p.container_id = n.name + "-pod-" + std::to_string(n.pods.size());
    auto add = run_in_node(n.ns->name(), plugin_path(),
                           {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", p.container_id},
                            {"CNI_NETNS", p.ns->path()}, {"CNI_IFNAME", "eth0"}, {"CNI_PATH", "/opt/cni/bin"}},
                           plugin_config_from_conflist(n.conflist()));
    if (add.exit_code != 0) throw std::runtime_error("CNI ADD on " + n.name + ": " + add.out);
    std::string addr(add.json().at("ips").as_array().at(0).as_object().at("address").as_string().c_str());
    p.address = addr.substr(0, addr.find('/'));
    n.pods.push_back(std::move(p));
    return n.pods.back();
  }

  // One ping from `from` to `address` gets an answer, within `bound` of tries.
  static bool reaches(const Netns& from, const std::string& address, std::chrono::milliseconds bound = 15s) {
    return eventually([&] { return from.run("ping -c 1 -W 1 " + address + " >/dev/null 2>&1") == 0; },
                      bound, 100ms);
  }

 private:
  void kill_now(Node& n) {
    if (n.pid <= 0) return;
    ::kill(n.pid, SIGKILL);
    ::waitpid(n.pid, nullptr, 0);
    n.pid = 0;
  }

  std::string meshd_;
  std::string interface_;
  TempDir root_;
  std::unique_ptr<Underlay> underlay_;
  std::list<Node> nodes_;  // a list: Node& stays valid as nodes are added
  std::vector<std::unique_ptr<Netns>> hosts_;
  int attached_ = 0;
};

// Runs `f` in a child process inside `ns` and returns its exit status (the
// child's socket then lives in that namespace). `f` must make only plain
// system calls: the child of a test process.
inline int run_in_child(const Netns& ns, const std::function<int()>& f) {
  int fd = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + ns.path());
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(30);  // never outlive a broken test
    if (::setns(fd, CLONE_NEWNET) != 0) ::_exit(100);
    ::_exit(f());
  }
  ::close(fd);
  if (pid < 0) throw std::runtime_error("fork failed");
  return wait_exit(pid);
}

enum SendOutcome { kSent = 0, kConnectFailed = 1, kWriteFailed = 2, kSocketFailed = 3 };

// From inside `ns` (source address `source` when not empty): connects to
// address:port, writes `bytes`, half-closes, and waits up to 3 s for the
// other side to close. A SendOutcome.
inline int send_tcp(const Netns& ns, const std::string& source, const std::string& address,
                    std::uint16_t port, const std::vector<std::uint8_t>& bytes) {
  return run_in_child(ns, [&] {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return int(kSocketFailed);
    timeval tv{3, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (!source.empty()) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      ::inet_pton(AF_INET, source.c_str(), &src.sin_addr);
      if (::bind(s, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) return int(kSocketFailed);
    }
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(port);
    ::inet_pton(AF_INET, address.c_str(), &dst.sin_addr);
    if (::connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) return int(kConnectFailed);
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t w = ::send(s, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return int(kWriteFailed);
      off += static_cast<std::size_t>(w);
    }
    ::shutdown(s, SHUT_WR);
    char b[256];
    while (::recv(s, b, sizeof b, 0) > 0) {
    }
    ::close(s);
    return int(kSent);
  });
}

}  // namespace meshd::testing
