// The API's listener over real sockets: a unix socket in a temporary
// directory and TCP on 127.0.0.1 (ephemeral port), plain and TLS. The server
// runs on its own io_context thread; the test is the client, with blocking
// sockets bounded by SO_RCVTIMEO so a broken server fails instead of hanging.
#include "meshd/api/server.h"

#include "meshd/api/error.h"
#include "tests/support/eventually.h"
#include "tests/support/prerequisite.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

namespace meshd::api {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;

// ---- the client side ---------------------------------------------------------------------

class Client {
 public:
  explicit Client(int fd) : fd_(fd) {
    timeval tv{.tv_sec = 10, .tv_usec = 0};  // bounds a hang; never reached when all is well
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  Client(Client&& o) noexcept : fd_(std::exchange(o.fd_, -1)), ssl_(std::exchange(o.ssl_, nullptr)) {}
  ~Client() {
    if (ssl_) ::SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }

  static Client unix_socket(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::copy_n(path.data(), path.size(), sa.sun_path);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << path;
    return Client(fd);
  }
  static Client tcp(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    return Client(fd);
  }

  // Makes this a TLS client (no certificate check: the test made the certificate).
  bool start_tls(SSL_CTX* ctx) {
    ssl_ = ::SSL_new(ctx);
    ::SSL_set_fd(ssl_, fd_);
    return ::SSL_connect(ssl_) == 1;
  }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ssl_ ? ::SSL_write(ssl_, bytes.data(), int(bytes.size()))
                       : ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(std::size_t(n));
    }
    return true;
  }

  // The next response, or nothing when the server closed the connection
  // (or sent something that is not HTTP).
  std::optional<http::response<http::string_body>> read_response() {
    http::response_parser<http::string_body> p;
    p.body_limit(16 << 20);
    boost::system::error_code ec;
    while (!p.is_done()) {
      if (!pending_.empty()) {
        std::size_t n = p.put(asio::buffer(pending_), ec);
        pending_.erase(0, n);
        if (ec == http::error::need_more)
          ec = {};
        else if (ec)
          return std::nullopt;
        if (p.is_done()) break;
        if (n > 0) continue;
      }
      std::optional<std::string> more = read_some();
      if (!more) return std::nullopt;
      pending_ += *more;
    }
    return p.release();
  }

  // True when the server closed the connection (EOF or reset), false when
  // bytes arrived or the bound passed.
  bool closed_by_server() {
    char b[256];
    ssize_t n = ssl_ ? ::SSL_read(ssl_, b, sizeof b) : ::recv(fd_, b, sizeof b, 0);
    if (n == 0) return true;
    if (n < 0 && !ssl_) return errno == ECONNRESET;
    if (n < 0) return ::SSL_get_error(ssl_, int(n)) != SSL_ERROR_WANT_READ;
    return false;
  }

  std::optional<std::string> read_some() {
    char b[4096];
    ssize_t n = ssl_ ? ::SSL_read(ssl_, b, sizeof b) : ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) return std::nullopt;
    return std::string(b, std::size_t(n));
  }

 private:
  int fd_;
  SSL* ssl_ = nullptr;
  std::string pending_;
};

std::string get(std::string_view target, std::string_view extra_headers = "",
                bool keep_alive = true) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: meshd\r\n" + std::string(extra_headers) +
         (keep_alive ? "" : "Connection: close\r\n") + "\r\n";
}

std::string error_code_of(const http::response<http::string_body>& r) {
  return std::string(boost::json::parse(r.body()).as_object().at("error").as_string());
}

// ---- the server side ---------------------------------------------------------------------

