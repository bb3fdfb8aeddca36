#include "meshd/controlplane/join_client.h"

#include "common/unique_fd.h"
#include "meshd/controlplane/announce.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/readmit.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace meshd::controlplane {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1 << 30));
}

// Waits for `events` until the deadline; EINTR restarts with the time left.
Result<void> wait_for(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return {};
    if (n == 0) return fail(ETIMEDOUT, what);
    if (errno != EINTR) return fail(errno, what);
  }
}

}  // namespace

Result<std::vector<std::uint8_t>> join_roundtrip(const Endpoint& target,
                                                 std::span<const std::uint8_t> request,
                                                 std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = "join " + target.to_string();
  sockaddr_storage ss{};
  const std::size_t len = target.to_sockaddr(ss);
  if (len == 0) return fail(EINVAL, where + ": not an address");
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return fail(errno, where + ": socket");

  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), static_cast<socklen_t>(len)) != 0) {
    if (errno != EINPROGRESS) return fail(errno, where + ": connect");
    if (auto r = wait_for(fd.get(), POLLOUT, deadline, where + ": connect"); !r) return r.error();
    int err = 0;
    socklen_t el = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    if (err != 0) return fail(err, where + ": connect");
  }

  for (std::size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(errno, where + ": send the request");
    if (auto r = wait_for(fd.get(), POLLOUT, deadline, where + ": send the request"); !r)
      return r.error();
  }

  // The header first, so that the body's length is checked before anything
  // is allocated for it.
  std::vector<std::uint8_t> frame(kJoinHeaderBytes);
  std::size_t want = kJoinHeaderBytes;
  for (std::size_t got = 0; got < want;) {
    ssize_t n = ::recv(fd.get(), frame.data() + got, want - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      if (got == kJoinHeaderBytes && want == kJoinHeaderBytes) {
        if (std::memcmp(frame.data(), "MJRP", 4) != 0 &&
            std::memcmp(frame.data(), kReadmitReplyMagic.data(), 4) != 0 &&
            std::memcmp(frame.data(), kAnnounceReplyMagic.data(), 4) != 0)
          return Error{{EPROTO, boost::system::generic_category()},
                       where + ": the answer is not a join reply (no \"MJRP\", \"MJRR\" or \"MJRO\" header)"};
        std::uint32_t body = 0;
        for (int i = 8; i < 12; ++i) body = (body << 8) | frame[i];
        if (body > kMaxJoinReplyBytes - kJoinHeaderBytes)
          return Error{{EMSGSIZE, boost::system::generic_category()},
                       where + ": the reply announces " + std::to_string(body) +
                           " bytes, above the limit of " +
                           std::to_string(kMaxJoinReplyBytes - kJoinHeaderBytes)};
        want += body;
        frame.resize(want);
      }
      continue;
    }
    if (n == 0)
      return Error{{EPROTO, boost::system::generic_category()},
                   where + ": the member closed the connection after " + std::to_string(got) +
                       " of " + std::to_string(want) + " bytes of the reply"};
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(errno, where + ": read the reply");
    if (auto r = wait_for(fd.get(), POLLIN, deadline, where + ": read the reply"); !r)
      return r.error();
  }
  return frame;
}

}  // namespace meshd::controlplane
