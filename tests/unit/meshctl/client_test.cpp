// meshctl's HTTP client against a small Beast server in the test: unix
// socket, TCP with a bearer token, TLS verified against a CA and the host;
// the one-line "cannot reach" error; timeouts; the token file's checks.
#include "meshd/meshctl/client.h"

#include "tests/support/prerequisite.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/meshctl/test_server.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

namespace meshd::meshctl {
namespace {

using namespace std::chrono_literals;
using testing::CannedAnswer;
using testing::SeenRequest;
using testing::TempDir;
using testing::TestServer;

TestServer::Handler status_handler() {
  return [](const SeenRequest&) { return CannedAnswer{200, testing::kStatusJson}; };
}

TEST(MeshctlClient, ServerUrls) {
  auto u = parse_server_url("https://meshd.example:8443");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "meshd.example");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->host_header, "meshd.example:8443");
  auto v6 = parse_server_url("http://[fd00::1]:9000/");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->tls);
  EXPECT_EQ(v6->host, "fd00::1");
  EXPECT_EQ(v6->host_header, "[fd00::1]:9000");
  for (const char* bad : {"", "127.0.0.1:80", "ftp://h:1", "http://h", "http://h:", "http://h:0",
                          "http://h:65536", "http://:80", "http://h:80/v1", "http://[::1:80",
                          "http://[nothex]:80", "https://a b:1", "http://h:8x", "http://u@h:1"}) {
    auto r = parse_server_url(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("expected https://HOST:PORT"), std::string::npos);
  }
}

TEST(MeshctlClient, PathSegmentsArePercentEncoded) {
  EXPECT_EQ(encode_path_segment("node-a.b_c~"), "node-a.b_c~");
  EXPECT_EQ(encode_path_segment("../x?y#z w/%"), "..%2Fx%3Fy%23z%20w%2F%25");
}

TEST(MeshctlClient, UnixSocketCarriesTheRequestWithoutAToken) {
  TempDir dir("meshctl-client");
  auto server = TestServer::on_unix(dir.file("api.sock"), status_handler());
  ClientOptions o;
  o.socket_path = dir.file("api.sock");
  o.bearer_token = "never-sent-over-the-socket";
  auto c = Client::make(o);
  ASSERT_TRUE(c);
  auto a = c->request("POST", "/v1/tokens", R"({"uses":1})");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, testing::kStatusJson);
  EXPECT_EQ(a->content_type, "application/json");
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/v1/tokens");
  EXPECT_EQ(seen[0].body, R"({"uses":1})");
  EXPECT_EQ(seen[0].content_type, "application/json");
  EXPECT_EQ(seen[0].host, "localhost");
  EXPECT_EQ(seen[0].authorization, "");
}

TEST(MeshctlClient, AMissingSocketIsOneClearSentence) {
  TempDir dir("meshctl-client");
  auto c = Client::make({.socket_path = dir.file("absent.sock")});
  ASSERT_TRUE(c);
  auto a = c->request("GET", "/v1/status");
  ASSERT_FALSE(a);
  EXPECT_TRUE(a.error().is(ENOENT));
  EXPECT_EQ(a.error().message, "cannot reach meshd at " + dir.file("absent.sock") +
                                   ": No such file or directory (is meshd running?)");
}

TEST(MeshctlClient, ASocketNobodyListensOnIsConnectionRefused) {
  TempDir dir("meshctl-client");
  std::string path = dir.file("stale.sock");
  // A socket file left by a daemon that is gone: bound, then closed.
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  auto c = Client::make({.socket_path = path});
  auto a = c->request("GET", "/v1/status");
  ASSERT_FALSE(a);
  EXPECT_TRUE(a.error().is(ECONNREFUSED));
  EXPECT_EQ(a.error().message, "cannot reach meshd at " + path + ": Connection refused (is meshd running?)");
}

TEST(MeshctlClient, TcpSendsTheBearerTokenAndTheHost) {
  auto server = TestServer::on_tcp(status_handler());
  std::string url = "http://127.0.0.1:" + std::to_string(server->port());
  auto c = Client::make({.server = url, .bearer_token = "tok.en"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->where(), url);
  auto a = c->request("GET", "/v1/status");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->status, 200);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].authorization, "Bearer tok.en");
  EXPECT_EQ(seen[0].host, "127.0.0.1:" + std::to_string(server->port()));
}

TEST(MeshctlClient, TcpPortWithoutAListenerIsUnreachable) {
  std::uint16_t port;
  {
    auto server = TestServer::on_tcp(status_handler());
    port = server->port();
  }
  auto c = Client::make({.server = "http://127.0.0.1:" + std::to_string(port)});
  auto a = c->request("GET", "/v1/status");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().message, "cannot reach meshd at http://127.0.0.1:" + std::to_string(port) +
                                   ": Connection refused (is meshd running?)");
}

