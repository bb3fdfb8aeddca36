// The meshctl binary against meshd's own API server (meshd::api::Server and
// the real router, over a real token and event store), with the daemon's
// state faked: every command's request is one the server takes, and every
// answer one meshctl prints. Over the unix socket, and over TCP with the
// bearer token from a file.
#include "meshd/api/routes.h"
#include "meshd/api/server.h"
#include "store/database.h"
#include "store/events.h"
#include "store/tokens.h"

#include "tests/support/eventually.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <future>
#include <regex>
#include <thread>

namespace {

namespace api = meshd::api;
namespace asio = boost::asio;
using meshd::testing::run_process;
using meshd::testing::TempDir;

const std::string kMeshctl = std::string(MESHD_BIN_DIR) + "/meshctl";
constexpr const char* kBearer = "meshctl-test-bearer-token";

struct FakeStatus : api::StatusSource {
  bool ready() const override { return true; }
  api::StatusSnapshot status() const override {
    api::StatusSnapshot s;
    s.backend = "userspace";
    s.backend_reason = "configured";
    s.interface = "meshd0";
    s.mtu = 1420;
    s.public_key = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
    s.pod_cidr = "10.244.1.0/24";
    s.pod_cidr_settled = true;
    s.cluster_id = "c0ffee";
    s.peer_count = 2;
    s.route_count = 2;
    s.in_sync = in_sync;
    if (!in_sync) s.errors = {"route 10.244.3.0/24 dev meshd0 not installed"};
    s.peers_reachable = 1;
    s.cni_leases_in_use = 4;
    s.cni_leases_free = 249;
    s.reconcile.last_at_ms = 1800000000000;
    s.reconcile.last_duration_seconds = 0.5;
    s.reconcile.passes = 7;
    return s;
  }
  bool in_sync = true;
};

api::NodeSnapshot node(std::string name, std::string cidr, std::string endpoint, bool self,
                       std::optional<double> age, bool reachable) {
  api::NodeSnapshot n;
  n.name = std::move(name);
  n.identity = "aWRlbnRpdHk=";
  n.public_key = "cHVibGljIGtleQ==";
  n.endpoints = {std::move(endpoint)};
  n.pod_cidr = std::move(cidr);
  n.version = 1;
  n.admitted_at_ms = 1800000000000;
  n.self = self;
  if (!self) n.stats = {.last_handshake_age_seconds = age, .rx_bytes = 1468006, .tx_bytes = 300,
                        .reachable = reachable};
  return n;
}

// With `lifecycle`: liveness for every node, gamma silent, and gamma
// removable once (then a tombstone, listed last by meshctl); a rotation
// starts once and is then in progress. Used on the server's thread only
// while meshctl runs.
struct FakeCluster : api::ClusterSource {
  std::optional<api::ClusterSnapshot> cluster() const override {
    api::ClusterSnapshot c{"c0ffee", "10.244.0.0/16", 24, "192.0.2.1:7946", true};
    if (this_node_removed) {
      c.removed = true;
      c.removed_by = "beta";
      c.removed_at_ms = 1800000030000;
      c.removal_reason = "decommissioned";
    }
    return c;
  }
  std::vector<api::NodeSnapshot> nodes() const override {
    std::vector<api::NodeSnapshot> out{
        node("alpha", "10.244.1.0/24", "192.0.2.1:51820", true, std::nullopt, false),
        node("beta", "10.244.2.0/24", "192.0.2.2:51820", false, 12, true),
        node("gamma", "10.244.3.0/24", "192.0.2.3:51820", false, std::nullopt, false)};
    if (!lifecycle) return out;
    out[0].liveness = "self";
    out[1].liveness = "alive";
    out[1].last_seen_age_seconds = 3;
    out[2].liveness = "silent";
    out[2].last_seen_age_seconds = 400;
    if (gamma_removed) {
      out[2].liveness = "removed";
      out[2].removed = true;
      out[2].removed_by = "alpha";
      out[2].removed_at_ms = 1800000030000;
      out[2].endpoints.clear();
      out[2].stats = {};
    }
    return out;
  }
  api::ControlPlaneCounters counters() const override { return {}; }
  meshd::Result<api::RemovalResult> remove_node(const std::string& name) override {
    if (!lifecycle || (name != "gamma" && name != "aWRlbnRpdHk/Z2FtbWE="))
      return meshd::fail(ENOENT, "remove node " + name);
    if (gamma_removed) return meshd::fail(EALREADY, "remove node " + name);
    gamma_removed = true;
    return api::RemovalResult{"gamma", "aWRlbnRpdHk/Z2FtbWE=", "10.244.3.0/24", 1800000030000};
  }
  meshd::Result<api::RotationResult> rotate_key() override {
    if (!lifecycle) return meshd::fail(EAGAIN, "rotate the key");
    if (rotating) return meshd::fail(EBUSY, "rotate the key");
    rotating = true;
    return api::RotationResult{"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
                               "bmV3IGtleSBvZiBub2RlIGEgaW4gYmFzZTY0IGZvcm0=", 4102444800000};
  }
  bool lifecycle = false, gamma_removed = false, rotating = false, this_node_removed = false;
};

class MeshctlAgainstApiServer : public ::testing::Test {
 protected:
  MeshctlAgainstApiServer()
      : db_(meshd::store::DatabaseOptions{.path = dir_.file("meshd.db")}),
        tokens_(db_),
        events_(db_),
        router_(api::make_router(
            {.status = &status_, .tokens = &tokens_, .cluster = &cluster_, .events = &events_})),
        guard_(asio::make_work_guard(ioc_)) {}

