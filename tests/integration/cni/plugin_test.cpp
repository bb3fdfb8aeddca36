// The real meshd-cni binary, run as a runtime runs it, inside a test node
// namespace with pod namespaces of its own: ADD/CHECK/DEL per spec version,
// idempotent DEL, rollback, concurrency, GC, STATUS, and pod connectivity.
#include "tests/support/cni_harness.h"

#include "cni/naming.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

namespace meshd::testing {
namespace {

namespace json = boost::json;

class CniPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  }
};

std::string host_veth(const std::string& cid, const std::string& ifname = "eth0",
                      const std::string& network = "meshd") {
  return cni::host_veth_name(network, cid, ifname);
}

bool link_exists(Netns& ns, const std::string& name) {
  return ns.run("ip link show dev " + name + " >/dev/null 2>&1") == 0;
}

// A UDP socket made inside `ns`: a socket belongs to the namespace it was
// created in, so a thread enters it, creates the socket, and ends.
int udp_socket_in(Netns& ns) {
  int fd = -1;
  std::thread([&] {
    int nsfd = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) return;
    if (::setns(nsfd, CLONE_NEWNET) == 0) fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ::close(nsfd);
  }).join();
  return fd;
}

// Sends a datagram from `sender` to `to`:9099, received in `receiver`;
// returns the source address the receiver saw ("" if nothing arrived).
std::string udp_source_seen(Netns& receiver, Netns& sender, const std::string& to) {
  int r = udp_socket_in(receiver), s = udp_socket_in(sender);
  std::string seen;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_port = htons(9099);
  sockaddr_in dst = any;
  timeval tv{1, 0};  // per attempt: a lost first datagram (ARP) is sent again
  if (r >= 0 && s >= 0 && ::bind(r, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0 &&
      ::inet_pton(AF_INET, to.c_str(), &dst.sin_addr) == 1 &&
      ::setsockopt(r, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0) {
    for (int attempt = 0; attempt < 5 && seen.empty(); ++attempt) {
      ::sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
      sockaddr_in from{};
      socklen_t len = sizeof from;
      char buf[64];
      if (::recvfrom(r, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) >= 0) {
        char text[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
        seen = text;
      }
    }
  }
  if (r >= 0) ::close(r);
  if (s >= 0) ::close(s);
  return seen;
}

class CniVersions : public CniPlugin, public ::testing::WithParamInterface<const char*> {};

TEST_P(CniVersions, AddCheckDelRoundTrip) {
  const std::string version = GetParam();
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24", true, 1380);
  Netns pod("cp");
  const std::string conf = node.config(version);

  auto add = node.attach("ADD", conf, "ctr-rt", pod.path());
  ASSERT_EQ(add.exit_code, 0) << add.out;
  auto res = add.json();
  EXPECT_EQ(res["cniVersion"], version.c_str());
  auto ip = res["ips"].as_array().at(0).as_object();
  EXPECT_EQ(ip["address"], "10.244.1.2/24");  // .1 is the node's gateway
  EXPECT_EQ(ip["gateway"], "10.244.1.1");
  EXPECT_EQ(ip.contains("version"), version == "0.4.0");
  auto ifs = res["interfaces"].as_array();
  ASSERT_EQ(ifs.size(), 2u);
  EXPECT_EQ(ifs[1].as_object()["name"], "eth0");
  EXPECT_EQ(ifs[1].as_object()["sandbox"], pod.path().c_str());
  // The MACs reported are the interfaces' own.
  EXPECT_EQ(std::string(ifs[1].as_object()["mac"].as_string()) + "\n",
            pod.out("cat /sys/class/net/eth0/address"));
  EXPECT_EQ(std::string(ifs[0].as_object()["mac"].as_string()) + "\n",
            node.ns().out("cat /sys/class/net/" + host_veth("ctr-rt") + "/address"));
  EXPECT_EQ(ifs[1].as_object().contains("mtu"), version == "1.1.0");

  // The pod: address, MTU, routes through the gateway only.
  auto addr = pod.out("ip -4 -o addr show dev eth0");
  EXPECT_NE(addr.find("10.244.1.2/24"), std::string::npos) << addr;
  EXPECT_NE(pod.out("ip -o link show dev eth0").find("mtu 1380"), std::string::npos);
  auto routes = pod.out("ip -4 route show");
  EXPECT_NE(routes.find("default via 10.244.1.1 dev eth0"), std::string::npos) << routes;
  EXPECT_NE(routes.find("10.244.1.1 dev eth0"), std::string::npos) << routes;
  EXPECT_EQ(routes.find("proto kernel"), std::string::npos) << routes;
  // The node: gateway /32 on the host end, /32 route to the pod with proto 78, forwarding on.
  const auto hv = host_veth("ctr-rt");
  EXPECT_NE(node.ns().out("ip -4 -o addr show dev " + hv).find("10.244.1.1/32"), std::string::npos);
  auto host_routes = node.ns().out("ip -4 route show proto 78");
  EXPECT_NE(host_routes.find("10.244.1.2 dev " + hv), std::string::npos) << host_routes;
  EXPECT_EQ(node.ns().out("cat /proc/sys/net/ipv4/ip_forward"), "1\n");
  ASSERT_EQ(node.leases().size(), 1u);

  auto check = node.attach("CHECK", with_prev_result(conf, add.out), "ctr-rt", pod.path());
  EXPECT_EQ(check.exit_code, 0) << check.out;
  EXPECT_TRUE(check.out.empty());

  auto del = node.attach("DEL", with_prev_result(conf, add.out), "ctr-rt", pod.path());
  EXPECT_EQ(del.exit_code, 0) << del.out;
  EXPECT_FALSE(link_exists(node.ns(), hv));
  EXPECT_FALSE(link_exists(pod, "eth0"));
  EXPECT_TRUE(node.leases().empty());
  EXPECT_EQ(node.ns().out("ip -4 route show proto 78"), "");

  auto check_after = node.attach("CHECK", with_prev_result(conf, add.out), "ctr-rt", pod.path());
  EXPECT_NE(check_after.exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(EachSpecVersion, CniVersions, ::testing::Values("0.4.0", "1.0.0", "1.1.0"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s) if (c == '.') c = '_';
                           return "v" + s;
                         });

TEST_F(CniPlugin, ConflistMtuOverridesTheNodeMtu) {
  CniNode node;
  node.set_pod_cidr("10.244.2.0/24", true, 1380);
  Netns pod("cp");
  auto add = node.attach("ADD", node.config("1.0.0", R"(,"mtu":1300)"), "mtu", pod.path());
  ASSERT_EQ(add.exit_code, 0) << add.out;
  EXPECT_NE(pod.out("ip -o link show dev eth0").find("mtu 1300"), std::string::npos);
  EXPECT_NE(node.ns().out("ip -o link show dev " + host_veth("mtu")).find("mtu 1300"),
            std::string::npos);
}

// Kubernetes deletes and creates pods all the time: a released address must
// not go to the next pod at once (stale endpoints, DNS, conntrack).
TEST_F(CniPlugin, PodsCreatedAndDeletedInTurnNeverGetAReleasedAddressWhileFreeOnesRemain) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/29");  // .2 .. .6: five addresses to hand out
  const std::string conf = node.config("1.0.0");
  std::vector<std::string> got;
  for (int i = 0; i < 6; ++i) {
    Netns pod("cp");
    const std::string id = "cycle" + std::to_string(i);
    auto add = node.attach("ADD", conf, id, pod.path());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    got.push_back(std::string(add.json()["ips"].as_array()[0].as_object()["address"].as_string()));
    ASSERT_EQ(node.attach("DEL", conf, id, pod.path()).exit_code, 0);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"10.244.1.2/29", "10.244.1.3/29", "10.244.1.4/29",
                                           "10.244.1.5/29", "10.244.1.6/29", "10.244.1.2/29"}));
}

TEST_F(CniPlugin, DelIsIdempotentWithoutNetnsAndAfterTheNetnsIsGone) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string conf = node.config("1.0.0");
  {  // DEL twice, without prevResult
    Netns pod("cp");
    ASSERT_EQ(node.attach("ADD", conf, "twice", pod.path()).exit_code, 0);
    EXPECT_EQ(node.attach("DEL", conf, "twice", pod.path()).exit_code, 0);
    auto again = node.attach("DEL", conf, "twice", pod.path());
    EXPECT_EQ(again.exit_code, 0) << again.out;
  }
  {  // DEL with an empty CNI_NETNS (containerd does this)
    Netns pod("cp");
    ASSERT_EQ(node.attach("ADD", conf, "nonetns", pod.path()).exit_code, 0);
    auto del = node.attach("DEL", conf, "nonetns", "");
    EXPECT_EQ(del.exit_code, 0) << del.out;
    EXPECT_FALSE(link_exists(node.ns(), host_veth("nonetns")));
  }
  {  // DEL after the pod's namespace was deleted: the lease still goes
    auto pod = std::make_unique<Netns>("cp");
    const std::string path = pod->path();
    ASSERT_EQ(node.attach("ADD", conf, "gone", path).exit_code, 0);
    pod.reset();
    auto del = node.attach("DEL", conf, "gone", path);
    EXPECT_EQ(del.exit_code, 0) << del.out;
  }
  EXPECT_TRUE(node.leases().empty());
  EXPECT_EQ(node.links(), "");
  // DEL of an attachment that never existed, and with no database at all.
  EXPECT_EQ(node.attach("DEL", conf, "never", "/var/run/netns/none").exit_code, 0);
  CniNode empty;
  EXPECT_EQ(empty.attach("DEL", empty.config("1.0.0"), "x", "").exit_code, 0);
}

