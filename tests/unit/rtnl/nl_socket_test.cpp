// Ack and message-walk parsing of netlink/nl_socket.h: what the kernel's
// NLMSG_ERROR/NLMSG_DONE replies become in front of a person.
#include "netlink/nl_socket.h"

#include "netlink/wiped_bytes.h"
#include "tests/unit/rtnl/replay_transport.h"

#include <gtest/gtest.h>

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

using namespace meshd::nl;

namespace {

// An NLMSG_ERROR as the kernel writes it: nlmsgerr, optionally the echoed
// request payload (no NETLINK_CAP_ACK), then optional extended-ack TLVs.
std::vector<std::uint8_t> make_error(int err, bool capped, const char* ext_msg, std::uint32_t ext_off = 0,
                                     std::size_t echoed_payload = 0) {
  std::vector<std::uint8_t> buf(4096, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = NLMSG_ERROR;
  nlh->nlmsg_seq = 42;
  auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nlmsgerr)));
  e->error = -err;
  e->msg.nlmsg_len = NLMSG_HDRLEN + echoed_payload;
  e->msg.nlmsg_type = RTM_NEWLINK;
  e->msg.nlmsg_seq = 42;
  if (capped) {
    nlh->nlmsg_flags |= NLM_F_CAPPED;
  } else {
    mnl_nlmsg_put_extra_header(nlh, echoed_payload);  // zeroed stand-in for the request
  }
  if (ext_msg || ext_off) {
    nlh->nlmsg_flags |= NLM_F_ACK_TLVS;
    if (ext_msg) mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, ext_msg);
    if (ext_off) mnl_attr_put_u32(nlh, NLMSGERR_ATTR_OFFS, ext_off);
  }
  buf.resize(nlh->nlmsg_len);
  return buf;
}

const nlmsghdr* hdr(const std::vector<std::uint8_t>& b) { return reinterpret_cast<const nlmsghdr*>(b.data()); }

TEST(ParseAck, SuccessAck) {
  auto b = make_error(0, true, nullptr);
  auto a = parse_ack(hdr(b));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->error, 0);
  EXPECT_EQ(a->seq, 42u);
  EXPECT_EQ(a->ext_message, "");
}

TEST(ParseAck, ErrorWithExtendedAckCapped) {
  auto b = make_error(EOPNOTSUPP, true, "Unknown device type", 36);
  auto a = parse_ack(hdr(b)).value();
  EXPECT_EQ(a.error, EOPNOTSUPP);
  EXPECT_EQ(a.ext_message, "Unknown device type");
  EXPECT_EQ(a.ext_offset, 36u);
  auto e = ack_error(a, "create link wg0 (wireguard)");
  EXPECT_TRUE(e.is(EOPNOTSUPP));
  EXPECT_EQ(e.message, "create link wg0 (wireguard): Operation not supported (kernel: Unknown device type)");
}

TEST(ParseAck, ErrorWithoutCapSkipsTheEchoedRequest) {
  auto b = make_error(EINVAL, false, "Invalid prefix for given prefix length", 0, 60);
  auto a = parse_ack(hdr(b)).value();
  EXPECT_EQ(a.error, EINVAL);
  EXPECT_EQ(a.ext_message, "Invalid prefix for given prefix length");
}

TEST(ParseAck, ErrorWithoutExtendedAckHasPlainMessage) {
  auto b = make_error(ESRCH, true, nullptr);
  auto a = parse_ack(hdr(b)).value();
  EXPECT_EQ(ack_error(a, "delete route 10.1.0.0/24 dev wg0").message,
            "delete route 10.1.0.0/24 dev wg0: No such process");
}