  void start() {
    api::ServerOptions o;
    o.unix_socket = socket_;
    o.tcp = meshd::Endpoint{meshd::IpAddress::v4(127, 0, 0, 1), 0};
    o.bearer_token = kBearer;
    server_.emplace(ioc_, std::move(o), router_);
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~MeshctlAgainstApiServer() override {
    if (thread_.joinable()) {
      std::promise<void> closed;
      asio::post(ioc_, [&] {
        server_->close();
        closed.set_value();
      });
      closed.get_future().wait();
      guard_.reset();
      ioc_.stop();
      thread_.join();
    }
  }

  meshd::testing::ProcessResult meshctl(std::vector<std::string> args) {
    std::vector<std::string> argv{kMeshctl, "--socket", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, "");
  }

  TempDir dir_{"meshctl-api"};
  std::string socket_ = dir_.file("meshd.sock");
  meshd::store::Database db_;
  meshd::store::TokenRepo tokens_;
  meshd::store::EventRepo events_;
  FakeStatus status_;
  FakeCluster cluster_;
  api::Router router_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::optional<api::Server> server_;
  std::thread thread_;
};

TEST_F(MeshctlAgainstApiServer, StatusNodesNodeAndGraph) {
  start();
  auto st = meshctl({"status"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  for (const char* line : {"backend:    userspace (configured)\n", "peers:      2 (1 reachable)\n",
                           "routes:     2\n", "in sync:    yes\n", "cni leases: 4 in use, 249 free\n",
                           "cluster:    c0ffee\n", "passes:     7 (0 failed)\n"})
    EXPECT_NE(st.out.find(line), std::string::npos) << line << st.out;

  auto nodes = meshctl({"nodes"});
  EXPECT_EQ(nodes.exit_code, 0) << nodes.err;
  EXPECT_EQ(nodes.out,
            "NAME   ENDPOINTS        POD CIDR       HANDSHAKE  RX       TX     LIVENESS  LAST SEEN  STATE\n"
            "alpha  192.0.2.1:51820  10.244.1.0/24  -          -        -      -         -          self\n"
            "beta   192.0.2.2:51820  10.244.2.0/24  12s        1.4 MiB  300 B  -         -          reachable\n"
            "gamma  192.0.2.3:51820  10.244.3.0/24  -          1.4 MiB  300 B  -         -          unreachable\n");

  auto one = meshctl({"node", "beta"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("handshake:  12s ago\n"), std::string::npos) << one.out;
  auto missing = meshctl({"node", "delta"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err,
            "meshctl: this node holds no record of a node by that name (node_not_found, HTTP 404)\n");

  auto graph = meshctl({"graph"});
  EXPECT_EQ(graph.exit_code, 0) << graph.err;
  EXPECT_NE(graph.out.find("\"alpha\" -> \"beta\" [color=green"), std::string::npos) << graph.out;
  EXPECT_NE(graph.out.find("\"alpha\" -> \"gamma\" [color=red"), std::string::npos) << graph.out;

  // --json is the server's answer, byte for byte.
  auto json = meshctl({"nodes", "--json"});
  auto direct = router_.handle({"GET", "/v1/nodes", {}, ""});
  EXPECT_EQ(json.out, direct.body + "\n");
}

TEST_F(MeshctlAgainstApiServer, NotInSyncExitsThree) {
  status_.in_sync = false;
  start();
  auto st = meshctl({"status"});
  EXPECT_EQ(st.exit_code, 3);
  EXPECT_NE(st.out.find("error:      route 10.244.3.0/24 dev meshd0 not installed\n"), std::string::npos)
      << st.out;
}

// node remove (by name and by an identity with '/' in it), key rotate, the
// nodes table with liveness and the tombstone last, and the errors each gives.
TEST_F(MeshctlAgainstApiServer, NodeRemoveKeyRotateAndLiveness) {
  cluster_.lifecycle = true;
  start();
  auto before = meshctl({"nodes"});
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(before.out,
            "NAME   ENDPOINTS        POD CIDR       HANDSHAKE  RX       TX     LIVENESS  LAST SEEN  STATE\n"
            "alpha  192.0.2.1:51820  10.244.1.0/24  -          -        -      self      -          self\n"
            "beta   192.0.2.2:51820  10.244.2.0/24  12s        1.4 MiB  300 B  alive     3s         reachable\n"
            "gamma  192.0.2.3:51820  10.244.3.0/24  -          1.4 MiB  300 B  silent    6m         unreachable\n");
  auto graph = meshctl({"graph"});
  EXPECT_NE(graph.out.find("\"alpha\" -> \"gamma\" [color=red, label=\"never\", style=dashed]"),
            std::string::npos) << graph.out;

  auto removed = meshctl({"node", "remove", "aWRlbnRpdHk/Z2FtbWE="});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(removed.out,
            "node gamma removed at 2027-01-15 08:00:30Z: identity aWRlbnRpdHk/Z2FtbWE=, pod CIDR "
            "10.244.3.0/24\n");
  auto again = meshctl({"node", "remove", "gamma"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(again.err, "meshctl: that node has already been removed (already_removed, HTTP 409)\n");
  auto unknown = meshctl({"node", "remove", "omega"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("(node_not_found, HTTP 404)"), std::string::npos) << unknown.err;

  auto after = meshctl({"nodes"});
  EXPECT_EQ(after.out,
            "NAME   ENDPOINTS        POD CIDR       HANDSHAKE  RX       TX     LIVENESS  LAST SEEN  STATE\n"
            "alpha  192.0.2.1:51820  10.244.1.0/24  -          -        -      self      -          self\n"
            "beta   192.0.2.2:51820  10.244.2.0/24  12s        1.4 MiB  300 B  alive     3s         reachable\n"
            "gamma  -                10.244.3.0/24  -          -        -      removed   -          removed by alpha at 2027-01-15 08:00:30Z\n");
  graph = meshctl({"graph"});
  EXPECT_EQ(graph.out.find("gamma"), std::string::npos) << "a removed node is not drawn\n" << graph.out;

  auto rotated = meshctl({"key", "rotate"});
  EXPECT_EQ(rotated.exit_code, 0) << rotated.err;
  EXPECT_EQ(rotated.out.substr(0, rotated.out.find("(")),
            "rotation:   HIgo9xNz -> bmV3IGtl\nswitch at:  2100-01-01 00:00:00Z ");
  auto busy = meshctl({"key", "rotate", "--json"});
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_EQ(busy.out, "");
  EXPECT_NE(busy.err.find("(rotation_in_progress, HTTP 409)"), std::string::npos) << busy.err;
}

// A node removed from the cluster: status says by whom, when, why, and
// exits 4, with --json too.
TEST_F(MeshctlAgainstApiServer, StatusOfARemovedNodeExitsFour) {
  cluster_.this_node_removed = true;
  start();
  auto st = meshctl({"status"});
  EXPECT_EQ(st.exit_code, 4) << st.err;
  EXPECT_EQ(st.out.rfind("removed:    this node was removed from the cluster by beta at "
                         "2027-01-15 08:00:30Z (",
                         0),
            0u)
      << st.out;
  EXPECT_NE(st.out.find("reason:     decommissioned\n"), std::string::npos) << st.out;
  auto json = meshctl({"status", "--json"});
  EXPECT_EQ(json.exit_code, 4);
  EXPECT_NE(json.out.find(R"("removed":{"by":"beta","at_ms":1800000030000,"reason":"decommissioned"})"),
            std::string::npos) << json.out;
  // Removal and rotation from a removed node: 503, exit 1.
  auto rot = meshctl({"key", "rotate"});
  EXPECT_EQ(rot.exit_code, 1);
  EXPECT_NE(rot.err.find("(not_a_member, HTTP 503)"), std::string::npos) << rot.err;
}

TEST_F(MeshctlAgainstApiServer, TokenCreateListRevoke) {
  start();
  auto created = meshctl({"token", "create", "--ttl", "2h", "--uses", "3", "--description", "rack 4"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(created.out, m, std::regex("token:      (([a-z0-9]{6})\\.[^\n]+)\n")))
      << created.out;
  const std::string token = m[1], id = m[2];
  EXPECT_NE(created.out.find("uses:       3\n"), std::string::npos) << created.out;
  EXPECT_NE(created.out.find("(in 2h)"), std::string::npos) << created.out;
  EXPECT_NE(created.out.find("join target: 192.0.2.1:7946\n"), std::string::npos) << created.out;
  EXPECT_NE(created.out.find("[join]\ntarget = \"192.0.2.1:7946\"\n"), std::string::npos) << created.out;

  auto list = meshctl({"token", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(id + "  active"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("rack 4"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find(token), std::string::npos) << "the secret is shown once";

  auto revoked = meshctl({"token", "revoke", id});
  EXPECT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(revoked.out, "token " + id + " revoked\n");
  EXPECT_NE(meshctl({"token", "list"}).out.find(id + "  revoked"), std::string::npos);
  auto unknown = meshctl({"token", "revoke", "zzzzzz"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("(token_not_found, HTTP 404)"), std::string::npos) << unknown.err;
}

TEST_F(MeshctlAgainstApiServer, EventsAfterTheCursor) {
  ASSERT_TRUE(events_.append(1800000000, "node-joined", "beta", "admitted with 10.244.2.0/24"));
  ASSERT_TRUE(events_.append(1800000060, "node-joined", "gamma", "admitted with 10.244.3.0/24"));
  start();
  auto all = meshctl({"events"});
  EXPECT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(all.out,
            "#1  2027-01-15 08:00:00Z  node-joined  beta  admitted with 10.244.2.0/24\n"
            "#2  2027-01-15 08:01:00Z  node-joined  gamma  admitted with 10.244.3.0/24\n");
  auto later = meshctl({"events", "--since", "1"});
  EXPECT_EQ(later.out, "#2  2027-01-15 08:01:00Z  node-joined  gamma  admitted with 10.244.3.0/24\n");
}

// events -f holds a long poll open on the server (wait=30) and prints an
// event appended while it waits.
TEST_F(MeshctlAgainstApiServer, EventsFollowPrintsAnEventAppendedDuringTheLongPoll) {
  ASSERT_TRUE(events_.append(1800000000, "node-joined", "beta", "first"));
  start();
  std::string out = dir_.file("follow.out");
  pid_t pid = meshd::testing::spawn({kMeshctl, "--socket", socket_, "events", "-f"},
                                    {.stdout_path = out, .stderr_path = dir_.file("follow.err")});
  auto printed = [&](const std::string& text) {
    return meshd::testing::eventually(
        [&] { return meshd::testing::read_file(out).find(text) != std::string::npos; });
  };
  bool first = printed("#1  2027-01-15 08:00:00Z  node-joined  beta  first\n");
  // Appended on the server's loop, where the store is used.
  std::promise<bool> appended;
  asio::post(ioc_, [&] { appended.set_value(bool(events_.append(1800000060, "node-removed", "gamma", "second"))); });
  bool second_stored = appended.get_future().get();
  bool second = printed("#2  2027-01-15 08:01:00Z  node-removed  gamma  second\n");
  ::kill(pid, SIGTERM);
  meshd::testing::wait_exit(pid);
  EXPECT_TRUE(first) << meshd::testing::read_file(out);
  EXPECT_TRUE(second_stored);
  EXPECT_TRUE(second) << meshd::testing::read_file(out) << meshd::testing::read_file(dir_.file("follow.err"));
}

TEST_F(MeshctlAgainstApiServer, TcpNeedsTheBearerTokenFromTheFile) {
  start();
  std::string url = "http://127.0.0.1:" + std::to_string(server_->tcp_endpoint()->port);
  std::string token_file = dir_.file("api-token");
  meshd::testing::write_file(token_file, std::string(kBearer) + "\n");
  ASSERT_EQ(::chmod(token_file.c_str(), 0600), 0);
  auto ok = run_process({kMeshctl, "--server", url, "--token-file", token_file, "status"}, "");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("in sync:    yes\n"), std::string::npos) << ok.out;
  auto without = run_process({kMeshctl, "--server", url, "status"}, "");
  EXPECT_EQ(without.exit_code, 1);
  EXPECT_NE(without.err.find("(unauthorized, HTTP 401)"), std::string::npos) << without.err;
  EXPECT_EQ(std::count(without.err.begin(), without.err.end(), '\n'), 1) << without.err;
}

}  // namespace
