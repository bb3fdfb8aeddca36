#include "meshd/dataplane/uapi_client.h"

#include "common/unique_fd.h"

#include "meshd/dataplane/uapi.h"

#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace meshd::dataplane::uapi {

namespace {

using Clock = std::chrono::steady_clock;

std::string where(const ClientOptions& o, std::string_view what) {
  return std::string(what) + " UAPI socket " + o.socket_path +
         (o.device.empty() ? "" : " (device " + o.device + ")");
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until the deadline; EINTR restarts with the time left.
Result<void> wait_for(const ClientOptions& o, int fd, short events, Clock::time_point deadline,
                      std::string_view what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return {};
    if (n == 0) return fail(ETIMEDOUT, where(o, what) + " (no answer within " +
                                           std::to_string(o.timeout.count()) + " ms)");
    if (errno != EINTR) return fail(errno, where(o, what));
  }
}

Result<int> connect_socket(const ClientOptions& o, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (o.socket_path.size() >= sizeof addr.sun_path)
    return fail(ENAMETOOLONG, where(o, "connect to"));
  std::memcpy(addr.sun_path, o.socket_path.c_str(), o.socket_path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(errno, where(o, "create a socket for"));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    // A unix stream connect only blocks when the listen backlog is full.
    if (err == EAGAIN || err == EINPROGRESS) {
      if (auto r = wait_for(o, fd, POLLOUT, deadline, "connect to"); !r) {
        ::close(fd);
        return r.error();
      }
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) return fd;
    }
    ::close(fd);
    return fail(err, where(o, "connect to"));
  }
  return fd;
}

// Who listens on the other end: the credentials the server had when it
// called listen() (unix(7), SO_PEERCRED).
Result<ucred> peer_credentials(const ClientOptions& o, int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return fail(errno, where(o, "read the peer credentials of"));
  return cred;
}

// Connects and checks that root or our own euid serves the socket, before
// anything is written to it.
Result<int> connect_trusted(const ClientOptions& o, Clock::time_point deadline, ucred* out) {
  auto fd_r = connect_socket(o, deadline);
  if (!fd_r) return fd_r.error();
  UniqueFd fd(*fd_r);
  auto cred = peer_credentials(o, fd.get());
  if (!cred) return cred.error();
  const uid_t self = ::geteuid();
  if (cred->uid != 0 && cred->uid != self)
    return Error{{EPERM, boost::system::generic_category()},
                 where(o, "refuse the") + ": it is served by uid " + std::to_string(cred->uid) +
                     (cred->pid > 0 ? " (pid " + std::to_string(cred->pid) + ")" : "") +
                     ", not by root or meshd's uid " + std::to_string(self) +
                     "; nothing was sent. Stop that process, remove " + o.socket_path +
                     " and make its directory writable only by root"};
  if (out) *out = *cred;
  return fd.release();
}

}  // namespace

Result<std::string> transact(const ClientOptions& o, std::string_view request) {
  const auto deadline = Clock::now() + o.timeout;
  auto fd_r = connect_trusted(o, deadline, nullptr);
  if (!fd_r) return fd_r.error();
  UniqueFd fd(*fd_r);

  std::size_t sent = 0;
  while (sent < request.size()) {
    // MSG_NOSIGNAL: an implementation that dies mid-request must give EPIPE,
    // not kill meshd with SIGPIPE.
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto r = wait_for(o, fd.get(), POLLOUT, deadline, "write to"); !r) return r.error();
    } else if (n < 0 && errno != EINTR) {
      return fail(errno, where(o, "write to"));
    }
  }

  std::string reply;
  char buf[16384];
  // The reply (a get carries the private key) lives in `reply` and `buf`:
  // both are wiped on every path that does not hand `reply` to the caller.
  auto failed = [&](Error e) -> Result<std::string> {
    sodium_memzero(buf, sizeof buf);
    wipe(reply);
    return e;
  };
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      if (reply.size() + static_cast<std::size_t>(n) > o.max_reply_bytes)
        return failed(fail(EMSGSIZE, where(o, "read a reply from") + " (the reply exceeds " +
                                         std::to_string(o.max_reply_bytes) +
                                         " bytes without ending; is it a WireGuard UAPI server?)"));
      std::size_t scan_from = reply.empty() ? 0 : reply.size() - 1;
      append_wiping(reply, std::string_view(buf, static_cast<std::size_t>(n)));
      // Only the newly read bytes (and the one before them) can complete "\n\n".
      std::size_t end = reply_end(std::string_view(reply).substr(scan_from));
      if (end != std::string_view::npos) {
        sodium_memzero(buf, sizeof buf);
        // Nothing follows the blank line in the protocol; wipe any stray tail.
        sodium_memzero(reply.data() + scan_from + end, reply.size() - scan_from - end);
        reply.resize(scan_from + end);
        return reply;
      }
    } else if (n == 0) {
      // Closed before the blank line: hand back what came so the decoder
      // reports a truncated reply, unless nothing came at all.
      sodium_memzero(buf, sizeof buf);
      if (reply.empty()) return fail(ECONNRESET, where(o, "read a reply from"));
      return reply;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto r = wait_for(o, fd.get(), POLLIN, deadline, "read a reply from"); !r)
        return failed(r.error());
    } else if (errno != EINTR) {
      return failed(fail(errno, where(o, "read a reply from")));
    }
  }
}

Result<wg::WgDevice> get_device(const ClientOptions& o) {
  auto reply = transact(o, kGetRequest);
  if (!reply) return reply.error();
  auto dev = decode_get(*reply, o.device);
  wipe(*reply);
  return dev;
}

Result<void> set_device(const ClientOptions& o, const wg::WgDevice& change) {
  std::string request = encode_set(change);
  auto reply = transact(o, request);
  wipe(request);
  if (!reply) return reply.error();
  return decode_set_reply(*reply, o.device);
}

Result<pid_t> server_pid(const ClientOptions& o) {
  ucred cred{};
  auto fd_r = connect_trusted(o, Clock::now() + o.timeout, &cred);
  if (!fd_r) return fd_r.error();
  UniqueFd fd(*fd_r);
  // 0 when the server lives in a PID namespace we cannot see into.
  if (cred.pid <= 0) return fail(ESRCH, where(o, "find the process behind"));
  return cred.pid;
}

}  // namespace meshd::dataplane::uapi