TEST(ParseAck, ExtendedMessageWithoutNulIsBounded) {
  auto b = make_error(EINVAL, true, nullptr);
  nlmsghdr* nlh = reinterpret_cast<nlmsghdr*>(b.data());
  b.resize(4096);
  nlh = reinterpret_cast<nlmsghdr*>(b.data());
  nlh->nlmsg_flags |= NLM_F_ACK_TLVS;
  mnl_attr_put(nlh, NLMSGERR_ATTR_MSG, 4, "abcd");  // no terminating NUL
  b.resize(nlh->nlmsg_len);
  EXPECT_EQ(parse_ack(hdr(b)).value().ext_message, "abcd");
}

TEST(ParseAck, DoneWithAndWithoutStatus) {
  std::vector<std::uint8_t> buf(64, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = NLMSG_DONE;
  EXPECT_EQ(parse_ack(nlh).value().error, 0);  // no status word at all
  int* status = static_cast<int*>(mnl_nlmsg_put_extra_header(nlh, sizeof(int)));
  *status = -EMSGSIZE;
  EXPECT_EQ(parse_ack(nlh).value().error, EMSGSIZE);
}

TEST(ParseAck, MalformedAcksAreRejected) {
  // Truncated nlmsgerr.
  auto b = make_error(EINVAL, true, nullptr);
  reinterpret_cast<nlmsghdr*>(b.data())->nlmsg_len = NLMSG_HDRLEN + 4;
  auto r = parse_ack(hdr(b));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EBADMSG));

  // An extended-ack TLV whose length runs past the message.
  auto c = make_error(EINVAL, true, "x");
  auto* nlh = reinterpret_cast<nlmsghdr*>(c.data());
  auto* attr = reinterpret_cast<nlattr*>(c.data() + NLMSG_HDRLEN + sizeof(nlmsgerr));
  attr->nla_len = 200;
  EXPECT_TRUE(parse_ack(nlh).error().is(EBADMSG));

  // Uncapped, but the echoed request claims to be longer than the ack.
  auto d = make_error(EINVAL, false, "x", 0, 8);
  reinterpret_cast<nlmsgerr*>(d.data() + NLMSG_HDRLEN)->msg.nlmsg_len = 4000;
  EXPECT_TRUE(parse_ack(hdr(d)).error().is(EBADMSG));

  // Not an ack at all.
  auto e = make_error(0, true, nullptr);
  reinterpret_cast<nlmsghdr*>(e.data())->nlmsg_type = RTM_NEWLINK;
  EXPECT_TRUE(parse_ack(hdr(e)).error().is(EBADMSG));
}

TEST(ForEachMessage, WalksEveryMessageAndStopsAtBadLengths) {
  std::vector<std::uint8_t> buf(256, 0);
  std::size_t off = 0;
  for (std::uint16_t t : {std::uint16_t{RTM_NEWLINK}, std::uint16_t{RTM_NEWADDR}, std::uint16_t{NLMSG_DONE}}) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data() + off);
    nlh->nlmsg_type = t;
    mnl_nlmsg_put_extra_header(nlh, 5);  // odd payload: the next message starts aligned
    off += NLMSG_ALIGN(nlh->nlmsg_len);
  }
  std::vector<std::uint16_t> seen;
  auto walk = [&](std::size_t len) {
    seen.clear();
    return for_each_message({buf.data(), len}, [&](const nlmsghdr& m) -> meshd::Result<void> {
      seen.push_back(m.nlmsg_type);
      return {};
    });
  };
  ASSERT_TRUE(walk(off));
  EXPECT_EQ(seen, (std::vector<std::uint16_t>{RTM_NEWLINK, RTM_NEWADDR, NLMSG_DONE}));
  // The last message cut short: the first two are seen, then EBADMSG.
  auto cut = walk(off - 3);
  ASSERT_FALSE(cut);
  EXPECT_TRUE(cut.error().is(EBADMSG));
  EXPECT_EQ(seen.size(), 2u);
  // A length shorter than a header never loops forever.
  reinterpret_cast<nlmsghdr*>(buf.data())->nlmsg_len = 3;
  EXPECT_TRUE(walk(off).error().is(EBADMSG));
  EXPECT_TRUE(walk(0));  // nothing to walk is fine
}

