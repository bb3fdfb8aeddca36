// The sync channel over loopback: two members on 127.0.0.2 and 127.0.0.3
// (the same port, as members listen in the mesh), each knowing the other's
// address; envelopes from anyone else, or wrong in any way, are refused.
#include "meshd/controlplane/sync_channel.h"
#include "meshd/controlplane/sync_message.h"
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
#include <map>
#include <thread>

namespace meshd::controlplane {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t kNow = 1'800'000'000'000;
const IpAddress kA = IpAddress::v4(127, 0, 0, 2);
const IpAddress kB = IpAddress::v4(127, 0, 0, 3);

struct Delivery {
  keys::IdentityPublicKey from;
  Bytes payload;
};

// A raw client from `source` (127.0.0.x), for envelopes no channel would send.
int connect_from(const IpAddress& source, const Endpoint& to) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_storage src{}, dst{};
  Endpoint{source, 0}.to_sockaddr(src);
  const auto len = to.to_sockaddr(dst);
  timeval tv{20, 0};  // only so that a broken build cannot hang the test
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(sockaddr_in)) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), static_cast<socklen_t>(len)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True once the peer closed (EOF or reset) before sending anything.
bool closed_by_peer(int fd) {
  std::uint8_t b;
  for (;;) {
    ssize_t n = ::recv(fd, &b, 1, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

class SyncChannels : public ::testing::Test {
 protected:
  struct Member {
    keys::IdentitySecretKey key = keys::IdentitySecretKey::generate();
    std::map<IpAddress, keys::IdentityPublicKey> known;  // its view of the members' addresses
    std::uint64_t clock = kNow;
    std::vector<Delivery> got;
    std::function<void(const Delivery&)> on_delivery;
    std::unique_ptr<SyncChannel> channel;
  };

  // Runs `f` on the channels' thread (their state and counters live there).
  template <class F>
  auto on_loop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    boost::asio::post(ioc_, [&task] { task(); });
    return fut.get();
  }
  void open(Member& m, IpAddress at, std::uint16_t port, SyncChannelOptions o = {}) {
    o.bind_address = at;
    o.port = port;
    m.channel = std::make_unique<SyncChannel>(
        ioc_, o, m.key,
        [&m](const IpAddress& src) -> std::optional<keys::IdentityPublicKey> {
          auto it = m.known.find(src);
          if (it == m.known.end()) return std::nullopt;
          return it->second;
        },
        [&m](const keys::IdentityPublicKey& from, std::span<const std::uint8_t> p) {
          m.got.push_back({from, Bytes(p.begin(), p.end())});
          if (m.on_delivery) m.on_delivery(m.got.back());
        },
        [&m] { return m.clock; });
  }
  void SetUp() override {
    // b takes a's ephemeral port on its own address; another test's socket
    // may hold that port on 127.0.0.3, so draw again then.
    for (int tries = 0; !b_.channel && tries < 50; ++tries) {
      open(a_, kA, 0);
      try {
        open(b_, kB, a_.channel->port());
      } catch (const ErrorException& e) {
        if (!e.error().is(EADDRINUSE)) throw;
      }
    }
    ASSERT_TRUE(b_.channel) << "no port free on both 127.0.0.2 and 127.0.0.3";
    a_.known[kB] = b_.key.public_key();
    b_.known[kA] = a_.key.public_key();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    if (!thread_.joinable()) return;  // SetUp failed before the loop ran
    on_loop([&] {
      for (Member* m : {&a_, &b_, &c_})
        if (m->channel) m->channel->close();
      return 0;
    });
    work_.reset();
    ioc_.stop();
    thread_.join();
  }
  SyncChannelCounters counters(Member& m) {
    return on_loop([&] { return m.channel->counters(); });
  }
  std::vector<Delivery> delivered(Member& m) {
    return on_loop([&] { return m.got; });
  }
  void send(Member& from, const keys::IdentityPublicKey& to, IpAddress address, Bytes payload) {
    on_loop([&] {
      from.channel->send(to, address, payload);
      return 0;
    });
  }
  // Waits until b has dealt with `n` connections (delivered or refused).
  bool b_handled(std::uint64_t n) {
    return testing::eventually([&] {
      auto c = counters(b_);
      return c.received + c.refused_source + c.refused_envelope + c.timeouts >= n;
    });
  }
  int raw_from(IpAddress source) {
    int fd = connect_from(source, Endpoint{kB, b_.channel->port()});
    EXPECT_GE(fd, 0) << std::strerror(errno);
    fds_.push_back(fd);
    return fd;
  }

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  Member a_, b_, c_;
  std::thread thread_;
  std::vector<int> fds_;
  Bytes payload_{'M', 'S', 'Y', 'N', 0, 1, 5, 0, 0, 0, 0, 0};
};

TEST_F(SyncChannels, DeliversAMembersPayloadWithItsIdentity) {
  send(a_, b_.key.public_key(), kB, payload_);
  ASSERT_TRUE(b_handled(1));
  auto got = delivered(b_);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].from, a_.key.public_key());
  EXPECT_EQ(got[0].payload, payload_);
  ASSERT_TRUE(testing::eventually([&] { return counters(a_).sent == 1; }));
  const auto ca = counters(a_), cb = counters(b_);
  EXPECT_EQ(ca.bytes_out, kEnvelopeHeaderBytes + payload_.size() + kEnvelopeSignatureBytes);
  EXPECT_EQ(cb.bytes_in, ca.bytes_out);
  EXPECT_EQ(cb.received, 1u);
}