TEST_F(CniPlugin, CheckFailsWhenWhatAddMadeIsMissing) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string conf = node.config("1.0.0");
  struct Breakage {
    std::string name;
    std::function<void(Netns& pod, CniNode& node, const std::string& cid)> fn;
  };
  std::vector<Breakage> cases = {
      {"default route", [](Netns& pod, CniNode&, const std::string&) { pod.run("ip route del default"); }},
      {"address", [](Netns& pod, CniNode&, const std::string&) { pod.run("ip addr flush dev eth0"); }},
      {"interface", [](Netns& pod, CniNode&, const std::string&) { pod.run("ip link del eth0"); }},
      {"host route", [](Netns&, CniNode& n, const std::string&) { n.ns().run("ip route flush proto 78"); }},
      {"lease", [](Netns&, CniNode& n, const std::string& cid) {
         store::Ipam(n.db()).release({"meshd", cid, "eth0"}).value();
       }},
  };
  int i = 0;
  for (const auto& c : cases) {
    Netns pod("cp");
    const std::string cid = "chk" + std::to_string(i++);
    auto add = node.attach("ADD", conf, cid, pod.path());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    const std::string prev = with_prev_result(conf, add.out);
    ASSERT_EQ(node.attach("CHECK", prev, cid, pod.path()).exit_code, 0) << c.name;
    c.fn(pod, node, cid);
    auto check = node.attach("CHECK", prev, cid, pod.path());
    EXPECT_NE(check.exit_code, 0) << c.name;
    EXPECT_NE(check.code(), 0) << c.name << ": " << check.out;
    EXPECT_FALSE(check.json()["msg"].as_string().empty()) << c.name;
    node.attach("DEL", conf, cid, pod.path());
  }
}

