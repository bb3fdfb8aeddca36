// A tiny HTTP/1.1 server for meshctl's client tests: Boost.Beast on its own
// thread, on a unix socket, on 127.0.0.1 (port chosen by the kernel), or on
// 127.0.0.1 with TLS. Each connection gets one request; the handler picks
// the answer (and may stall first), and every request is recorded.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace meshd::testing {

struct SeenRequest {
  std::string method, target, host, authorization, content_type, body;
};

struct CannedAnswer {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::chrono::milliseconds delay{0};  // stall this long before answering
};

class TestServer {
 public:
  using Handler = std::function<CannedAnswer(const SeenRequest&)>;

  struct Tls {
    std::string cert_file, key_file;
  };

  static std::unique_ptr<TestServer> on_unix(const std::string& path, Handler h) {
    auto s = std::unique_ptr<TestServer>(new TestServer(std::move(h)));
    s->unix_path_ = path;
    s->unix_acceptor_.emplace(s->ioc_, boost::asio::local::stream_protocol::endpoint(path));
    s->start();
    return s;
  }

  static std::unique_ptr<TestServer> on_tcp(Handler h, std::optional<Tls> tls = std::nullopt) {
    auto s = std::unique_ptr<TestServer>(new TestServer(std::move(h)));
    namespace ip = boost::asio::ip;
    s->tcp_acceptor_.emplace(s->ioc_, ip::tcp::endpoint(ip::make_address("127.0.0.1"), 0));
    if (tls) {
      s->tls_.emplace(boost::asio::ssl::context::tls_server);
      s->tls_->use_certificate_chain_file(tls->cert_file);
      s->tls_->use_private_key_file(tls->key_file, boost::asio::ssl::context::pem);
    }
    s->start();
    return s;
  }

  ~TestServer() {
    stop_ = true;
    // Wake the blocking accept with a connection of our own.
    boost::system::error_code ec;
    if (unix_acceptor_) {
      boost::asio::local::stream_protocol::socket s(ioc_);
      s.connect(boost::asio::local::stream_protocol::endpoint(unix_path_), ec);
    } else {
      boost::asio::ip::tcp::socket s(ioc_);
      s.connect({boost::asio::ip::make_address("127.0.0.1"), port()}, ec);
    }
    if (thread_.joinable()) thread_.join();
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }

  std::uint16_t port() const { return tcp_acceptor_->local_endpoint().port(); }

  std::vector<SeenRequest> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  explicit TestServer(Handler h) : handler_(std::move(h)) {}

  void start() {
    thread_ = std::thread([this] { loop(); });
  }

  template <class Stream>
  void serve(Stream& stream) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(stream, buf, req, ec);
    if (ec) return;
    SeenRequest s{std::string(req.method_string()), std::string(req.target()),
                  std::string(req[http::field::host]), std::string(req[http::field::authorization]),
                  std::string(req[http::field::content_type]), req.body()};
    {
      std::lock_guard lock(mu_);
      seen_.push_back(s);
    }
    CannedAnswer a = handler_(s);
    if (a.delay.count() > 0) std::this_thread::sleep_for(a.delay);
    http::response<http::string_body> res{static_cast<http::status>(a.status), 11};
    if (!a.body.empty()) res.set(http::field::content_type, a.content_type);
    res.body() = a.body;
    res.keep_alive(false);
    res.prepare_payload();
    http::write(stream, res, ec);
  }

  void loop() {
    while (!stop_) {
      boost::system::error_code ec;
      if (unix_acceptor_) {
        boost::asio::local::stream_protocol::socket sock(ioc_);
        unix_acceptor_->accept(sock, ec);
        if (ec || stop_) continue;
        serve(sock);
        continue;
      }
      boost::asio::ip::tcp::socket sock(ioc_);
      tcp_acceptor_->accept(sock, ec);
      if (ec || stop_) continue;
      if (!tls_) {
        serve(sock);
        continue;
      }
      boost::asio::ssl::stream<boost::asio::ip::tcp::socket&> tls(sock, *tls_);
      tls.handshake(boost::asio::ssl::stream_base::server, ec);
      if (ec) continue;
      serve(tls);
    }
  }

  Handler handler_;
  boost::asio::io_context ioc_;
  std::string unix_path_;
  std::optional<boost::asio::local::stream_protocol::acceptor> unix_acceptor_;
  std::optional<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::optional<boost::asio::ssl::context> tls_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<SeenRequest> seen_;
  std::thread thread_;
};

