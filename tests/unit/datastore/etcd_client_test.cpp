// The etcd client's failover, timeout, auth and TLS rules against small
// fake gateways on 127.0.0.1 (the meshctl tests' Beast server): which
// endpoint gets which request, and which errno comes back. The real etcd
// is tests/integration/datastore/.
#include "meshd/datastore/etcd_client.h"

#include "tests/support/prerequisite.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/meshctl/test_server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

namespace meshd::datastore {
namespace {

using namespace std::chrono_literals;
using testing::CannedAnswer;
using testing::SeenRequest;
using testing::TestServer;

constexpr const char* kRange =
    R"({"header":{"revision":"5"},"kvs":[{"key":"L2E=","value":"MQ==","mod_revision":"5"}],"count":"1"})";
constexpr const char* kPut = R"({"header":{"revision":"6"}})";
constexpr const char* kNoLeader =
    R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})";
constexpr const char* kTimedOut =
    R"({"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14})";
constexpr const char* kInvalidToken =
    R"({"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16})";

std::string url(const TestServer& s) { return "http://127.0.0.1:" + std::to_string(s.port()); }

// A port nobody listens on: bound, then closed.
std::string refused_url() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  auto port = a.local_endpoint().port();
  a.close();
  return "http://127.0.0.1:" + std::to_string(port);
}

TEST(EtcdEndpoints, ParseAndValidate) {
  auto e = parse_etcd_endpoint("https://[fd00::1]:2379/");
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(e->host, "fd00::1");
  EXPECT_EQ(e->host_header, "[fd00::1]:2379");
  for (const char* bad : {"127.0.0.1:2379", "http://h", "http://h:0", "http://h:99999", "ftp://h:1",
                          "http://[::1:2379", "http://a b:1"})
    EXPECT_FALSE(parse_etcd_endpoint(bad)) << bad;

  EXPECT_FALSE(EtcdClient::validate({}));
  EtcdOptions mixed{{"http://a:1", "https://b:1"}};
  auto m = EtcdClient::validate(mixed);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("mix http and https"), std::string::npos);
  EtcdOptions tls_on_http{{"http://a:1"}, "/etc/hosts"};
  EXPECT_FALSE(EtcdClient::validate(tls_on_http));
  EtcdOptions key_only{{"https://a:1"}, "", "", "/etc/hosts"};
  EXPECT_FALSE(EtcdClient::validate(key_only));
  EtcdOptions password_only{{"http://a:1"}, "", "", "", "", "secret"};
  auto p = EtcdClient::validate(password_only);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message.find("secret"), std::string::npos);
  // An invalid client fails every call with the same sentence.
  EtcdClient c(mixed);
  auto r = c.range({"/a"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EINVAL));
}

TEST(EtcdClientFake, SendsTheGatewayRequestAndParsesTheAnswer) {
  auto s = TestServer::on_tcp([](const SeenRequest&) { return CannedAnswer{200, kRange}; });
  EtcdClient c({{url(*s)}});
  auto r = c.range({"/a", "", 0, 0, false});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->revision, 5);
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0].value, "1");
  auto seen = s->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/v3/kv/range");
  EXPECT_EQ(seen[0].body, R"({"key":"L2E="})");
  EXPECT_EQ(seen[0].content_type, "application/json");
  EXPECT_TRUE(seen[0].authorization.empty());
}

TEST(EtcdClientFake, FailsOverOnRefusedConnectionAndRemembersTheEndpoint) {
  auto s = TestServer::on_tcp([](const SeenRequest& r) {
    return CannedAnswer{200, r.target == "/v3/kv/put" ? kPut : kRange};
  });
  const std::string dead = refused_url();
  EtcdClient c({{dead, url(*s)}});
  EXPECT_EQ(c.current_endpoint(), dead);
  auto p = c.put("/a", "1");
  ASSERT_TRUE(p) << p.error().message;  // a write never sent may go elsewhere
  EXPECT_EQ(*p, 6);
  EXPECT_EQ(c.current_endpoint(), url(*s));
  ASSERT_TRUE(c.range({"/a"}));
  EXPECT_EQ(s->seen().size(), 2u);
}