TEST_F(CniPlugin, AddUndoesEverythingWhenAStepFails) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string conf = node.config("1.0.0");
  for (const char* step : {"lease", "veth", "host-route", "pod-address", "pod-routes"}) {
    Netns pod("cp");
    auto add = node.attach("ADD", conf, "rb", pod.path(), "eth0", {{"MESHD_CNI_TEST_FAIL_AT", step}},
                           faults_plugin_path());
    EXPECT_NE(add.exit_code, 0) << step;
    EXPECT_NE(add.out.find(step), std::string::npos) << add.out;
    EXPECT_TRUE(node.leases().empty()) << "leaked lease after " << step;
    EXPECT_EQ(node.links(), "") << "leaked host veth after " << step;
    EXPECT_FALSE(link_exists(pod, "eth0")) << step;
    EXPECT_EQ(node.ns().out("ip -4 route show proto 78"), "") << step;
  }
  // A clean ADD afterwards succeeds and holds the only lease; allocation
  // rotates on past the five addresses the undone ADDs held (.2 to .6).
  Netns pod("cp");
  auto add = node.attach("ADD", conf, "rb", pod.path());
  ASSERT_EQ(add.exit_code, 0) << add.out;
  EXPECT_EQ(add.json()["ips"].as_array()[0].as_object()["address"], "10.244.1.7/24");
  EXPECT_EQ(node.leases().size(), 1u);
}

