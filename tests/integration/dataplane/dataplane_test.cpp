// A 3-node mesh of real meshd processes, configured from static peer lists:
// pods on different nodes reach each other through WireGuard, without NAT,
// the underlay carries only WireGuard UDP, drift is repaired, IPv6 mesh
// routes stay put, a foreign route in a mesh route's slot is reported, SIGHUP
// applies what it can, and traffic keeps flowing through a meshd restart and
// a kill -9.
#include "tests/support/mesh_cluster.h"

#include <gtest/gtest.h>

#include "store/database.h"
#include "store/local_node.h"
#include "tests/support/prerequisite.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <filesystem>


#ifndef MESHD_TEST_BACKEND
#define MESHD_TEST_BACKEND "userspace"
#endif

namespace meshd::testing {
namespace {

using namespace std::chrono_literals;

// Every 8-character piece of `secret` found in `text`.
std::vector<std::string> pieces_in(const std::string& secret, const std::string& text) {
  std::vector<std::string> found;
  for (std::size_t i = 0; i + 8 <= secret.size(); ++i)
    if (text.find(secret.substr(i, 8)) != std::string::npos) found.push_back(secret.substr(i, 8));
  return found;
}

// Replaces the first `from` in `s` (which must be there) with `to`.
std::string with(std::string s, const std::string& from, const std::string& to) {
  auto at = s.find(from);
  if (at == std::string::npos) throw std::runtime_error("\"" + from + "\" not in the config");
  return s.replace(at, from.size(), to);
}

class Dataplane : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MeshClusterOptions o;
    o.backend = MESHD_TEST_BACKEND;
    cluster_ = std::make_unique<MeshCluster>(o);
  }
  void TearDown() override {
    if (HasFailure() && cluster_)
      for (auto& n : cluster_->nodes())
        std::cerr << "---- node" << n.index << " log ----\n" << cluster_->log(n) << "\n";
    cluster_.reset();
  }

  // One ping from a pod to an address; true if answered.
  bool ping(const MeshCluster::Pod& from, const std::string& to) {
    return from.ns->run("ping -c 1 -W 1 " + to + " >/dev/null 2>&1") == 0;
  }
  bool reachable(const MeshCluster::Pod& from, const std::string& to) {
    return MeshCluster::eventually([&] { return ping(from, to); }, 15s);
  }
  void start_and_converge() {
    cluster_->start_all();
    ASSERT_TRUE(cluster_->converged()) << "meshd did not report in_sync on every node";
  }

  std::string read_config(const MeshCluster::Node& n) {
    std::ifstream f(n.config_path());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  std::unique_ptr<MeshCluster> cluster_;
};

TEST_F(Dataplane, PodsOnEveryNodeReachEachOther) {
  start_and_converge();
  auto& c = *cluster_;
  for (auto& a : c.nodes()) {
    for (auto& b : c.nodes()) {
      if (a.index == b.index) continue;
      EXPECT_TRUE(reachable(a.pods[0], b.pods[0].address))
          << "pod on node" << a.index << " cannot reach pod on node" << b.index;
    }
  }
  // The node itself reaches remote pods (its source is its pod-CIDR gateway).
  EXPECT_EQ(c.node(1).ns->run("ping -c 1 -W 2 " + c.node(3).pods[0].address + " >/dev/null"), 0);
}

TEST_F(Dataplane, ReceiverSeesTheSenderPodsOwnAddress) {
  start_and_converge();
  auto& c = *cluster_;
  auto& src = c.node(1).pods[0];
  auto& dst = c.node(2).pods[0];
  ASSERT_TRUE(reachable(src, dst.address));
  // Capture in the receiving pod while the sender pings it.
  Capture cap(*dst.ns, "eth0", "icmp");
  src.ns->run("ping -c 3 -i 0.2 -W 2 " + dst.address + " >/dev/null 2>&1");
  cap.stop();
  std::string seen = cap.read();
  EXPECT_NE(seen.find(src.address + " > " + dst.address + ": ICMP echo request"), std::string::npos)
      << seen;
  EXPECT_EQ(seen.find("172.31.77."), std::string::npos) << "underlay address leaked: " << seen;
}

TEST_F(Dataplane, UnderlayCarriesOnlyWireGuardUdp) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  ASSERT_TRUE(reachable(n1.pods[0], c.node(2).pods[0].address));
  Capture cap(*n1.ns, "eth0");
  n1.pods[0].ns->run("ping -c 10 -i 0.1 -W 2 " + c.node(2).pods[0].address + " >/dev/null 2>&1");
  n1.pods[0].ns->run("ping -c 10 -i 0.1 -W 2 " + c.node(3).pods[0].address + " >/dev/null 2>&1");
  cap.stop();
  std::string wg = cap.read("udp port 51820");
  std::string other = cap.read("not (udp port 51820) and not arp");
  auto lines = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };
  EXPECT_GE(lines(wg), 40) << "expected the pings as WireGuard UDP on the underlay";
  EXPECT_EQ(lines(other), 0) << "non-WireGuard traffic on the underlay:\n" << other;
  EXPECT_EQ(wg.find("ICMP"), std::string::npos);
}