Router test_router(std::atomic<int>* polls = nullptr, std::atomic<bool>* release = nullptr) {
  Router r(RouterOptions{.max_body_bytes = 1024});
  r.add("GET", "/v1/healthz", [](const Request&, const PathParams&) {
    Response ok;
    ok.body = R"({"status":"ok"})";
    return ok;
  });
  r.add("GET", "/big", [](const Request&, const PathParams&) {
    Response big;
    big.body = "\"" + std::string(16 << 20, 'b') + "\"";  // more than socket buffers hold
    return big;
  });
  r.add("POST", "/echo", [](const Request& req, const PathParams&) {
    Response ok;
    ok.body = boost::json::serialize(boost::json::value{{"body", req.body}});
    return ok;
  });
  // Answers once `release` is set (or, when the wait is over, with 204).
  r.add_deferring("GET", "/wait", [polls, release](const Request&, const PathParams&) -> Reply {
    return Pending{.poll =
                       [polls, release](bool last) -> std::optional<Response> {
                         if (polls) ++*polls;
                         Response r;
                         if (release && *release) {
                           r.body = R"({"released":true})";
                           return r;
                         }
                         if (!last) return std::nullopt;
                         r.status = 204;
                         r.content_type.clear();
                         return r;
                       },
                   .max_wait = 60s};
  });
  r.add_deferring("GET", "/wait-short", [polls](const Request&, const PathParams&) -> Reply {
    return Pending{.poll =
                       [polls](bool last) -> std::optional<Response> {
                         ++*polls;
                         if (!last) return std::nullopt;
                         Response r;
                         r.body = R"({"waited":true})";
                         return r;
                       },
                   .max_wait = 50ms};
  });
  return r;
}

// A Server on its own loop thread; everything that touches it runs on that loop.
class Running {
 public:
  Running(ServerOptions opts, const Router& router) : guard_(asio::make_work_guard(ioc_)) {
    server_.emplace(ioc_, std::move(opts), router);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  template <class F>
  auto on_loop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(ioc_, [&task] { task(); });
    return done.get();
  }
  ~Running() {
    on_loop([this] {
      server_->close();
      return 0;
    });
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }
  ServerCounters counters() {
    return on_loop([this] { return server_->counters(); });
  }
  std::size_t open_connections() {
    return on_loop([this] { return server_->open_connections(); });
  }
  std::uint16_t port() { return server_->tcp_endpoint()->port; }

 private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::optional<Server> server_;
  std::thread thread_;
};

constexpr std::string_view kToken = "k3x9qa.8f2mz0c1r7vd4hqe-api-token";

ServerOptions tcp_options() {
  ServerOptions o;
  o.tcp = Endpoint{IpAddress::v4(127, 0, 0, 1), 0};
  o.bearer_token = std::string(kToken);
  return o;
}

std::string bearer(std::string_view token = kToken) {
  return "Authorization: Bearer " + std::string(token) + "\r\n";
}

// ---- unix socket -------------------------------------------------------------------------

// A group other than ours, to see the chown happen.
std::optional<std::pair<std::string, gid_t>> other_group() {
  for (const char* name : {"daemon", "adm", "bin", "sys", "nogroup"})
    if (const group* g = ::getgrnam(name); g && g->gr_gid != ::getegid())
      return std::pair<std::string, gid_t>(name, g->gr_gid);
  return std::nullopt;
}

