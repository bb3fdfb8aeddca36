#include "netlink/nl_socket.h"

#include "netlink/nl_attr.h"
#include "netlink/wiped_bytes.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <utility>

namespace meshd::nl {
namespace {

// A blocking request waits at most this long for the kernel. The kernel always
// answers; a timeout means a bug (a lost ack), and an error beats a hang.
constexpr int kRecvTimeoutSec = 10;

// Batches are cut into datagrams of at most this many bytes and messages, so
// the acks of one datagram (~36 bytes each with NETLINK_CAP_ACK, more with an
// extended-ack text) always fit the default receive buffer.
constexpr std::size_t kBatchMaxBytes = 64 * 1024;
constexpr std::size_t kBatchMaxMessages = 256;

Result<void> parse_ext_ack(const std::uint8_t* p, std::size_t len, NlAck& ack) {
  // The TLVs are ordinary netlink attributes.
  NlAttrReader r({p, len});
  NlAttr a;
  for (;;) {
    auto more = r.next(a);
    if (!more) return fail(EBADMSG, "parse netlink extended ack (" + more.error().message + ")");
    if (!*more) return {};
    switch (a.type) {
      case NLMSGERR_ATTR_MSG:
        ack.ext_message.assign(reinterpret_cast<const char*>(a.payload.data()),
                               strnlen(reinterpret_cast<const char*>(a.payload.data()), a.payload.size()));
        break;
      case NLMSGERR_ATTR_OFFS:
        if (a.payload.size() >= sizeof(std::uint32_t))
          std::memcpy(&ack.ext_offset, a.payload.data(), sizeof(std::uint32_t));
        break;
      default:
        break;  // cookie, policy, missing-attribute hints: not shown to people
    }
  }
}

// Kernel errors are negative errnos; anything else (positive, INT_MIN) is a
// protocol violation, reported as such rather than negated into nonsense.
int errno_of(int kernel_error) {
  if (kernel_error == 0) return 0;
  if (kernel_error < 0 && kernel_error > -4096) return -kernel_error;
  return EPROTO;
}

bool is_dump(const nlmsghdr* req) { return (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP; }

// Wipes the first `n` bytes of the receive buffer when a datagram has been
// walked, on every path out of the walk.
class WipeAfterWalk {
 public:
  WipeAfterWalk(std::vector<std::uint8_t>& buf, std::size_t n) : buf_(buf), n_(n) {}
  WipeAfterWalk(const WipeAfterWalk&) = delete;
  WipeAfterWalk& operator=(const WipeAfterWalk&) = delete;
  ~WipeAfterWalk() { explicit_bzero(buf_.data(), std::min(n_, buf_.size())); }

 private:
  std::vector<std::uint8_t>& buf_;
  std::size_t n_;
};

}  // namespace

Result<NlAck> parse_ack(const nlmsghdr* nlh) {
  if (nlh == nullptr || nlh->nlmsg_len < NLMSG_HDRLEN) return fail(EBADMSG, "parse netlink ack");
  const auto* payload = reinterpret_cast<const std::uint8_t*>(nlh) + NLMSG_HDRLEN;
  const std::size_t plen = nlh->nlmsg_len - NLMSG_HDRLEN;
  NlAck ack;
  ack.seq = nlh->nlmsg_seq;
  std::size_t tlv_offset = 0;

  if (nlh->nlmsg_type == NLMSG_DONE) {
    // A dump's status word; absent in old kernels and in hand-made messages.
    if (plen < sizeof(int)) return ack;
    int status;
    std::memcpy(&status, payload, sizeof status);
    ack.error = errno_of(status);
    tlv_offset = sizeof(int);
  } else if (nlh->nlmsg_type == NLMSG_ERROR) {
    if (plen < sizeof(nlmsgerr)) return fail(EBADMSG, "parse netlink ack: truncated NLMSG_ERROR");
    nlmsgerr e;
    std::memcpy(&e, payload, sizeof e);
    ack.error = errno_of(e.error);
    tlv_offset = sizeof(nlmsgerr);
    // Without NETLINK_CAP_ACK the kernel echoes the whole request before the TLVs.
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
      if (e.msg.nlmsg_len < NLMSG_HDRLEN) return fail(EBADMSG, "parse netlink ack: bad echoed header");
      tlv_offset += NLMSG_ALIGN(e.msg.nlmsg_len - NLMSG_HDRLEN);
    }
  } else {
    return fail(EBADMSG, "parse netlink ack: message type " + std::to_string(nlh->nlmsg_type) +
                             " is neither NLMSG_ERROR nor NLMSG_DONE");
  }

