// The meshctl binary against a small API server in the test: what each
// command sends, what it prints, and its exit status.
#include "tests/support/prerequisite.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/meshctl/test_server.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

namespace {

using namespace std::chrono_literals;
using meshd::testing::CannedAnswer;
using meshd::testing::run_process;
using meshd::testing::SeenRequest;
using meshd::testing::TempDir;
using meshd::testing::TestServer;

const std::string kMeshctl = std::string(MESHD_BIN_DIR) + "/meshctl";

class MeshctlCli : public ::testing::Test {
 protected:
  // Serves `h` on a unix socket; run() points meshctl at it.
  void serve(TestServer::Handler h) { server_ = TestServer::on_unix(socket_, std::move(h)); }
  void serve_fixed(int status, std::string body) {
    serve([status, body](const SeenRequest&) { return CannedAnswer{status, body}; });
  }
  meshd::testing::ProcessResult run(std::vector<std::string> args) {
    std::vector<std::string> argv{kMeshctl, "--socket", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, "");
  }
  std::vector<SeenRequest> seen() const { return server_->seen(); }

  TempDir dir_{"meshctl-cli"};
  std::string socket_ = dir_.file("meshd.sock");
  std::unique_ptr<TestServer> server_;
};

TEST_F(MeshctlCli, DaemonNotRunningIsOneLine) {
  auto r = run({"status"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: cannot reach meshd at " + socket_ +
                       ": No such file or directory (is meshd running?)\n");
  // The default socket is the daemon's: /run/meshd/meshd.sock.
  auto h = run_process({kMeshctl, "--help"}, "");
  EXPECT_NE(h.out.find("/run/meshd/meshd.sock"), std::string::npos) << h.out;
}

TEST_F(MeshctlCli, StatusPrintsAndExitsZeroWhenInSyncThreeWhenNot) {
  serve_fixed(200, meshd::testing::kStatusJson);
  auto r = run({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("backend:    kernel (auto: kernel WireGuard is available)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peers:      3 (2 reachable)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("in sync:    yes\n"), std::string::npos) << r.out;
  ASSERT_EQ(seen().size(), 1u);
  EXPECT_EQ(seen()[0].method, "GET");
  EXPECT_EQ(seen()[0].target, "/v1/status");

  server_.reset();
  const std::string out_of_sync =
      R"({"backend":"kernel","in_sync":false,"errors":["boom"],"last_reconcile":{"at_ms":1,"duration_seconds":0.1,"error":"boom"}})";
  serve_fixed(200, out_of_sync);
  r = run({"status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.out.find("in sync:    no\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("error:      boom\n"), std::string::npos) << r.out;
  // --json prints the answer as it is, with the same exit status.
  r = run({"status", "--json"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, out_of_sync + "\n");
}

// --runtime-dir DIR is the socket meshd makes there by default.
TEST_F(MeshctlCli, RuntimeDirNamesTheDefaultSocketInIt) {
  serve_fixed(200, meshd::testing::kStatusJson);
  auto r = run_process({kMeshctl, "status", "--runtime-dir", dir_.path()}, "");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(seen().size(), 1u);
  auto missing = run_process({kMeshctl, "status", "--runtime-dir", "/nonexistent"}, "");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err,
            "meshctl: cannot reach meshd at /nonexistent/meshd.sock: No such file or directory (is meshd "
            "running?)\n");
  auto both = run_process({kMeshctl, "status", "--runtime-dir", dir_.path(), "--socket", socket_}, "");
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_EQ(seen().size(), 1u);
}

TEST_F(MeshctlCli, GlobalOptionsComeBeforeOrAfterTheCommand) {
  serve_fixed(200, meshd::testing::kNodesJson);
  auto before = run_process({kMeshctl, "--json", "--socket", socket_, "nodes"}, "");
  auto after = run_process({kMeshctl, "nodes", "--socket", socket_, "--json"}, "");
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(before.out, std::string(meshd::testing::kNodesJson) + "\n");
  EXPECT_EQ(after.out, before.out);
}

TEST_F(MeshctlCli, NodesTableAndOneNode) {
  serve([](const SeenRequest& s) {
    if (s.target == "/v1/nodes") return CannedAnswer{200, meshd::testing::kNodesJson};
    if (s.target == "/v1/nodes/node-b")
      return CannedAnswer{200, R"({"name":"node-b","pod_cidr":"10.244.2.0/24","stats":{"reachable":true}})"};
    return CannedAnswer{404, R"({"error":"node_not_found","message":"no node is named that"})"};
  });
  auto r = run({"nodes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "NAME    ENDPOINTS                            POD CIDR       HANDSHAKE  RX       TX       LIVENESS  LAST SEEN  STATE");
  EXPECT_NE(r.out.find("1.4 MiB"), std::string::npos) << r.out;
  r = run({"node", "node-b"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("name:       node-b\nstate:      reachable\n"), std::string::npos) << r.out;
  // A name is one path segment, whatever it holds.
  r = run({"node", "../tokens"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: no node is named that (node_not_found, HTTP 404)\n");
  EXPECT_EQ(seen().back().target, "/v1/nodes/..%2Ftokens");
}

// `node remove NAME` sends DELETE with the name (or identity) as one
// percent-encoded segment and prints what was removed; `node NAME` still
// shows one; a node named "remove" is shown after `--`.
TEST_F(MeshctlCli, NodeRemoveSendsDeleteAndPrintsWhatWasRemoved) {
  const std::string removed =
      R"({"removed":{"name":"node-b","identity":"aWQvYis=","pod_cidr":"10.244.2.0/24","removed_at_ms":1800000030000}})";
  serve([removed](const SeenRequest& s) {
    if (s.method == "DELETE" && s.target == "/v1/nodes/node-b") return CannedAnswer{200, removed};
    if (s.method == "DELETE" && s.target == "/v1/nodes/aWQvYis%3D") return CannedAnswer{200, removed};
    if (s.method == "DELETE" && s.target == "/v1/nodes/node-c")
      return CannedAnswer{409, R"({"error":"already_removed","message":"that node has already been removed"})"};
    if (s.method == "DELETE")
      return CannedAnswer{503, R"({"error":"not_a_member","message":"this node was removed from the cluster, so it cannot remove nodes"})"};
    return CannedAnswer{200, R"({"name":"remove","stats":{"reachable":true}})"};
  });
  auto r = run({"node", "remove", "node-b"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "node node-b removed at 2027-01-15 08:00:30Z: identity aWQvYis=, pod CIDR 10.244.2.0/24\n");
  ASSERT_EQ(seen().size(), 1u);
  EXPECT_EQ(seen()[0].method, "DELETE");
  EXPECT_EQ(seen()[0].body, "");
  r = run({"node", "remove", "aWQvYis="});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(seen().back().target, "/v1/nodes/aWQvYis%3D");
  r = run({"node", "remove", "node-b", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, removed + "\n");
  r = run({"node", "remove", "node-c"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "meshctl: that node has already been removed (already_removed, HTTP 409)\n");
  r = run({"node", "remove", "node-x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("(not_a_member, HTTP 503)"), std::string::npos) << r.err;
  // Usage errors, nothing sent.
  std::size_t sent = seen().size();
  EXPECT_EQ(run({"node", "remove"}).exit_code, 1);
  auto bare = run({"node"});
  EXPECT_EQ(bare.exit_code, 1);
  EXPECT_NE(bare.err.find("NAME is required"), std::string::npos) << bare.err;
  EXPECT_EQ(seen().size(), sent);
  r = run({"node", "--", "remove"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(seen().back().method, "GET");
  EXPECT_EQ(seen().back().target, "/v1/nodes/remove");
}

TEST_F(MeshctlCli, KeyRotatePostsAndPrintsOldAndNewKeyIdsAndTheSwitch) {
  const std::string rotation =
      R"({"previous_public_key":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",)"
      R"("public_key":"bmV3IGtleSBvZiBub2RlIGEgaW4gYmFzZTY0IGZvcm0=","switch_at_ms":1800000065000})";
  int calls = 0;
  serve([&calls, rotation](const SeenRequest&) {
    if (++calls <= 2) return CannedAnswer{202, rotation};
    return CannedAnswer{409, R"({"error":"rotation_in_progress","message":"a key rotation is already in progress"})"};
  });
  auto r = run({"key", "rotate"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find(" (")),
            "rotation:   HIgo9xNz -> bmV3IGtl\nswitch at:  2027-01-15 08:01:05Z");
  ASSERT_EQ(seen().size(), 1u);
  EXPECT_EQ(seen()[0].method, "POST");
  EXPECT_EQ(seen()[0].target, "/v1/key/rotate");
  EXPECT_EQ(seen()[0].body, "");
  r = run({"key", "rotate", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, rotation + "\n");
  r = run({"key", "rotate"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: a key rotation is already in progress (rotation_in_progress, HTTP 409)\n");
  EXPECT_EQ(run({"key"}).exit_code, 1);
  EXPECT_EQ(run({"key", "rotate", "now"}).exit_code, 1);
  EXPECT_EQ(seen().size(), 3u);
}

TEST_F(MeshctlCli, StatusOfARemovedNodeExitsFourBeforeThree) {
  serve_fixed(200, meshd::testing::kRemovedStatusJson);
  auto r = run({"status"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(r.out.rfind("removed:    this node was removed from the cluster by node-a at 2027-01-15 08:00:30Z (", 0), 0u)
      << r.out;
  EXPECT_NE(r.out.find("reason:     decommissioned\n"), std::string::npos) << r.out;
  r = run({"status", "--json"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, std::string(meshd::testing::kRemovedStatusJson) + "\n");
  // Removed and out of sync: removed wins (no pass can repair a removal).
  server_.reset();
  std::string both = meshd::testing::kRemovedStatusJson;
  both.replace(both.find("\"in_sync\":true"), 14, "\"in_sync\":false");
  serve_fixed(200, both);
  EXPECT_EQ(run({"status"}).exit_code, 4);
}

TEST_F(MeshctlCli, TokenCreateSendsTheFieldsGivenAndPrintsTheSecretOnce) {
  serve_fixed(201,
              R"({"id":"k3x9qa","token":"k3x9qa.8f2mz0c1r7vd4hqe","description":"rack 4","created_at":1,)"
              R"("expires_at":3601,"uses_left":2,"join_target":"192.0.2.1:7946",)"
              R"("config":"[join]\ntarget = \"192.0.2.1:7946\"\ntoken_file = \"/etc/meshd/join-token\"\n"})");
  auto r = run({"token", "create", "--ttl", "1h", "--uses", "2", "--description", "rack 4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(seen().size(), 1u);
  EXPECT_EQ(seen()[0].method, "POST");
  EXPECT_EQ(seen()[0].target, "/v1/tokens");
  EXPECT_EQ(seen()[0].content_type, "application/json");
  EXPECT_EQ(seen()[0].body, R"({"ttl_seconds":3600,"uses":2,"description":"rack 4"})");
  EXPECT_NE(r.out.find("token:      k3x9qa.8f2mz0c1r7vd4hqe\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("token_file = \"/etc/meshd/join-token\"\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");

  // Nothing given: an empty object, the server's defaults.
  r = run({"token", "create"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(seen().back().body, "{}");
  r = run({"token", "create", "--ttl", "0"});
  EXPECT_EQ(seen().back().body, R"({"ttl_seconds":0})");

  // Refused before anything is sent.
  std::size_t sent = seen().size();
  r = run({"token", "create", "--ttl", "tomorrow"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--ttl tomorrow: not a duration"), std::string::npos) << r.err;
  r = run({"token", "create", "--uses", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(seen().size(), sent);
}

TEST_F(MeshctlCli, TokenListAndRevoke) {
  serve([](const SeenRequest& s) {
    if (s.method == "GET")
      return CannedAnswer{200, R"({"tokens":[{"id":"k3x9qa","state":"active","expires_at":null,"uses_left":null,"last_used_at":null,"description":"d"}]})"};
    if (s.target == "/v1/tokens/k3x9qa") return CannedAnswer{204, ""};
    return CannedAnswer{400, R"({"error":"invalid_value","message":"a token id is 6 characters of [a-z0-9]"})"};
  });
  auto r = run({"token", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID      STATE   EXPIRES  USES LEFT  LAST USED  DESCRIPTION\n"
            "k3x9qa  active  never    unlimited  never      d\n");
  r = run({"token", "revoke", "k3x9qa"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "token k3x9qa revoked\n");
  EXPECT_EQ(seen().back().method, "DELETE");
  r = run({"token", "revoke", "bad id"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "meshctl: a token id is 6 characters of [a-z0-9] (invalid_value, HTTP 400)\n");
  EXPECT_EQ(seen().back().target, "/v1/tokens/bad%20id");
  // `token` alone is a usage error, exit 1 as every error.
  r = run({"token"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(run({"token", "create", "--uses", "x"}).exit_code, 1);
}

TEST_F(MeshctlCli, EventsFollowLongPollsFromTheCursor) {
  int calls = 0;
  serve([&calls](const SeenRequest&) {
    switch (++calls) {
      case 1:
        return CannedAnswer{200, R"({"events":[{"id":4,"at":1800000000,"kind":"node-joined","node":"node-b","message":"hello"}],"next":4})"};
      case 2:
        return CannedAnswer{200, R"({"events":[],"next":4})"};
      case 3:
        return CannedAnswer{200, R"({"events":[{"id":9,"at":1800000060,"kind":"node-removed","node":"node-c","message":"bye"}],"next":9})"};
      default:  // ends the loop
        return CannedAnswer{503, R"({"error":"shutting_down","message":"meshd is stopping"})"};
    }
  });
  auto r = run({"events", "-f", "--since", "3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out,
            "#4  2027-01-15 08:00:00Z  node-joined  node-b  hello\n"
            "#9  2027-01-15 08:01:00Z  node-removed  node-c  bye\n");
  EXPECT_EQ(r.err, "meshctl: meshd is stopping (shutting_down, HTTP 503)\n");
  auto s = seen();
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].target, "/v1/events?since=3");
  EXPECT_EQ(s[1].target, "/v1/events?since=4&wait=30");
  EXPECT_EQ(s[2].target, "/v1/events?since=4&wait=30");
  EXPECT_EQ(s[3].target, "/v1/events?since=9&wait=30");
}

TEST_F(MeshctlCli, EventsWithoutFollowIsOnePage) {
  serve_fixed(200, R"({"events":[],"next":0})");
  auto r = run({"events"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  ASSERT_EQ(seen().size(), 1u);
  EXPECT_EQ(seen()[0].target, "/v1/events?since=0");
}

TEST_F(MeshctlCli, EventsFollowWithJsonPrintsOneDocumentPerNonEmptyAnswer) {
  int calls = 0;
  serve([&calls](const SeenRequest&) {
    switch (++calls) {
      case 1: return CannedAnswer{200, R"({"events":[{"id":1}],"next":1})"};
      case 2: return CannedAnswer{200, R"({"events":[],"next":1})"};
      default: return CannedAnswer{503, R"({"error":"shutting_down","message":"meshd is stopping"})"};
    }
  });
  auto r = run({"events", "-f", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "{\"events\":[{\"id\":1}],\"next\":1}\n");
  EXPECT_EQ(calls, 3);
}

// The socket's mode decides who manages meshd: a user who may not connect is
// told so, not asked whether meshd runs.
TEST_F(MeshctlCli, PermissionDeniedOnTheSocketSaysWhoMayManage) {
  MESHD_REQUIRE(::geteuid() == 0, "root, to run meshctl as another user");
  MESHD_REQUIRE(::access("/usr/bin/setpriv", X_OK) == 0, "setpriv (util-linux) not installed");
  serve_fixed(200, meshd::testing::kStatusJson);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  ASSERT_EQ(::chmod(socket_.c_str(), 0600), 0);
  auto r = run_process({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kMeshctl,
                        "--socket", socket_, "status"},
                       "");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "meshctl: cannot reach meshd at " + socket_ +
                       ": Permission denied (the socket's mode and group decide who may manage "
                       "meshd: run as root or as a member of that group)\n");
  EXPECT_TRUE(seen().empty());
}

TEST_F(MeshctlCli, GraphPrintsDot) {
  serve_fixed(200, meshd::testing::kNodesJson);
  auto r = run({"graph"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("digraph meshd {\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\"node-a\" -> \"node-b\" [color=green"), std::string::npos) << r.out;
}

TEST_F(MeshctlCli, AnAnswerThatIsNotJsonIsAnErrorNotACrash) {
  serve_fixed(200, "<html>");
  auto r = run({"nodes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("meshctl: meshd's answer to GET /v1/nodes is not JSON"), std::string::npos) << r.err;
}

TEST_F(MeshctlCli, TcpWithTokenFileAndTls) {
  MESHD_REQUIRE(::access("/usr/bin/openssl", X_OK) == 0, "openssl CLI not installed");
  TempDir pki("meshctl-pki");
  ASSERT_TRUE(meshd::testing::make_test_pki(pki.path()));
  auto server = TestServer::on_tcp(
      [](const SeenRequest& s) {
        if (s.authorization != "Bearer abc.def")
          return CannedAnswer{401, R"({"error":"unauthorized","message":"a bearer token is required"})"};
        return CannedAnswer{200, meshd::testing::kStatusJson};
      },
      TestServer::Tls{pki.file("server.crt"), pki.file("server.key")});
  std::string url = "https://localhost:" + std::to_string(server->port());
  std::string token = dir_.file("token");
  meshd::testing::write_file(token, "abc.def\n");
  ASSERT_EQ(::chmod(token.c_str(), 0600), 0);
  auto ok = run_process({kMeshctl, "status", "--server", url, "--cacert", pki.file("ca.crt"),
                         "--token-file", token},
                        "");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("in sync:    yes"), std::string::npos);
  auto no_token = run_process({kMeshctl, "status", "--server", url, "--cacert", pki.file("ca.crt")}, "");
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_EQ(no_token.err, "meshctl: a bearer token is required (unauthorized, HTTP 401)\n");
  ASSERT_EQ(::chmod(token.c_str(), 0644), 0);
  auto loose = run_process({kMeshctl, "status", "--server", url, "--cacert", pki.file("ca.crt"),
                            "--token-file", token},
                           "");
  EXPECT_EQ(loose.exit_code, 1);
  EXPECT_NE(loose.err.find("accessible by group or others (mode 0644)"), std::string::npos) << loose.err;
  EXPECT_EQ(loose.err.find("abc.def"), std::string::npos);
  auto bad_url = run_process({kMeshctl, "status", "--server", "localhost:1"}, "");
  EXPECT_EQ(bad_url.exit_code, 1);
  EXPECT_NE(bad_url.err.find("expected https://HOST:PORT"), std::string::npos) << bad_url.err;
}

TEST_F(MeshctlCli, HelpNamesEveryCommandAndOption) {
  auto h = run_process({kMeshctl, "--help"}, "");
  EXPECT_EQ(h.exit_code, 0);
  for (const char* word : {"genkey", "pubkey", "genpsk", "status", "nodes", "node", "key", "token", "events",
                           "graph", "--socket", "--runtime-dir", "--server", "--token-file", "--cacert", "--json",
                           "Exit status", "4 from `status`", "node remove NAME"})
    EXPECT_NE(h.out.find(word), std::string::npos) << word << "\n" << h.out;
  auto n = run_process({kMeshctl, "node", "--help"}, "");
  for (const char* word : {"NAME", "remove"})
    EXPECT_NE(n.out.find(word), std::string::npos) << word << "\n" << n.out;
  auto k = run_process({kMeshctl, "key", "--help"}, "");
  EXPECT_NE(k.out.find("rotate"), std::string::npos) << k.out;
  auto t = run_process({kMeshctl, "token", "create", "--help"}, "");
  for (const char* word : {"--ttl", "--uses", "--description"})
    EXPECT_NE(t.out.find(word), std::string::npos) << word << "\n" << t.out;
  auto e = run_process({kMeshctl, "events", "--help"}, "");
  for (const char* word : {"-f", "--follow", "--since"})
    EXPECT_NE(e.out.find(word), std::string::npos) << word << "\n" << e.out;
}

}  // namespace