TEST_F(Dataplane, WgShowAndStatusDescribeTheDevice) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  std::string dump = c.wg(n1, "show meshd0 dump");
  // First line: the device (private key, public key, port, fwmark); then one per peer.
  EXPECT_NE(dump.find(n1.public_key), std::string::npos) << dump;
  for (int i : {2, 3}) {
    auto& m = c.node(i);
    std::string peer_start = m.public_key + "\t(none)\t" + m.underlay + ":51820\t";
    auto at = dump.find(peer_start);
    ASSERT_NE(at, std::string::npos) << "peer node" << i << " missing from\n" << dump;
    std::string line = dump.substr(at, dump.find('\n', at) - at);
    EXPECT_NE(line.find(m.pod_cidr), std::string::npos) << line;
    EXPECT_NE(line.find(m.pod_prefix6), std::string::npos) << line;
  }
  std::string st = c.status(n1);
  EXPECT_NE(st.find(std::string("\"backend\":\"") + MESHD_TEST_BACKEND + "\""), std::string::npos) << st;
  EXPECT_NE(st.find("\"peers\":2"), std::string::npos) << st;
  // MTU derived from the underlay: 1500 - 60 (IPv4 endpoints).
  EXPECT_NE(n1.ns->out("ip -o link show meshd0").find("mtu 1440"), std::string::npos);
  EXPECT_NE(st.find("\"mtu\":1440"), std::string::npos) << st;
  // meshctl status shows the same for a person, and exits 0 when in sync.
  std::string meshctl = std::string(MESHD_BIN_DIR) + "/meshctl status --runtime-dir " + n1.dir + "/run";
  std::string shown = sh_out(meshctl);
  EXPECT_NE(shown.find(std::string("backend:    ") + MESHD_TEST_BACKEND), std::string::npos) << shown;
  EXPECT_NE(shown.find("in sync:    yes"), std::string::npos) << shown;
  EXPECT_NE(shown.find("peers:      2"), std::string::npos) << shown;
  EXPECT_EQ(sh(meshctl + " >/dev/null"), 0);
  EXPECT_EQ(sh(std::string(MESHD_BIN_DIR) + "/meshctl status --runtime-dir /nonexistent 2>/dev/null"), 1);
  // The node's pod-CIDR gateway address is on the device; routes carry our protocol.
  EXPECT_NE(n1.ns->out("ip -o addr show dev meshd0").find(n1.gateway + "/32"), std::string::npos);
  std::string routes = n1.ns->out("ip route show proto 77");
  EXPECT_NE(routes.find("10.77.2.0/24 dev meshd0"), std::string::npos) << routes;
  EXPECT_NE(routes.find("src " + n1.gateway), std::string::npos) << routes;
  std::string routes6 = n1.ns->out("ip -6 route show proto 77");
  EXPECT_NE(routes6.find(c.node(2).pod_prefix6 + " dev meshd0"), std::string::npos) << routes6;

  // Every descriptor meshd holds beyond stdio is close-on-exec (the rtnetlink
  // event socket Asio watches included), so no program it starts inherits
  // one: /proc/PID/fdinfo/N shows the open flags in octal; O_CLOEXEC is 02000000.
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(n1.meshd_pid) + "/fdinfo")) {
    int fd = std::stoi(e.path().filename().string());
    if (fd <= 2) continue;
    std::ifstream info(e.path());
    std::string line, flags;
    while (std::getline(info, line))
      if (line.rfind("flags:", 0) == 0) flags = line.substr(6);
    if (flags.empty()) continue;  // closed meanwhile (a short-lived socket)
    std::error_code ec, ec2;
    auto target = std::filesystem::read_symlink(
        "/proc/" + std::to_string(n1.meshd_pid) + "/fd/" + std::to_string(fd), ec);
    // Inherited from whoever runs this test (meshd did not open it): not ours to judge.
    if (!ec && std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec2) == target && !ec2)
      continue;
    unsigned long bits = std::stoul(flags, nullptr, 8);
    EXPECT_NE(bits & 02000000UL, 0UL) << "meshd's fd " << fd << " (" << target << ") is not close-on-exec";
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST_F(Dataplane, DriftIsRepairedWithinTwoSeconds) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  auto& n2 = c.node(2);

  // A peer removed by hand comes back (meshd may already have restored it by
  // the time we look; its log says it did).
  auto restores = [&] {
    std::string log = c.log(n1);
    std::string needle = "add peer " + n2.public_key.substr(0, 8);
    std::size_t count = 0;
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++count;
    return count;
  };
  std::size_t before = restores();
  ASSERT_EQ(c.wg_rc(n1, "set meshd0 peer " + n2.public_key + " remove"), 0);
  EXPECT_TRUE(MeshCluster::eventually([&] { return restores() > before; }, 2s))
      << "meshd did not re-add the removed peer within 2 s";
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return c.wg(n1, "show meshd0 peers").find(n2.public_key) != std::string::npos; }, 2s))
      << "removed peer not restored within 2 s";

  // A route deleted by hand comes back.
  ASSERT_EQ(n1.ns->run("ip route del " + n2.pod_cidr), 0);
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return n1.ns->out("ip route show " + n2.pod_cidr).find("meshd0") != std::string::npos; }, 2s))
      << "deleted route not restored within 2 s";

  // A bounced link (which drops every route through it) is repaired.
  ASSERT_EQ(n1.ns->run("ip link set meshd0 down"), 0);
  ASSERT_EQ(n1.ns->run("ip link set meshd0 up"), 0);
  EXPECT_TRUE(MeshCluster::eventually(
      [&] {
        std::string r = n1.ns->out("ip route show proto 77");
        return r.find(n2.pod_cidr) != std::string::npos && r.find(c.node(3).pod_cidr) != std::string::npos;
      },
      2s))
      << "routes not restored within 2 s of a link bounce";
  EXPECT_TRUE(reachable(n1.pods[0], n2.pods[0].address));

  // Someone else's route is never touched.
  ASSERT_EQ(n1.ns->run("ip route add 10.123.0.0/16 dev meshd0 proto static"), 0);
  std::this_thread::sleep_for(1500ms);
  EXPECT_NE(n1.ns->out("ip route show 10.123.0.0/16").find("meshd0"), std::string::npos);
}

