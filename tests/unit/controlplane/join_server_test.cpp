// The join listener and the joiner's round trip over real loopback sockets:
// a valid joiner is served while others stall, send garbage or too much, and
// a source that keeps failing is cut off while others are still served.
#include "meshd/controlplane/join_client.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/join_server.h"
#include "tests/support/eventually.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cerrno>
#include <future>
#include <thread>
#include <vector>

namespace meshd::controlplane {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

Bytes frame(const char* magic, std::uint8_t kind, const Bytes& body) {
  Bytes f(magic, magic + 4);
  f.insert(f.end(), {0, 1, kind, 0});
  const auto n = static_cast<std::uint32_t>(body.size());
  f.insert(f.end(), {static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16),
                     static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)});
  f.insert(f.end(), body.begin(), body.end());
  return f;
}
const Bytes kRequest = frame("MJRQ", 0, Bytes(100, 0x42));
const Bytes kReply = frame("MJRP", 1, Bytes{'o', 'k'});
const Bytes kBadRequest = frame("MJRQ", 0, Bytes{'b', 'a', 'd'});
// Not a join request, with a length field in bounds.
const Bytes kGarbage{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 0, 0, 0, 9};

// A blocking TCP client socket from `source` (127.0.0.x) to `to`.
int connect_from(const char* source, const Endpoint& to) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &src.sin_addr);
  sockaddr_storage dst{};
  const auto len = to.to_sockaddr(dst);
  // Bounds only so that a broken build cannot hang the test.
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), static_cast<socklen_t>(len)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const Bytes& b) {
  ASSERT_EQ(::send(fd, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size()));
}

// Everything the server sends until it closes; nullopt if it does not close
// (SO_RCVTIMEO, a broken build).
std::optional<Bytes> read_to_close(int fd) {
  Bytes out;
  std::uint8_t buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.insert(out.end(), buf, buf + n);
      continue;
    }
    if (n == 0 || errno == ECONNRESET) return out;
    if (errno == EINTR) continue;
    return std::nullopt;
  }
}