TEST_F(CniPlugin, AddRollsBackWhenTheHostVethNameIsTaken) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const auto hv = host_veth("taken");
  ASSERT_EQ(node.ns().run("ip link add " + hv + " type veth peer name squatter"), 0);
  Netns pod("cp");
  auto add = node.attach("ADD", node.config("1.0.0"), "taken", pod.path());
  EXPECT_NE(add.exit_code, 0);
  EXPECT_NE(add.json()["msg"].as_string().find(hv), std::string::npos) << add.out;
  EXPECT_TRUE(node.leases().empty());
  EXPECT_FALSE(link_exists(pod, "eth0"));
  EXPECT_TRUE(link_exists(node.ns(), hv)) << "rollback must not delete what it did not create";
  EXPECT_TRUE(link_exists(node.ns(), "squatter"));
}

TEST_F(CniPlugin, AnInterfaceThatAlreadyExistsInThePodIsAnError) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  Netns pod("cp");
  ASSERT_EQ(pod.run("ip link add eth0 type veth peer name other"), 0);
  auto add = node.attach("ADD", node.config("1.0.0"), "exists", pod.path());
  EXPECT_NE(add.exit_code, 0);
  EXPECT_EQ(add.code(), 102) << add.out;
  EXPECT_NE(add.json()["msg"].as_string().find("eth0"), std::string::npos);
  EXPECT_TRUE(node.leases().empty());
  EXPECT_EQ(node.links(), "");
}

TEST_F(CniPlugin, TwoHundredParallelAddsGetDistinctAddressesAndDelsEmptyThePool) {
  constexpr int kPods = 200;
  CniNode node;
  node.set_pod_cidr("10.244.0.0/24");
  const std::string conf = node.config("1.0.0");
  std::vector<std::unique_ptr<Netns>> pods;
  for (int i = 0; i < kPods; ++i) pods.push_back(std::make_unique<Netns>("cpp"));
  auto all = [&](const std::string& cmd) {
    std::vector<std::future<PluginRun>> futures;
    for (int i = 0; i < kPods; ++i)
      futures.push_back(std::async(std::launch::async, [&, i] {
        return node.attach(cmd, conf, "par" + std::to_string(i), pods[i]->path());
      }));
    std::vector<PluginRun> out;
    for (auto& f : futures) out.push_back(f.get());
    return out;
  };
  std::set<std::string> addresses;
  for (const auto& r : all("ADD")) {
    ASSERT_EQ(r.exit_code, 0) << r.out;
    addresses.insert(std::string(r.json()["ips"].as_array()[0].as_object()["address"].as_string()));
  }
  EXPECT_EQ(addresses.size(), static_cast<std::size_t>(kPods));
  EXPECT_EQ(node.leases().size(), static_cast<std::size_t>(kPods));
  for (const auto& r : all("DEL")) EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(node.leases().empty());
  EXPECT_EQ(node.links(), "");
}

TEST_F(CniPlugin, PoolExhaustionIsAClearErrorNamingThePool) {
  CniNode node;
  node.set_pod_cidr("10.9.0.0/30");  // one pod address: .2 (.1 is the gateway)
  Netns a("cp"), b("cp");
  ASSERT_EQ(node.attach("ADD", node.config("1.0.0"), "a", a.path()).exit_code, 0);
  auto full = node.attach("ADD", node.config("1.0.0"), "b", b.path());
  EXPECT_EQ(full.code(), 101) << full.out;
  EXPECT_NE(full.out.find("10.9.0.0/30"), std::string::npos) << full.out;
  EXPECT_EQ(node.run("STATUS", node.config("1.1.0")).code(), 50);
  EXPECT_EQ(node.leases().size(), 1u);
  EXPECT_FALSE(link_exists(b, "eth0"));
}

