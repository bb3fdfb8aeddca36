// Real CNI runtimes drive meshd-cni: libcni (a small Go driver built from
// Debian's libcni source at test time), podman 4.3 with the CNI backend, and
// containerd 1.6 `ctr run --cni`. Everything runs inside a test node
// namespace, the runtimes in a private mount namespace with private config
// and state, so the host's network, /etc/cni, /var/lib and /run are untouched.
#include "cni/conflist.h"
#include "cni/naming.h"
#include "tests/support/cni_harness.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>

namespace meshd::testing {
namespace {

namespace fs = std::filesystem;

bool have(const std::string& tool) { return sh("command -v " + tool + " >/dev/null 2>&1") == 0; }

// A node with the plugin (and the reference loopback plugin, which ctr wants)
// in a private bin dir and the conflist written by the library meshd uses.
struct ClientNode {
  CniNode node;
  std::string bin, netd;
  explicit ClientNode(const std::string& cidr, std::vector<std::string> chained = {}) {
    node.set_pod_cidr(cidr, true, 1380);
    bin = node.dir() + "/bin";
    netd = node.dir() + "/netd";
    fs::create_directories(bin);
    fs::create_directories(netd);
    fs::copy_file(plugin_path(), bin + "/meshd-cni");
    if (fs::exists("/usr/lib/cni/loopback")) fs::copy_file("/usr/lib/cni/loopback", bin + "/loopback");
    for (const auto& p : chained) fs::copy_file("/usr/lib/cni/" + p, bin + "/" + p);
    cni::ConflistOptions opts;
    opts.chained = std::move(chained);
    opts.database = node.db_path();
    opts.log_file = node.dir() + "/cni.log";
    if (auto r = cni::write_conflist(netd + "/10-meshd.conflist", opts); !r)
      throw std::runtime_error(r.error().message);
  }
  std::string run_script(const std::string& script) {
    return sh_out("ip netns exec " + node.name() + " unshare -m --propagation private sh " +
                  std::string(CNI_CLIENTS_SOURCE_DIR) + "/" + script + " " + node.dir() + " 2>" +
                  node.dir() + "/script.err");
  }
  std::string script_errors() { return sh_out("cat " + node.dir() + "/script.err; tail -20 " + node.dir() + "/cni.log"); }
};

class CniClients : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces, mounts)");
  }
};

std::string build_libcni_driver() {
  const std::string gopath = std::string(CNI_CLIENTS_BUILD_DIR) + "/gopath";
  const std::string src = gopath + "/src/meshd/libcni_driver";
  const std::string out = std::string(CNI_CLIENTS_BUILD_DIR) + "/libcni_driver";
  fs::create_directories(src);
  fs::copy_file(std::string(CNI_CLIENTS_SOURCE_DIR) + "/libcni_driver/main.go", src + "/main.go",
                fs::copy_options::overwrite_existing);
  int rc = sh("cd " + src + " && GO111MODULE=off GOPATH=" + gopath + ":/usr/share/gocode GOCACHE=" +
              std::string(CNI_CLIENTS_BUILD_DIR) + "/gocache go build -o " + out + " . >&2");
  return rc == 0 ? out : "";
}

TEST_F(CniClients, LibcniRunsAddCheckAndDel) {
  MESHD_REQUIRE(have("go") && fs::exists("/usr/share/gocode/src/github.com/containernetworking/cni/libcni"), "golang-go and golang-github-appc-cni-dev are needed");
  const std::string driver = build_libcni_driver();
  ASSERT_FALSE(driver.empty()) << "building the libcni driver failed";
  ClientNode cn("10.244.4.0/24");
  Netns pod("lc");
  const std::string conflist = cn.netd + "/10-meshd.conflist";
  const std::string cache = cn.node.dir() + "/cache";
  auto drive = [&](const std::string& cmd) {
    return run_process({"/usr/sbin/ip", "netns", "exec", cn.node.name(), driver, cmd, conflist,
                        cn.bin, cache, "libcni-1", pod.path(), "eth0"},
                       {}, "");
  };
  auto add = drive("add");
  ASSERT_EQ(add.exit_code, 0) << add.out << cn.script_errors();
  EXPECT_NE(add.out.find("10.244.4.2/24"), std::string::npos) << add.out;
  EXPECT_NE(pod.out("ip -4 -o addr show dev eth0").find("10.244.4.2/24"), std::string::npos);
  EXPECT_EQ(cn.node.leases().size(), 1u);
  auto check = drive("check");
  EXPECT_EQ(check.exit_code, 0) << check.out;
  // CHECK through libcni notices a broken pod.
  pod.run("ip route del default");
  EXPECT_NE(drive("check").exit_code, 0);
  auto del = drive("del");
  EXPECT_EQ(del.exit_code, 0) << del.out;
  EXPECT_TRUE(cn.node.leases().empty());
  EXPECT_EQ(cn.node.links(), "");
  EXPECT_EQ(drive("del").exit_code, 0) << "a second DEL succeeds too";
}

