// Ack and message-walk parsing of netlink/nl_socket.h: what the kernel's
// NLMSG_ERROR/NLMSG_DONE replies become in front of a person.
#include "netlink/nl_socket.h"

#include <gtest/gtest.h>

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

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

}  // namespace
