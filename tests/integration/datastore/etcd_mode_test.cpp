// The etcd datastore mode (issue 13) with real nodes: a real 3-member etcd
// 3.4 on a host of the cluster tests' bridge underlay (ClusterNodes::add_host
// + EtcdCluster), and meshd nodes (userspace backend, a pod each from the
// real CNI plugin) whose [datastore] points at it. What each test asserts is
// read from outside meshd: etcd's keys straight through the etcd client (in
// the etcd host's namespace), the nodes' WireGuard devices over UAPI, their
// route tables, their /metrics and pings between pods.
//
// One cluster for the whole suite (SetUpTestSuite): etcd, then ten nodes
// joining concurrently. The tests run in the order written and build on each
// other (the leader kill adds nodes 11 and 12, the quorum loss node 13, the
// SIGSTOP test node 14), so the suite is one CTest test.
#include "keys/identity.h"
#include "keys/wg_key.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/datastore/etcd_client.h"
#include "meshd/datastore/etcd_layout.h"
#include "netlink/netns.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/mesh_probe.h"
#include "tests/support/prerequisite.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

namespace meshd::testing {
namespace {

namespace cp = meshd::controlplane;
namespace ds = meshd::datastore;
namespace json = boost::json;

const std::string kPrefix = "/meshd/";
const std::vector<std::string> kEtcdAddresses{"172.31.78.201", "172.31.78.202", "172.31.78.203"};
constexpr int kFirstNodes = 10;

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Every node's [datastore]: a request timeout short enough that a node
// failing over across three endpoints stays responsive, the shortest resync
// (a watch that went quiet is reopened within 10 s), and a lease of
// `lease_ttl_s` on its liveness key (5 for the node the SIGSTOP test stops).
std::string datastore_config(int lease_ttl_s) {
  std::string endpoints;
  for (const auto& a : kEtcdAddresses)
    endpoints += (endpoints.empty() ? "\"" : ", \"") + std::string("http://") + a + ":2379\"";
  return "[datastore]\nkind = \"etcd\"\nendpoints = [" + endpoints + "]\nprefix = \"" + kPrefix +
         "\"\ntimeout_ms = 1000\nresync_interval_s = 10\nlease_ttl_s = " + std::to_string(lease_ttl_s) + "\n";
}

// --- the nodes' APIs and data planes ------------------------------------------

double metric(const ClusterNodes::Node& at, const std::string& series) {
  return api_metric(at.api_socket(), series);
}
std::string rejected(const std::string& reason) {
  return "meshd_records_rejected_total{reason=\"" + reason + "\"}";
}

std::string wg_public_key(const ClusterNodes::Node& n) {
  auto db = ClusterNodes::open_store(n);
  auto key = store::LocalNodeRepo(*db).wg_private_key().value();
  return key ? key->public_key().to_base64() : "";
}

// What a node's data plane holds of the mesh: its WireGuard peers (key and
// allowed IPs) and the destinations of its routes into the cluster CIDR.
// Handshake times are left out: they change by themselves.
std::set<std::string> data_plane(const ClusterNodes& c, const ClusterNodes::Node& n) {
  std::set<std::string> out;
  auto peers = wg_peers(c.uapi_socket(n));
  if (!peers) {
    out.insert("(no device)");
    return out;
  }
  for (auto& p : *peers) {
    std::sort(p.allowed_ips.begin(), p.allowed_ips.end());
    std::string ips;
    for (const auto& ip : p.allowed_ips) ips += " " + ip;
    out.insert("peer " + p.public_key + ips);
  }
  std::istringstream lines(n.ns->out("ip -o -4 route show table all 2>/dev/null"));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first, second;
    words >> first >> second;
    std::string dst = first == "unicast" ? second : first;
    if (dst.rfind("10.244.", 0) == 0) out.insert("route " + dst);
  }
  return out;
}
// What `before` holds that `after` lacks, for messages ("" when nothing).
std::string missing_from(const std::set<std::string>& before, const std::set<std::string>& after) {
  std::string out;
  for (const auto& e : before)
    if (!after.count(e)) out += "  lost: " + e + "\n";
  return out;
}

// The part of the node's log written after `mark` (a size of the log).
std::string log_since(const ClusterNodes& c, const ClusterNodes::Node& n, std::size_t mark) {
  std::string all = c.log(n);
  return mark <= all.size() ? all.substr(mark) : all;
}
std::size_t log_size(const ClusterNodes& c, const ClusterNodes::Node& n) { return c.log(n).size(); }
std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class EtcdMode : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!is_root() || !EtcdCluster::missing().empty()) return;
    try {
      c_ = new ClusterNodes();
      host_ = &c_->add_host(kEtcdAddresses);
      etcd_ = new EtcdCluster(*host_, kEtcdAddresses);

      // The founder first (nobody can join before it is a member), then two
      // nodes through it, then the other seven at once through the three
      // members there are by then: ten nodes, nine of them joining while
      // others join, through three different members.
      const auto t0 = std::chrono::steady_clock::now();
      auto& n1 = add("n1", nullptr);
      c_->start(n1);
      if (!c_->wait_settled(n1, 60s)) throw std::runtime_error("n1 did not found a cluster:\n" + c_->log_tail(n1));
      std::vector<ClusterNodes::Node*> wave1{&add("n2", &n1), &add("n3", &n1)};
      for (auto* n : wave1) c_->start(*n);
      for (auto* n : wave1)
        if (!c_->wait_settled(*n, 90s)) throw std::runtime_error(n->name + " did not settle:\n" + c_->log_tail(*n));
      std::vector<ClusterNodes::Node*> through{&n1, wave1[0], wave1[1]};
      std::vector<ClusterNodes::Node*> wave2;
      for (int i = 4; i <= kFirstNodes; ++i)
        wave2.push_back(&add("n" + std::to_string(i), through[i % 3], i == kFirstNodes ? 5 : 30));
      for (auto* n : wave2) c_->start(*n);
      for (auto* n : wave2)
        if (!c_->wait_settled(*n, 120s))
          throw std::runtime_error(n->name + " did not settle:\n" + c_->log_tail(*n));
      std::printf("etcd mode: %d nodes joined and settled %.0f ms after the founder started\n", kFirstNodes,
                  ms_since(t0));
      for (auto& n : c_->nodes()) c_->add_pod(n);
      cluster_id_ = etcd_get(kPrefix + "cluster").value_or("");
      if (cluster_id_.empty()) throw std::runtime_error("etcd holds no " + kPrefix + "cluster marker");
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete c_;  // the nodes first: they are clients of etcd
    c_ = nullptr;
    delete etcd_;
    etcd_ = nullptr;
    host_ = nullptr;
  }
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MESHD_REQUIRE(EtcdCluster::missing().empty(), EtcdCluster::missing());
    MESHD_REQUIRE(sh("command -v wireguard-go >/dev/null") == 0, "wireguard-go (the userspace backend)");
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }
  void TearDown() override {
    if (HasFailure() && etcd_) std::fprintf(stderr, "%s", etcd_->all_log_tails().c_str());
  }

  // A node with the etcd datastore, its token from `through` (nothing: the
  // founder). Not started.
  static ClusterNodes::Node& add(const std::string& name, const ClusterNodes::Node* through,
                                 int lease_ttl_s = 30) {
    auto& n = c_->add_node(name, through);
    n.extra_config = datastore_config(lease_ttl_s);
    c_->write_config(n);
    if (through) c_->write_token(n, ClusterNodes::create_token(*through));
    return n;
  }
  static ClusterNodes::Node& node(const std::string& name) { return c_->node(name); }
  static ClusterNodes::Pod& pod_on(ClusterNodes::Node& n) { return n.pods.empty() ? c_->add_pod(n) : n.pods.front(); }

  // --- etcd, read and written by the test (its own client, in the etcd
  // host's namespace), never through a node ---
  template <class F>
  static auto with_etcd(F&& f) {
    auto g = nl::NetnsGuard::enter(host_->fd());
    if (!g) throw std::runtime_error("entering the etcd host's namespace: " + g.error().message);
    ds::EtcdOptions o;
    o.endpoints = etcd_->endpoints();
    o.timeout = 2s;
    ds::EtcdClient client(o);
    return f(client);
  }
  static Result<ds::RangeResult> etcd_range(const std::string& key, bool prefix = false) {
    return with_etcd([&](ds::EtcdClient& e) {
      return e.range({.key = key, .range_end = prefix ? ds::prefix_end(key) : std::string()});
    });
  }
  static std::optional<std::string> etcd_get(const std::string& key) {
    auto r = etcd_range(key);
    if (!r) throw std::runtime_error("etcd range " + key + ": " + r.error().message);
    if (r->kvs.empty()) return std::nullopt;
    return r->kvs[0].value;
  }
  static void etcd_put(const std::string& key, const std::string& value) {
    auto r = with_etcd([&](ds::EtcdClient& e) { return e.put(key, value); });
    if (!r) throw std::runtime_error("etcd put " + key + ": " + r.error().message);
  }
  static ds::Revision etcd_revision() {
    auto r = etcd_range(kPrefix + "cluster");
    if (!r) throw std::runtime_error("etcd range: " + r.error().message);
    return r->revision;
  }

  static keys::IdentityPublicKey identity(const ClusterNodes::Node& n) {
    return ClusterNodes::identity(n).public_key();
  }
  static std::string record_key(const ClusterNodes::Node& n) {
    return ds::record_key(kPrefix, cluster_id_, identity(n));
  }
  static std::string alive_key(const ClusterNodes::Node& n) {
    return ds::alive_key(kPrefix, cluster_id_, identity(n));
  }
  // The claim etcd holds on `cidr`, decoded (nothing: no key or garbage).
  static std::optional<ds::SubnetClaim> claim_on(const IpPrefix& cidr) {
    auto v = etcd_get(ds::subnet_key(kPrefix, cluster_id_, cidr));
    if (!v) return std::nullopt;
    auto claim = ds::decode_claim(*v);
    if (!claim) return std::nullopt;
    return *claim;
  }
  // The node's record as etcd holds it, decoded and verified.
  static std::optional<cp::SignedRecord> record_in_etcd(const ClusterNodes::Node& n) {
    auto v = etcd_get(record_key(n));
    if (!v) return std::nullopt;
    auto sv = ds::decode_signed_value(*v);
    if (!sv) return std::nullopt;
    auto r = cp::decode_record(sv->body, sv->signature);
    if (!r) return std::nullopt;
    return *r;
  }
  // The claim on the node's settled CIDR names it, and its record in etcd is
  // its own and holds that CIDR: "" when so, else what is wrong.
  static std::string etcd_holds(const ClusterNodes::Node& n) {
    auto cidr = ClusterNodes::settled_cidr(n);
    if (!cidr) return n.name + " is not settled";
    auto claim = claim_on(*cidr);
    if (!claim) return "no valid claim on " + cidr->to_string() + " (" + n.name + "'s CIDR) in etcd";
    if (claim->identity != identity(n) || claim->name != n.name)
      return "the claim on " + cidr->to_string() + " names " + claim->name + ", not " + n.name;
    auto rec = record_in_etcd(n);
    if (!rec) return "no record of " + n.name + " in etcd that decodes";
    if (rec->record.name != n.name || rec->record.pod_cidr != *cidr)
      return n.name + "'s record in etcd holds " + rec->record.name + " " + rec->record.pod_cidr.to_string();
    return "";
  }
  // No two nodes hold the same settled CIDR: "" when so.
  static std::string cidrs_distinct() {
    std::map<std::string, std::string> by_cidr;
    std::string out;
    for (auto& n : c_->nodes()) {
      auto cidr = ClusterNodes::settled_cidr(n);
      if (!cidr) continue;
      auto [it, fresh] = by_cidr.emplace(cidr->to_string(), n.name);
      if (!fresh) out += n.name + " and " + it->second + " both hold " + cidr->to_string() + "; ";
    }
    return out;
  }
  // The node's log says etcd is reachable: no "etcd unreachable" since its
  // last "etcd reachable again".
  static bool etcd_recovered(const ClusterNodes::Node& n) {
    const std::string all = c_->log(n);
    auto down = all.rfind("etcd unreachable (");
    if (down == std::string::npos) return true;
    auto up = all.rfind("etcd reachable again");
    return up != std::string::npos && up > down;
  }
  static std::map<std::string, std::set<std::string>> data_planes() {
    std::map<std::string, std::set<std::string>> out;
    for (auto& n : c_->nodes()) out[n.name] = data_plane(*c_, n);
    return out;
  }

  static ClusterNodes* c_;
  static Netns* host_;
  static EtcdCluster* etcd_;
  static std::string cluster_id_;
  static std::string setup_error_;
};
ClusterNodes* EtcdMode::c_ = nullptr;
Netns* EtcdMode::host_ = nullptr;
EtcdCluster* EtcdMode::etcd_ = nullptr;
std::string EtcdMode::cluster_id_;
std::string EtcdMode::setup_error_;