TEST(ApiServer, UnixSocketIsMode0660InTheConfiguredGroupAndNeedsNoToken) {
  auto group = other_group();
  MESHD_REQUIRE(group.has_value(), "a system group such as daemon or adm");
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  Running s({.unix_socket = dir.file("api.sock"), .unix_socket_group = group->first}, router);
  struct stat st{};
  ASSERT_EQ(::lstat(dir.file("api.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, group->second);

  Client c = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(c.send(get("/v1/healthz")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ(r->body(), R"({"status":"ok"})");
  EXPECT_EQ((*r)[http::field::content_type], "application/json");
  EXPECT_EQ((*r)[http::field::cache_control], "no-store");
  EXPECT_EQ(r->version(), 11u);

  ASSERT_TRUE(c.send("GET /v1/healthz HTTP/1.0\r\n\r\n"));
  auto old = c.read_response();
  ASSERT_TRUE(old);
  EXPECT_EQ(old->version(), 10u);
  EXPECT_TRUE(c.closed_by_server()) << "HTTP/1.0 without keep-alive closes";
}

TEST(ApiServer, UnixSocketWithoutGroupKeepsOursAndIsRemovedOnClose) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  {
    Running s({.unix_socket = dir.file("api.sock")}, router);
    struct stat st{};
    ASSERT_EQ(::lstat(dir.file("api.sock").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    EXPECT_EQ(st.st_gid, ::getegid());
  }
  EXPECT_NE(::access(dir.file("api.sock").c_str(), F_OK), 0);
}

TEST(ApiServer, UnknownGroupIsAnErrorNamingIt) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  asio::io_context ioc;
  try {
    Server s(ioc, {.unix_socket = dir.file("api.sock"), .unix_socket_group = "no-such-group-x"},
             router);
    FAIL() << "an unknown group was accepted";
  } catch (const ErrorException& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-group-x"), std::string::npos) << e.what();
  }
  EXPECT_NE(::access(dir.file("api.sock").c_str(), F_OK), 0);
}

TEST(ApiServer, StaleSocketIsReplacedButNotAFileNorALiveSocket) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  const std::string path = dir.file("api.sock");
  {
    // A stale socket: bound, never listened on, its process gone.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::copy_n(path.data(), path.size(), sa.sun_path);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
  }
  {
    Running live({.unix_socket = path}, router);
    Client c = Client::unix_socket(path);
    ASSERT_TRUE(c.send(get("/v1/healthz")));
    ASSERT_TRUE(c.read_response());

    asio::io_context ioc;
    try {
      Server second(ioc, {.unix_socket = path}, router);
      FAIL() << "a live socket was replaced";
    } catch (const ErrorException& e) {
      EXPECT_NE(std::string(e.what()).find("another process"), std::string::npos) << e.what();
    }
    // The first server still answers on it.
    Client again = Client::unix_socket(path);
    ASSERT_TRUE(again.send(get("/v1/healthz")));
    ASSERT_TRUE(again.read_response());
  }
  testing::write_file(path, "not a socket");
  asio::io_context ioc;
  EXPECT_THROW(Server(ioc, {.unix_socket = path}, router), ErrorException);
  EXPECT_EQ(testing::read_file(path), "not a socket");
}

TEST(ApiServer, MissingDirectoryIsAnErrorNamingTheSocket) {
  Router router = test_router();
  asio::io_context ioc;
  try {
    Server s(ioc, {.unix_socket = "/nonexistent-meshd-dir/api.sock"}, router);
    FAIL();
  } catch (const ErrorException& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-meshd-dir/api.sock"), std::string::npos);
  }
}

// ---- TCP and the bearer token ------------------------------------------------------------

TEST(ApiServer, TcpAnswers401WithoutOrWithAWrongTokenAnd200WithIt) {
  Router router = test_router();
  Running s(tcp_options(), router);
  Client c = Client::tcp(s.port());
  for (const std::string& headers :
       {std::string(), bearer("wrong"), bearer(std::string(kToken) + "x"),
        "Authorization: Basic " + std::string(kToken) + "\r\n", std::string("Authorization: Bearer\r\n")}) {
    ASSERT_TRUE(c.send(get("/v1/healthz", headers)));
    auto r = c.read_response();
    ASSERT_TRUE(r) << headers;
    EXPECT_EQ(r->result_int(), 401) << headers;
    EXPECT_EQ(error_code_of(*r), "unauthorized");
    EXPECT_EQ((*r)[http::field::www_authenticate], "Bearer realm=\"meshd\"");
    EXPECT_EQ(r->body().find(kToken), std::string::npos);
  }
  ASSERT_TRUE(c.send(get("/v1/healthz", bearer())));
  auto ok = c.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->result_int(), 200);
  ASSERT_TRUE(c.send(get("/v1/healthz", "authorization: bearer   " + std::string(kToken) + "\r\n")));
  ok = c.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->result_int(), 200) << "the scheme is case-insensitive (RFC 9110 11.1)";
  ServerCounters n = s.counters();
  EXPECT_EQ(n.unauthorized, 5u);
  EXPECT_EQ(n.requests, 7u);
  EXPECT_EQ(n.connections, 1u);
}

TEST(ApiServer, TcpWithoutATokenIsRefusedAtConstruction) {
  Router router = test_router();
  asio::io_context ioc;
  ServerOptions o = tcp_options();
  o.bearer_token.clear();
  EXPECT_THROW(Server(ioc, o, router), ErrorException);
}

TEST(ApiServer, BearerMatchesOnlyTheWholeToken) {
  EXPECT_TRUE(bearer_matches("Bearer abc", "abc"));
  EXPECT_TRUE(bearer_matches("BEARER abc ", "abc"));
  EXPECT_FALSE(bearer_matches("Bearer abcd", "abc"));
  EXPECT_FALSE(bearer_matches("Bearer ab", "abc"));
  EXPECT_FALSE(bearer_matches("Bearerabc", "abc"));
  EXPECT_FALSE(bearer_matches("Basic abc", "abc"));
  EXPECT_FALSE(bearer_matches("", "abc"));
  EXPECT_FALSE(bearer_matches("Bearer ", ""));
}

TEST(ApiServer, TcpListenerRefusal) {
  const auto mesh = IpAddress::parse("10.244.1.1").value();
  auto at = [](const char* ep) { return Endpoint::parse(ep).value(); };
  // Anywhere: a token.
  for (const char* ep : {"127.0.0.1:7443", "10.244.1.1:7443", "192.0.2.7:7443", "[::1]:7443"}) {
    auto r = tcp_listener_refusal(at(ep), mesh, false, true);
    ASSERT_TRUE(r) << ep;
    EXPECT_NE(r->find("bearer token"), std::string::npos) << *r;
  }
  EXPECT_NE(tcp_listener_refusal(at("10.244.1.1:7443"), mesh, false, false)->find("gateway"),
            std::string::npos);
  // Loopback and the mesh address: plain text with a token is fine.
  EXPECT_FALSE(tcp_listener_refusal(at("127.0.0.1:7443"), mesh, true, false));
  EXPECT_FALSE(tcp_listener_refusal(at("127.3.2.1:7443"), mesh, true, false));
  EXPECT_FALSE(tcp_listener_refusal(at("[::1]:7443"), mesh, true, false));
  EXPECT_FALSE(tcp_listener_refusal(at("10.244.1.1:7443"), mesh, true, false));
  // Any other address (the wildcard too) needs TLS.
  for (const char* ep : {"192.0.2.7:7443", "0.0.0.0:7443", "[::]:7443", "[fd00::1]:7443"}) {
    auto r = tcp_listener_refusal(at(ep), mesh, true, false);
    ASSERT_TRUE(r) << ep;
    EXPECT_NE(r->find("underlay"), std::string::npos) << *r;
    EXPECT_FALSE(tcp_listener_refusal(at(ep), mesh, true, true)) << ep;
  }
  // Without a mesh address (static mode before one is known), the mesh rule does not apply.
  EXPECT_TRUE(tcp_listener_refusal(at("10.244.1.1:7443"), std::nullopt, true, false));
}

// ---- TLS ---------------------------------------------------------------------------------

struct Certificate {
  testing::TempDir dir{"meshd-api-tls"};
  std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  bool made = false;
  Certificate() {
    auto r = testing::run_process({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                                   "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"},
                                  "");
    made = r.exit_code == 0;
  }
};

TEST(ApiServer, TlsListenerSpeaksOnlyTls) {
  MESHD_REQUIRE(::access("/usr/bin/openssl", X_OK) == 0, "openssl (Debian package openssl)");
  Certificate cert;
  ASSERT_TRUE(cert.made);
  Router router = test_router();
  ServerOptions o = tcp_options();
  o.tls_cert_file = cert.cert;
  o.tls_key_file = cert.key;
  Running s(o, router);

  // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
  {
    Client plain = Client::tcp(s.port());
    ASSERT_TRUE(plain.send(get("/v1/healthz", bearer())));
    EXPECT_FALSE(plain.read_response());
  }
  // TLS: answered, with the token rule as on plain TCP.
  SSL_CTX* ctx = ::SSL_CTX_new(::TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  {
    Client c = Client::tcp(s.port());
    ASSERT_TRUE(c.start_tls(ctx));
    ASSERT_TRUE(c.send(get("/v1/healthz")));
    auto denied = c.read_response();
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->result_int(), 401);
    ASSERT_TRUE(c.send(get("/v1/healthz", bearer())));
    auto ok = c.read_response();
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->result_int(), 200);
    EXPECT_EQ(ok->body(), R"({"status":"ok"})");
  }
  ::SSL_CTX_free(ctx);
}

TEST(ApiServer, TlsBelow12IsRefused) {
  MESHD_REQUIRE(::access("/usr/bin/openssl", X_OK) == 0, "openssl (Debian package openssl)");
  Certificate cert;
  ASSERT_TRUE(cert.made);
  Router router = test_router();
  ServerOptions o = tcp_options();
  o.tls_cert_file = cert.cert;
  o.tls_key_file = cert.key;
  Running s(o, router);
  SSL_CTX* ctx = ::SSL_CTX_new(::TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  ::SSL_CTX_set_security_level(ctx, 0);  // let this client offer TLS 1.1 at all
  ::SSL_CTX_set_min_proto_version(ctx, TLS1_1_VERSION);
  ::SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
  {
    Client old = Client::tcp(s.port());
    EXPECT_FALSE(old.start_tls(ctx));
  }
  ::SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  {
    Client ok = Client::tcp(s.port());
    EXPECT_TRUE(ok.start_tls(ctx)) << "the same client with 1.2 allowed connects";
  }
  ::SSL_CTX_free(ctx);
}

TEST(ApiServer, TlsWithOnlyACertificateOrABadKeyIsRefused) {
  MESHD_REQUIRE(::access("/usr/bin/openssl", X_OK) == 0, "openssl (Debian package openssl)");
  Certificate cert;
  ASSERT_TRUE(cert.made);
  Router router = test_router();
  asio::io_context ioc;
  ServerOptions o = tcp_options();
  o.tls_cert_file = cert.cert;
  EXPECT_THROW(Server(ioc, o, router), ErrorException);
  o.tls_key_file = cert.dir.file("missing.pem");
  try {
    Server s(ioc, o, router);
    FAIL();
  } catch (const ErrorException& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
  Certificate other;
  ASSERT_TRUE(other.made);
  o.tls_key_file = other.key;
  try {
    Server s(ioc, o, router);
    FAIL() << "a key of another certificate was accepted";
  } catch (const ErrorException& e) {
    EXPECT_NE(std::string(e.what()).find(other.key), std::string::npos) << e.what();
  }
  // A key others can read is a secret already out: refused before OpenSSL
  // sees it, with the fix, never quoting it.
  o.tls_key_file = cert.key;
  ASSERT_EQ(::chmod(cert.key.c_str(), 0644), 0);
  try {
    Server s(ioc, o, router);
    FAIL() << "a key readable by others was accepted";
  } catch (const ErrorException& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("chmod 600 " + cert.key), std::string::npos) << what;
    EXPECT_EQ(what.find("PRIVATE KEY"), std::string::npos) << what;
  }
}

// ---- limits ------------------------------------------------------------------------------

TEST(ApiServer, StalledClientsAreShedSoThatANewRequestIsAnswered) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  ServerOptions o = tcp_options();
  o.unix_socket = dir.file("api.sock");
  o.max_connections = 64;
  Running s(o, router);
  std::vector<Client> stalled;
  for (int i = 0; i < 200; ++i) {
    stalled.push_back(i % 2 ? Client::tcp(s.port()) : Client::unix_socket(dir.file("api.sock")));
    if (i % 4 < 2) ASSERT_TRUE(stalled.back().send("GET /v1/healthz HTTP/1.1\r\nHo"));
  }
  std::vector<Client> fresh;  // kept open, so that no slot frees itself
  for (bool tcp : {false, true}) {
    Client& c = fresh.emplace_back(tcp ? Client::tcp(s.port())
                                       : Client::unix_socket(dir.file("api.sock")));
    ASSERT_TRUE(c.send(get("/v1/healthz", tcp ? bearer() : "")));
    auto r = c.read_response();
    ASSERT_TRUE(r) << (tcp ? "tcp" : "unix");
    EXPECT_EQ(r->result_int(), 200);
  }
  ServerCounters n = s.counters();
  EXPECT_EQ(n.connections, 202u);
  EXPECT_EQ(n.shed, 202u - 64u);
  EXPECT_LE(s.open_connections(), 64u);
  // The oldest were shed: the first stalled client finds its connection closed.
  EXPECT_TRUE(stalled.front().closed_by_server());
}

TEST(ApiServer, AtTheLimitLongPollsAreKeptAndTheNewcomerRefused) {
  testing::TempDir dir("meshd-api-srv");
  std::atomic<int> polls{0};
  std::atomic<bool> release{false};
  Router router = test_router(&polls, &release);
  Running s({.unix_socket = dir.file("api.sock"), .max_connections = 2}, router);
  Client a = Client::unix_socket(dir.file("api.sock"));
  Client b = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(a.send(get("/wait")));
  ASSERT_TRUE(b.send(get("/wait")));
  // Both are waiting once each was polled at least once.
  while (polls < 2) std::this_thread::sleep_for(1ms);
  Client c = Client::unix_socket(dir.file("api.sock"));
  EXPECT_TRUE(c.closed_by_server());
  release = true;
  for (Client* waiting : {&a, &b}) {
    auto r = waiting->read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body(), R"({"released":true})");
  }
  EXPECT_EQ(s.counters().shed, 1u);
}

