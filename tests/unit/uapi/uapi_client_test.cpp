// The UAPI socket client against a scripted server on a unix socket in a
// temporary directory (no privileges, no wireguard-go): what meshd sees when
// the implementation answers, answers in pieces, hangs, hangs up, or is absent.
#include "meshd/dataplane/uapi.h"
#include "meshd/dataplane/uapi_client.h"
#include "tests/support/foreign_listener.h"
#include "tests/support/prerequisite.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

// Freed-memory probe: every heap block of this test binary carries its size
// and starts zeroed, and while a thread watches for a secret, every block that
// thread frees is searched for it first. A secret found in a freed block is a
// copy nobody wiped (a reallocation, a temporary).
namespace {
constexpr std::size_t kHeader = 16;  // keeps max_align_t alignment
thread_local const std::string* t_needle = nullptr;
std::atomic<int> g_leaked_blocks{0};

void* probe_alloc(std::size_t n) {
  void* base = std::malloc(n + kHeader);
  if (!base) throw std::bad_alloc();
  std::memset(base, 0, n + kHeader);
  *static_cast<std::size_t*>(base) = n;
  return static_cast<char*>(base) + kHeader;
}

void probe_free(void* p) noexcept {
  if (!p) return;
  char* base = static_cast<char*>(p) - kHeader;
  std::size_t n = *reinterpret_cast<std::size_t*>(base);
  if (t_needle && ::memmem(p, n, t_needle->data(), t_needle->size()) != nullptr)
    g_leaked_blocks.fetch_add(1);
  std::free(base);
}
}  // namespace

void* operator new(std::size_t n) { return probe_alloc(n); }
void* operator new[](std::size_t n) { return probe_alloc(n); }
void operator delete(void* p) noexcept { probe_free(p); }
void operator delete[](void* p) noexcept { probe_free(p); }
void operator delete(void* p, std::size_t) noexcept { probe_free(p); }
void operator delete[](void* p, std::size_t) noexcept { probe_free(p); }

namespace meshd::dataplane::uapi {
namespace {

using namespace std::chrono_literals;

// Accepts one connection, reads the request up to its blank line, then lets
// `script` answer on the connected fd.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int fd)> script) {
    char tmpl[] = "/tmp/meshd-uapi-client-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/wg0.sock";
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 4) != 0)
      throw std::runtime_error("scripted server: bind/listen failed");
    thread_ = std::thread([this, script = std::move(script)] {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      char c;
      while (request_.size() < 2 || request_.substr(request_.size() - 2) != "\n\n") {
        if (::read(fd, &c, 1) != 1) break;
        request_.push_back(c);
      }
      script(fd);
      ::close(fd);
    });
  }
  ~ScriptedServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  // Valid once the client call returned (the server read it before answering).
  const std::string& request() const { return request_; }

 private:
  std::string dir_, path_, request_;
  int listen_fd_ = -1;
  std::thread thread_;
};

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

ClientOptions opts_for(const ScriptedServer& s, std::chrono::milliseconds timeout = 5s) {
  return ClientOptions{s.path(), "wg0", timeout};
}

TEST(UapiClient, GetSendsGetAndDecodesTheReply) {
  std::string key(64, 'a');
  ScriptedServer s([&](int fd) {
    write_all(fd, "listen_port=51820\npublic_key=" + key + "\nallowed_ip=10.0.0.0/8\nerrno=0\n\n");
  });
  auto d = get_device(opts_for(s));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(s.request(), "get=1\n\n");
  EXPECT_EQ(d->name, "wg0");
  EXPECT_EQ(d->listen_port, 51820);
  ASSERT_EQ(d->peers.size(), 1u);
}

TEST(UapiClient, SetSendsTheEncodedRequestAndAcceptsErrnoZero) {
  ScriptedServer s([](int fd) { write_all(fd, "errno=0\n\n"); });
  wg::WgDevice change;
  change.name = "wg0";
  change.listen_port = 7;
  auto r = set_device(opts_for(s), change);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(s.request(), "set=1\nlisten_port=7\n\n");
}

TEST(UapiClient, SetFailureCarriesTheErrno) {
  ScriptedServer s([](int fd) { write_all(fd, "errno=-98\n\n"); });
  wg::WgDevice change;
  change.name = "wg0";
  change.listen_port = 7;
  auto r = set_device(opts_for(s), change);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EADDRINUSE);
}

TEST(UapiClient, ReplyArrivingByteByByteIsReassembled) {
  ScriptedServer s([](int fd) {
    for (char c : std::string("listen_port=1\nerrno=0\n\n")) {
      write_all(fd, std::string(1, c));
      std::this_thread::sleep_for(1ms);
    }
  });
  auto d = get_device(opts_for(s));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->listen_port, 1);
}

TEST(UapiClient, HangUpBeforeTheBlankLineIsATruncatedReply) {
  ScriptedServer s([](int fd) { write_all(fd, "listen_port=1\nerrno=0\n"); });
  auto d = get_device(opts_for(s));
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().value(), EPROTO) << d.error().message;
  EXPECT_NE(d.error().message.find("truncated"), std::string::npos) << d.error().message;
}

TEST(UapiClient, HangUpWithoutAnyReplyNamesTheSocket) {
  ScriptedServer s([](int) {});
  auto d = get_device(opts_for(s));
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find(s.path()), std::string::npos) << d.error().message;
}

