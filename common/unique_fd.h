// An owned file descriptor, closed when its owner goes away, on every path
// out of a function (early returns, exceptions). -1 means "none". Movable,
// not copyable: exactly one owner closes a descriptor, exactly once.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace meshd {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives the descriptor up without closing it (the caller owns it now).
  int release() { return std::exchange(fd_, -1); }
  // Closes the descriptor held, if any, and holds `fd` instead. close(2)'s
  // error is not reported: Linux releases the descriptor even then, and a
  // retry could close a descriptor another thread just opened. A caller that
  // must know (a file whose data matters) calls ::close(release()) itself.
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Marks `fd` close-on-exec. Asio opens and accepts its sockets without
// SOCK_CLOEXEC; every descriptor meshd holds must stay out of the processes it
// starts (the userspace WireGuard implementation).
inline void set_cloexec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0 && !(flags & FD_CLOEXEC)) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

}  // namespace meshd