// In `ns`, a thread: binds 0.0.0.0:`port` (TCP) there, answers one
// connection with "hello from the pod to <client address>", then ends.
class PodListener {
 public:
  PodListener(Netns& ns, std::uint16_t port) {
    std::promise<bool> listening;
    auto ready = listening.get_future();
    thread_ = std::thread([this, fd = ns.fd(), port, p = std::move(listening)]() mutable {
      // setns changes only this thread's namespace; the socket stays in it.
      int s = -1;
      if (::setns(fd, CLONE_NEWNET) == 0) s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      int one = 1;
      ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      timeval tv{10, 0};
      ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);  // accept gives up after 10 s
      bool ok = s >= 0 && ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(s, 4) == 0;
      p.set_value(ok);
      if (!ok) {
        if (s >= 0) ::close(s);
        return;
      }
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int c = ::accept4(s, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (c >= 0) {
        char addr[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &peer.sin_addr, addr, sizeof addr);
        std::string msg = std::string("hello from the pod to ") + addr + "\n";
        (void)!::write(c, msg.data(), msg.size());
        ::close(c);
      }
      ::close(s);
    });
    ok_ = ready.get();
  }
  ~PodListener() { thread_.join(); }
  bool ok() const { return ok_; }

 private:
  std::thread thread_;
  bool ok_ = false;
};