// True while the server holds the connection open (nothing to read, no EOF).
bool held_open(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

class JoinListener : public ::testing::Test {
 protected:
  void start(JoinServerOptions o) {
    o.listen = Endpoint::parse("127.0.0.1:0").value();
    server_ = std::make_unique<JoinServer>(ioc_, o, [this](auto f, const IpAddress& from) {
      ++answered_;
      sources_.push_back(from);
      JoinAnswerResult r;
      r.failure = Bytes(f.begin(), f.end()) == kBadRequest;
      r.reply = r.failure ? uniform_refusal() : kReply;
      return r;
    });
    thread_ = std::thread([this] { ioc_.run(); });
  }
  // Runs `f` on the server's thread (its counters live there).
  template <class F>
  auto on_loop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    boost::asio::post(ioc_, [&task] { task(); });
    return fut.get();
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    if (server_) on_loop([&] { server_->close(); return 0; });
    work_.reset();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  JoinServerCounters counters() {
    return on_loop([&] { return server_->counters(); });
  }
  int open_from(const char* source) {
    int fd = connect_from(source, server_->local_endpoint());
    EXPECT_GE(fd, 0) << "connect from " << source << ": " << std::strerror(errno);
    fds_.push_back(fd);
    return fd;
  }

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::unique_ptr<JoinServer> server_;
  std::thread thread_;
  std::atomic<int> answered_{0};
  std::vector<IpAddress> sources_;  // on the loop's thread
  std::vector<int> fds_;
};

TEST_F(JoinListener, AnswersAValidJoinerWhileStalledAndGarbageConnectionsAreOpen) {
  start({.read_timeout = 60s});  // the stalled ones outlive the test
  // 40 slowloris connections from four addresses, each sent one byte.
  std::vector<int> stalled;
  for (const char* src : {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"})
    for (int i = 0; i < 10; ++i) {
      int fd = open_from(src);
      send_all(fd, Bytes{'M'});
      stalled.push_back(fd);
    }
  // Garbage senders from a fifth: each gets the uniform refusal, then the
  // address is cut off.
  for (int i = 0; i < 8; ++i) {
    int fd = open_from("127.0.0.6");
    send_all(fd, kGarbage);
    read_to_close(fd);
  }
  ASSERT_TRUE(testing::eventually([&] { return counters().connections == 48; }));

  auto reply = join_roundtrip(server_->local_endpoint(), kRequest, 10s);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(*reply, kReply);

  // The stalled connections are still there: max_per_source (4) of each
  // address held, the rest closed at once.
  int held = 0;
  for (int fd : stalled) held += held_open(fd);
  EXPECT_EQ(held, 16);
  const auto c = counters();
  EXPECT_EQ(c.shed, 24u);
  EXPECT_EQ(c.malformed, 5u);  // then 127.0.0.6 reached the limit
  EXPECT_EQ(c.rate_limited, 3u);
  EXPECT_EQ(c.answered, 1u);
  EXPECT_EQ(answered_, 1);
}

TEST_F(JoinListener, ClosesAnOversizedRequestBeforeReadingItsBody) {
  start({});
  Bytes header = frame("MJRQ", 0, {});
  const std::uint32_t n = kMaxJoinRequestBytes - kJoinHeaderBytes + 1;
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
  int fd = open_from("127.0.0.2");
  send_all(fd, header);
  auto got = read_to_close(fd);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->empty());
  EXPECT_EQ(counters().oversized, 1u);
  EXPECT_EQ(answered_, 0);

  // The largest request allowed is read and answered.
  Bytes largest = frame("MJRQ", 0, Bytes(kMaxJoinRequestBytes - kJoinHeaderBytes, 1));
  fd = open_from("127.0.0.2");
  send_all(fd, largest);
  EXPECT_EQ(read_to_close(fd), kReply);
}

// An underlay announcement ("MJRN", announce.h) is read and answered like a
// join or a re-admission, not refused at its header.
TEST_F(JoinListener, PassesAnAnnouncementToTheAnswer) {
  start({});
  int fd = open_from("127.0.0.2");
  send_all(fd, frame("MJRN", 0, Bytes{1, 2, 3}));
  EXPECT_EQ(read_to_close(fd), kReply);
  EXPECT_EQ(answered_, 1);
  EXPECT_EQ(counters().malformed, 0u);
}

TEST_F(JoinListener, ADeadlineCoversTheWholeRequestNotEachRead) {
  start({.read_timeout = 300ms});
  // Half-open: connects, sends nothing.
  int idle = open_from("127.0.0.2");
  // Slowloris: a valid header announcing a body it trickles a byte at a
  // time, each gap far below the deadline.
  int slow = open_from("127.0.0.3");
  Bytes header = frame("MJRQ", 0, {});
  header[10] = 0x0f;  // 3840 bytes of body
  send_all(slow, header);
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {  // 20 s bound for a broken build
    std::this_thread::sleep_for(100ms);
    closed = ::send(slow, "x", 1, MSG_NOSIGNAL) < 0 || !held_open(slow);
  }
  EXPECT_TRUE(closed) << "the slow sender kept its connection";
  EXPECT_TRUE(read_to_close(idle));
  EXPECT_EQ(counters().timeouts, 2u);
  EXPECT_EQ(answered_, 0);
}

TEST_F(JoinListener, CutsOffASourceAfterItsFailuresAndStillServesAnother) {
  start({.failures_before_limit = 3, .failure_window = 3600s});
  // Two refusals `answer` counts as failures, and a garbage frame.
  for (const Bytes& b : {kBadRequest, kBadRequest, Bytes(12, 0)}) {
    int fd = open_from("127.0.0.7");
    send_all(fd, b);
    EXPECT_EQ(read_to_close(fd), uniform_refusal());
  }
  // Now even a valid request from that address is closed unread.
  int fd = open_from("127.0.0.7");
  send_all(fd, kRequest);
  auto got = read_to_close(fd);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->empty());
  EXPECT_EQ(counters().rate_limited, 1u);
  // Another address is served.
  fd = open_from("127.0.0.8");
  send_all(fd, kRequest);
  EXPECT_EQ(read_to_close(fd), kReply);
  EXPECT_EQ(answered_, 3);
  auto sources = on_loop([&] { return sources_; });
  ASSERT_EQ(sources.size(), 3u);
  EXPECT_EQ(sources.back(), IpAddress::v4(127, 0, 0, 8));
}

TEST_F(JoinListener, AFailureWindowThatPassedLiftsTheLimit) {
  start({.failures_before_limit = 1, .failure_window = 1s});
  int fd = open_from("127.0.0.9");
  send_all(fd, kBadRequest);
  read_to_close(fd);
  fd = open_from("127.0.0.9");
  send_all(fd, kRequest);
  EXPECT_EQ(read_to_close(fd), Bytes{});
  // Bounded wait: served again once the window passed.
  EXPECT_TRUE(testing::eventually([&] {
    int f = open_from("127.0.0.9");
    send_all(f, kRequest);
    return read_to_close(f) == kReply;
  }, 10s, 200ms));
}

TEST_F(JoinListener, RefusesToStartOnAnAddressInUseNamingIt) {
  start({});
  const Endpoint taken = server_->local_endpoint();
  try {
    JoinServer second(ioc_, {.listen = taken}, [](auto, const IpAddress&) {
      return JoinAnswerResult{};
    });
    ADD_FAILURE() << "bound twice";
  } catch (const ErrorException& e) {
    EXPECT_TRUE(e.error().is(EADDRINUSE));
    EXPECT_NE(std::string(e.what()).find(taken.to_string()), std::string::npos) << e.what();
  }
}

// --- the joiner's round trip against scripted members -----------------------

// A listener on 127.0.0.1 whose one connection gets `reply` (then close),
// or nothing while the test runs when `reply` is nullopt.
class ScriptedMember {
 public:
  explicit ScriptedMember(std::optional<Bytes> reply) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (reply)
      thread_ = std::thread([this, r = *reply] {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::uint8_t buf[4096];
        (void)::recv(c, buf, sizeof buf, 0);
        (void)::send(c, r.data(), r.size(), MSG_NOSIGNAL);
        ::close(c);
      });
  }
  ~ScriptedMember() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  Endpoint endpoint() const { return {IpAddress::v4(127, 0, 0, 1), port_}; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

TEST(JoinRoundtrip, RefusedConnectionNamesTheTarget) {
  Endpoint gone;
  { gone = ScriptedMember(std::nullopt).endpoint(); }  // the port is free again
  auto r = join_roundtrip(gone, kRequest, 5s);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ECONNREFUSED));
  EXPECT_NE(r.error().message.find(gone.to_string()), std::string::npos) << r.error().message;
}