// 1. The ten nodes of the set-up: distinct CIDRs, each claimed in etcd by its
// own node, each node settled with its record in etcd, every pod pair
// reachable (all 90 ordered pairs: a ping each, cheap next to the joins).
TEST_F(EtcdMode, TenNodesJoinConcurrentlyWithDistinctCidrsClaimedInEtcdAndEveryPodPairReachable) {
  ASSERT_EQ(c_->nodes().size(), std::size_t(kFirstNodes));
  EXPECT_EQ(cidrs_distinct(), "");
  for (auto& n : c_->nodes()) {
    EXPECT_TRUE(ClusterNodes::settled_cidr(n)) << c_->log_tail(n);
    EXPECT_EQ(etcd_holds(n), "");
  }
  // Exactly one claim per node: no allocation race left a claim behind.
  auto subnets = etcd_range(ds::family_prefix(kPrefix, cluster_id_, ds::KeyFamily::kSubnet), true);
  ASSERT_TRUE(subnets) << subnets.error().message;
  EXPECT_EQ(subnets->kvs.size(), std::size_t(kFirstNodes));
  auto records = etcd_range(ds::family_prefix(kPrefix, cluster_id_, ds::KeyFamily::kRecord), true);
  ASSERT_TRUE(records) << records.error().message;
  EXPECT_EQ(records->kvs.size(), std::size_t(kFirstNodes));

  bool failed = false;
  for (auto& a : c_->nodes())
    for (auto& b : c_->nodes()) {
      if (&a == &b) continue;
      bool ok = ClusterNodes::reaches(*pod_on(a).ns, pod_on(b).address, failed ? 2s : 20s);
      failed = failed || !ok;
      EXPECT_TRUE(ok) << "pod on " << a.name << " cannot reach pod " << pod_on(b).address << " on " << b.name;
    }
}