// A listener whose accept queue is full drops new SYNs (Linux's
// tcp_conn_request counts LISTENOVERFLOWS and drops while
// sk_acceptq_is_full): the connect never completes, and the connect timeout
// ends the wait.
TEST(MeshctlClient, AConnectThatNeverCompletesTimesOut) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  // Fill the accept queue (backlog 0 still queues one) and never accept.
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int f = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(f, 0);
    ::connect(f, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(f);
  }
  auto c = Client::make({.server = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)),
                         .connect_timeout = 300ms});
  auto a = c->request("GET", "/v1/status");
  for (int f : fillers) ::close(f);
  ::close(listener);
  ASSERT_FALSE(a);
  EXPECT_TRUE(a.error().is(ETIMEDOUT)) << a.error().message;
  EXPECT_EQ(a.error().message, "cannot reach meshd at http://127.0.0.1:" +
                                   std::to_string(ntohs(addr.sin_port)) +
                                   ": no connection within the connect timeout (is meshd running?)");
}

TEST(MeshctlClient, AnAnswerThatDoesNotComeInTimeIsATimeout) {
  TempDir dir("meshctl-client");
  auto server = TestServer::on_unix(dir.file("slow.sock"), [](const SeenRequest&) {
    return CannedAnswer{200, "{}", "application/json", 1500ms};
  });
  auto c = Client::make({.socket_path = dir.file("slow.sock"), .request_timeout = 300ms});
  auto a = c->request("GET", "/v1/status");
  ASSERT_FALSE(a);
  EXPECT_TRUE(a.error().is(ETIMEDOUT)) << a.error().message;
  EXPECT_NE(a.error().message.find("did not answer within"), std::string::npos) << a.error().message;
  // A longer timeout for this one request (a long poll) waits it out.
  auto b = c->request("GET", "/v1/events?wait=1", {}, 5s);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->body, "{}");
}

TEST(MeshctlClient, AnAnswerOverTheLimitIsRefused) {
  TempDir dir("meshctl-client");
  auto server = TestServer::on_unix(dir.file("big.sock"), [](const SeenRequest&) {
    return CannedAnswer{200, std::string(kMaxAnswerBytes + 1, 'x')};
  });
  auto c = Client::make({.socket_path = dir.file("big.sock")});
  auto a = c->request("GET", "/v1/nodes");
  ASSERT_FALSE(a);
  EXPECT_TRUE(a.error().is(EMSGSIZE)) << a.error().message;
  EXPECT_NE(a.error().message.find("sent an answer over 64 MiB"), std::string::npos) << a.error().message;
}

TEST(MeshctlClient, ErrorAnswersGiveTheServersMessage) {
  EXPECT_EQ(describe_error_answer({404, "application/json",
                                   R"({"error":"node_not_found","message":"no node named x"})"}),
            "no node named x (node_not_found, HTTP 404)");
  EXPECT_EQ(describe_error_answer({401, "application/json", R"({"message":"bad\u001b[2J"})"}),
            "bad\\x1b[2J (HTTP 401)");
  EXPECT_EQ(describe_error_answer({502, "text/html", "<html>"}),
            "meshd answered HTTP 502 without an error message");
}

class MeshctlTls : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(::access("/usr/bin/openssl", X_OK) == 0, "openssl CLI not installed");
    ASSERT_TRUE(testing::make_test_pki(pki_.path())) << "openssl could not make test certificates";
  }
  std::unique_ptr<TestServer> serve(const std::string& leaf) {
    return TestServer::on_tcp(status_handler(),
                              TestServer::Tls{pki_.file(leaf + ".crt"), pki_.file(leaf + ".key")});
  }
  Result<HttpAnswer> get(const std::string& host, std::uint16_t port, const std::string& ca) {
    auto c = Client::make({.server = "https://" + host + ":" + std::to_string(port),
                           .cacert_file = pki_.file(ca)});
    if (!c) return c.error();
    return c->request("GET", "/v1/status");
  }
  TempDir pki_{"meshctl-pki"};
};

TEST_F(MeshctlTls, VerifiedAgainstTheCaForAnIpAddressAndAName) {
  auto server = serve("server");
  auto by_ip = get("127.0.0.1", server->port(), "ca.crt");
  ASSERT_TRUE(by_ip) << by_ip.error().message;
  EXPECT_EQ(by_ip->body, testing::kStatusJson);
  auto by_name = get("localhost", server->port(), "ca.crt");
  ASSERT_TRUE(by_name) << by_name.error().message;
  EXPECT_EQ(server->seen().size(), 2u);
}

