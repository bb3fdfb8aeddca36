// A stand-in for journald's native socket: a Unix datagram socket the test
// binds, into which a process's sd_journal_sendv(3) entries arrive once the
// socket is mounted over /run/systemd/journal/socket in the process's own
// mount namespace (journal_wrapper() below; libsystemd has no variable that
// would point it elsewhere). A thread drains it as entries come, so a
// chatty process never blocks on a full queue, and parses each datagram in
// the native protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): fields
// "KEY=VALUE\n", or "KEY\n" + a 64-bit little-endian length + the value +
// "\n" for a value that holds a newline; an entry too large for one
// datagram comes as a memfd passed with SCM_RIGHTS, holding the same bytes.
#pragma once

#include "tests/support/temp_dir.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace meshd::testing {

// One journal entry: its fields by name (the native protocol allows a
// field more than once; meshd sends each once, so the last one is kept).
using JournalEntry = std::map<std::string, std::string>;

// Parses one datagram (or memfd) of the native protocol; throws on a
// malformed one, so that a sender bug fails the test instead of vanishing.
inline JournalEntry parse_journal_datagram(const std::string& d) {
  JournalEntry e;
  std::size_t at = 0;
  while (at < d.size()) {
    std::size_t nl = d.find('\n', at);
    if (nl == std::string::npos) throw std::runtime_error("journal datagram: a field without a newline");
    std::string line = d.substr(at, nl - at);
    if (auto eq = line.find('='); eq != std::string::npos) {
      e[line.substr(0, eq)] = line.substr(eq + 1);
      at = nl + 1;
      continue;
    }
    // Binary-safe form: the name alone, then the length and the value.
    if (nl + 1 + 8 > d.size()) throw std::runtime_error("journal datagram: a cut length of " + line);
    std::uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(d[nl + 1 + i]);
    std::size_t v = nl + 1 + 8;
    if (len > d.size() - v || v + len >= d.size() || d[v + len] != '\n')
      throw std::runtime_error("journal datagram: a bad binary value of " + line);
    e[line] = d.substr(v, len);
    at = v + len + 1;
  }
  return e;
}

class JournalSocket {
 public:
  // Binds DIR/journal/socket; DIR is what journal_wrapper() mounts on
  // /run/systemd.
  explicit JournalSocket(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_ + "/journal");
    std::string path = dir_ + "/journal/socket";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("journal socket: " + std::string(std::strerror(errno)));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) throw std::runtime_error("journal socket path too long: " + path);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("bind " + path + ": " + std::strerror(errno));
    ::chmod(path.c_str(), 0666);
    int big = 8 << 20;  // as journald does: room for bursts
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    reader_ = std::thread([this] { read_loop(); });
  }
  ~JournalSocket() {
    stop_ = true;
    reader_.join();
    ::close(fd_);
  }
  JournalSocket(const JournalSocket&) = delete;
  JournalSocket& operator=(const JournalSocket&) = delete;

  const std::string& dir() const { return dir_; }

  std::vector<JournalEntry> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  // Every datagram's raw bytes, for "this secret never arrived" checks that
  // must not depend on the parser.
  std::string raw() const {
    std::lock_guard lock(mutex_);
    return raw_;
  }
  // A malformed datagram (parse_journal_datagram's message), "" when none.
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  void read_loop() {
    std::vector<char> buf(1 << 20);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      iovec iov{buf.data(), buf.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = control;
      m.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(fd_, &m, MSG_CMSG_CLOEXEC);
      if (n < 0) continue;
      std::string bytes(buf.data(), static_cast<std::size_t>(n));
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int memfd = -1;
        std::memcpy(&memfd, CMSG_DATA(c), sizeof memfd);
        bytes.clear();
        char chunk[65536];
        for (off_t off = 0;;) {
          ssize_t r = ::pread(memfd, chunk, sizeof chunk, off);
          if (r <= 0) break;
          bytes.append(chunk, static_cast<std::size_t>(r));
          off += r;
        }
        ::close(memfd);
      }
      std::lock_guard lock(mutex_);
      raw_ += bytes;
      try {
        entries_.push_back(parse_journal_datagram(bytes));
      } catch (const std::exception& e) {
        if (error_.empty()) error_ = e.what();
      }
    }
  }

  std::string dir_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<JournalEntry> entries_;
  std::string raw_;
  std::string error_;
  std::thread reader_;
};

// A script that runs `program` with its arguments as systemd would with
// StandardOutput=journal: $JOURNAL_STREAM names the script's stdout (the
// test's log file stands in for the stream), and inside a mount namespace
// of its own a tmpfs covers /run and `socket`'s directory is mounted on
// /run/systemd, so /run/systemd/journal/socket is the test's. The host's
// /run is untouched. Written to `path`, mode 0755; exec's in place, so the
// PID that runs it is the program's.
inline std::string journal_wrapper(const std::string& path, const JournalSocket& socket,
                                   const std::string& program) {
  write_file(path, "#!/bin/sh\nset -eu\n"
                   "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1)\n"
                   "export JOURNAL_STREAM\n"
                   "exec unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs meshd-journal-test /run && "
                   "mkdir /run/systemd && mount --bind \"$0\" /run/systemd && exec \"$@\"' '" +
                       socket.dir() + "' '" + program + "' \"$@\"\n");
  ::chmod(path.c_str(), 0755);
  return path;
}

}  // namespace meshd::testing