// Under a service manager ($NOTIFY_SOCKET, $WATCHDOG_USEC: sd_notify(3))
// meshd says READY=1 once in sync, with a STATUS= line, and then pings the
// watchdog.
TEST_F(Dataplane, TellsTheServiceManagerItIsReadyAndAlive) {
  std::string path = "/tmp/meshd-notify-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  ::setenv("WATCHDOG_USEC", "400000", 1);
  cluster_->start_all();
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  std::string got;
  EXPECT_TRUE(MeshCluster::eventually(
      [&] {
        char buf[512];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0;) got += std::string(buf, n) + "|";
        // READY=1 comes with the status line of the pass that made the
        // node ready (docs/systemd.md): in sync, and with how many peers.
        return got.find("READY=1\nSTATUS=mesh in sync: ") != std::string::npos &&
               got.find("WATCHDOG=1|") != std::string::npos;
      },
      20s))
      << got;
  ::close(fd);
  ::unlink(path.c_str());
}

// The mesh MTU is derived from the underlay (no mtu in the config): when the
// underlay's MTU changes, the device follows, and so does the status.
TEST_F(Dataplane, MeshMtuFollowsTheUnderlay) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  ASSERT_NE(n1.ns->out("ip -o link show meshd0").find(" mtu 1440 "), std::string::npos)
      << n1.ns->out("ip -o link show meshd0");
  // A pod's veth and host route (what the CNI plugin makes) change nothing.
  ASSERT_EQ(n1.ns->run("ip link add mtutest0 mtu 1300 type veth peer name mtutest1"), 0);
  ASSERT_EQ(n1.ns->run("ip link set mtutest0 up"), 0);
  ASSERT_EQ(n1.ns->run("ip link set mtutest1 up"), 0);
  ASSERT_EQ(n1.ns->run("ip route add 10.77.1.200/32 dev mtutest0 proto 78"), 0);
  ASSERT_EQ(n1.ns->run("ip link set eth0 mtu 1400"), 0);
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return n1.ns->out("ip -o link show meshd0").find(" mtu 1340 ") != std::string::npos; }, 2s))
      << n1.ns->out("ip -o link show meshd0");
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return c.status(n1).find("\"mtu\":1340") != std::string::npos; }, 2s))
      << c.status(n1);
  EXPECT_NE(c.log(n1).find("underlay changed: mtu 1340"), std::string::npos) << c.log(n1);
}

