// Moving a running cluster from the embedded datastore to etcd and back
// (issue 13, docs/datastore.md): three real meshd nodes (userspace backend,
// pods made by meshd-cni) found and join a cluster in the default mode; a
// 3-member etcd runs on a host of the same underlay. With a 5/s pod-to-pod
// ping running both ways throughout, every meshd stops (the data planes stay),
// `meshd --migrate-to-etcd` copies one member's store into etcd, and every node
// starts with [datastore] kind = "etcd": a fourth node joins through etcd.
// Then every node stops again, goes back to the embedded mode, and a fifth
// node joins by sync. The ping loses nothing across either move. Also: a second
// migration is idempotent, and a migration into a prefix that holds another
// cluster is refused.
//
// What etcd holds is read by the harness (curl on the etcd host), and the
// reachability by pings between pods, not from meshd's account of itself.
#include "meshd/datastore/etcd_layout.h"
#include "store/cluster.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/mesh_probe.h"
#include "tests/support/prerequisite.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace meshd::testing {
namespace {

namespace ds = meshd::datastore;
namespace json = boost::json;

const std::vector<std::string> kEtcdAddresses = {"172.31.78.201", "172.31.78.202", "172.31.78.203"};
const std::string kPrefix = "/meshd/";

std::string datastore_section(const EtcdCluster& etcd, const std::string& prefix = kPrefix) {
  std::string s = "[datastore]\nkind = \"etcd\"\nendpoints = [";
  for (int i = 0; i < etcd.size(); ++i) s += (i ? ", \"" : "\"") + etcd.endpoint(i) + "\"";
  return s + "]\nprefix = \"" + prefix + "\"\n";
}

std::string cluster_id(const ClusterNodes::Node& n) {
  auto db = ClusterNodes::open_store(n);
  auto info = store::ClusterRepo(*db).get();
  if (!info || !*info) throw std::runtime_error(n.name + "'s store holds no cluster");
  return (*info)->id;
}

// `meshd --config CONFIG --migrate-to-etcd` in the node's namespace.
ProcessResult migrate(const ClusterNodes::Node& n, const std::string& config) {
  std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
  return run_process({ip, "netns", "exec", n.ns->name(), std::string(MESHD_BIN_DIR) + "/meshd", "--config", config,
                      "--migrate-to-etcd"},
                     "");
}

// `ping -D -i 0.2` from a pod for as long as the test runs; stop() ends it
// (SIGINT) and reports every probe up to the last one answered.
class LongPing {
 public:
  LongPing(const Netns& from, std::string address) : dir_("meshd-ping"), address_(std::move(address)) {
    SpawnOptions o;
    o.stdout_path = dir_.file("out");
    o.stderr_path = dir_.file("out");
    o.stdin_path = "/dev/null";
    std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
    pid_ = spawn({ip, "netns", "exec", from.name(), "ping", "-D", "-n", "-i", "0.2", "-W", "1", "-c", "100000",
                  address_},
                 o);
  }
  ~LongPing() { stop(); }
  LongPing(const LongPing&) = delete;
  LongPing& operator=(const LongPing&) = delete;
  // The probes sent before the last reply; an unanswered one among them is lost.
  PingStats stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGINT);
      wait_exit(pid_);
      pid_ = 0;
    }
    std::string out = read_file(dir_.file("out"));
    auto first = ping_stats(out, 0);
    long last = first.replies.empty() ? 0 : first.replies.rbegin()->first;
    return ping_stats(out, static_cast<int>(last));
  }
  // Replies so far.
  int replies() const { return ping_stats(read_file(dir_.file("out")), 0).received; }
  // Waits until `more` further probes are answered: the pace of a phase (a
  // paused control plane lasts a while in a real move), not an assertion.
  bool wait_replies(int more) const {
    int target = replies() + more;
    return eventually([&] { return replies() >= target; }, std::chrono::milliseconds(more * 200 + 10000), 50ms);
  }

 private:
  TempDir dir_;
  std::string address_;
  pid_t pid_ = 0;
};

std::string lost_list(const PingStats& s) {
  std::string out;
  for (long seq : s.lost_seqs) out += std::to_string(seq) + " ";
  return out;
}