  if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
    if (tlv_offset > plen) return fail(EBADMSG, "parse netlink ack: extended ack past the end");
    auto r = parse_ext_ack(payload + tlv_offset, plen - tlv_offset, ack);
    if (!r) return r.error();
  }
  return ack;
}

Error ack_error(const NlAck& ack, std::string_view what) {
  Error e = Error::from_errno(ack.error, std::string(what));
  if (!ack.ext_message.empty()) e.message += " (kernel: " + ack.ext_message + ")";
  return e;
}

Result<void> for_each_message(std::span<const std::uint8_t> data, const MessageFn& fn) {
  std::size_t off = 0;
  while (off < data.size()) {
    std::size_t left = data.size() - off;
    if (left < NLMSG_HDRLEN) return fail(EBADMSG, "parse netlink message: truncated header");
    // Messages are 4-byte aligned inside the buffers the kernel fills (and
    // ours), but a fuzzer's are not: copy the header out before reading it.
    nlmsghdr h;
    std::memcpy(&h, data.data() + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > left)
      return fail(EBADMSG, "parse netlink message: length " + std::to_string(h.nlmsg_len) +
                               " with " + std::to_string(left) + " bytes left");
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(data.data() + off);
    if (fn) {
      auto r = fn(*nlh);
      if (!r) return r;
    }
    std::size_t step = NLMSG_ALIGN(h.nlmsg_len);
    if (step >= left) break;
    off += step;
  }
  return {};
}

NlSocket::NlSocket(mnl_socket* s) : sock_(s), rbuf_(kNlRecvBufferSize) {}

NlSocket::NlSocket(NlSocket&& o) noexcept
    : sock_(std::exchange(o.sock_, nullptr)),
      transport_(std::move(o.transport_)),
      portid_(o.portid_),
      seq_(o.seq_),
      nonblocking_(o.nonblocking_),
      dump_restarts_(o.dump_restarts_),
      rbuf_(std::move(o.rbuf_)) {}

NlSocket& NlSocket::operator=(NlSocket&& o) noexcept {
  if (this != &o) {
    if (sock_) mnl_socket_close(sock_);
    sock_ = std::exchange(o.sock_, nullptr);
    transport_ = std::move(o.transport_);
    portid_ = o.portid_;
    seq_ = o.seq_;
    nonblocking_ = o.nonblocking_;
    dump_restarts_ = o.dump_restarts_;
    rbuf_ = std::move(o.rbuf_);
  }
  return *this;
}

NlSocket::~NlSocket() {
  if (sock_) mnl_socket_close(sock_);
}

Result<NlSocket> NlSocket::open(int bus, bool nonblocking) {
  const std::string what = "open netlink socket (bus " + std::to_string(bus) + ")";
  int flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  mnl_socket* s = mnl_socket_open2(bus, flags);
  if (!s) return fail(errno, what);
  NlSocket sock(s);
  if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) return fail(errno, what + ": bind");
  sock.portid_ = mnl_socket_get_portid(s);
  // Extended acks carry the kernel's explanation ("Unknown device type");
  // capped acks keep a failing large request from being echoed back whole.
  int on = 1;
  if (mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &on, sizeof on) < 0)
    return fail(errno, what + ": NETLINK_EXT_ACK");
  if (mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &on, sizeof on) < 0)
    return fail(errno, what + ": NETLINK_CAP_ACK");
  if (!nonblocking) {
    timeval tv{kRecvTimeoutSec, 0};
    if (setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
      return fail(errno, what + ": SO_RCVTIMEO");
  }
  sock.nonblocking_ = nonblocking;
  return sock;
}

NlSocket NlSocket::over(std::unique_ptr<NlTransport> transport, std::uint32_t portid) {
  NlSocket sock(nullptr);
  sock.transport_ = std::move(transport);
  sock.portid_ = portid;
  return sock;
}