TEST_F(Dataplane, InvalidPeerIsRejectedByNameAndTheRestStillApplies) {
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  // Key texts that must never be echoed: garbage, a wg-quick line pasted
  // whole, this node's own private key.
  const std::string other_private = keys::PrivateKey::generate().to_base64_secret();
  const std::vector<std::pair<std::string, std::string>> bad_keys = {
      {"broken-laptop", "not-a-key-Zq9xWvT3garbage"},
      {"pasted-line", "PrivateKey = " + other_private},
      {"own-private", n1.private_key},
  };
  std::string extra;
  int host = 2;
  for (const auto& [name, key] : bad_keys)
    extra += "[[peers]]\nname = \"" + name + "\"\npublic_key = \"" + key +
             "\"\nallowed_ips = [\"10.99.0." + std::to_string(host++) + "/32\"]\n";
  extra += "[[peers]]\nname = \"bad-endpoint\"\npublic_key = \"" +
           keys::PrivateKey::generate().public_key().to_base64() +
           "\"\nendpoint = \"nowhere\"\nallowed_ips = [\"10.99.0.9/32\"]\n";
  c.write_config(n1, extra);
  start_and_converge();
  std::string st = c.status(n1);
  for (const auto& [name, key] : bad_keys) {
    EXPECT_NE(st.find(name), std::string::npos) << st;
    EXPECT_NE(c.log(n1).find("peer " + name + " rejected: public_key"), std::string::npos) << name;
    EXPECT_EQ(pieces_in(key, st), std::vector<std::string>{}) << name << " echoed in the status:\n" << st;
    EXPECT_EQ(pieces_in(key, c.log(n1)), std::vector<std::string>{}) << name << " echoed in the log";
  }
  EXPECT_NE(st.find("bad-endpoint"), std::string::npos) << st;
  EXPECT_NE(st.find("\"peers\":2"), std::string::npos) << st;
  EXPECT_TRUE(reachable(n1.pods[0], c.node(2).pods[0].address));
}

// The kernel stores an IPv6 route with metric 1024 and universe scope: once
// converged, passes every 500 ms must leave the mesh routes alone.
TEST_F(Dataplane, Ipv6MeshRoutesStayPutOnceConverged) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  std::string routes6 = n1.ns->out("ip -6 route show proto 77");
  for (int i : {2, 3})
    ASSERT_NE(routes6.find(c.node(i).pod_prefix6 + " dev meshd0"), std::string::npos) << routes6;
  // Six passes or more while watching the routing table.
  std::string changes = n1.ns->out("timeout 3.5 ip monitor route 2>&1");
  std::string ours;
  std::istringstream lines(changes);
  for (std::string l; std::getline(lines, l);)
    if (l.find("meshd0") != std::string::npos) ours += l + "\n";
  EXPECT_EQ(ours, "") << "mesh routes changed after convergence";
  EXPECT_NE(c.status(n1).find("\"in_sync\":true"), std::string::npos) << c.status(n1);
}