void gc_removes_exactly_the_stale(const std::string& key) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string conf = node.config("1.1.0");
  Netns a("cp"), b("cp"), c("cp");
  std::map<std::string, std::string> adds;
  for (auto& [cid, ns] : std::vector<std::pair<std::string, Netns*>>{{"a", &a}, {"b", &b}, {"c", &c}}) {
    auto add = node.attach("ADD", conf, cid, ns->path());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    adds[cid] = add.out;
  }
  // Leftovers: a veth named like this network's that no lease records, and
  // one of another network.
  const auto orphan = host_veth("orphan");
  const auto foreign = host_veth("x", "eth0", "othernet");
  ASSERT_EQ(node.ns().run("ip link add " + orphan + " type veth peer name orphanp"), 0);
  ASSERT_EQ(node.ns().run("ip link add " + foreign + " type veth peer name foreignp"), 0);

  const std::string gc = node.config(
      "1.1.0", ",\"" + key + R"(":[{"containerID":"a","ifname":"eth0"},{"containerID":"c","ifname":"eth0"}])");
  auto r = node.run("GC", gc);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(r.out.empty());
  auto leases = node.leases();
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].key.container_id == "a" || leases[1].key.container_id == "a", true);
  EXPECT_EQ(leases[0].key.container_id == "c" || leases[1].key.container_id == "c", true);
  EXPECT_FALSE(link_exists(node.ns(), host_veth("b")));
  EXPECT_FALSE(link_exists(b, "eth0"));
  EXPECT_TRUE(link_exists(node.ns(), orphan)) << "GC deletes only interfaces its leases record";
  EXPECT_TRUE(link_exists(node.ns(), foreign)) << "GC must leave other networks alone";
  EXPECT_EQ(node.attach("CHECK", with_prev_result(conf, adds["a"]), "a", a.path()).exit_code, 0);
  EXPECT_EQ(node.attach("CHECK", with_prev_result(conf, adds["c"]), "c", c.path()).exit_code, 0);
}

TEST_F(CniPlugin, GcWithValidAttachmentsRemovesExactlyTheStaleOnes) {
  gc_removes_exactly_the_stale("cni.dev/valid-attachments");
}

TEST_F(CniPlugin, GcAcceptsTheOlderAttachmentsKey) { gc_removes_exactly_the_stale("cni.dev/attachments"); }

TEST_F(CniPlugin, StatusReportsWhetherAddCanBeServed) {
  CniNode node;
  const std::string conf = node.config("1.1.0");
  auto no_db = node.run("STATUS", conf);
  EXPECT_EQ(no_db.code(), 50) << no_db.out;
  Netns pod("cp");
  EXPECT_EQ(node.attach("ADD", node.config("1.0.0"), "early", pod.path()).code(), 11);

  node.db();  // an empty meshd database: no CIDR yet
  auto no_cidr = node.run("STATUS", conf);
  EXPECT_EQ(no_cidr.exit_code, 1);
  EXPECT_EQ(no_cidr.code(), 50) << no_cidr.out;
  node.set_pod_cidr("10.244.1.0/24", /*settled=*/false);
  EXPECT_EQ(node.run("STATUS", conf).code(), 50);
  auto unsettled = node.attach("ADD", node.config("1.0.0"), "early", pod.path());
  EXPECT_EQ(unsettled.code(), 11) << unsettled.out;
  EXPECT_TRUE(node.leases().empty());

  node.set_pod_cidr("10.244.1.0/24", /*settled=*/true);
  auto ok = node.run("STATUS", conf);
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_TRUE(ok.out.empty());
  EXPECT_EQ(node.attach("ADD", node.config("1.0.0"), "early", pod.path()).exit_code, 0);
}

TEST_F(CniPlugin, PodsReachEachOtherAndTheNodeWithSourceAddressesPreserved) {
  CniNode node;
  node.set_pod_cidr("10.244.3.0/24");
  // The node's own address on a link of its namespace (its "eth0").
  ASSERT_EQ(node.ns().run("ip link add nodeif type veth peer name nodepeer"), 0);
  ASSERT_EQ(node.ns().run("ip addr add 192.168.50.10/24 dev nodeif"), 0);
  ASSERT_EQ(node.ns().run("ip link set nodeif up"), 0);
  ASSERT_EQ(node.ns().run("ip link set nodepeer up"), 0);
  Netns p1("cp"), p2("cp");
  ASSERT_EQ(node.attach("ADD", node.config("1.0.0"), "p1", p1.path()).exit_code, 0);
  ASSERT_EQ(node.attach("ADD", node.config("1.0.0"), "p2", p2.path()).exit_code, 0);
  const std::string ip1 = "10.244.3.2", ip2 = "10.244.3.3";
  EXPECT_EQ(p1.run("ping -c1 -W2 " + ip2 + " >/dev/null"), 0) << "pod1 -> pod2";
  EXPECT_EQ(p2.run("ping -c1 -W2 " + ip1 + " >/dev/null"), 0) << "pod2 -> pod1";
  EXPECT_EQ(p1.run("ping -c1 -W2 10.244.3.1 >/dev/null"), 0) << "pod -> node gateway";
  EXPECT_EQ(p1.run("ping -c1 -W2 192.168.50.10 >/dev/null"), 0) << "pod -> node address";
  EXPECT_EQ(node.ns().run("ping -c1 -W2 " + ip1 + " >/dev/null"), 0) << "node -> pod1";
  EXPECT_EQ(node.ns().run("ping -c1 -W2 " + ip2 + " >/dev/null"), 0) << "node -> pod2";

  // Source addresses preserved: a UDP receiver reports who sent.
  EXPECT_EQ(udp_source_seen(p2, p1, ip2), ip1) << "pod1 -> pod2 source";
  EXPECT_EQ(udp_source_seen(node.ns(), p1, "192.168.50.10"), ip1) << "pod1 -> node source";
}