TEST_F(MeshctlTls, ACertificateFromAnotherCaIsRefusedBeforeAnyRequest) {
  auto server = serve("server");
  auto a = get("127.0.0.1", server->port(), "rogue-ca.crt");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("TLS handshake with meshd at https://127.0.0.1:"), std::string::npos)
      << a.error().message;
  EXPECT_NE(a.error().message.find("certificate verify failed"), std::string::npos) << a.error().message;
  EXPECT_TRUE(server->seen().empty());
}

TEST_F(MeshctlTls, ACertificateForAnotherHostIsRefused) {
  auto server = serve("other");
  auto a = get("127.0.0.1", server->port(), "ca.crt");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("certificate verify failed"), std::string::npos) << a.error().message;
  EXPECT_TRUE(server->seen().empty());
}

TEST_F(MeshctlTls, PlainHttpToATlsListenerFailsWithAHint) {
  auto server = serve("server");
  auto c = Client::make({.server = "http://127.0.0.1:" + std::to_string(server->port()),
                         .request_timeout = 3s});
  auto a = c->request("GET", "/v1/status");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("does the URL say http for a TLS listener?"), std::string::npos)
      << a.error().message;
  EXPECT_TRUE(server->seen().empty());
}

TEST(MeshctlClient, AServerThatClosesWithoutAnsweringIsNamed) {
  TempDir dir("meshctl-client");
  std::string path = dir.file("closing.sock");
  boost::asio::io_context ioc;
  boost::asio::local::stream_protocol::acceptor acceptor(ioc, boost::asio::local::stream_protocol::endpoint(path));
  std::thread closer([&] {
    boost::asio::local::stream_protocol::socket s(ioc);
    acceptor.accept(s);
    char buf[64];
    boost::system::error_code ec;
    s.read_some(boost::asio::buffer(buf), ec);  // the request's first bytes, then close
  });
  auto c = Client::make({.socket_path = path});
  auto a = c->request("GET", "/v1/status");
  closer.join();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().message, "meshd at " + path + " closed the connection before answering (is meshd stopping?)");
}

TEST_F(MeshctlTls, AnUnreadableCaFileIsNamed) {
  auto a = get("127.0.0.1", 1, "missing.crt");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("--cacert " + pki_.file("missing.crt") + ": cannot load it"),
            std::string::npos)
      << a.error().message;
}

class MeshctlTokenFile : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content, mode_t mode) {
    std::string p = dir_.file(name);
    testing::write_file(p, content);
    EXPECT_EQ(::chmod(p.c_str(), mode), 0);
    return p;
  }
  TempDir dir_{"meshctl-token"};
};

TEST_F(MeshctlTokenFile, APrivateFileGivesTheTokenWithoutSurroundingWhitespace) {
  auto t = read_token_file(write("t", "  s3cret.Token-1\r\n", 0600));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(*t, "s3cret.Token-1");
  EXPECT_TRUE(read_token_file(write("r", "abc", 0400)));
}

TEST_F(MeshctlTokenFile, RefusedWithoutQuotingTheContent) {
  const std::string secret = "TOPSECRETVALUE";
  struct Case {
    std::string path;
    std::string expect;
  };
  std::string group_readable = write("g", secret, 0640);
  std::string other_readable = write("o", secret, 0604);
  std::string target = write("target", secret, 0600);
  std::string link = dir_.file("link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  std::string inner_space = write("s", "TOPSECRET VALUE", 0600);
  std::string empty = write("e", " \n", 0600);
  std::string big = write("big", std::string(5000, 'A'), 0600);
  for (const Case& c : std::vector<Case>{
           {group_readable, "is accessible by group or others (mode 0640); run `chmod 600 " + group_readable},
           {other_readable, "(mode 0604)"},
           {link, "is a symbolic link"},
           {dir_.path(), "is not a regular file"},
           {inner_space, "holds characters a bearer token cannot have"},
           {empty, "is empty"},
           {big, "more than 4096"},
           {dir_.file("absent"), "No such file or directory"}}) {
    auto t = read_token_file(c.path);
    ASSERT_FALSE(t) << c.path;
    EXPECT_NE(t.error().message.find(c.expect), std::string::npos) << t.error().message;
    EXPECT_EQ(t.error().message.rfind("--token-file: ", 0), 0u) << t.error().message;
    EXPECT_NE(t.error().message.find(c.path), std::string::npos) << t.error().message;
    EXPECT_EQ(t.error().message.find("SECRET"), std::string::npos) << t.error().message;
  }
}

TEST_F(MeshctlTokenFile, AFileOwnedBySomeoneElseIsRefused) {
  MESHD_REQUIRE(::geteuid() == 0, "root, to chown a file to another user");
  std::string p = write("t", "token", 0600);
  ASSERT_EQ(::chown(p.c_str(), 65534, 65534), 0);
  auto t = read_token_file(p);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("is owned by uid 65534, expected root or uid 0"),
            std::string::npos)
      << t.error().message;
}

}  // namespace
}  // namespace meshd::meshctl