// Someone else's route in the slot of a mesh route is left alone and
// reported: the status is out of sync and names the route and its owner.
TEST_F(Dataplane, ForeignRouteInAMeshRouteSlotIsReportedOutOfSync) {
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  auto& n2 = c.node(2);
  ASSERT_EQ(n1.ns->run("ip route add " + n2.pod_cidr + " dev eth0 proto static"), 0);
  c.start_all();
  std::string meshctl = std::string(MESHD_BIN_DIR) + "/meshctl status --runtime-dir " + n1.dir + "/run";
  EXPECT_TRUE(MeshCluster::eventually(
      [&] {
        std::string st = c.status(n1);
        return st.find("\"in_sync\":false") != std::string::npos &&
               st.find("route " + n2.pod_cidr + " dev meshd0 not installed") != std::string::npos;
      },
      20s))
      << c.status(n1);
  std::string st = c.status(n1);
  EXPECT_NE(st.find("protocol static (4)"), std::string::npos) << st;
  EXPECT_NE(st.find(n2.pod_cidr + " dev eth0"), std::string::npos) << st;
  EXPECT_EQ(sh(meshctl + " >/dev/null"), 3);
  // Left alone all along.
  EXPECT_NE(n1.ns->out("ip route show " + n2.pod_cidr).find("dev eth0 proto static"), std::string::npos);
  // Once its owner removes it, the mesh route takes the slot.
  ASSERT_EQ(n1.ns->run("ip route del " + n2.pod_cidr + " dev eth0 proto static"), 0);
  EXPECT_TRUE(c.converged());
  EXPECT_NE(n1.ns->out("ip route show " + n2.pod_cidr).find("dev meshd0 proto 77"), std::string::npos);
  EXPECT_EQ(sh(meshctl + " >/dev/null"), 0);
  // The events log has the failure once and the recovery, in that order.
  std::string events = api_get(n1.dir + "/run/meshd.sock", "/v1/events");
  auto failed = events.find("\"kind\":\"reconcile-error\"");
  auto recovered = events.find("\"kind\":\"reconcile-recovered\"");
  ASSERT_NE(failed, std::string::npos) << events;
  auto message = events.find("not installed");
  ASSERT_NE(message, std::string::npos) << events;
  EXPECT_EQ(events.find("not installed", message + 1), std::string::npos)
      << "the same failure logged at every retry: " << events;
  ASSERT_NE(recovered, std::string::npos) << events;
  EXPECT_LT(failed, recovered) << events;
}