int NlSocket::fd() const { return sock_ ? mnl_socket_get_fd(sock_) : -1; }
std::uint32_t NlSocket::portid() const { return portid_; }
std::uint32_t NlSocket::next_seq() {
  if (++seq_ == 0) ++seq_;  // 0 is what the kernel uses for unsolicited events
  return seq_;
}

Result<void> NlSocket::join_group(unsigned group) {
  int g = static_cast<int>(group);
  if (!sock_) return fail(ENOTSOCK, "join netlink multicast group " + std::to_string(group) + ": no kernel socket");
  if (mnl_socket_setsockopt(sock_, NETLINK_ADD_MEMBERSHIP, &g, sizeof g) < 0)
    return fail(errno, "join netlink multicast group " + std::to_string(group));
  return {};
}

Result<void> NlSocket::send_all(const void* data, std::size_t len, std::string_view what) {
  if (transport_) {
    auto r = transport_->send({static_cast<const std::uint8_t*>(data), len});
    if (!r) return Error{r.error().code, std::string(what) + ": send: " + r.error().message};
    return {};
  }
  ssize_t n = mnl_socket_sendto(sock_, data, len);
  if (n < 0) return fail(errno, std::string(what) + ": send");
  if (static_cast<std::size_t>(n) != len) return fail(EMSGSIZE, std::string(what) + ": short send");
  return {};
}

// One datagram from the kernel (anything another port sends is skipped).
// With MSG_DONTWAIT, 0 means nothing is queued; a blocking socket that times
// out reports ETIMEDOUT.
Result<std::size_t> NlSocket::recv_datagram(std::vector<std::uint8_t>& buf, std::string_view what,
                                            int flags) {
  if (transport_) {
    auto n = transport_->receive(buf, (flags & MSG_DONTWAIT) != 0);
    if (!n) return Error{n.error().code, std::string(what) + ": receive: " + n.error().message};
    if (*n > buf.size()) {
      explicit_bzero(buf.data(), buf.size());  // what did arrive is never walked
      return fail(EMSGSIZE, std::string(what) + ": message truncated");
    }
    return *n;
  }
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buf.data(), buf.size()};
    msghdr mh{};
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd(), &mh, flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      const bool would_block = errno == EAGAIN || errno == EWOULDBLOCK;
      if (would_block && (flags & MSG_DONTWAIT)) return std::size_t{0};
      int err = would_block && !nonblocking_ ? ETIMEDOUT : errno;
      return fail(err, std::string(what) + ": receive");
    }
    if (mh.msg_flags & MSG_TRUNC) {
      explicit_bzero(buf.data(), buf.size());  // what did arrive is never walked
      return fail(EMSGSIZE, std::string(what) + ": message truncated");
    }
    if (from.nl_pid != 0) continue;  // only the kernel speaks to us
    return static_cast<std::size_t>(n);
  }
}