TEST(JoinRoundtrip, AMemberThatNeverAnswersTimesOut) {
  ScriptedMember silent(std::nullopt);  // in the backlog, never accepted
  auto r = join_roundtrip(silent.endpoint(), kRequest, 300ms);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ETIMEDOUT)) << r.error().message;
  EXPECT_NE(r.error().message.find(silent.endpoint().to_string()), std::string::npos);
}

TEST(JoinRoundtrip, RefusesAReplyAnnouncingMoreThanTheBound) {
  Bytes header = frame("MJRP", 1, {});
  const std::uint32_t n = kMaxJoinReplyBytes - kJoinHeaderBytes + 1;
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
  ScriptedMember m(header);
  auto r = join_roundtrip(m.endpoint(), kRequest, 5s);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EMSGSIZE)) << r.error().message;
}

TEST(JoinRoundtrip, RefusesAnAnswerThatIsNotAJoinReplyOrIsCutShort) {
  {
    ScriptedMember http(Bytes{'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '4', '0', '0'});
    auto r = join_roundtrip(http.endpoint(), kRequest, 5s);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(EPROTO)) << r.error().message;
  }
  {
    ScriptedMember cut(Bytes(kReply.begin(), kReply.end() - 1));
    auto r = join_roundtrip(cut.endpoint(), kRequest, 5s);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(EPROTO)) << r.error().message;
  }
}

TEST_F(JoinListener, TheRoundtripReturnsTheWholeReplyFrame) {
  start({});
  auto r = join_roundtrip(server_->local_endpoint(), kRequest, 5s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, kReply);
  // The uniform refusal (a frame with an empty body) comes back whole too.
  auto g = join_roundtrip(server_->local_endpoint(), kGarbage, 5s);
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(*g, uniform_refusal());
}

}  // namespace
}  // namespace meshd::controlplane
