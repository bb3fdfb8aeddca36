// A Unix-socket server run by another user (uid/gid 65534, "nobody"), in a
// forked child: what a client that checks SO_PEERCRED must refuse before it
// sends anything. It accepts every connection and counts the bytes it is sent
// until stop(). Needs root (to drop to another uid).
#pragma once

#include "common/unique_fd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

namespace meshd::testing {

class ForeignUnixListener {
 public:
  static constexpr uid_t kUid = 65534;

  // Returns once the child listens on `path`; throws if it could not.
  explicit ForeignUnixListener(const std::string& path) {
    int ready[2], stop[2], count[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(stop, O_CLOEXEC) != 0 || ::pipe2(count, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe failed");
    UniqueFd ready_r(ready[0]), ready_w(ready[1]), stop_r(stop[0]), count_w(count[1]);
    stop_w_.reset(stop[1]);
    count_r_.reset(count[0]);
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) throw std::runtime_error("socket path too long");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // The parent's ends: held open here, the stop pipe would never hang up.
      ::close(stop_w_.get());
      ::close(count_r_.get());
      serve(path, ready_w.get(), stop_r.get(), count_w.get());
    }
    ready_w.reset();
    stop_r.reset();
    count_w.reset();
    char c;
    if (::read(ready_r.get(), &c, 1) != 1) {
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      throw std::runtime_error("the listener of another user did not start on " + path);
    }
  }
  ~ForeignUnixListener() { stop(); }
  ForeignUnixListener(const ForeignUnixListener&) = delete;
  ForeignUnixListener& operator=(const ForeignUnixListener&) = delete;

  pid_t pid() const { return pid_; }

  // Ends the child and returns how many bytes it was sent in all.
  std::size_t stop() {
    if (pid_ <= 0) return received_;
    stop_w_.reset();  // the child sees POLLHUP and reports its count
    std::size_t total = 0;
    if (::read(count_r_.get(), &total, sizeof total) == static_cast<ssize_t>(sizeof total)) received_ = total;
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return received_;
  }

 private:
  [[noreturn]] static void serve(const std::string& path, int ready, int stop, int count) {
    ::alarm(20);  // never outlive a broken test
    int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(2);
    // SO_PEERCRED reports the credentials of the listen() call.
    if (::setgid(kUid) != 0 || ::setuid(kUid) != 0 || ::listen(l, 8) != 0) ::_exit(3);
    (void)!::write(ready, "r", 1);
    std::size_t total = 0;
    for (;;) {
      pollfd p[2] = {{l, POLLIN, 0}, {stop, POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents) break;
      int c = ::accept(l, nullptr, nullptr);
      char b[512];
      ssize_t got;
      while (c >= 0 && (got = ::read(c, b, sizeof b)) > 0) total += static_cast<std::size_t>(got);
      if (c >= 0) ::close(c);
    }
    (void)!::write(count, &total, sizeof total);
    ::_exit(0);
  }

  pid_t pid_ = -1;
  UniqueFd stop_w_, count_r_;
  std::size_t received_ = 0;
};

}  // namespace meshd::testing