TEST(EtcdClientFake, EveryEndpointRefusedIsEconnrefusedNamingThemAll) {
  const std::string a = refused_url(), b = refused_url();
  EtcdClient c({{a, b}, "", "", "", "meshd", "pw-not-in-messages"});
  auto r = c.range({"/a"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ECONNREFUSED)) << r.error().message;
  EXPECT_NE(r.error().message.find(a), std::string::npos);
  EXPECT_NE(r.error().message.find(b), std::string::npos);
  EXPECT_EQ(r.error().message.find("pw-not-in-messages"), std::string::npos);
}

TEST(EtcdClientFake, NoLeaderTriesTheNextMemberForReadsAndWrites) {
  auto leaderless = TestServer::on_tcp([](const SeenRequest&) { return CannedAnswer{503, kNoLeader}; });
  auto ok = TestServer::on_tcp([](const SeenRequest& r) {
    return CannedAnswer{200, r.target == "/v3/kv/put" ? kPut : kRange};
  });
  EtcdClient c({{url(*leaderless), url(*ok)}});
  ASSERT_TRUE(c.put("/a", "1"));
  EXPECT_EQ(c.current_endpoint(), url(*ok));

  EtcdClient alone({{url(*leaderless)}});
  auto r = alone.range({"/a"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EAGAIN)) << r.error().message;
  EXPECT_NE(r.error().message.find("no leader"), std::string::npos);
  // A member that answered "no leader" says more than refused connections.
  EtcdClient partly({{refused_url(), url(*leaderless), refused_url()}});
  auto pr = partly.put("/a", "1");
  ASSERT_FALSE(pr);
  EXPECT_TRUE(pr.error().is(EAGAIN)) << pr.error().message;
}

TEST(EtcdClientFake, AWriteThatTimedOutIsNeverSentAgain) {
  auto slow = TestServer::on_tcp([](const SeenRequest&) { return CannedAnswer{200, kPut, "application/json", 1500ms}; });
  auto fast = TestServer::on_tcp([](const SeenRequest& r) {
    return CannedAnswer{200, r.target == "/v3/kv/put" ? kPut : kRange};
  });
  EtcdOptions o{{url(*slow), url(*fast)}};
  o.timeout = 300ms;
  EtcdClient c(o);
  auto p = c.put("/a", "1");
  ASSERT_FALSE(p);
  EXPECT_TRUE(p.error().is(ETIMEDOUT)) << p.error().message;
  EXPECT_NE(p.error().message.find("read the key again"), std::string::npos);
  EXPECT_TRUE(fast->seen().empty());  // not re-sent to the other member
  // A read that timed out goes to the next member.
  auto r = c.range({"/a"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(fast->seen().size(), 1u);
}

TEST(EtcdClientFake, AProposalThatTimedOutInsideEtcdIsAnUnknownOutcome) {
  auto s = TestServer::on_tcp([](const SeenRequest&) { return CannedAnswer{503, kTimedOut}; });
  auto other = TestServer::on_tcp([](const SeenRequest&) { return CannedAnswer{200, kPut}; });
  EtcdClient c({{url(*s), url(*other)}});
  auto p = c.put("/a", "1");
  ASSERT_FALSE(p);
  EXPECT_TRUE(p.error().is(ETIMEDOUT)) << p.error().message;
  EXPECT_TRUE(other->seen().empty());
}

TEST(EtcdClientFake, AuthenticatesSendsTheTokenAndReauthenticatesOnce) {
  std::atomic<int> auths{0}, reject_next{1};
  auto s = TestServer::on_tcp([&](const SeenRequest& r) {
    if (r.target == "/v3/auth/authenticate") {
      int n = ++auths;
      return CannedAnswer{200, R"({"header":{},"token":"tok)" + std::to_string(n) + R"(.1"})"};
    }
    if (reject_next > 0) {
      --reject_next;
      return CannedAnswer{401, kInvalidToken};
    }
    return CannedAnswer{200, kRange};
  });
  EtcdClient c({{url(*s)}, "", "", "", "meshd", "pw"});
  auto r = c.range({"/a"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(auths.load(), 2);  // the first token refused: one more
  auto seen = s->seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].body, R"({"name":"meshd","password":"pw"})");
  EXPECT_EQ(seen[1].authorization, "tok1.1");
  EXPECT_EQ(seen[3].authorization, "tok2.1");
  // Refused every time: EACCES after one retry, not a loop.
  reject_next = 100;
  auto again = c.range({"/a"});
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(EACCES)) << again.error().message;
  EXPECT_EQ(s->seen().size(), 7u);
}

TEST(EtcdClientFake, AWrongPasswordIsEaccesWithoutThePassword) {
  auto s = TestServer::on_tcp([](const SeenRequest&) {
    return CannedAnswer{400, R"({"error":"etcdserver: authentication failed, invalid user ID or password","code":3})"};
  });
  EtcdClient c({{url(*s)}, "", "", "", "meshd", "hunter2"});
  auto r = c.range({"/a"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EACCES)) << r.error().message;
  EXPECT_NE(r.error().message.find("meshd"), std::string::npos);
  EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos);
}