class EtcdMigration : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MESHD_REQUIRE(sh("command -v wireguard-go >/dev/null") == 0, "wireguard-go (the userspace backend)");
    MESHD_REQUIRE(EtcdCluster::missing().empty(), EtcdCluster::missing());
  }

  // Every pod reaches every other pod.
  void expect_pods_reach(const std::vector<ClusterNodes::Node*>& nodes) {
    bool failed = false;
    for (auto* a : nodes)
      for (auto* b : nodes) {
        if (a == b) continue;
        bool ok = ClusterNodes::reaches(*a->pods.front().ns, b->pods.front().address, failed ? 2s : 20s);
        failed = failed || !ok;
        EXPECT_TRUE(ok) << "pod on " << a->name << " cannot reach pod " << b->pods.front().address << " on "
                        << b->name;
      }
  }
  void stop_all(ClusterNodes& c, const std::vector<ClusterNodes::Node*>& nodes) {
    for (auto* n : nodes) EXPECT_EQ(c.stop(*n), 0) << c.log_tail(*n);
  }
};

TEST_F(EtcdMigration, AClusterMovesToEtcdAndBackWithoutLosingAPing) {
  ClusterNodes c;
  Netns& host = c.add_host(kEtcdAddresses);
  EtcdCluster etcd(host, kEtcdAddresses);  // ended before the nodes' namespaces go

  // The embedded cluster: na founds it, nb and nc join; a pod on each.
  auto& na = c.add_node("na");
  c.start(na);
  ASSERT_TRUE(c.wait_settled(na)) << c.log_tail(na);
  std::vector<ClusterNodes::Node*> nodes{&na};
  for (const char* name : {"nb", "nc"}) {
    auto& n = c.add_node(name, &na);
    c.write_token(n, ClusterNodes::create_token(na));
    c.start(n);
    ASSERT_TRUE(c.wait_log(n, "joined cluster", 60s)) << c.log_tail(n);
    ASSERT_TRUE(c.wait_settled(n)) << c.log_tail(n);
    nodes.push_back(&n);
  }
  auto& nb = c.node("nb");
  auto& nc = c.node("nc");
  for (auto* n : nodes) c.add_pod(*n);
  expect_pods_reach(nodes);
  ASSERT_FALSE(HasFailure());

  LongPing ab(*na.pods.front().ns, nb.pods.front().address);
  LongPing ba(*nb.pods.front().ns, na.pods.front().address);
  ASSERT_TRUE(ab.wait_replies(5));

  // --- to etcd: stop every meshd, switch every config, copy one store.
  stop_all(c, nodes);
  // The control plane stays paused a while: the data planes carry on alone.
  EXPECT_TRUE(ab.wait_replies(10)) << "no replies while every meshd is stopped";
  for (auto* n : nodes) {
    n->extra_config = datastore_section(etcd);
    c.write_config(*n);
  }
  const std::string cid = cluster_id(na);
  auto moved = migrate(nb, nb.config_path());
  ASSERT_EQ(moved.exit_code, 0) << moved.out << moved.err;
  EXPECT_NE(moved.out.find("copied cluster " + cid + " to etcd prefix " + kPrefix + ": 3 records"),
            std::string::npos)
      << moved.out;
  EXPECT_NE(moved.out.find("3 CIDR claims"), std::string::npos) << moved.out;

  auto held = etcd.contents(kPrefix);
  EXPECT_EQ(held[kPrefix + "cluster"], cid);
  EXPECT_TRUE(held.count(ds::params_key(kPrefix, cid))) << "no params key";
  for (auto* n : nodes) {
    auto id = ClusterNodes::identity(*n).public_key();
    EXPECT_TRUE(held.count(ds::record_key(kPrefix, cid, id))) << n->name << "'s record is not in etcd";
    auto cidr = ClusterNodes::settled_cidr(*n);
    ASSERT_TRUE(cidr) << n->name;
    auto claim_at = held.find(ds::subnet_key(kPrefix, cid, *cidr));
    ASSERT_NE(claim_at, held.end()) << "no claim on " << n->name << "'s " << cidr->to_string();
    auto claim = ds::decode_claim(claim_at->second);
    ASSERT_TRUE(claim) << claim.error().message;
    EXPECT_EQ(claim->identity, id) << "the claim on " << cidr->to_string() << " is not " << n->name << "'s";
    EXPECT_EQ(claim->name, n->name);
  }

  // A second run changes nothing and says so.
  auto again = migrate(nb, nb.config_path());
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("is in etcd already"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("0 records (3 newer ones kept), 0 tombstones, 0 CIDR claims"), std::string::npos)
      << again.out;
  EXPECT_EQ(etcd.contents(kPrefix), held) << "a second migration changed what etcd holds";

  // A prefix that holds another cluster refuses the move, naming both.
  auto put = etcd.call_any("/v3/kv/put", R"({"key":")" + EtcdCluster::base64("/other/cluster") +
                                             R"(","value":")" + EtcdCluster::base64("another-cluster") + R"("})");
  ASSERT_EQ(put.status, 200) << put.body;
  const std::string other_config = na.dir + "/other-prefix.toml";
  {
    std::string cfg = read_file(na.config_path());
    const std::string from = "prefix = \"" + kPrefix + "\"";
    cfg.replace(cfg.find(from), from.size(), "prefix = \"/other/\"");
    write_file(other_config, cfg);
  }
  auto refused = migrate(na, other_config);
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("etcd prefix /other/ already holds cluster another-cluster, not " + cid),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(etcd.contents("/other/").size(), 1u) << "the refused migration wrote under /other/";

  // Every node starts in etcd mode: it lists the cluster there, and its
  // CIDR stays its own.
  for (auto* n : nodes) c.start(*n);
  for (auto* n : nodes) {
    EXPECT_TRUE(c.wait_log(*n, "etcd: listed the cluster at revision", 30s)) << c.log_tail(*n);
    EXPECT_TRUE(c.wait_settled(*n)) << c.log_tail(*n);
  }
  ASSERT_FALSE(HasFailure());

  // A fourth node joins through a member, which claims its CIDR in etcd.
  auto& nd = c.add_node("nd", &nc);
  nd.extra_config = datastore_section(etcd);
  c.write_config(nd);
  c.write_token(nd, ClusterNodes::create_token(nc));
  c.start(nd);
  ASSERT_TRUE(c.wait_log(nd, "joined cluster", 60s)) << c.log_tail(nd);
  ASSERT_TRUE(c.wait_settled(nd)) << c.log_tail(nd);
  EXPECT_TRUE(c.wait_log(nc, "claimed " + ClusterNodes::settled_cidr(nd)->to_string() + " in etcd for nd",
                         5s))
      << c.log_tail(nc);
  {
    auto now = etcd.contents(kPrefix);
    EXPECT_TRUE(now.count(ds::record_key(kPrefix, cid, ClusterNodes::identity(nd).public_key())))
        << "nd's record is not in etcd";
    EXPECT_TRUE(now.count(ds::subnet_key(kPrefix, cid, *ClusterNodes::settled_cidr(nd))))
        << "nd's claim is not in etcd";
  }
  nodes.push_back(&nd);
  c.add_pod(nd);
  expect_pods_reach(nodes);
  ASSERT_FALSE(HasFailure());

  EXPECT_TRUE(ab.wait_replies(5));

  // --- back to embedded: stop, switch every config, start; nothing to copy.
  stop_all(c, nodes);
  EXPECT_TRUE(ab.wait_replies(10)) << "no replies while every meshd is stopped";
  for (auto* n : nodes) {
    n->extra_config.clear();
    c.write_config(*n);
  }
  for (auto* n : nodes) c.start(*n);
  for (auto* n : nodes) {
    EXPECT_TRUE(c.wait_log(*n, "(from the store)", 30s)) << c.log_tail(*n);
    EXPECT_TRUE(c.wait_settled(*n)) << c.log_tail(*n);
    EXPECT_EQ(c.log_of_this_run(*n).find("datastore: etcd at"), std::string::npos) << c.log_tail(*n);
  }
  ASSERT_FALSE(HasFailure());

  // A fifth node joins by sync through the node that joined in etcd mode.
  auto& ne = c.add_node("ne", &nd);
  c.write_token(ne, ClusterNodes::create_token(nd));
  c.start(ne);
  ASSERT_TRUE(c.wait_log(ne, "joined cluster", 60s)) << c.log_tail(ne);
  ASSERT_TRUE(c.wait_settled(ne)) << c.log_tail(ne);
  nodes.push_back(&ne);
  c.add_pod(ne);
  expect_pods_reach(nodes);
  EXPECT_TRUE(ab.wait_replies(5));

  // The ping went on through both moves without losing a probe.
  auto sab = ab.stop();
  auto sba = ba.stop();
  EXPECT_GT(sab.received, 30) << sab.output;
  EXPECT_EQ(sab.lost(), 0) << "na's pod -> nb's pod lost probes " << lost_list(sab);
  EXPECT_EQ(sba.lost(), 0) << "nb's pod -> na's pod lost probes " << lost_list(sba);
  std::printf("ping through both moves: %d and %d probes, largest gaps %.0f ms and %.0f ms\n", sab.received,
              sba.received, sab.max_gap_ms, sba.max_gap_ms);
  if (HasFailure()) std::fprintf(stderr, "%s", etcd.all_log_tails().c_str());
}

}  // namespace
}  // namespace meshd::testing