TEST(UapiClient, SilentServerTimesOutNamingTheSocket) {
  ScriptedServer s([](int) { std::this_thread::sleep_for(1500ms); });
  auto d = get_device(opts_for(s, 200ms));
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().value(), ETIMEDOUT);
  EXPECT_NE(d.error().message.find(s.path()), std::string::npos) << d.error().message;
}

TEST(UapiClient, NothingListeningNamesTheSocket) {
  auto d = get_device({"/tmp/meshd-uapi-client-nonexistent/wg0.sock", "wg0", 1s});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().value(), ENOENT);
  EXPECT_NE(d.error().message.find("/tmp/meshd-uapi-client-nonexistent/wg0.sock"),
            std::string::npos);
  EXPECT_NE(d.error().message.find("wg0"), std::string::npos);
}

TEST(UapiClient, ServerPidIsTheListeningProcess) {
  ScriptedServer s([](int) {});
  auto pid = server_pid(opts_for(s));
  ASSERT_TRUE(pid) << pid.error().message;
  EXPECT_EQ(*pid, ::getpid());
}

// Counts the blocks this thread frees while still holding `secret`.
class FreedSecretWatch {
 public:
  explicit FreedSecretWatch(const std::string& secret) : secret_(secret) {
    g_leaked_blocks = 0;
    t_needle = &secret_;
  }
  ~FreedSecretWatch() { stop(); }
  int stop() {
    t_needle = nullptr;
    return g_leaked_blocks.load();
  }

 private:
  std::string secret_;
};

TEST(UapiClient, GetLeavesNoCopyOfThePrivateKeyInFreedMemory) {
  auto priv = keys::PrivateKey::generate();
  const std::string hex = keys::key_to_hex(priv.bytes());
  // The reply comes in pieces, so the client's buffer grows several times.
  ScriptedServer s([&](int fd) {
    write_all(fd, "private_key=" + hex + "\n");
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(1ms);
      write_all(fd, "listen_port=51820\nfwmark=0\n");
    }
    write_all(fd, "errno=0\n\n");
  });
  int leaked;
  {
    FreedSecretWatch watch(hex);
    auto d = get_device(opts_for(s));
    leaked = watch.stop();
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->public_key, priv.public_key());
  }
  EXPECT_EQ(leaked, 0) << "heap blocks freed with the private key still in them";
}

TEST(UapiClient, SetLeavesNoCopyOfThePrivateKeyInFreedMemory) {
  ScriptedServer s([](int fd) { write_all(fd, "errno=0\n\n"); });
  wg::WgDevice change;
  change.name = "wg0";
  change.private_key = keys::PrivateKey::generate();
  const std::string hex = keys::key_to_hex(change.private_key->bytes());
  // Long v6 allowed IPs make the request outgrow its first allocation.
  wg::WgPeer p;
  p.public_key = change.private_key->public_key();
  for (int i = 0; i < 200; ++i)
    p.allowed_ips.push_back(
        *IpPrefix::parse("2001:db8:1234:5678:9abc:def0:1234:" + std::to_string(1000 + i) + "/128"));
  change.peers.push_back(std::move(p));
  int leaked;
  {
    FreedSecretWatch watch(hex);
    auto r = set_device(opts_for(s), change);
    leaked = watch.stop();
    ASSERT_TRUE(r) << r.error().message;
  }
  EXPECT_EQ(leaked, 0) << "heap blocks freed with the private key still in them";
  EXPECT_NE(s.request().find("private_key=" + hex), std::string::npos);
}

TEST(UapiClient, EndlessReplyIsRefusedAtTheLimit) {
  ScriptedServer s([](int fd) {
    const std::string chunk(4096, 'x');
    for (int i = 0; i < 100000; ++i)
      if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) return;
  });
  auto o = opts_for(s);
  o.max_reply_bytes = 64 * 1024;
  auto d = get_device(o);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().value(), EMSGSIZE) << d.error().message;
  EXPECT_NE(d.error().message.find("65536 bytes"), std::string::npos) << d.error().message;
  EXPECT_NE(d.error().message.find(s.path()), std::string::npos) << d.error().message;
}

// A process of another user listening on the socket gets nothing, in
// particular not the private key of a set request.
TEST(UapiClient, ServerRunningAsAnotherUserIsRefusedBeforeAnythingIsSent) {
  MESHD_REQUIRE(::geteuid() == 0, "needs root (the fake server drops to uid 65534)");
  meshd::testing::TempDir dir("meshd-uapi-peercred");
  const std::string path = dir.file("wg0.sock");
  meshd::testing::ForeignUnixListener server(path);

  wg::WgDevice change;
  change.name = "wg0";
  change.private_key = keys::PrivateKey::generate();
  auto set = set_device({path, "wg0", 2s}, change);
  const std::size_t received = server.stop();
  ASSERT_FALSE(set);
  EXPECT_EQ(set.error().value(), EPERM) << set.error().message;
  EXPECT_NE(set.error().message.find("uid 65534"), std::string::npos) << set.error().message;
  EXPECT_NE(set.error().message.find(path), std::string::npos) << set.error().message;
  EXPECT_EQ(received, 0u) << "bytes reached a server running as another user";
}

}  // namespace
}  // namespace meshd::dataplane::uapi