TEST(EtcdClientFake, ErrorAnswersAndMalformedAnswers) {
  auto s = TestServer::on_tcp([](const SeenRequest& r) {
    if (r.target == "/v3/lease/keepalive")
      return CannedAnswer{200, R"({"result":{"header":{"revision":"3"},"ID":"7"}})"};
    if (r.target == "/v3/kv/compaction")
      return CannedAnswer{400, R"({"error":"etcdserver: mvcc: required revision has been compacted","code":11})"};
    return CannedAnswer{200, "{\"header\":"};
  });
  EtcdClient c({{url(*s)}});
  auto k = c.lease_keepalive(7);
  ASSERT_FALSE(k);
  EXPECT_TRUE(k.error().is(ENOENT)) << k.error().message;
  auto cp = c.compact(2);
  ASSERT_FALSE(cp);
  EXPECT_TRUE(cp.error().is(ERANGE)) << cp.error().message;
  EXPECT_NE(cp.error().message.find(url(*s)), std::string::npos);
  auto r = c.range({"/a"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EINVAL));
  EXPECT_NE(r.error().message.find("etcd range at " + url(*s)), std::string::npos) << r.error().message;
}

TEST(EtcdClientFake, TlsVerifiesTheServerAgainstTheCa) {
  testing::TempDir dir;
  MESHD_REQUIRE(testing::make_test_pki(dir.path()), "openssl (to make test certificates)");
  auto s = TestServer::on_tcp([](const SeenRequest&) { return CannedAnswer{200, kRange}; },
                              TestServer::Tls{dir.path() + "/server.crt", dir.path() + "/server.key"});
  const std::string https = "https://127.0.0.1:" + std::to_string(s->port());
  EtcdOptions good{{https}, dir.path() + "/ca.crt"};
  EtcdClient c(good);
  auto r = c.range({"/a"});
  ASSERT_TRUE(r) << r.error().message;
  EtcdOptions rogue{{https}, dir.path() + "/rogue-ca.crt"};
  EtcdClient bad(rogue);
  auto b = bad.range({"/a"});
  ASSERT_FALSE(b);
  EXPECT_TRUE(b.error().is(EPROTO)) << b.error().message;
}

TEST(EtcdClientFake, AClientKeyOthersCanReadIsRefusedNamingTheFix) {
  testing::TempDir dir;
  MESHD_REQUIRE(testing::make_test_pki(dir.path()), "openssl (to make test certificates)");
  const std::string key = dir.path() + "/other.key";
  EtcdOptions o{{"https://127.0.0.1:1"}, dir.path() + "/ca.crt"};
  o.cert_file = dir.path() + "/other.crt";
  o.key_file = key;
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  auto fine = EtcdClient::validate(o);
  EXPECT_TRUE(fine) << fine.error().message;
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
  auto refused = EtcdClient::validate(o);
  ASSERT_FALSE(refused) << "a client key readable by its group was accepted";
  EXPECT_TRUE(refused.error().is(EPERM)) << refused.error().message;
  EXPECT_NE(refused.error().message.find("chmod 600 " + key), std::string::npos) << refused.error().message;
  EXPECT_EQ(refused.error().message.find("PRIVATE KEY"), std::string::npos) << refused.error().message;
  // A client made with it says so on every call, without trying etcd.
  EtcdClient c(o);
  auto r = c.range({"/a"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EPERM)) << r.error().message;
}

}  // namespace
}  // namespace meshd::datastore