// 2. The etcd leader killed while two joins allocate; then two of three
// members down for 20 s under a 5/s pod-to-pod ping; then a join after the
// members are back.
TEST_F(EtcdMode, LeaderKilledDuringJoinsAndQuorumLostFor20sKeepTheDataPlaneAndRecover) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  auto& n3 = node("n3");
  // Two joins, and the leader killed as they start: a join takes some tens
  // of milliseconds once meshd is up, so their claims meet etcd while it
  // elects a new leader (or just before, on a loaded machine: printed).
  const std::size_t mark2 = log_size(*c_, n2), mark3 = log_size(*c_, n3);
  auto& n11 = add("n11", &n2);
  auto& n12 = add("n12", &n3);
  auto leader = etcd_->leader();
  ASSERT_TRUE(leader) << etcd_->all_log_tails();
  c_->start(n11);
  c_->start(n12);
  etcd_->kill(*leader);
  const bool n11_claimed = log_since(*c_, n2, mark2).find("for n11") != std::string::npos;
  const bool n12_claimed = log_since(*c_, n3, mark3).find("for n12") != std::string::npos;
  std::printf("killed etcd leader m%d as n11 and n12 started (claimed before the kill: n11 %s, n12 %s)\n",
              *leader, n11_claimed ? "yes" : "no", n12_claimed ? "yes" : "no");
  for (auto* n : {&n11, &n12}) {
    ASSERT_TRUE(c_->wait_settled(*n, 90s)) << c_->log_tail(*n);
    EXPECT_EQ(etcd_holds(*n), "");
  }
  EXPECT_EQ(cidrs_distinct(), "");
  etcd_->restart(*leader);
  ASSERT_TRUE(etcd_->wait_healthy()) << etcd_->all_log_tails();
  std::map<std::string, std::size_t> restarted;
  for (auto& n : c_->nodes()) restarted[n.name] = log_size(*c_, n);
  for (auto* n : {&n11, &n12}) EXPECT_TRUE(ClusterNodes::reaches(*pod_on(*n).ns, pod_on(n1).address, 20s)) << n->name;

  // Every node reaches every other's pod from here on: a steady state to
  // snapshot.
  for (auto& n : c_->nodes())
    ASSERT_TRUE(ClusterNodes::reaches(*pod_on(n).ns, pod_on(n1).address, 20s)) << n.name;
  auto before = data_planes();

  // Two of three members down for 20 s (the leader among them) while a pod
  // on n4 pings a pod on n9 five times a second.
  auto& n4 = node("n4");
  auto& n9 = node("n9");
  // Every node past the leader's outage as its own log tells (its last
  // "etcd unreachable" followed by "etcd reachable again"), so that the
  // outage below is a new one for each.
  // (A listing since the restart: a call that succeeded, so a failure
  // still in progress cannot be mistaken for a recovery.)
  for (auto& n : c_->nodes())
    ASSERT_TRUE(eventually(
        [&] {
          return log_since(*c_, n, restarted[n.name]).find("etcd: listed the cluster at revision") !=
                     std::string::npos &&
                 etcd_recovered(n);
        },
        60s, 200ms))
        << c_->log_tail(n);
  PingRun ping(*pod_on(n4).ns, pod_on(n9).address, 5 * 30, 0.2);
  std::this_thread::sleep_for(2s);
  std::map<std::string, std::size_t> marks;
  for (auto& n : c_->nodes()) marks[n.name] = log_size(*c_, n);
  auto lead = etcd_->leader();
  ASSERT_TRUE(lead);
  std::vector<int> down{*lead, (*lead + 1) % 3};
  for (int i : down) etcd_->kill(i);
  std::this_thread::sleep_for(20s);  // the outage itself, not an assertion
  auto during = data_planes();
  std::map<std::string, std::size_t> restart_marks;
  for (auto& n : c_->nodes()) restart_marks[n.name] = log_size(*c_, n);
  etcd_->restart(down, 30s);
  ASSERT_TRUE(etcd_->wait_healthy()) << etcd_->all_log_tails();
  auto stats = ping.wait();
  auto after = data_planes();

  for (auto& n : c_->nodes()) {
    const std::string outage = log_since(*c_, n, marks[n.name]).substr(0, restart_marks[n.name] - marks[n.name]);
    std::printf("  %s during the outage: %zu 'etcd unreachable', %zu watch reopenings\n", n.name.c_str(),
                count_of(outage, "etcd unreachable ("), count_of(outage, "etcd watch ended"));
  }
  EXPECT_EQ(stats.lost(), 0) << "lost " << stats.lost() << " of " << stats.sent << " pings; largest gap "
                             << stats.max_gap_ms << " ms\n"
                             << stats.output;
  std::printf("quorum lost 20 s: %d/%d pings answered, largest gap %.0f ms\n", stats.received, stats.sent,
              stats.max_gap_ms);
  for (auto& n : c_->nodes()) {
    EXPECT_EQ(missing_from(before[n.name], during[n.name]), "") << n.name << " while etcd had no quorum";
    EXPECT_EQ(missing_from(before[n.name], after[n.name]), "") << n.name << " after etcd came back";
    // It said so once for the outage (and backed off), and says when it is back.
    EXPECT_EQ(count_of(log_since(*c_, n, marks[n.name]).substr(0, restart_marks[n.name] - marks[n.name]),
                       "etcd unreachable ("),
              1u)
        << c_->log_tail(n);
    // The watch backs off too (0.2, 1, 2, 4 ... 30 s): not a reconnect
    // every 200 ms (18 to 37 in this outage before it did). That backoff
    // allows six ends in 20 s, one more when the two members die one after
    // the other under the watch, so 10 leaves room for a loaded machine.
    const std::string outage = log_since(*c_, n, marks[n.name]).substr(0, restart_marks[n.name] - marks[n.name]);
    EXPECT_LE(count_of(outage, "etcd watch ended"), 10u)
        << n.name << " reopened its watch " << count_of(outage, "etcd watch ended")
        << " times during the 20 s outage; a backoff of 0.2, 1, 2 .. 30 s allows about 7";
    EXPECT_TRUE(eventually(
        [&] { return log_since(*c_, n, marks[n.name]).find("etcd reachable again through") != std::string::npos; },
        60s, 200ms))
        << c_->log_tail(n);
  }

  // Full recovery: a node joins now and is reachable.
  auto& n13 = add("n13", &n1);
  c_->start(n13);
  ASSERT_TRUE(c_->wait_settled(n13, 90s)) << c_->log_tail(n13);
  EXPECT_EQ(etcd_holds(n13), "");
  EXPECT_EQ(cidrs_distinct(), "");
  for (auto* peer : {&n1, &n9}) {
    EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n13).ns, pod_on(*peer).address, 20s)) << "n13 -> " << peer->name;
    EXPECT_TRUE(ClusterNodes::reaches(*pod_on(*peer).ns, pod_on(n13).address, 20s)) << peer->name << " -> n13";
  }
}