// Certificates made with the openssl CLI in `dir`: ca.crt signs server.crt
// (SANs IP 127.0.0.1 and DNS localhost) and other.crt (DNS other.example);
// rogue-ca.crt signs nothing here. Keys next to them. False when openssl fails.
inline bool make_test_pki(const std::string& dir) {
  auto sh = [](const std::string& cmd) { return std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()) == 0; };
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  auto ca = [&](const std::string& name) {
    return sh("openssl req -x509" + key + " -keyout " + dir + "/" + name + ".key -out " + dir + "/" +
              name + ".crt -days 2 -subj /CN=" + name);
  };
  auto leaf = [&](const std::string& name, const std::string& san) {
    std::string ext = dir + "/" + name + ".ext";
    return sh("echo 'subjectAltName=" + san + "' > " + ext) &&
           sh("openssl req" + key + " -keyout " + dir + "/" + name + ".key -out " + dir + "/" + name +
              ".csr -subj /CN=" + name) &&
           sh("openssl x509 -req -in " + dir + "/" + name + ".csr -CA " + dir + "/ca.crt -CAkey " + dir +
              "/ca.key -CAcreateserial -out " + dir + "/" + name + ".crt -days 2 -extfile " + ext);
  };
  return ca("ca") && ca("rogue-ca") && leaf("server", "IP:127.0.0.1,DNS:localhost") &&
         leaf("other", "DNS:other.example");
}

// Canned answers in the shapes docs/api.md gives.
inline const char* kStatusJson =
    R"({"backend":"kernel","backend_reason":"auto: kernel WireGuard is available",)"
    R"("cluster_id":"5f1c0a9e2b7d4c31","in_sync":true,"routes":3,"errors":[],)"
    R"("rejected_peers":[{"peer":"laptop","reason":"public_key: not 32 bytes"}],)"
    R"("interface":"meshd0","mtu":1420,)"
    R"("public_key":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",)"
    R"("pod_cidr":"10.244.1.0/24","pod_cidr_settled":true,"peers":3,"peers_reachable":2,)"
    R"("cni_leases":{"in_use":5,"free":248},)"
    R"("last_reconcile":{"at_ms":1800000000123,"duration_seconds":0.25,"error":null},)"
    R"("reconciles":10,"reconcile_errors":2})";

inline const char* kNodesJson =
    R"({"nodes":[)"
    R"({"name":"node-a","identity":"aWQtYQ==","public_key":"cGstYQ==","endpoints":["192.0.2.1:51820"],)"
    R"("pod_cidr":"10.244.1.0/24","version":3,"admitted_at_ms":1800000000000,"self":true,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":null,"rx_bytes":0,"tx_bytes":0,"reachable":false}},)"
    R"({"name":"node-b","identity":"aWQtYg==","public_key":"cGstYg==","endpoints":["192.0.2.2:51820"],)"
    R"("pod_cidr":"10.244.2.0/24","version":1,"admitted_at_ms":1800000001000,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":12.5,"rx_bytes":1468006,"tx_bytes":300,"reachable":true}},)"
    R"({"name":"node-c","identity":"aWQtYw==","public_key":"cGstYw==","endpoints":["192.0.2.3:51820","[2001:db8::3]:51820"],)"
    R"("pod_cidr":"10.244.3.0/24","version":2,"admitted_at_ms":1800000002000,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":600,"rx_bytes":2048,"tx_bytes":4096,"reachable":true}},)"
    R"({"name":"node-d","identity":"aWQtZA==","public_key":"cGstZA==","endpoints":[],)"
    R"("pod_cidr":"10.244.4.0/24","version":1,"admitted_at_ms":1800000003000,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":null,"rx_bytes":0,"tx_bytes":0,"reachable":false}}]})";