TEST(ForEachMessage, CallbackErrorStopsTheWalk) {
  std::vector<std::uint8_t> buf(64, 0);
  nlmsghdr* a = mnl_nlmsg_put_header(buf.data());
  nlmsghdr* b = mnl_nlmsg_put_header(buf.data() + NLMSG_ALIGN(a->nlmsg_len));
  (void)b;
  int calls = 0;
  auto r = for_each_message({buf.data(), 2 * NLMSG_HDRLEN}, [&](const nlmsghdr&) -> meshd::Result<void> {
    ++calls;
    return meshd::fail(EIO, "stop");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 1);
}

// --- The request loop over a replayed "kernel" (NlSocket::over) ---

using meshd::testing::Datagram;
using meshd::testing::replay_socket;
using meshd::testing::ReplayTransport;

// A data message of `type` with `payload` bytes of `fill`, stamped (seq, pid).
Datagram data_msg(std::uint16_t type, std::uint32_t seq, std::size_t payload = 8, std::uint8_t fill = 0xab,
                  std::uint16_t flags = NLM_F_MULTI, std::uint32_t pid = meshd::testing::kReplayPortId) {
  Datagram d(NLMSG_HDRLEN + NLMSG_ALIGN(payload), 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(d.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  std::memset(mnl_nlmsg_put_extra_header(nlh, payload), fill, payload);
  nlh->nlmsg_seq = seq;
  nlh->nlmsg_pid = pid;
  return d;
}

Datagram done_msg(std::uint32_t seq, int status = 0) {
  Datagram d = data_msg(NLMSG_DONE, seq, sizeof(int), 0);
  std::memcpy(d.data() + NLMSG_HDRLEN, &status, sizeof status);
  return d;
}

Datagram cat(std::initializer_list<Datagram> parts) {
  Datagram out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<std::uint16_t> dump_types(NlSocket& sock, meshd::Result<void>* outcome = nullptr) {
  std::vector<std::uint8_t> req(NLMSG_HDRLEN, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data());
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  std::vector<std::uint16_t> seen;
  auto r = sock.request(nlh, "list links", [&](const nlmsghdr& m) -> meshd::Result<void> {
    seen.push_back(m.nlmsg_type);
    return {};
  });
  if (outcome) *outcome = r;
  return seen;
}

TEST(NlSocketReplay, DumpAcrossDatagramsSkipsStaleAndForeignMessages) {
  ReplayTransport* t = nullptr;
  auto sock = replay_socket({cat({data_msg(RTM_NEWLINK, 1), data_msg(RTM_NEWADDR, 7)}),  // seq 7: stale
                             cat({data_msg(RTM_NEWROUTE, 1, 8, 0, NLM_F_MULTI, 99),     // another port
                                  data_msg(RTM_NEWLINK, 1)}),
                             done_msg(1)},
                            &t);
  meshd::Result<void> r;
  EXPECT_EQ(dump_types(sock, &r), (std::vector<std::uint16_t>{RTM_NEWLINK, RTM_NEWLINK}));
  EXPECT_TRUE(r);
  ASSERT_EQ(t->sent.size(), 1u);
  EXPECT_EQ(reinterpret_cast<const nlmsghdr*>(t->sent[0].data())->nlmsg_seq, 1u);
  EXPECT_EQ(t->delivered(), 3u);
}

TEST(NlSocketReplay, InterruptedDumpIsRequestedAgainAndOnlyTheWholeOneIsSeen) {
  ReplayTransport* t = nullptr;
  auto sock = replay_socket({cat({data_msg(RTM_NEWADDR, 1, 8, 0xab, NLM_F_MULTI | NLM_F_DUMP_INTR), done_msg(1)}),
                             cat({data_msg(RTM_NEWLINK, 2), done_msg(2)})},
                            &t);
  EXPECT_EQ(dump_types(sock), (std::vector<std::uint16_t>{RTM_NEWLINK}));
  EXPECT_EQ(t->sent.size(), 2u);
  EXPECT_EQ(sock.dump_restarts(), 1u);
}

TEST(NlSocketReplay, KernelErrorsTruncationAndSilenceAreErrors) {
  // A dump whose NLMSG_DONE carries an error.
  auto a = replay_socket({cat({data_msg(RTM_NEWLINK, 1), done_msg(1, -ENOBUFS)})});
  meshd::Result<void> r;
  dump_types(a, &r);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ENOBUFS));
  // A datagram larger than the receive buffer: the kernel would set MSG_TRUNC.
  auto b = replay_socket({data_msg(RTM_NEWLINK, 1, kNlRecvBufferSize)});
  dump_types(b, &r);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EMSGSIZE));
  // No NLMSG_DONE ever: the blocking socket's timeout, not a hang.
  auto c = replay_socket({data_msg(RTM_NEWLINK, 1)});
  dump_types(c, &r);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ETIMEDOUT));
  // A status of INT_MIN is a protocol violation, not a negated errno.
  auto d = replay_socket({done_msg(1, INT_MIN)});
  dump_types(d, &r);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EPROTO));
}