TEST_F(SyncChannels, AReceiverMaySendFromItsDeliverCallback) {
  b_.on_delivery = [&](const Delivery& d) {
    b_.channel->send(d.from, kA, Bytes{'a', 'c', 'k'});
  };
  send(a_, b_.key.public_key(), kB, payload_);
  ASSERT_TRUE(testing::eventually([&] { return delivered(a_).size() == 1; }));
  EXPECT_EQ(delivered(a_)[0].payload, (Bytes{'a', 'c', 'k'}));
  EXPECT_EQ(delivered(a_)[0].from, b_.key.public_key());
}

TEST_F(SyncChannels, RefusesASourceThatIsNoMembersAddressWithoutReading) {
  on_loop([&] { return b_.known.erase(kA); });
  send(a_, b_.key.public_key(), kB, payload_);
  ASSERT_TRUE(b_handled(1));
  EXPECT_EQ(counters(b_).refused_source, 1u);
  EXPECT_TRUE(delivered(b_).empty());
  // A raw connection from an unknown address is closed before it sends.
  int fd = raw_from(IpAddress::v4(127, 0, 0, 9));
  EXPECT_TRUE(closed_by_peer(fd));
  EXPECT_EQ(counters(b_).refused_source, 2u);
}

TEST_F(SyncChannels, RefusesAnEnvelopeSignedByAnotherKeyThanTheAddressOwners) {
  // b believes 127.0.0.2 belongs to someone else: a's valid signature is
  // not enough.
  auto other = keys::IdentitySecretKey::generate();
  on_loop([&] { return b_.known[kA] = other.public_key(), 0; });
  send(a_, b_.key.public_key(), kB, payload_);
  ASSERT_TRUE(b_handled(1));
  EXPECT_EQ(counters(b_).refused_envelope, 1u);
  EXPECT_TRUE(delivered(b_).empty());
}

TEST_F(SyncChannels, RefusesAnEnvelopeForAnotherRecipient) {
  auto other = keys::IdentitySecretKey::generate();
  send(a_, other.public_key(), kB, payload_);
  ASSERT_TRUE(b_handled(1));
  EXPECT_EQ(counters(b_).refused_envelope, 1u);
  EXPECT_TRUE(delivered(b_).empty());
}