// GET /v1/nodes with the lifecycle's fields (docs/api.md): liveness, a
// rotation in progress, and two tombstones, one listed before the live node
// of its name (a reinstalled host), as meshd sorts them by name.
inline const char* kLifecycleNodesJson =
    R"({"nodes":[)"
    R"({"name":"node-a","identity":"aWQtYQ==","public_key":"cGstYQ==","endpoints":["192.0.2.1:51820"],)"
    R"("pod_cidr":"10.244.1.0/24","version":3,"admitted_at_ms":1800000000000,"self":true,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":null,"rx_bytes":0,"tx_bytes":0,"reachable":false},)"
    R"("liveness":"self","pending_public_key":"bmV3LWtleS1h","switch_at_ms":1800000065000},)"
    R"({"name":"node-b","identity":"aWQtYg==","public_key":"cGstYg==","endpoints":["192.0.2.2:51820"],)"
    R"("pod_cidr":"10.244.2.0/24","version":1,"admitted_at_ms":1800000001000,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":12.5,"rx_bytes":1468006,"tx_bytes":300,"reachable":true},)"
    R"("liveness":"alive","last_seen_age_seconds":2.5},)"
    R"({"name":"node-b","identity":"b2xkLWI=","public_key":"","endpoints":[],)"
    R"("pod_cidr":"10.244.9.0/24","version":0,"admitted_at_ms":0,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":null,"rx_bytes":0,"tx_bytes":0,"reachable":false},)"
    R"("liveness":"removed","removed":{"by":"node-a","at_ms":1800000030000,"reason":"reinstalled","released":true}},)"
    R"({"name":"node-c","identity":"aWQtYw==","public_key":"cGstYw==","endpoints":["192.0.2.3:51820"],)"
    R"("pod_cidr":"10.244.3.0/24","version":2,"admitted_at_ms":1800000002000,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":400,"rx_bytes":2048,"tx_bytes":4096,"reachable":false},)"
    R"("liveness":"silent","last_seen_age_seconds":400},)"
    R"({"name":"node-d","identity":"aWQtZA==","public_key":"","endpoints":[],)"
    R"("pod_cidr":"","version":0,"admitted_at_ms":0,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":null,"rx_bytes":0,"tx_bytes":0,"reachable":false},)"
    R"("liveness":"removed","removed":{"by":"aWQtYw==","at_ms":1800000040000,"released":false}},)"
    R"({"name":"node-e","identity":"aWQtZQ==","public_key":"cGstZQ==","endpoints":["192.0.2.5:51820"],)"
    R"("pod_cidr":"10.244.5.0/24","version":1,"admitted_at_ms":1800000004000,"self":false,"in_effect":true,)"
    R"("stats":{"last_handshake_age_seconds":5000,"rx_bytes":1,"tx_bytes":1,"reachable":false},)"
    R"("liveness":"prunable","last_seen_age_seconds":5000}]})";

// GET /v1/status of a node removed from the cluster.
inline const char* kRemovedStatusJson =
    R"({"backend":"kernel","cluster_id":"5f1c0a9e2b7d4c31","in_sync":true,"interface":"meshd0",)"
    R"("last_reconcile":{"at_ms":1800000000123,"duration_seconds":0.25,"error":null},)"
    R"("cluster":{"id":"5f1c0a9e2b7d4c31","cidr":"10.244.0.0/16","node_prefix_length":24,)"
    R"("join_target":null,"settled":true,"table_hash":"9f86d081884c7d65",)"
    R"("removed":{"by":"node-a","at_ms":1800000030000,"reason":"decommissioned"}}})";

}  // namespace meshd::testing