Result<void> NlSocket::request(nlmsghdr* req, std::string_view what, const MessageFn& on_reply) {
  const bool dump = is_dump(req);
  if (!dump) req->nlmsg_flags |= NLM_F_ACK;
  req->nlmsg_pid = 0;  // addressed to the kernel; our port id is implied by the socket

  for (int attempt = 1;; ++attempt) {
    const std::uint32_t seq = next_seq();
    req->nlmsg_seq = seq;
    if (auto r = send_all(req, req->nlmsg_len, what); !r) return r;

    // A dump is kept whole until NLMSG_DONE: if the kernel flags it as
    // interrupted, the caller must never have seen half of it.
    WipedBytes kept;
    bool interrupted = false;
    bool finished = false;
    Result<void> outcome;  // first error from the kernel or from on_reply

    while (!finished) {
      auto n = recv_datagram(rbuf_, what);
      if (!n) return n.error();
      WipeAfterWalk wipe(rbuf_, *n);
      auto walked = for_each_message({rbuf_.data(), *n}, [&](const nlmsghdr& m) -> Result<void> {
        if (m.nlmsg_seq != seq || m.nlmsg_pid != portid_) return {};  // stale or unrelated
        if (m.nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        switch (m.nlmsg_type) {
          case NLMSG_NOOP:
            return {};
          case NLMSG_ERROR:
          case NLMSG_DONE: {
            finished = true;
            auto ack = parse_ack(&m);
            if (!ack) {
              if (outcome) outcome = ack.error();
            } else if (ack->error != 0 && outcome) {
              outcome = ack_error(*ack, what);
            }
            return {};
          }
          case NLMSG_OVERRUN:
            finished = true;
            if (outcome) outcome = fail(EOVERFLOW, std::string(what));
            return {};
          default:
            if (dump) {
              const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
              kept.insert(kept.end(), p, p + NLMSG_ALIGN(m.nlmsg_len));
            } else if (outcome && on_reply) {
              outcome = on_reply(m);
            }
            return {};
        }
      });
      if (!walked) return Error{walked.error().code, std::string(what) + ": " + walked.error().message};
    }
    if (!outcome) return outcome;
    if (!dump) return {};
    if (interrupted) {
      ++dump_restarts_;
      if (attempt < kNlMaxDumpAttempts) continue;
      return Error{{EINTR, boost::system::generic_category()},
                   std::string(what) + ": the kernel's table kept changing during " +
                       std::to_string(kNlMaxDumpAttempts) + " dump attempts; try again"};
    }
    return for_each_message({kept.data(), kept.size()}, on_reply);
  }
}

Result<std::vector<Result<void>>> NlSocket::batch(std::span<const NlBatchEntry> entries) {
  std::vector<Result<void>> results(entries.size());
  std::vector<bool> answered(entries.size(), false);
  WipedBytes out;
  std::size_t i = 0;
  while (i < entries.size()) {
    // Pack one datagram.
    out.clear();
    const std::size_t first = i;
    const std::uint32_t first_seq = seq_ + 1 == 0 ? 1 : seq_ + 1;
    while (i < entries.size() && (i == first || (out.size() + entries[i].msg->nlmsg_len <= kBatchMaxBytes &&
                                                 i - first < kBatchMaxMessages))) {
      nlmsghdr* m = entries[i].msg;
      m->nlmsg_flags |= NLM_F_ACK;
      m->nlmsg_pid = 0;
      m->nlmsg_seq = next_seq();
      if (m->nlmsg_seq != first_seq + static_cast<std::uint32_t>(i - first)) break;  // wrapped: next datagram
      const auto* p = reinterpret_cast<const std::uint8_t*>(m);
      out.insert(out.end(), p, p + m->nlmsg_len);
      out.resize(NLMSG_ALIGN(out.size()));
      ++i;
    }
    const std::size_t count = i - first;
    if (auto r = send_all(out.data(), out.size(), entries[first].what); !r) return r.error();

    std::size_t pending = count;
    while (pending > 0) {
      auto n = recv_datagram(rbuf_, entries[first].what);
      if (!n) return n.error();
      WipeAfterWalk wipe(rbuf_, *n);
      auto walked = for_each_message({rbuf_.data(), *n}, [&](const nlmsghdr& m) -> Result<void> {
        if (m.nlmsg_type != NLMSG_ERROR || m.nlmsg_pid != portid_) return {};
        std::uint32_t k = m.nlmsg_seq - first_seq;
        if (k >= count || answered[first + k]) return {};
        answered[first + k] = true;
        --pending;
        auto ack = parse_ack(&m);
        if (!ack)
          results[first + k] = ack.error();
        else if (ack->error != 0)
          results[first + k] = ack_error(*ack, entries[first + k].what);
        return {};
      });
      if (!walked) return walked.error();
    }
  }
  return results;
}

Result<void> NlSocket::drain(std::string_view what, const MessageFn& fn) {
  for (;;) {
    auto n = recv_datagram(rbuf_, what, MSG_DONTWAIT);
    if (!n) {
      if (n.error().is(ENOBUFS))
        return fail(ENOBUFS, std::string(what) + ": the kernel dropped notifications; resync");
      return n.error();
    }
    if (*n == 0) return {};
    WipeAfterWalk wipe(rbuf_, *n);
    if (auto r = for_each_message({rbuf_.data(), *n}, fn); !r) return r;
  }
}

}  // namespace meshd::nl