// From `ns`: connects to addr:port and returns what the server sends ("" on failure).
std::string fetch_from(Netns& ns, const std::string& addr, std::uint16_t port) {
  std::string got;
  std::thread t([&, fd = ns.fd()] {
    if (::setns(fd, CLONE_NEWNET) != 0) return;
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect too
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, addr.c_str(), &a.sin_addr);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      char buf[256];
      ssize_t n;
      while ((n = ::read(s, buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(s);
  });
  t.join();
  return got;
}

// hostPort as Kubernetes does it: the runtime passes the pod's port mappings
// as the "portMappings" capability argument, libcni hands them to portmap
// (chained after meshd-cni by meshd's conflist), and a connection from
// another machine to the node's address and the host port reaches the pod,
// with its source address intact.
TEST_F(CniClients, LibcniHostPortReachesThePodThroughPortmap) {
  MESHD_REQUIRE(have("go") && fs::exists("/usr/share/gocode/src/github.com/containernetworking/cni/libcni"), "golang-go and golang-github-appc-cni-dev are needed");
  MESHD_REQUIRE(fs::exists("/usr/lib/cni/portmap"), "containernetworking-plugins is needed (portmap)");
  MESHD_REQUIRE(have("iptables"), "iptables is needed (portmap programs it)");
  const std::string driver = build_libcni_driver();
  ASSERT_FALSE(driver.empty()) << "building the libcni driver failed";
  ClientNode cn("10.244.7.0/24", {"portmap"});
  // Another machine on the node's network: 192.0.2.2 -> node 192.0.2.1.
  Netns client("lcc");
  ASSERT_EQ(sh("ip link add eth1 netns " + cn.node.name() + " type veth peer name eth0 netns " + client.name()), 0);
  for (const std::string& cmd : {"ip -n " + cn.node.name() + " addr add 192.0.2.1/24 dev eth1",
                                 "ip -n " + cn.node.name() + " link set eth1 up",
                                 "ip -n " + client.name() + " addr add 192.0.2.2/24 dev eth0",
                                 "ip -n " + client.name() + " link set eth0 up"})
    ASSERT_EQ(sh(cmd), 0) << cmd;

  Netns pod("lcp");
  const std::string conflist = cn.netd + "/10-meshd.conflist";
  const std::string cache = cn.node.dir() + "/cache";
  auto drive = [&](const std::string& cmd) {
    return run_process({"/usr/sbin/ip", "netns", "exec", cn.node.name(), driver, cmd, conflist,
                        cn.bin, cache, "hostport-1", pod.path(), "eth0"},
                       {{"LIBCNI_CAPABILITY_ARGS",
                         R"({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})"}},
                       "");
  };
  auto add = drive("add");
  ASSERT_EQ(add.exit_code, 0) << add.out << cn.script_errors();
  EXPECT_NE(add.out.find("10.244.7.2/24"), std::string::npos) << add.out;
  EXPECT_NE(cn.node.ns().out("iptables -t nat -S").find("--dport 8080"), std::string::npos)
      << cn.node.ns().out("iptables -t nat -S");
  {
    PodListener listener(pod, 80);
    ASSERT_TRUE(listener.ok());
    EXPECT_EQ(fetch_from(client, "192.0.2.1", 8080), "hello from the pod to 192.0.2.2\n");
  }
  // No CHECK here: portmap 1.1.1 fails CHECK of an IPv4-only pod whenever
  // ip6tables works (containernetworking/plugins#819); Kubernetes runtimes
  // (containerd's and CRI-O's CRI) never send CHECK.
  auto del = drive("del");
  EXPECT_EQ(del.exit_code, 0) << del.out;
  EXPECT_EQ(cn.node.ns().out("iptables -t nat -S").find("--dport 8080"), std::string::npos)
      << "portmap's DNAT rule outlived DEL";
  EXPECT_TRUE(cn.node.leases().empty());
  EXPECT_EQ(cn.node.links(), "");
}

// Traffic shaping as Kubernetes does it (the pod's bandwidth annotations):
// the runtime passes the "bandwidth" capability argument, libcni hands it to
// bandwidth (chained after meshd-cni), which finds meshd-cni's host veth in
// the result and shapes it (ingress) and the pod's egress (through an ifb).
TEST_F(CniClients, LibcniBandwidthShapesThePodsHostVeth) {
  MESHD_REQUIRE(have("go") && fs::exists("/usr/share/gocode/src/github.com/containernetworking/cni/libcni"), "golang-go and golang-github-appc-cni-dev are needed");
  MESHD_REQUIRE(fs::exists("/usr/lib/cni/bandwidth"), "containernetworking-plugins is needed (bandwidth)");
  MESHD_REQUIRE(have("tc"), "tc (iproute2) is needed to read the qdiscs");
  const std::string driver = build_libcni_driver();
  ASSERT_FALSE(driver.empty()) << "building the libcni driver failed";
  ClientNode cn("10.244.8.0/24", {"bandwidth"});
  Netns pod("lbp");
  const std::string conflist = cn.netd + "/10-meshd.conflist";
  const std::string cache = cn.node.dir() + "/cache";
  auto drive = [&](const std::string& cmd) {
    return run_process({"/usr/sbin/ip", "netns", "exec", cn.node.name(), driver, cmd, conflist,
                        cn.bin, cache, "shaped-1", pod.path(), "eth0"},
                       {{"LIBCNI_CAPABILITY_ARGS",
                         R"({"bandwidth":{"ingressRate":8000000,"ingressBurst":800000,)"
                         R"("egressRate":4000000,"egressBurst":400000}})"}},
                       "");
  };
  auto add = drive("add");
  ASSERT_EQ(add.exit_code, 0) << add.out << cn.script_errors();
  const std::string hv = cni::host_veth_name("meshd", "shaped-1", "eth0");
  // Ingress to the pod: a token bucket on the host veth's egress.
  std::string qdisc = cn.node.ns().out("tc qdisc show dev " + hv);
  EXPECT_NE(qdisc.find("tbf"), std::string::npos) << qdisc;
  EXPECT_NE(qdisc.find("rate 8Mbit"), std::string::npos) << qdisc;
  // Egress from the pod: redirected to an ifb device with its own bucket.
  std::string ifbs = cn.node.ns().out("ip -o link show type ifb");
  EXPECT_NE(ifbs.find("bwp"), std::string::npos) << ifbs;
  EXPECT_NE(cn.node.ns().out("tc qdisc show").find("rate 4Mbit"), std::string::npos)
      << cn.node.ns().out("tc qdisc show");
  auto del = drive("del");
  EXPECT_EQ(del.exit_code, 0) << del.out;
  EXPECT_EQ(cn.node.ns().out("ip -o link show type ifb").find("bwp"), std::string::npos)
      << "bandwidth's ifb outlived DEL";
  EXPECT_TRUE(cn.node.leases().empty());
  EXPECT_EQ(cn.node.links(), "");
}

TEST_F(CniClients, PodmanRunsAContainerOnTheMeshdNetwork) {
  MESHD_REQUIRE(have("podman") && have("runc"), "podman and runc are needed");
  ClientNode cn("10.244.5.0/24");
  auto out = cn.run_script("podman_run.sh");
  EXPECT_NE(out.find("inet 10.244.5.2/24"), std::string::npos) << out << cn.script_errors();
  EXPECT_NE(out.find("default via 10.244.5.1"), std::string::npos) << out;
  EXPECT_NE(out.find("mtu 1380"), std::string::npos) << out;
  // `--rm`: podman sent DEL, so nothing is left on the node.
  EXPECT_TRUE(cn.node.leases().empty());
  EXPECT_EQ(cn.node.links(), "");
}

TEST_F(CniClients, ContainerdCtrRunCniRunsAContainerOnTheMeshdNetwork) {
  MESHD_REQUIRE(have("containerd") && have("ctr") && have("podman"), "containerd, ctr and podman are needed");
  ClientNode cn("10.244.6.0/24");
  auto out = cn.run_script("containerd_run.sh");
  EXPECT_NE(out.find("inet 10.244.6.2/24"), std::string::npos) << out << cn.script_errors();
  EXPECT_NE(out.find("default via 10.244.6.1"), std::string::npos) << out;
  EXPECT_NE(out.find("mtu 1380"), std::string::npos) << out;
  // ctr sends DEL with an empty CNI_NETNS: the lease and the host veth still go.
  EXPECT_NE(sh_out("cat " + cn.node.dir() + "/cni.log").find("DEL meshd default-meshd-ctr eth0 (netns \"\")"), std::string::npos)
      << cn.script_errors();
  EXPECT_TRUE(cn.node.leases().empty()) << cn.script_errors();
  EXPECT_EQ(cn.node.links(), "");
}

}  // namespace
}  // namespace meshd::testing
