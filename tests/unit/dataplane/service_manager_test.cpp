#include "meshd/daemon/service_manager.h"

#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace meshd::daemon {
namespace {

TEST(NotifySocket, PathsAndAbstractNamesAsSystemdSetsThem) {
  auto path = parse_notify_socket("/run/systemd/notify");
  ASSERT_TRUE(path);
  EXPECT_EQ(path->addr.sun_family, AF_UNIX);
  EXPECT_STREQ(path->addr.sun_path, "/run/systemd/notify");
  EXPECT_EQ(path->len, offsetof(sockaddr_un, sun_path) + std::strlen("/run/systemd/notify") + 1);

  auto abstract = parse_notify_socket("@/org/freedesktop/systemd1/notify/123");
  ASSERT_TRUE(abstract);
  EXPECT_EQ(abstract->addr.sun_path[0], '\0');
  EXPECT_EQ(std::string(abstract->addr.sun_path + 1, abstract->len - offsetof(sockaddr_un, sun_path) - 1),
            "/org/freedesktop/systemd1/notify/123");

  for (const char* bad : {"", "@", "/", "relative/path", "vsock:2:1234"})
    EXPECT_FALSE(parse_notify_socket(bad)) << bad;
  EXPECT_FALSE(parse_notify_socket("/" + std::string(sizeof(sockaddr_un::sun_path), 'x')));
}

TEST(Watchdog, IntervalOnlyForThisProcess) {
  EXPECT_EQ(parse_watchdog("20000000", nullptr, 42), std::chrono::microseconds(20000000));
  EXPECT_EQ(parse_watchdog("20000000", "42", 42), std::chrono::microseconds(20000000));
  EXPECT_EQ(parse_watchdog("20000000", "", 42), std::chrono::microseconds(20000000));
  EXPECT_FALSE(parse_watchdog("20000000", "43", 42));  // another process's watchdog
  EXPECT_FALSE(parse_watchdog(nullptr, nullptr, 42));
  EXPECT_FALSE(parse_watchdog("0", nullptr, 42));
  EXPECT_FALSE(parse_watchdog("20s", nullptr, 42));
  EXPECT_FALSE(parse_watchdog("-1", nullptr, 42));
  EXPECT_FALSE(parse_watchdog("20000000", "x", 42));
}

// What a service manager receives: the state, one datagram, byte for byte.
TEST(NotifyServiceManager, SendsTheStateAsOneDatagram) {
  std::string dir = "/tmp/meshd-notify-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  std::string path = dir + "/notify";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  auto a = parse_notify_socket(path);
  ASSERT_TRUE(a);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a->addr), a->len), 0) << std::strerror(errno);

  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(notify_service_manager("READY=1\nSTATUS=mesh in sync"));
  char buf[256] = {};
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "READY=1\nSTATUS=mesh in sync");

  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(notify_service_manager("WATCHDOG=1"));
  EXPECT_EQ(::recv(fd, buf, sizeof buf, MSG_DONTWAIT), -1);  // nothing sent
  ::close(fd);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST(NotifyServiceManager, AbstractSocket) {
  std::string name = "@meshd-notify-test-" + std::to_string(::getpid());
  auto a = parse_notify_socket(name);
  ASSERT_TRUE(a);
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a->addr), a->len), 0) << std::strerror(errno);
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_TRUE(notify_service_manager("STOPPING=1"));
  ::unsetenv("NOTIFY_SOCKET");
  char buf[64] = {};
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "STOPPING=1");
  ::close(fd);
}

}  // namespace
}  // namespace meshd::daemon