// 3. A node's watch disconnected while its history goes: n7's meshd is
// stopped (SIGSTOP) right after one of its periodic listings, its
// connections to etcd are aborted (ss -K in its namespace, so its watch has
// ended when it resumes), n3 rotates its key, etcd is compacted past n7's revision, and
// n7 resumes well inside its resync interval: its watch, reopened from the
// old revision, meets the compaction, and n7 lists again and takes the new key.
TEST_F(EtcdMode, CompactionWhileAWatchIsDisconnectedIsCaughtUpByListingAgain) {
  auto& n1 = node("n1");
  auto& n3 = node("n3");
  auto& n7 = node("n7");
  const std::string old_key = wg_public_key(n3);
  const auto n3_before = record_in_etcd(n3);
  ASSERT_TRUE(n3_before);
  // Stopped just after a periodic listing: the next is 10 s away, so what
  // n7 does on resuming is its watch's doing, not the resync's.
  const std::size_t mark = log_size(*c_, n7);
  ASSERT_TRUE(eventually(
      [&] { return log_since(*c_, n7, mark).find("etcd: listed the cluster at revision") != std::string::npos; },
      15s, 20ms))
      << c_->log_tail(n7);
  ASSERT_GT(n7.pid, 0);
  ASSERT_EQ(::kill(n7.pid, SIGSTOP), 0);
  const auto stopped = std::chrono::steady_clock::now();
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }  // also when an assertion below fails
  } resume{n7.pid};
  // Its connections to etcd aborted before anything changes: no event can
  // wait in a socket buffer for it to read on resuming.
  must(n7.ns->run("ss -K -t dport = 2379 >/dev/null"), "ss -K in n7's namespace");

  auto a = api_request(n3.api_socket(), "POST", "/v1/key/rotate");
  ASSERT_EQ(a.status, 202) << a.body;
  std::string new_key;
  {
    auto v = json::parse(a.body).as_object();
    ASSERT_TRUE(v.contains("public_key")) << a.body;
    new_key = std::string(v.at("public_key").as_string());
  }
  ASSERT_NE(new_key, old_key);
  // n3's record in etcd announces the rotation.
  ASSERT_TRUE(eventually(
      [&] {
        auto r = record_in_etcd(n3);
        return r && r->record.version > n3_before->record.version;
      },
      5s, 50ms))
      << c_->log_tail(n3);
  // One more write (outside meshd's prefix), so that the compaction removes
  // the rotation's revision itself: a compaction to revision R keeps R, and
  // n7's watch resumes right after the revision it last saw.
  etcd_put("/e6-filler", std::to_string(now_ms()));
  const ds::Revision rev = etcd_revision();
  etcd_->compact(rev);
  std::printf("compacted etcd to revision %lld while n7 was stopped, %.0f ms after SIGSTOP\n",
              static_cast<long long>(rev), ms_since(stopped));
  ASSERT_LT(ms_since(stopped), 8000) << "too slow: n7's periodic resync would catch up instead of its watch";
  const std::size_t resumed = log_size(*c_, n7);
  ::kill(n7.pid, SIGCONT);
  const auto t0 = std::chrono::steady_clock::now();

  auto switched = [&](const ClusterNodes::Node& at) {
    auto peers = wg_peers(c_->uapi_socket(at));
    return peers && find_peer(*peers, new_key) && !find_peer(*peers, old_key);
  };
  EXPECT_TRUE(eventually([&] { return switched(n1); }, 30s, 100ms)) << c_->log_tail(n1);
  EXPECT_TRUE(eventually([&] { return switched(n7); }, 30s, 100ms))
      << "n7's device does not show n3's new key\n"
      << c_->log_tail(n7);
  std::printf("n7 took n3's new key %.0f ms after SIGCONT\n", ms_since(t0));
  const std::string since = log_since(*c_, n7, resumed);
  const auto compacted = since.find("etcd compacted its history past revision");
  EXPECT_NE(compacted, std::string::npos) << "n7's watch did not report the compaction\n" << c_->log_tail(n7);
  EXPECT_NE(since.find("etcd: listed the cluster at revision", compacted == std::string::npos ? 0 : compacted),
            std::string::npos)
      << "n7 did not list the cluster again after the compaction\n"
      << c_->log_tail(n7);
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n7).ns, pod_on(n3).address, 20s));
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n3).ns, pod_on(n7).address, 20s));
}