TEST(ApiServer, ReadAndIdleTimeoutsCloseStalledConnections) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  Running s({.unix_socket = dir.file("api.sock"),
             .read_timeout = 100ms,
             .idle_timeout = 100ms},
            router);
  Client silent = Client::unix_socket(dir.file("api.sock"));
  Client half = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(half.send("GET /v1/healthz HTTP/1.1\r\nHost: x\r\n"));
  Client idle = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(idle.send(get("/v1/healthz")));
  ASSERT_TRUE(idle.read_response());
  EXPECT_TRUE(silent.closed_by_server());
  EXPECT_TRUE(half.closed_by_server());
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_EQ(s.counters().timeouts, 3u);
}

TEST(ApiServer, WriteTimeoutClosesAConnectionThatDoesNotTakeItsAnswer) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  Running s({.unix_socket = dir.file("api.sock"), .write_timeout = 100ms}, router);
  Client c = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(c.send(get("/big")));  // and never read
  EXPECT_TRUE(testing::eventually([&] { return s.counters().timeouts == 1; }));
  EXPECT_EQ(s.open_connections(), 0u);
  // Others are served meanwhile and after.
  Client other = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(other.send(get("/v1/healthz")));
  ASSERT_TRUE(other.read_response());
}

TEST(ApiServer, OversizedHeaderIs431AndOversizedBodyIs413) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  Running s({.unix_socket = dir.file("api.sock"), .max_header_bytes = 1024}, router);
  {
    Client c = Client::unix_socket(dir.file("api.sock"));
    ASSERT_TRUE(c.send(get("/v1/healthz", "X-Big: " + std::string(2000, 'a') + "\r\n")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 431);
    EXPECT_EQ(error_code_of(*r), "header_too_large");
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    // Declared too large: answered before the body is sent.
    Client c = Client::unix_socket(dir.file("api.sock"));
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 5000\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 413);
    EXPECT_EQ(error_code_of(*r), "body_too_large");
  }
  {
    // Chunked, without a declared length: stopped at the limit too.
    Client c = Client::unix_socket(dir.file("api.sock"));
    std::string chunk(800, 'x');
    char size[16];
    std::snprintf(size, sizeof size, "%zx", chunk.size());
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                       std::string(size) + "\r\n" + chunk + "\r\n" + size + "\r\n" + chunk +
                       "\r\n0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 413);
  }
  {
    // At the limit: answered.
    Client c = Client::unix_socket(dir.file("api.sock"));
    std::string body = "\"" + std::string(1022, 'y') + "\"";
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + body));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 200);
  }
}

