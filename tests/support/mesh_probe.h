// What a cluster node's data plane holds, read from outside meshd, and the
// traffic between pods measured: the lifecycle tests (node removal, key
// rotation, partitions) and their benchmark assert on these, not on meshd's
// own account of itself.
//
//   wg_peers()    the peers of the node's userspace WireGuard device, over its
//                 UAPI socket (wireguard-go puts it in the node's socket_dir,
//                 so the test reaches it without entering the node's private
//                 mount namespace), public keys in base64 as the API shows them;
//   has_route()   a prefix in the node's routing tables (every table);
//   PingRun       `ping -D` in a namespace in the background, then the largest
//                 interval between consecutive replies and the loss.
#pragma once

#include "keys/wg_key.h"
#include "tests/support/netns.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace meshd::testing {

struct WgPeer {
  std::string public_key;  // base64
  std::vector<std::string> allowed_ips;
  long long last_handshake_sec = 0;  // unix seconds; 0: never
};

// The peers of the userspace device whose UAPI socket is `socket_path`
// ("<socket_dir>/<interface>.sock"); nothing when the device does not answer
// (no socket: the device is gone).
inline std::optional<std::vector<WgPeer>> wg_peers(const std::string& socket_path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof sa.sun_path) {
    ::close(fd);
    return std::nullopt;
  }
  std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size() + 1);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::send(fd, "get=1\n\n", 7, MSG_NOSIGNAL) != 7) {
    ::close(fd);
    return std::nullopt;
  }
  std::string in;
  char buf[65536];
  while (in.find("\n\n") == std::string::npos) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    in.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  // The answer ends with "errno=0"; anything else is a device that failed.
  if (in.find("errno=0\n") == std::string::npos) return std::nullopt;
  std::vector<WgPeer> peers;
  std::istringstream lines(in);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "public_key") {
      auto bytes = keys::key_from_hex(value);
      peers.push_back(WgPeer{bytes ? keys::key_to_base64(*bytes) : "(bad hex)", {}, 0});
    } else if (peers.empty()) {
      continue;  // the device's own lines (private_key, listen_port, ...)
    } else if (key == "allowed_ip") {
      peers.back().allowed_ips.push_back(value);
    } else if (key == "last_handshake_time_sec") {
      peers.back().last_handshake_sec = std::atoll(value.c_str());
    }
  }
  return peers;
}

// The peer with this public key (base64) on the device, if there is one.
inline std::optional<WgPeer> find_peer(const std::vector<WgPeer>& peers, const std::string& public_key) {
  for (const auto& p : peers)
    if (p.public_key == public_key) return p;
  return std::nullopt;
}

// `prefix` ("10.244.3.0/24") as a route's destination in any routing table of
// the namespace.
inline bool has_route(const Netns& ns, const std::string& prefix) {
  std::istringstream lines(ns.out("ip -o -4 route show table all 2>/dev/null"));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first, second;
    words >> first >> second;
    // "10.244.3.0/24 dev ..." or, for a typed route, "unicast 10.244.3.0/24 ..."
    if (first == prefix || second == prefix) return true;
  }
  return false;
}

struct PingStats {
  int sent = 0;      // the count asked for
  int received = 0;  // distinct sequence numbers answered
  int lost() const { return sent - received; }
  double max_gap_ms = 0;  // largest interval between consecutive replies
  double first_reply = 0, last_reply = 0;  // unix seconds (ping -D), 0: none
  std::map<long, double> replies;  // sequence number (from 1) -> reply time, unix seconds
  std::vector<long> lost_seqs;     // the sequence numbers 1..sent never answered
  std::string output;  // ping's own output, for failure messages

  // When probe `seq` was sent (unix seconds), estimated from the nearest
  // answered probe and the interval (a reply comes back within a
  // millisecond or two here); 0 when none was answered.
  double sent_at(long seq, double interval_s) const {
    if (replies.empty()) return 0;
    auto after = replies.lower_bound(seq);
    auto near = after == replies.end() ? std::prev(after) : after;
    if (after != replies.begin() && after != replies.end() &&
        seq - std::prev(after)->first < after->first - seq)
      near = std::prev(after);
    return near->second + static_cast<double>(seq - near->first) * interval_s;
  }
};

// Parses `ping -D` output: the replies' timestamps by sequence number.
inline PingStats ping_stats(const std::string& output, int sent) {
  PingStats s;
  s.sent = sent;
  s.output = output;
  std::set<long> seqs;
  std::vector<double> times;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    // "[1800000000.123456] 64 bytes from 10.244.1.2: icmp_seq=7 ttl=63 time=0.41 ms"
    if (line.size() < 3 || line[0] != '[') continue;
    auto seq_at = line.find("icmp_seq=");
    if (seq_at == std::string::npos || line.find(" bytes from ") == std::string::npos) continue;
    if (line.find("(DUP!)") != std::string::npos) continue;
    double t = std::atof(line.c_str() + 1);
    long seq = std::atol(line.c_str() + seq_at + 9);
    if (!seqs.insert(seq).second) continue;
    times.push_back(t);
    s.replies[seq] = t;
  }
  for (long seq = 1; seq <= sent; ++seq)
    if (!seqs.count(seq)) s.lost_seqs.push_back(seq);
  std::sort(times.begin(), times.end());
  s.received = static_cast<int>(seqs.size());
  for (std::size_t i = 1; i < times.size(); ++i) s.max_gap_ms = std::max(s.max_gap_ms, (times[i] - times[i - 1]) * 1000);
  if (!times.empty()) {
    s.first_reply = times.front();
    s.last_reply = times.back();
  }
  return s;
}

// `ping -D -i INTERVAL -W 1 -c COUNT ADDRESS` in `ns`, from the constructor
// until it has sent its count (wait()) or the object goes (ended by PID).
// An interval below 0.2 s needs root, which the tests have.
class PingRun {
 public:
  PingRun(const Netns& ns, const std::string& address, int count, double interval_s)
      : dir_("meshd-ping"), count_(count) {
    char interval[32];
    std::snprintf(interval, sizeof interval, "%.3f", interval_s);
    SpawnOptions o;
    o.stdout_path = dir_.file("out");
    o.stderr_path = dir_.file("out");
    o.stdin_path = "/dev/null";
    std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
    // ip netns exec execs ping in place: the PID is ping's.
    pid_ = spawn({ip, "netns", "exec", ns.name(), "ping", "-D", "-n", "-i", interval, "-W", "1", "-c",
                  std::to_string(count), address},
                 o);
  }
  ~PingRun() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait_exit(pid_);
    }
  }
  PingRun(const PingRun&) = delete;
  PingRun& operator=(const PingRun&) = delete;

  // Waits for ping to end (count sent, the last reply waited for).
  PingStats wait() {
    if (pid_ > 0) {
      wait_exit(pid_);
      pid_ = 0;
    }
    return ping_stats(read_file(dir_.file("out")), count_);
  }

 private:
  TempDir dir_;
  int count_;
  pid_t pid_ = 0;
};

}  // namespace meshd::testing