TEST(NlSocketReplay, ReceiveBufferIsWipedAfterEveryDatagram) {
  // 0x5a stands in for key bytes (a GET_DEVICE dump carries private keys).
  ReplayTransport* t = nullptr;
  auto sock = replay_socket({data_msg(RTM_NEWLINK, 1, 64, 0x5a), done_msg(1)}, &t);
  std::size_t seen_key_bytes = 0;
  std::vector<std::uint8_t> req(NLMSG_HDRLEN, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data());
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  ASSERT_TRUE(sock.request(nlh, "dump", [&](const nlmsghdr& m) -> meshd::Result<void> {
    const auto* p = static_cast<const std::uint8_t*>(mnl_nlmsg_get_payload(&m));
    seen_key_bytes += static_cast<std::size_t>(std::count(p, p + 64, 0x5a));
    return {};
  }));
  EXPECT_EQ(seen_key_bytes, 64u);  // the caller saw them...
  ASSERT_EQ(t->last_buffer.size(), kNlRecvBufferSize);
  EXPECT_EQ(std::count(t->last_buffer.begin(), t->last_buffer.end(), 0x5a), 0);  // ...the buffer keeps none

  // A truncated datagram is refused, and what of it did arrive is wiped too.
  auto big = replay_socket({data_msg(RTM_NEWLINK, 1, kNlRecvBufferSize, 0x5a)}, &t);
  meshd::Result<void> r;
  dump_types(big, &r);
  EXPECT_TRUE(r.error().is(EMSGSIZE));
  ASSERT_EQ(t->last_buffer.size(), kNlRecvBufferSize);
  EXPECT_EQ(std::count(t->last_buffer.begin(), t->last_buffer.end(), 0x5a), 0);
}

// An allocator that never frees, so the test may look at a block after the
// vector gave it back.
template <class T>
struct KeepingAllocator {
  using value_type = T;
  static inline std::vector<std::pair<void*, std::size_t>> released;
  KeepingAllocator() = default;
  template <class U>
  KeepingAllocator(const KeepingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) { released.emplace_back(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const KeepingAllocator<U>&) const noexcept { return true; }
};

TEST(WipedBytes, EveryBlockIsZeroWhenGivenBack) {
  using Keeping = KeepingAllocator<std::uint8_t>;
  Keeping::released.clear();
  {
    std::vector<std::uint8_t, WipingAllocator<std::uint8_t, Keeping>> v;
    for (int i = 0; i < 1000; ++i) v.push_back(0x5a);  // grows: several blocks left behind
  }
  ASSERT_GE(Keeping::released.size(), 3u);
  for (auto [p, n] : Keeping::released) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    EXPECT_EQ(std::count(b, b + n, 0x5a), 0);
    ::operator delete(p);
  }
}

}  // namespace
