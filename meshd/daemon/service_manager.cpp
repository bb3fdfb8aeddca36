#include "meshd/daemon/service_manager.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

namespace meshd::daemon {

namespace {

template <class T>
std::optional<T> parse_number(const char* text) {
  if (!text || !*text) return std::nullopt;
  T v{};
  const char* end = text + std::strlen(text);
  auto [p, ec] = std::from_chars(text, end, v);
  if (ec != std::errc() || p != end) return std::nullopt;
  return v;
}

}  // namespace

std::optional<NotifyAddress> parse_notify_socket(std::string_view value) {
  if (value.size() < 2 || (value[0] != '/' && value[0] != '@')) return std::nullopt;
  NotifyAddress a;
  a.addr.sun_family = AF_UNIX;
  // A path needs its terminating NUL inside sun_path; an abstract name does not.
  if (value.size() + (value[0] == '/' ? 1 : 0) > sizeof a.addr.sun_path) return std::nullopt;
  std::memcpy(a.addr.sun_path, value.data(), value.size());
  if (value[0] == '@') a.addr.sun_path[0] = '\0';
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + (value[0] == '/' ? 1 : 0));
  return a;
}

std::optional<std::chrono::microseconds> parse_watchdog(const char* usec, const char* pid_text, long pid) {
  auto us = parse_number<unsigned long long>(usec);
  if (!us || *us == 0) return std::nullopt;
  if (pid_text && *pid_text) {
    auto p = parse_number<long>(pid_text);
    if (!p || *p != pid) return std::nullopt;  // meant for another process
  }
  return std::chrono::microseconds(*us);
}

bool notify_service_manager(std::string_view state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (!env) return false;
  auto a = parse_notify_socket(env);
  if (!a) return false;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&a->addr), a->len);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

std::optional<std::chrono::microseconds> service_watchdog_interval() {
  return parse_watchdog(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), ::getpid());
}

}  // namespace meshd::daemon