// SIGHUP applies what a running meshd can apply fully and refuses the rest by
// key, keeping the running value.
TEST_F(Dataplane, ReloadAppliesWhatItCanAndNamesWhatNeedsARestart) {
  start_and_converge();
  auto& c = *cluster_;
  auto& n1 = c.node(1);
  std::string cfg = read_config(n1);
  cfg = with(cfg, "pod_cidr = \"10.77.1.0/24\"", "pod_cidr = \"10.77.101.0/24\"");
  cfg = with(cfg, "interface = \"meshd0\"", "interface = \"meshd9\"\nmtu = 1300");
  cfg = with(cfg, "backend = \"" + c.options().backend + "\"",
             std::string("backend = \"") + (c.options().backend == "kernel" ? "userspace" : "kernel") + "\"");
  cfg = with(cfg, "[userspace]\n", "[userspace]\nbinary = \"/nonexistent/wg-impl\"\n");
  cfg = with(cfg, "socket_dir = \"" + n1.socket_dir() + "\"", "socket_dir = \"" + n1.dir + "/wg2\"");
  cfg = with(cfg, "meshd.db\"", "other.db\"");
  cfg = with(cfg, "runtime_dir = \"" + n1.dir + "/run\"", "runtime_dir = \"" + n1.dir + "/run2\"");
  cfg = with(cfg, "[cni]\n", "[cni]\nnetwork = \"meshd2\"\n");
  cfg = with(cfg, "name = \"node1\"", "name = \"node1-renamed\"");
  cfg = with(cfg, "persistent_keepalive = " + std::to_string(c.options().persistent_keepalive),
             "persistent_keepalive = 7");
  ASSERT_TRUE(std::filesystem::exists(n1.cni_conf_dir() + "/05-meshd.conflist"));
  cfg += "[[peers]]\nname = \"laptop\"\npublic_key = \"" +
         keys::PrivateKey::generate().public_key().to_base64() + "\"\nallowed_ips = [\"10.99.0.7/32\"]\n";
  std::ofstream(n1.config_path(), std::ios::trunc) << cfg;
  ASSERT_EQ(::kill(n1.meshd_pid, SIGHUP), 0);
  ASSERT_TRUE(MeshCluster::eventually(
      [&] { return c.log(n1).find("configuration reloaded") != std::string::npos; }, 10s))
      << c.log(n1);

  // Refused, by key, each on a line that says so.
  std::string log = c.log(n1);
  for (const char* key : {"wireguard.interface", "wireguard.backend", "userspace.binary",
                          "userspace.socket_dir", "state.database", "state.runtime_dir"}) {
    auto at = log.find(std::string("reload: ") + key + " changed");
    ASSERT_NE(at, std::string::npos) << key << " not named in\n" << log;
    std::string line = log.substr(at, log.find('\n', at) - at);
    EXPECT_NE(line.find("needs a restart"), std::string::npos) << line;
  }
  EXPECT_FALSE(std::filesystem::exists(n1.dir + "/other.db"));
  EXPECT_FALSE(std::filesystem::exists(n1.dir + "/run2"));
  EXPECT_NE(n1.ns->run("ip link show meshd9 >/dev/null 2>&1"), 0) << "meshd9 made";

  // Applied, fully: the pod CIDR reaches the store the CNI plugin leases
  // from, the gateway address and the routes' source; the MTU and the new
  // peer reach the device; the status (in the running runtime dir) says so.
  EXPECT_TRUE(MeshCluster::eventually(
      [&] {
        std::string st = c.status(n1);
        return st.find("\"pod_cidr\":\"10.77.101.0/24\"") != std::string::npos &&
               st.find("\"in_sync\":true") != std::string::npos && st.find("\"peers\":3") != std::string::npos;
      },
      10s))
      << c.status(n1);
  {
    store::Database db({n1.dir + "/meshd.db"});
    auto node = store::LocalNodeRepo(db).get();
    ASSERT_TRUE(node) << node.error().message;
    ASSERT_TRUE(node->pod_cidr);
    EXPECT_EQ(node->pod_cidr->to_string(), "10.77.101.0/24");
    EXPECT_TRUE(node->pod_cidr_settled);
    EXPECT_EQ(node->mtu, 1300u);
    EXPECT_EQ(node->name, "node1-renamed");
  }
  EXPECT_NE(c.wg(n1, "show meshd0 persistent-keepalive").find(c.node(2).public_key + "\t7"), std::string::npos)
      << c.wg(n1, "show meshd0 persistent-keepalive");
  std::string addrs = n1.ns->out("ip -o addr show dev meshd0");
  EXPECT_NE(addrs.find("10.77.101.1/32"), std::string::npos) << addrs;
  EXPECT_EQ(addrs.find("10.77.1.1/32"), std::string::npos) << addrs;
  EXPECT_NE(n1.ns->out("ip route show proto 77").find("src 10.77.101.1"), std::string::npos);
  EXPECT_NE(n1.ns->out("ip -o link show meshd0").find("mtu 1300"), std::string::npos);
  EXPECT_NE(c.wg(n1, "show meshd0 allowed-ips").find("10.99.0.7/32"), std::string::npos);
  // The conflist moves to the new network name; the old one is gone.
  EXPECT_TRUE(std::filesystem::exists(n1.cni_conf_dir() + "/05-meshd2.conflist"));
  EXPECT_FALSE(std::filesystem::exists(n1.cni_conf_dir() + "/05-meshd.conflist"));
  EXPECT_EQ(c.log(n1).find("reload failed"), std::string::npos);

  // A pod CIDR is not given up by a reload: it stays, and the log says so.
  cfg = with(cfg, "pod_cidr = \"10.77.101.0/24\"\n", "");
  std::ofstream(n1.config_path(), std::ios::trunc) << cfg;
  ASSERT_EQ(::kill(n1.meshd_pid, SIGHUP), 0);
  ASSERT_TRUE(MeshCluster::eventually(
      [&] { return c.log(n1).find("reload: node.pod_cidr removed") != std::string::npos; }, 10s))
      << c.log(n1);
  std::this_thread::sleep_for(1s);
  EXPECT_NE(c.status(n1).find("\"pod_cidr\":\"10.77.101.0/24\""), std::string::npos) << c.status(n1);
  EXPECT_NE(n1.ns->out("ip -o addr show dev meshd0").find("10.77.101.1/32"), std::string::npos);

  // A file that does not parse changes nothing at all.
  std::ofstream(n1.config_path(), std::ios::trunc) << "[wireguard]\nmtu = \"big\"\n";
  ASSERT_EQ(::kill(n1.meshd_pid, SIGHUP), 0);
  ASSERT_TRUE(MeshCluster::eventually(
      [&] { return c.log(n1).find("reload failed, keeping the running configuration") != std::string::npos; },
      10s))
      << c.log(n1);
  EXPECT_NE(c.log(n1).find("wireguard.mtu: expected an integer"), std::string::npos);
  std::this_thread::sleep_for(1s);
  EXPECT_NE(n1.ns->out("ip -o link show meshd0").find("mtu 1300"), std::string::npos);
  EXPECT_NE(c.status(n1).find("\"peers\":3"), std::string::npos) << c.status(n1);
  EXPECT_NE(c.status(n1).find("\"in_sync\":true"), std::string::npos) << c.status(n1);
}