namespace meshd::datastore {
namespace {

// A gateway that answers one /v3/watch with a chunked stream whose chunk
// boundaries fall inside messages (as TCP may deliver them), then keeps the
// connection open until the test ends.
class FakeWatchGateway {
 public:
  explicit FakeWatchGateway(std::vector<std::string> chunks)
      : acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}), chunks_(std::move(chunks)) {
    thread_ = std::thread([this] {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec) return;
      boost::asio::streambuf in;
      boost::asio::read_until(s, in, "\r\n\r\n", ec);  // the body is small: it came along
      std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n";
      boost::asio::write(s, boost::asio::buffer(head), ec);
      for (const auto& c : chunks_) {
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", c.size());
        boost::asio::write(s, boost::asio::buffer(std::string(size) + c + "\r\n"), ec);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    });
  }
  ~FakeWatchGateway() {
    stop_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::string> chunks_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

const std::string kCreated = R"({"result":{"header":{"revision":"8"},"created":true}})" "\n";
const std::string kEvent =
    R"({"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"L2E=","value":"MQ==","mod_revision":"9"}}]}})" "\n";
const std::string kProgress = R"({"result":{"header":{"revision":"9"}}})" "\n";
const std::string kCompacted = R"({"result":{"header":{},"canceled":true,"compact_revision":"20"}})" "\n";

bool run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_for(20ms);
  }
  return done();
}

TEST(EtcdWatchFake, ReassemblesMessagesSplitAcrossChunksAndEndsOnCompaction) {
  const std::string stream = kCreated + kEvent + kProgress + kCompacted;
  // Cut in the middle of every message.
  std::vector<std::string> chunks;
  for (std::size_t i = 0; i < stream.size(); i += 23) chunks.push_back(stream.substr(i, 23));
  FakeWatchGateway gw(chunks);
  boost::asio::io_context io;
  std::vector<WatchResponse> got;
  std::optional<Error> end;
  EtcdWatch w(io, {{gw.url()}}, "/a", "", 5, [&](const WatchResponse& r) { got.push_back(r); },
              [&](const Error& e) { end = e; });
  ASSERT_TRUE(run_until(io, [&] { return end.has_value(); }));
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].created);
  ASSERT_EQ(got[1].events.size(), 1u);
  EXPECT_EQ(got[1].events[0].kv.key, "/a");
  EXPECT_TRUE(got[2].progress_notify());
  EXPECT_EQ(got[3].compact_revision, 20);
  EXPECT_TRUE(end->is(ERANGE)) << end->message;
  EXPECT_NE(end->message.find("list again"), std::string::npos);
}

TEST(EtcdWatchFake, ACallbackMayCancelAndNothingRunsAfter) {
  FakeWatchGateway gw({kCreated + kEvent, kEvent, kEvent});
  boost::asio::io_context io;
  int responses = 0;
  bool ended = false;
  std::unique_ptr<EtcdWatch> w;
  w = std::make_unique<EtcdWatch>(io, EtcdOptions{{gw.url()}}, "/a", "", 0,
                                  [&](const WatchResponse&) {
                                    if (++responses == 2) w.reset();  // destroys it inside its callback
                                  },
                                  [&](const Error&) { ended = true; });
  ASSERT_TRUE(run_until(io, [&] { return w == nullptr; }));
  io.restart();
  io.run_for(200ms);
  EXPECT_EQ(responses, 2);
  EXPECT_FALSE(ended);
}

TEST(EtcdWatchFake, NoEndpointIsOneEndNamingThem) {
  boost::asio::io_context io;
  std::optional<Error> end;
  const std::string dead = refused_url();
  EtcdWatch w(io, {{dead}}, "/a", "", 0, [](const WatchResponse&) {}, [&](const Error& e) { end = e; });
  ASSERT_TRUE(run_until(io, [&] { return end.has_value(); }));
  EXPECT_TRUE(end->is(ECONNREFUSED)) << end->message;
  EXPECT_NE(end->message.find(dead), std::string::npos);
}

}  // namespace
}  // namespace meshd::datastore