TEST(ApiServer, MalformedRequestIs400Json) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  Running s({.unix_socket = dir.file("api.sock")}, router);
  for (std::string bad : {"GET /v1/healthz FOO/1.1\r\n\r\n", "GET\r\n\r\n",
                          "GET /v1/healthz HTTP/1.1\r\nBad Header\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    Client c = Client::unix_socket(dir.file("api.sock"));
    ASSERT_TRUE(c.send(bad));
    auto r = c.read_response();
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->result_int(), 400) << bad;
    EXPECT_EQ(error_code_of(*r), "bad_request");
    EXPECT_TRUE(c.closed_by_server());
  }
}

TEST(ApiServer, ManyRequestsOnOneKeepAliveConnectionIncludingPipelined) {
  testing::TempDir dir("meshd-api-srv");
  Router router = test_router();
  Running s({.unix_socket = dir.file("api.sock")}, router);
  Client c = Client::unix_socket(dir.file("api.sock"));
  for (int i = 0; i < 200; ++i) {
    std::string body = "{\"n\":" + std::to_string(i) + "}";
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body));
    auto r = c.read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(boost::json::parse(r->body()).at("body").as_string(), body);
  }
  // Ten at once, before reading any answer.
  std::string burst;
  for (int i = 0; i < 10; ++i) burst += get("/v1/healthz");
  ASSERT_TRUE(c.send(burst));
  for (int i = 0; i < 10; ++i) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->result_int(), 200);
  }
  ASSERT_TRUE(c.send(get("/v1/healthz", "", false)));
  auto last = c.read_response();
  ASSERT_TRUE(last);
  EXPECT_FALSE(last->keep_alive());
  EXPECT_TRUE(c.closed_by_server());
  ServerCounters n = s.counters();
  EXPECT_EQ(n.connections, 1u);
  EXPECT_EQ(n.requests, 211u);
}