TEST_F(Dataplane, NoPacketLostThroughRestartAndKill9) {
  start_and_converge();
  auto& c = *cluster_;
  auto& src = c.node(1).pods[0];
  auto& dst = c.node(2).pods[0];
  ASSERT_TRUE(reachable(src, dst.address));
  std::this_thread::sleep_for(1500ms);  // let every handshake settle

  // What a restarted meshd must adopt rather than recreate: the device (same
  // ifindex) and, on the userspace backend, the implementation serving it
  // (same PID: the only process in the node's namespace besides meshd).
  auto device_index = [&](MeshCluster::Node& n) {
    return n.ns->out("ip -o link show meshd0 | cut -d: -f1");
  };
  auto implementation_pids = [&](MeshCluster::Node& n) {
    std::string pids;
    std::istringstream in(sh_out("ip netns pids " + n.ns->name()));
    for (std::string pid; in >> pid;)
      if (pid != std::to_string(n.meshd_pid)) pids += pid + " ";
    return pids;
  };
  const std::string index1 = device_index(c.node(1)), index2 = device_index(c.node(2));
  const std::string impl1 = implementation_pids(c.node(1)), impl2 = implementation_pids(c.node(2));
  ASSERT_FALSE(index2.empty());
  if (std::string(MESHD_TEST_BACKEND) == "userspace") {
    ASSERT_FALSE(impl2.empty()) << "no wireguard-go in node2's namespace";
  }

  // 20 packets/s for 12 s while node1's meshd is restarted and node2's is
  // killed with SIGKILL and started again.
  std::string out = "/tmp/" + src.ns->name() + "-ping.txt";
  ASSERT_EQ(src.ns->run("sh -c 'ping -i 0.05 -c 240 -W 1 " + dst.address + " > " + out + " 2>&1 &'"), 0);
  std::this_thread::sleep_for(2s);
  c.stop(c.node(1), SIGTERM);
  std::this_thread::sleep_for(1s);
  c.start(c.node(1));
  std::this_thread::sleep_for(3s);
  c.stop(c.node(2), SIGKILL);
  std::this_thread::sleep_for(1s);
  c.start(c.node(2));
  ASSERT_TRUE(MeshCluster::eventually(
      [&] { return sh_out("cat " + out).find("packets transmitted") != std::string::npos; }, 60s));
  std::string result = sh_out("cat " + out);
  ::unlink(out.c_str());
  EXPECT_NE(result.find("240 packets transmitted, 240 received, 0% packet loss"), std::string::npos)
      << result;
  EXPECT_TRUE(c.converged());
  // Both restarted meshd processes adopted the running device and
  // implementation instead of recreating them.
  EXPECT_EQ(device_index(c.node(1)), index1);
  EXPECT_EQ(device_index(c.node(2)), index2);
  EXPECT_EQ(implementation_pids(c.node(1)), impl1);
  EXPECT_EQ(implementation_pids(c.node(2)), impl2);
}

}  // namespace
}  // namespace meshd::testing