TEST_F(CniPlugin, ErrorsAreCniJsonOnStdoutWithSpecCodes) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  Netns pod("cp");
  auto version = node.run("VERSION", R"({"cniVersion":"1.0.0"})");
  ASSERT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.json()["supportedVersions"].as_array().size(), 3u);

  auto no_ifname = node.run("ADD", node.config("1.0.0"),
                            {{"CNI_CONTAINERID", "e"}, {"CNI_NETNS", pod.path()}});
  EXPECT_EQ(no_ifname.code(), 4);
  EXPECT_NE(no_ifname.out.find("CNI_IFNAME"), std::string::npos);
  auto bad_json = node.attach("ADD", "{not json", "e", pod.path());
  EXPECT_EQ(bad_json.code(), 6);
  auto bad_mtu = node.attach("ADD", node.config("1.0.0", R"(,"mtu":"big")"), "e", pod.path());
  EXPECT_EQ(bad_mtu.code(), 7);
  EXPECT_NE(bad_mtu.out.find("mtu"), std::string::npos);
  auto unknown = node.attach("ADD", node.config("1.0.0", R"(,"bridge":"br0")"), "e", pod.path());
  EXPECT_EQ(unknown.code(), 2);
  EXPECT_NE(unknown.out.find("bridge"), std::string::npos);
  auto old = node.attach("ADD", node.config("0.3.1"), "e", pod.path());
  EXPECT_EQ(old.code(), 1);
  for (const auto& r : {no_ifname, bad_json, bad_mtu, unknown, old}) {
    EXPECT_EQ(r.exit_code, 1);
    auto o = r.json();
    EXPECT_TRUE(o.contains("cniVersion") && o.contains("msg")) << r.out;
  }
  EXPECT_TRUE(node.leases().empty());
  EXPECT_FALSE(link_exists(pod, "eth0"));
}

// As node.attach, but a plugin that never returns is killed after 30 s (exit
// 124, no CNI JSON) instead of hanging the suite.
PluginRun attach_guarded(CniNode& node, const std::string& command, const std::string& conf,
                         const std::string& cid, const std::string& netns) {
  std::string ip = access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
  return run_process({ip, "netns", "exec", node.name(), "timeout", "30", plugin_path()},
                     {{"CNI_COMMAND", command},
                      {"CNI_CONTAINERID", cid},
                      {"CNI_NETNS", netns},
                      {"CNI_IFNAME", "eth0"},
                      {"CNI_PATH", "/opt/cni/bin"}},
                     conf);
}

