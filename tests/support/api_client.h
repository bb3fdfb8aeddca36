// A minimal HTTP/1.1 client for tests: one request over meshd's API unix
// socket, "Connection: close", the answer read to EOF. Tests use it where
// they need a node's state as JSON without going through meshctl.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

namespace meshd::testing {

struct ApiAnswer {
  int status = 0;    // 0: no answer (no socket, connection refused, garbage)
  std::string body;
};

inline ApiAnswer api_request(const std::string& socket_path, const std::string& method,
                             const std::string& target, const std::string& body = "") {
  ApiAnswer a;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return a;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof sa.sun_path) {
    ::close(fd);
    return a;
  }
  std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size() + 1);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return a;
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: meshd\r\nConnection: close\r\n";
  if (!body.empty())
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  for (std::size_t off = 0; off < req.size();) {
    ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      ::close(fd);
      return a;
    }
    off += static_cast<std::size_t>(n);
  }
  std::string in;
  char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  if (in.rfind("HTTP/1.1 ", 0) != 0 || in.size() < 12) return a;
  auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return a;
  a.status = std::atoi(in.c_str() + 9);
  a.body = in.substr(head_end + 4);
  return a;
}

// GET `target`; the body, or "" when the daemon did not answer 200.
inline std::string api_get(const std::string& socket_path, const std::string& target) {
  auto a = api_request(socket_path, "GET", target);
  return a.status == 200 ? a.body : std::string();
}

// A sample of the daemon's /metrics: the value of the line that starts with
// `series` ("name" or "name{label=\"v\"}"), 0 when there is none.
inline double api_metric(const std::string& socket_path, const std::string& series) {
  std::istringstream lines(api_get(socket_path, "/metrics"));
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(series + " ", 0) == 0) return std::atof(line.c_str() + series.size() + 1);
  return 0;
}

}  // namespace meshd::testing