namespace meshd::testing {
namespace {

// `meshd --once` converges and exits 0; `meshd --teardown` removes the device
// and meshd's routes (and with them the userspace implementation).
TEST(DataplaneCommands, OnceConvergesAndTeardownRemovesEverything) {
  MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  MeshClusterOptions o;
  o.nodes = 2;
  o.backend = MESHD_TEST_BACKEND;
  MeshCluster c(o);
  auto& n1 = c.node(1);
  std::string meshd = o.meshd + " --config " + n1.config_path();
  // A runtime directory others could write to, or owned by someone else, or
  // a symlink, is refused before anything is touched.
  const std::string run = n1.dir + "/run";
  std::filesystem::create_directories(run);
  const std::vector<std::pair<std::string, std::string>> spoiled = {
      {"chmod 0777 " + run, "has mode 0777"},
      {"chmod 0775 " + run, "has mode 0775"},
      {"chown 4321 " + run, "is owned by uid 4321"}};
  for (const auto& [spoil, why] : spoiled) {
    ASSERT_EQ(sh(spoil), 0);
    std::string out = n1.ns->out(meshd + " --once 2>&1; echo rc=$?");
    EXPECT_NE(out.find("rc=1"), std::string::npos) << spoil << ": " << out;
    EXPECT_NE(out.find("runtime directory " + run + " " + why), std::string::npos) << spoil << ": " << out;
    EXPECT_NE(n1.ns->run("ip link show meshd0 >/dev/null 2>&1"), 0) << spoil << ": device made";
    ASSERT_EQ(sh("chmod 0755 " + run + " && chown 0 " + run), 0);
  }
  std::filesystem::remove(run);
  std::filesystem::create_directory_symlink("/tmp", run);
  EXPECT_NE(n1.ns->run(meshd + " --once >/dev/null 2>&1"), 0) << "a symlinked runtime dir was followed";
  std::filesystem::remove(run);

  EXPECT_EQ(n1.ns->run(meshd + " --once >>" + n1.log_path() + " 2>&1"), 0) << c.log(n1);
  struct stat st {};
  ASSERT_EQ(::lstat(run.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_NE(c.wg(n1, "show meshd0 peers").find(c.node(2).public_key), std::string::npos);
  EXPECT_NE(n1.ns->out("ip route show proto 77").find(c.node(2).pod_cidr), std::string::npos);
  // A second pass finds nothing to do and still exits 0.
  EXPECT_EQ(n1.ns->run(meshd + " --once >>" + n1.log_path() + " 2>&1"), 0);

  EXPECT_EQ(n1.ns->run(meshd + " --teardown >>" + n1.log_path() + " 2>&1"), 0) << c.log(n1);
  EXPECT_NE(n1.ns->run("ip link show meshd0 >/dev/null 2>&1"), 0) << "device still there";
  EXPECT_EQ(n1.ns->out("ip route show proto 77"), "");
  EXPECT_TRUE(MeshCluster::eventually(
      [&] { return sh_out("ip netns pids " + n1.ns->name()).empty(); }, std::chrono::seconds(5)))
      << "a process (the userspace implementation?) outlived the teardown";
}

}  // namespace
}  // namespace meshd::testing

namespace meshd::testing {
namespace {

// The `auto` backend: kernel WireGuard where the kernel can make a wireguard
// link (the vm suite's guest), else the userspace implementation (this build
// host). Real meshd processes; the status says which and why.
using namespace std::chrono_literals;

TEST(DataplaneAuto, PicksKernelWireGuardWhereItExistsElseUserspace) {
  MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  MeshClusterOptions o;
  o.nodes = 2;
  o.backend = "auto";
  MeshCluster c(o);
  c.start_all();
  ASSERT_TRUE(c.converged()) << c.log(c.node(1));
  const std::string expected = MESHD_TEST_BACKEND;  // "kernel" in the vm build
  for (auto& n : c.nodes()) {
    std::string st = c.status(n);
    EXPECT_NE(st.find("\"backend\":\"" + expected + "\""), std::string::npos) << st;
    EXPECT_NE(st.find("\"backend_reason\":\"auto: "), std::string::npos) << st;
    std::string kind = n.ns->out("ip -d -o link show meshd0");
    if (expected == "kernel")
      EXPECT_NE(kind.find("wireguard"), std::string::npos) << kind;
    else
      EXPECT_NE(kind.find("tun"), std::string::npos) << kind;
  }
  EXPECT_TRUE(MeshCluster::eventually(
      [&] {
        return c.node(1).pods[0].ns->run("ping -c 1 -W 1 " + c.node(2).pods[0].address + " >/dev/null 2>&1") == 0;
      },
      15s));
  // The probe left no link behind.
  EXPECT_EQ(c.node(1).ns->out("ip -o link show").find("meshd-p"), std::string::npos);
}

}  // namespace
}  // namespace meshd::testing