// 4. Values written straight into etcd: a newer record of n2 signed by n2
// with one signature byte flipped, and n2's valid record under n5's key.
// Every node refuses both and counts them; no device changes.
TEST_F(EtcdMode, TamperedRecordsWrittenIntoEtcdAreRefusedAndCountedOnEveryNode) {
  auto& n2 = node("n2");
  auto& n5 = node("n5");
  const auto original_2 = etcd_get(record_key(n2));
  const auto original_5 = etcd_get(record_key(n5));
  ASSERT_TRUE(original_2 && original_5);
  // A steady state to compare with.
  for (auto& n : c_->nodes())
    ASSERT_TRUE(ClusterNodes::reaches(*pod_on(n).ns, pod_on(n2).address, 20s)) << n.name;
  auto before = data_planes();
  std::map<std::string, double> bad_sig, mismatch;
  for (auto& n : c_->nodes()) {
    bad_sig[n.name] = metric(n, rejected("bad_signature"));
    mismatch[n.name] = metric(n, rejected("key_mismatch"));
  }

  // Newer than what every table holds, so that only the signature can stop
  // it (a record no newer than the held one is stale before it is verified).
  auto sv = ds::decode_signed_value(*original_2);
  ASSERT_TRUE(sv);
  auto rec = cp::decode_record(sv->body, sv->signature);
  ASSERT_TRUE(rec) << rec.error().message;
  rec->record.version = now_ms() + 60'000;
  auto forged = cp::sign_record(rec->record, ClusterNodes::identity(n2));
  forged.signature[17] ^= 0x01;
  etcd_put(record_key(n2), ds::encode_signed_value(forged.body, forged.signature));
  for (auto& n : c_->nodes())
    EXPECT_TRUE(eventually([&] { return metric(n, rejected("bad_signature")) > bad_sig[n.name]; }, 20s, 100ms))
        << n.name << " did not count the record with a flipped signature byte\n"
        << c_->log_tail(n, 10);
  etcd_put(record_key(n2), *original_2);

  etcd_put(record_key(n5), *original_2);
  for (auto& n : c_->nodes())
    EXPECT_TRUE(eventually([&] { return metric(n, rejected("key_mismatch")) > mismatch[n.name]; }, 20s, 100ms))
        << n.name << " did not count n2's record under n5's key\n"
        << c_->log_tail(n, 10);
  etcd_put(record_key(n5), *original_5);

  // Settle, then nothing changed anywhere.
  for (auto& n : c_->nodes())
    EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n).ns, pod_on(n5).address, 20s)) << n.name;
  auto after = data_planes();
  for (auto& n : c_->nodes()) EXPECT_EQ(before[n.name], after[n.name]) << n.name << "'s data plane changed";
  auto held = record_in_etcd(n2);
  ASSERT_TRUE(held);
  EXPECT_LT(held->record.version, now_ms()) << "the forged version stands in etcd";
}