TEST_F(CniPlugin, NetnsThatIsNotAPodNetworkNamespaceIsRefusedAndNothingIsMade) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string conf = node.config("1.0.0");
  const std::string fifo = node.dir() + "/fifo", file = node.dir() + "/file";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::ofstream(file) << "x";
  const std::string node_routes = node.ns().out("ip -4 route show");
  struct Case {
    std::string path;
    std::string says;
  };
  // /proc/self is the plugin: it runs in the node's namespace, so its own
  // network namespace is the node's.
  for (const Case& c : {Case{fifo, "FIFO"}, Case{file, "regular file"},
                        Case{"/proc/self/ns/net", "own"}, Case{"/proc/self/ns/mnt", "mount namespace"}}) {
    for (const char* cmd : {"ADD", "CHECK"}) {
      SCOPED_TRACE(std::string(cmd) + " " + c.path);
      auto r = attach_guarded(node, cmd, conf, "ns", c.path);
      EXPECT_EQ(r.exit_code, 1) << r.out;  // not 124: the plugin returned by itself
      EXPECT_EQ(r.code(), 4) << r.out;
      EXPECT_NE(r.out.find("CNI_NETNS"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
    }
  }
  EXPECT_TRUE(node.leases().empty());
  EXPECT_EQ(node.links(), "");
  EXPECT_FALSE(link_exists(node.ns(), "eth0"));
  EXPECT_EQ(node.ns().out("ip -4 route show"), node_routes) << "the node's routes changed";
  // A namespace that is gone is an unknown container (3).
  EXPECT_EQ(node.attach("ADD", conf, "ns", "/var/run/netns/meshd-test-gone").code(), 3);
}

TEST_F(CniPlugin, ConcurrentAddsOfOneAttachmentLeaveOneLeaseWithTheAddressInUse) {
  constexpr int kAdds = 12, kRounds = 4;
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string conf = node.config("1.0.0");
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Netns pod("cp");
    std::vector<std::future<PluginRun>> futures;
    for (int i = 0; i < kAdds; ++i)
      futures.push_back(std::async(std::launch::async, [&] { return node.attach("ADD", conf, "dup", pod.path()); }));
    std::vector<std::string> won;
    for (auto& f : futures) {
      auto r = f.get();
      if (r.exit_code == 0)
        won.push_back(std::string(r.json()["ips"].as_array()[0].as_object()["address"].as_string()));
      else
        EXPECT_NE(r.code(), 0) << r.out;  // a CNI error, not a crash
    }
    ASSERT_EQ(won.size(), 1u) << "exactly one ADD makes the interface";
    auto leases = node.leases();
    ASSERT_EQ(leases.size(), 1u) << "a failed duplicate ADD released the winner's lease";
    EXPECT_EQ(leases[0].address.to_string() + "/24", won[0]);
    EXPECT_NE(pod.out("ip -4 -o addr show dev eth0").find(won[0]), std::string::npos);

    // A duplicate ADD afterwards (another sandbox, same attachment) fails and
    // leaves the lease and the pod alone.
    Netns other("cp");
    auto dup = node.attach("ADD", conf, "dup", other.path());
    EXPECT_NE(dup.exit_code, 0) << dup.out;
    ASSERT_EQ(node.leases().size(), 1u);
    EXPECT_EQ(node.leases()[0].address, leases[0].address);
    EXPECT_EQ(node.attach("CHECK", conf, "dup", pod.path()).exit_code, 0);
    ASSERT_EQ(node.attach("DEL", conf, "dup", pod.path()).exit_code, 0);
    EXPECT_TRUE(node.leases().empty());
  }
}

// A network name whose veth prefix ("mc" + 16 bits of its hash) equals
// `network`'s: GC must still tell them apart.
std::string colliding_network(const std::string& network) {
  const std::string prefix = cni::host_veth_prefix(network);
  for (int i = 0;; ++i) {
    std::string candidate = "net" + std::to_string(i);
    if (candidate != network && cni::host_veth_prefix(candidate) == prefix) return candidate;
  }
}

TEST_F(CniPlugin, GcOfOneNetworkLeavesAnotherWhoseVethPrefixCollides) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string other = colliding_network("meshd");
  ASSERT_EQ(cni::host_veth_prefix(other), cni::host_veth_prefix("meshd"));
  Netns a("cp"), b("cp");
  ASSERT_EQ(node.attach("ADD", node.config("1.1.0"), "a", a.path()).exit_code, 0);
  auto add_b = node.attach("ADD", node.config("1.1.0", "", other), "b", b.path());
  ASSERT_EQ(add_b.exit_code, 0) << add_b.out;

  auto gc = node.run("GC", node.config("1.1.0", R"(,"cni.dev/valid-attachments":[])"));
  ASSERT_EQ(gc.exit_code, 0) << gc.out;
  EXPECT_TRUE(node.leases("meshd").empty());
  EXPECT_FALSE(link_exists(node.ns(), host_veth("a")));
  EXPECT_TRUE(link_exists(node.ns(), host_veth("b", "eth0", other))) << "GC deleted " << other << "'s veth";
  EXPECT_EQ(node.leases(other).size(), 1u);
  auto check = node.attach("CHECK", with_prev_result(node.config("1.1.0", "", other), add_b.out), "b",
                           b.path());
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