// ---- deferred answers --------------------------------------------------------------------

TEST(ApiServer, ALongPollIsHeldWithoutBlockingOthersAndAnsweredWhenReleased) {
  testing::TempDir dir("meshd-api-srv");
  std::atomic<int> polls{0};
  std::atomic<bool> release{false};
  Router router = test_router(&polls, &release);
  Running s({.unix_socket = dir.file("api.sock"), .poll_interval = 10ms}, router);
  Client waiter = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(waiter.send(get("/wait")));
  // Polled again and again while other clients are served on the same loop.
  while (polls < 3) std::this_thread::sleep_for(1ms);
  Client other = Client::unix_socket(dir.file("api.sock"));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(other.send(get("/v1/healthz")));
    auto r = other.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 200);
  }
  release = true;
  auto r = waiter.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body(), R"({"released":true})");
  // The connection stays usable.
  ASSERT_TRUE(waiter.send(get("/v1/healthz")));
  ASSERT_TRUE(waiter.read_response());
}

TEST(ApiServer, ALongPollIsAnsweredByItsLastPollWhenTheWaitIsOver) {
  testing::TempDir dir("meshd-api-srv");
  std::atomic<int> polls{0};
  Router router = test_router(&polls);
  Running s({.unix_socket = dir.file("api.sock"), .poll_interval = 10ms}, router);
  Client c = Client::unix_socket(dir.file("api.sock"));
  ASSERT_TRUE(c.send(get("/wait-short")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body(), R"({"waited":true})");
  EXPECT_GE(polls.load(), 2);
}

TEST(ApiServer, RouterHandleAnswersADeferredRouteAtOnce) {
  std::atomic<int> polls{0};
  Router router = test_router(&polls);
  Response r = router.handle({"GET", "/wait-short", {}, ""});
  EXPECT_EQ(r.body, R"({"waited":true})");
  EXPECT_EQ(polls.load(), 1);
}

}  // namespace
}  // namespace meshd::api