TEST_F(SyncChannels, RefusesAStaleEnvelope) {
  on_loop([&] { return a_.clock = kNow - 120'001; });
  send(a_, b_.key.public_key(), kB, payload_);
  ASSERT_TRUE(b_handled(1));
  EXPECT_EQ(counters(b_).refused_envelope, 1u);
  EXPECT_TRUE(delivered(b_).empty());
}

TEST_F(SyncChannels, RefusesATamperedEnvelope) {
  auto env = seal_envelope(a_.key, b_.key.public_key(), kNow, payload_);
  env[kEnvelopeHeaderBytes] ^= 0x20;  // the payload's first byte
  int fd = raw_from(kA);
  ASSERT_EQ(::send(fd, env.data(), env.size(), MSG_NOSIGNAL), static_cast<ssize_t>(env.size()));
  ASSERT_TRUE(b_handled(1));
  EXPECT_EQ(counters(b_).refused_envelope, 1u);
  EXPECT_TRUE(delivered(b_).empty());
  // The same bytes untouched are delivered.
  env[kEnvelopeHeaderBytes] ^= 0x20;
  fd = raw_from(kA);
  ASSERT_EQ(::send(fd, env.data(), env.size(), MSG_NOSIGNAL), static_cast<ssize_t>(env.size()));
  ASSERT_TRUE(b_handled(2));
  EXPECT_EQ(delivered(b_).size(), 1u);
}

TEST_F(SyncChannels, RefusesAnOversizedEnvelopeFromItsHeader) {
  auto env = seal_envelope(a_.key, b_.key.public_key(), kNow, payload_);
  const std::uint32_t n = kMaxMessageBytes + 1;
  for (int i = 0; i < 4; ++i)
    env[kEnvelopeHeaderBytes - 4 + i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
  int fd = raw_from(kA);
  // Only the header: the receiver must decide without the payload.
  ASSERT_EQ(::send(fd, env.data(), kEnvelopeHeaderBytes, MSG_NOSIGNAL),
            static_cast<ssize_t>(kEnvelopeHeaderBytes));
  EXPECT_TRUE(closed_by_peer(fd));
  EXPECT_EQ(counters(b_).refused_envelope, 1u);
  EXPECT_EQ(counters(b_).timeouts, 0u);
}

TEST_F(SyncChannels, ASenderThatStallsIsCutOffAtTheTimeout) {
  Member& c = c_;
  on_loop([&] {
    open(c, IpAddress::v4(127, 0, 0, 4), 0, {.io_timeout = 200ms});
    c.known[kA] = a_.key.public_key();
    return 0;
  });
  int fd = connect_from(kA, Endpoint{IpAddress::v4(127, 0, 0, 4), c.channel->port()});
  ASSERT_GE(fd, 0);
  fds_.push_back(fd);
  ASSERT_EQ(::send(fd, "MSEN", 4, MSG_NOSIGNAL), 4);
  EXPECT_TRUE(closed_by_peer(fd));
  EXPECT_EQ(on_loop([&] { return c.channel->counters().timeouts; }), 1u);
}

TEST_F(SyncChannels, ASendToAnAddressWithNoListenerIsCounted) {
  send(a_, b_.key.public_key(), IpAddress::v4(127, 0, 0, 5), payload_);
  EXPECT_TRUE(testing::eventually([&] { return counters(a_).send_failures == 1; }));
  EXPECT_EQ(counters(a_).sent, 0u);
}

TEST_F(SyncChannels, RefusesToStartOnAnAddressInUseNamingIt) {
  Member d;
  try {
    on_loop([&] { return open(d, kA, a_.channel->port()), 0; });
    ADD_FAILURE() << "bound twice";
  } catch (const ErrorException& e) {
    EXPECT_TRUE(e.error().is(EADDRINUSE));
    EXPECT_NE(std::string(e.what()).find("127.0.0.2:" + std::to_string(a_.channel->port())),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace meshd::controlplane