TEST_F(CniPlugin, DelLeavesAPodInterfaceThatIsNotOurVethsPeer) {
  CniNode node;
  node.set_pod_cidr("10.244.1.0/24");
  const std::string conf = node.config("1.0.0");
  {  // a veth to elsewhere, named CNI_IFNAME, with no host veth of ours
    Netns pod("cp");
    ASSERT_EQ(pod.run("ip link add eth0 type veth peer name elsewhere"), 0);
    EXPECT_EQ(node.attach("DEL", conf, "notours", pod.path()).exit_code, 0);
    EXPECT_TRUE(link_exists(pod, "eth0"));
    EXPECT_TRUE(link_exists(pod, "elsewhere"));
  }
  {  // a bridge named CNI_IFNAME
    Netns pod("cp");
    ASSERT_EQ(pod.run("ip link add eth0 type bridge"), 0);
    EXPECT_EQ(node.attach("DEL", conf, "bridge", pod.path()).exit_code, 0);
    EXPECT_TRUE(link_exists(pod, "eth0"));
  }
  {  // our host veth exists, but CNI_NETNS names a sandbox whose eth0 is another veth
    Netns ours("cp"), theirs("cp");
    ASSERT_EQ(node.attach("ADD", conf, "mixed", ours.path()).exit_code, 0);
    ASSERT_EQ(theirs.run("ip link add eth0 type veth peer name elsewhere"), 0);
    EXPECT_EQ(node.attach("DEL", conf, "mixed", theirs.path()).exit_code, 0);
    EXPECT_TRUE(link_exists(theirs, "eth0"));
    EXPECT_FALSE(link_exists(ours, "eth0")) << "our veth pair goes with its host end";
    EXPECT_FALSE(link_exists(node.ns(), host_veth("mixed")));
  }
  {  // a bridge squatting our host veth's name is not ours either
    Netns pod("cp");
    ASSERT_EQ(node.ns().run("ip link add " + host_veth("squat") + " type bridge"), 0);
    EXPECT_EQ(node.attach("DEL", conf, "squat", pod.path()).exit_code, 0);
    EXPECT_TRUE(link_exists(node.ns(), host_veth("squat")));
  }
  EXPECT_TRUE(node.leases().empty());
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(CniPlugin, ADatabaseAtAnOlderSchemaIsRefusedAndLeftUnchanged) {
  CniNode node;
  const int older = store::Database::latest_schema_version() - 1;
  store::Database::create_at_version(node.db_path(), older);
  const std::string before = file_bytes(node.db_path());
  ASSERT_FALSE(before.empty());
  Netns pod("cp");
  const std::string schema = "schema " + std::to_string(older);
  for (const char* cmd : {"ADD", "CHECK", "DEL"}) {
    auto r = node.attach(cmd, node.config("1.1.0"), "old", pod.path());
    EXPECT_EQ(r.exit_code, 1) << cmd << ": " << r.out;
    EXPECT_EQ(r.code(), 5) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find(schema), std::string::npos) << cmd << ": " << r.out;
  }
  auto gc = node.run("GC", node.config("1.1.0", R"(,"cni.dev/valid-attachments":[])"));
  EXPECT_EQ(gc.code(), 5) << gc.out;
  auto status = node.run("STATUS", node.config("1.1.0"));
  EXPECT_EQ(status.code(), 50) << status.out;
  EXPECT_NE(status.out.find(schema), std::string::npos) << status.out;
  EXPECT_EQ(file_bytes(node.db_path()), before) << "the plugin wrote to meshd's database";
  EXPECT_FALSE(link_exists(pod, "eth0"));
}

// Runtimes pass their whole environment to plugins: the installed binary
// must not react to the test hook's variable at all.
TEST(CniPluginBinary, OnlyTheTestBuildKnowsTheFaultInjectionVariable) {
  const std::string var = "MESHD_CNI_TEST_FAIL_AT";
  const std::string shipped = file_bytes(plugin_path());
  const std::string faults = file_bytes(faults_plugin_path());
  ASSERT_FALSE(shipped.empty()) << plugin_path();
  ASSERT_FALSE(faults.empty()) << faults_plugin_path();
  EXPECT_EQ(shipped.find(var), std::string::npos) << plugin_path() << " contains " << var;
  EXPECT_NE(faults.find(var), std::string::npos) << "the test build lost its hook";
}

}  // namespace
}  // namespace meshd::testing