// 5. A node stopped past its liveness lease keeps its CIDR: its claim and
// record stay while its alive key expires, a node joining meanwhile gets
// another CIDR, and resumed it is settled with the same CIDR, alive again.
TEST_F(EtcdMode, ANodeStoppedPastItsLeaseKeepsItsCidr) {
  auto& n1 = node("n1");
  auto& n10 = node("n10");  // lease_ttl_s = 5
  auto cidr = ClusterNodes::settled_cidr(n10);
  ASSERT_TRUE(cidr);
  ASSERT_TRUE(eventually([&] { return etcd_get(alive_key(n10)).has_value(); }, 20s, 200ms))
      << "n10 has no alive key\n"
      << c_->log_tail(n10);
  ASSERT_GT(n10.pid, 0);
  ASSERT_EQ(::kill(n10.pid, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }  // also when an assertion below fails
  } resume{n10.pid};
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return !etcd_get(alive_key(n10)).has_value(); }, 30s, 200ms))
      << "n10's alive key outlived its 5 s lease";
  std::printf("n10's alive key expired %.0f ms after SIGSTOP\n", ms_since(stopped));
  EXPECT_EQ(etcd_holds(n10), "");

  auto& n14 = add("n14", &n1);
  c_->start(n14);
  ASSERT_TRUE(c_->wait_settled(n14, 90s)) << c_->log_tail(n14);
  EXPECT_NE(ClusterNodes::settled_cidr(n14), cidr);
  EXPECT_EQ(etcd_holds(n14), "");
  EXPECT_EQ(etcd_holds(n10), "");  // still n10's while it is stopped
  EXPECT_EQ(cidrs_distinct(), "");

  ::kill(n10.pid, SIGCONT);
  EXPECT_TRUE(eventually([&] { return etcd_get(alive_key(n10)).has_value(); }, 30s, 200ms))
      << "n10's alive key did not come back\n"
      << c_->log_tail(n10);
  EXPECT_EQ(ClusterNodes::settled_cidr(n10), cidr);
  EXPECT_EQ(etcd_holds(n10), "");
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n14).ns, pod_on(n10).address, 30s));
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n10).ns, pod_on(n14).address, 30s));
}

}  // namespace
}  // namespace meshd::testing
