// Test helper: an NlTransport that plays "the kernel" from recorded bytes, so
// that NlSocket's request loop and every caller's reply handling run as in
// production without a kernel (unit tests, fuzzers, seed makers).
//
// The fuzz input format (also of the seeds in tests/fuzz/{rtnl,wireguard}):
// datagrams back to back, each as a 2-byte little-endian length and that many
// bytes; a length past the end takes what is left. When the datagrams run out
// a blocking receive fails with ETIMEDOUT, as the real socket's timeout does.
// The socket made by replay_socket() has port id kReplayPortId and numbers
// its requests from 1, so replies that should be accepted carry those.
#pragma once

#include "netlink/nl_socket.h"

#include <linux/netlink.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace meshd::testing {

inline constexpr std::uint32_t kReplayPortId = 4242;

using Datagram = std::vector<std::uint8_t>;

inline std::vector<Datagram> split_frames(std::span<const std::uint8_t> in) {
  std::vector<Datagram> out;
  while (in.size() >= 2) {
    std::size_t len = in[0] | (std::size_t{in[1]} << 8);
    in = in.subspan(2);
    if (len > in.size()) len = in.size();
    out.emplace_back(in.begin(), in.begin() + static_cast<long>(len));
    in = in.subspan(len);
  }
  return out;
}

inline std::vector<std::uint8_t> join_frames(const std::vector<Datagram>& datagrams) {
  std::vector<std::uint8_t> out;
  for (const auto& d : datagrams) {
    out.push_back(static_cast<std::uint8_t>(d.size() & 0xff));
    out.push_back(static_cast<std::uint8_t>(d.size() >> 8));
    out.insert(out.end(), d.begin(), d.end());
  }
  return out;
}

// Sets nlmsg_seq and nlmsg_pid of every message in `stream` (messages back
// to back, as one datagram holds them), so that the socket accepts them.
inline void stamp(std::vector<std::uint8_t>& stream, std::uint32_t seq,
                  std::uint32_t pid = kReplayPortId) {
  std::size_t off = 0;
  while (stream.size() - off >= NLMSG_HDRLEN) {
    nlmsghdr h;
    std::memcpy(&h, stream.data() + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > stream.size() - off) break;
    h.nlmsg_seq = seq;
    h.nlmsg_pid = pid;
    std::memcpy(stream.data() + off, &h, sizeof h);
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
}

// An NLMSG_ERROR datagram (error 0 is an ack) without the echoed request
// (NLM_F_CAPPED), stamped with `seq`.
inline Datagram ack_datagram(int error, std::uint32_t seq) {
  Datagram e(NLMSG_HDRLEN + sizeof(nlmsgerr), 0);
  nlmsghdr h{};
  h.nlmsg_len = static_cast<std::uint32_t>(e.size());
  h.nlmsg_type = NLMSG_ERROR;
  h.nlmsg_flags = NLM_F_CAPPED;
  std::memcpy(e.data(), &h, sizeof h);
  nlmsgerr err{};
  err.error = error;
  std::memcpy(e.data() + NLMSG_HDRLEN, &err, sizeof err);
  stamp(e, seq);
  return e;
}

class ReplayTransport : public nl::NlTransport {
 public:
  explicit ReplayTransport(std::vector<Datagram> datagrams) : datagrams_(std::move(datagrams)) {}

  Result<void> send(std::span<const std::uint8_t> datagram) override {
    sent.emplace_back(datagram.begin(), datagram.end());
    return {};
  }

  Result<std::size_t> receive(std::span<std::uint8_t> buf, bool dont_wait) override {
    last_buffer = buf;
    if (next_ == datagrams_.size()) {
      if (dont_wait) return std::size_t{0};
      return fail(ETIMEDOUT, "replay: no more datagrams");
    }
    const Datagram& d = datagrams_[next_++];
    if (!d.empty()) std::memcpy(buf.data(), d.data(), std::min(d.size(), buf.size()));
    return d.size();
  }

  std::size_t delivered() const { return next_; }

  std::vector<Datagram> sent;             // what the socket sent, in order
  std::span<std::uint8_t> last_buffer;  // the socket's receive buffer, for inspection

 private:
  std::vector<Datagram> datagrams_;
  std::size_t next_ = 0;
};

// A socket over a ReplayTransport; `transport` (if given) points at it for
// inspection while the socket lives.
inline nl::NlSocket replay_socket(std::vector<Datagram> datagrams,
                                  ReplayTransport** transport = nullptr) {
  auto t = std::make_unique<ReplayTransport>(std::move(datagrams));
  if (transport) *transport = t.get();
  return nl::NlSocket::over(std::move(t), kReplayPortId);
}

}  // namespace meshd::testing
