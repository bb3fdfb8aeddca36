// The UAPI socket client against a scripted server on a unix socket in a
// temporary directory (no privileges, no wireguard-go): what meshd sees when
// the implementation answers, answers in pieces, hangs, hangs up, or is absent.
#include "meshd/dataplane/uapi.h"
#include "meshd/dataplane/uapi_client.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

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
    ssize_t n = ::write(fd, s.data(), s.size());
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

}  // namespace
}  // namespace meshd::dataplane::uapi
