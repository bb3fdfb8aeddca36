// The "wireguard" generic-netlink message code without a kernel: what meshd
// sends (SET_DEVICE, split like wg(8) splits it) and what it makes of what the
// kernel sends back (GET_DEVICE dumps whose peers continue across messages).
#include "netlink/wireguard_msg.h"

#include "netlink/wireguard.h"
#include "tests/unit/rtnl/replay_transport.h"
#include "tests/unit/wireguard/kernel_dump.h"

#include <gtest/gtest.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

namespace meshd::nl {
namespace {

using testing::append_kernel_dump;
using testing::kTestFamily;

keys::PublicKey key_of(std::uint32_t n) {
  keys::KeyBytes b{};
  b[0] = 0x42;
  std::memcpy(b.data() + 1, &n, sizeof n);
  return keys::PublicKey(b);
}

IpPrefix pfx(const char* s) { return IpPrefix::parse(s).value(); }
Endpoint ep(const char* s) { return Endpoint::parse(s).value(); }

// n peers, each with a v4 /32 and a v6 /128 from its number, like a mesh node's peers.
wg::WgDevice big_device(std::size_t n) {
  wg::WgDevice d;
  d.name = "wg-big";
  d.private_key = keys::PrivateKey::generate();
  d.listen_port = 51820;
  d.replace_peers = true;
  for (std::uint32_t i = 0; i < n; ++i) {
    wg::WgPeer p;
    p.public_key = key_of(i);
    p.endpoint = Endpoint{IpAddress::from_v4_u32(0x0a000000u + i), 51820};
    p.persistent_keepalive = 25;
    p.allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0a800000u + (i << 8)), 24});
    IpAddress v6 = IpAddress::parse("fd00::").value();
    std::memcpy(v6.bytes.data() + 12, &i, sizeof i);
    p.allowed_ips.push_back(IpPrefix{v6, 120});
    d.peers.push_back(std::move(p));
  }
  return d;
}

void expect_same_peer(const wg::WgPeer& a, const wg::WgPeer& b) {
  EXPECT_EQ(a.public_key, b.public_key);
  EXPECT_EQ(a.endpoint, b.endpoint);
  EXPECT_EQ(a.persistent_keepalive, b.persistent_keepalive);
  EXPECT_EQ(a.allowed_ips, b.allowed_ips);
  ASSERT_EQ(a.preshared_key.has_value(), b.preshared_key.has_value());
  if (a.preshared_key) {
    EXPECT_TRUE(*a.preshared_key == *b.preshared_key);
  }
}

genlmsghdr genl_header(const NlMessage& m) {
  genlmsghdr g;
  std::memcpy(&g, m.bytes().data() + NLMSG_HDRLEN, sizeof g);
  return g;
}

nlmsghdr nl_header(const NlMessage& m) {
  nlmsghdr h;
  std::memcpy(&h, m.bytes().data(), sizeof h);
  return h;
}

// --- SET_DEVICE: every attribute survives encode + parse ---

TEST(WgSetDevice, EveryAttributeRoundTrips) {
  wg::WgDevice d;
  d.name = "wg0";
  d.private_key = keys::PrivateKey::generate();
  d.listen_port = 51821;
  d.fwmark = 0x77;
  d.replace_peers = true;

  wg::WgPeer v4;
  v4.public_key = key_of(1);
  v4.preshared_key = keys::PresharedKey::generate();
  v4.endpoint = ep("192.0.2.7:51820");
  v4.persistent_keepalive = 25;
  v4.replace_allowed_ips = true;
  v4.allowed_ips = {pfx("10.1.0.0/24"), pfx("fd00:1::/64"), pfx("0.0.0.0/0"), pfx("::/0")};
  d.peers.push_back(v4.clone());

  wg::WgPeer v6;
  v6.public_key = key_of(2);
  v6.endpoint = ep("[2001:db8::5]:4242");
  v6.persistent_keepalive = 0;  // explicitly off
  v6.update_only = true;
  v6.preshared_key = keys::PresharedKey();  // all zero: removes the PSK
  v6.allowed_ips = {pfx("fd00:2::1/128"), pfx("10.2.0.1/32")};
  d.peers.push_back(v6.clone());

  auto msgs = build_set_device(kTestFamily, d);
  ASSERT_TRUE(msgs) << msgs.error().message;
  ASSERT_EQ(msgs->size(), 1u);
  nlmsghdr h = nl_header((*msgs)[0]);
  EXPECT_EQ(h.nlmsg_type, kTestFamily);
  EXPECT_EQ(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
  EXPECT_EQ(genl_header((*msgs)[0]).cmd, WG_CMD_SET_DEVICE);
  EXPECT_EQ(genl_header((*msgs)[0]).version, WG_GENL_VERSION);

  auto back = parse_set_device_messages(*msgs);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->name, "wg0");
  ASSERT_TRUE(back->private_key);
  EXPECT_TRUE(*back->private_key == *d.private_key);
  EXPECT_EQ(back->listen_port, 51821);
  EXPECT_EQ(back->fwmark, 0x77u);
  EXPECT_TRUE(back->replace_peers);
  ASSERT_EQ(back->peers.size(), 2u);
  expect_same_peer(back->peers[0], v4);
  EXPECT_TRUE(back->peers[0].replace_allowed_ips);
  EXPECT_FALSE(back->peers[0].update_only);
  EXPECT_FALSE(back->peers[0].remove);
  expect_same_peer(back->peers[1], v6);
  EXPECT_TRUE(back->peers[1].preshared_key->is_zero());
  EXPECT_TRUE(back->peers[1].update_only);
  EXPECT_FALSE(back->peers[1].replace_allowed_ips);
}

TEST(WgSetDevice, UnsetFieldsAreNotSent) {
  wg::WgDevice d;
  d.name = "wg0";
  wg::WgPeer p;
  p.public_key = key_of(9);
  d.peers.push_back(std::move(p));
  auto msgs = build_set_device(kTestFamily, d);
  ASSERT_TRUE(msgs);
  auto back = parse_set_device_messages(*msgs).value();
  EXPECT_FALSE(back.private_key);
  EXPECT_FALSE(back.listen_port);
  EXPECT_FALSE(back.fwmark);
  EXPECT_FALSE(back.replace_peers);
  ASSERT_EQ(back.peers.size(), 1u);
  EXPECT_FALSE(back.peers[0].preshared_key);
  EXPECT_FALSE(back.peers[0].endpoint);
  EXPECT_FALSE(back.peers[0].persistent_keepalive);
  EXPECT_TRUE(back.peers[0].allowed_ips.empty());
}

TEST(WgSetDevice, IfindexNamesTheDeviceWhenGiven) {
  wg::WgDevice d;
  d.ifindex = 17;
  d.listen_port = 1;
  auto back = parse_set_device_messages(build_set_device(kTestFamily, d).value()).value();
  EXPECT_EQ(back.ifindex, 17);
  EXPECT_TRUE(back.name.empty());
}

TEST(WgSetDevice, RemovedPeerCarriesOnlyItsKeyAndFlag) {
  wg::WgDevice d;
  d.name = "wg0";
  wg::WgPeer p;
  p.public_key = key_of(3);
  p.remove = true;
  p.endpoint = ep("192.0.2.1:1");
  p.allowed_ips = {pfx("10.0.0.0/8")};
  d.peers.push_back(std::move(p));
  auto msgs = build_set_device(kTestFamily, d).value();
  auto back = parse_set_device_messages(msgs).value();
  ASSERT_EQ(back.peers.size(), 1u);
  EXPECT_TRUE(back.peers[0].remove);
  EXPECT_EQ(back.peers[0].public_key, key_of(3));
  EXPECT_FALSE(back.peers[0].endpoint);
  EXPECT_TRUE(back.peers[0].allowed_ips.empty());
}

TEST(WgSetDevice, RejectsBadNamesAndImpossibleSizes) {
  wg::WgDevice d;
  auto r = build_set_device(kTestFamily, d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EINVAL);
  d.name = "a-name-that-is-too-long";
  EXPECT_FALSE(build_set_device(kTestFamily, d));
  // The kernel would treat '%' as a name template; common/ifname.h refuses it.
  d.name = "wg%d";
  EXPECT_EQ(build_set_device(kTestFamily, d).error().value(), EINVAL);

  d.name = "wg0";
  d.peers.push_back(big_device(1).peers[0].clone());
  auto small = build_set_device(kTestFamily, d, 64);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().value(), EMSGSIZE);

  wg::WgDevice bad;
  bad.name = "wg0";
  wg::WgPeer p;
  p.public_key = key_of(1);
  p.allowed_ips.push_back(IpPrefix{});  // no family
  bad.peers.push_back(std::move(p));
  EXPECT_FALSE(build_set_device(kTestFamily, bad));
}

// --- SET_DEVICE: splitting ---

TEST(WgSetDevice, FiveThousandPeersSplitAndMergeBack) {
  wg::WgDevice d = big_device(5000);
  const std::size_t size = default_message_size();
  auto msgs = build_set_device(kTestFamily, d, size);
  ASSERT_TRUE(msgs) << msgs.error().message;
  ASSERT_GT(msgs->size(), 10u);

  std::size_t peers_seen = 0;
  for (std::size_t i = 0; i < msgs->size(); ++i) {
    const NlMessage& m = (*msgs)[i];
    EXPECT_LE(m.size(), size) << "message " << i;
    EXPECT_EQ(nl_header(m).nlmsg_len, m.size());
    auto part = parse_device_message(m.bytes());
    ASSERT_TRUE(part) << part.error().message;
    // Device-wide settings exactly once: a second REPLACE_PEERS would wipe
    // the peers the earlier messages added.
    EXPECT_EQ(part->replace_peers, i == 0) << "message " << i;
    EXPECT_EQ(part->private_key.has_value(), i == 0) << "message " << i;
    EXPECT_EQ(part->listen_port.has_value(), i == 0) << "message " << i;
    EXPECT_EQ(part->name, "wg-big");
    EXPECT_FALSE(part->peers.empty()) << "message " << i;
    peers_seen += part->peers.size();
  }
  EXPECT_GE(peers_seen, 5000u);

  auto back = parse_set_device_messages(*msgs);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->peers.size(), 5000u);
  for (std::size_t i = 0; i < 5000; ++i) expect_same_peer(back->peers[i], d.peers[i]);
  EXPECT_TRUE(back->replace_peers);
}

TEST(WgSetDevice, PeerWithThousandsOfAllowedIpsContinuesWithoutReplace) {
  wg::WgDevice d;
  d.name = "wg0";
  wg::WgPeer p;
  p.public_key = key_of(7);
  p.preshared_key = keys::PresharedKey::generate();
  p.endpoint = ep("[2001:db8::1]:51820");
  p.persistent_keepalive = 15;
  p.replace_allowed_ips = true;
  p.update_only = true;
  for (std::uint32_t i = 0; i < 3000; ++i) {
    p.allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0a000000u + (i << 8)), 24});
    if (i % 3 == 0) p.allowed_ips.push_back(pfx(("fd00:" + std::to_string(i % 9999) + "::/64").c_str()));
  }
  d.peers.push_back(p.clone());
  wg::WgPeer after;  // a peer after the big one starts fresh again
  after.public_key = key_of(8);
  after.replace_allowed_ips = true;
  after.allowed_ips = {pfx("10.99.0.0/16")};
  d.peers.push_back(after.clone());

  auto msgs = build_set_device(kTestFamily, d);
  ASSERT_TRUE(msgs);
  ASSERT_GT(msgs->size(), 3u);
  std::size_t ips = 0;
  for (std::size_t i = 0; i < msgs->size(); ++i) {
    EXPECT_LE((*msgs)[i].size(), default_message_size());
    auto part = parse_device_message((*msgs)[i].bytes()).value();
    ASSERT_FALSE(part.peers.empty());
    const wg::WgPeer& q = part.peers[0];
    if (q.public_key != key_of(7)) continue;
    ips += q.allowed_ips.size();
    // Only the first part replaces and sets the peer; the rest add IPs.
    EXPECT_EQ(q.replace_allowed_ips, i == 0) << "message " << i;
    EXPECT_EQ(q.preshared_key.has_value(), i == 0) << "message " << i;
    EXPECT_EQ(q.endpoint.has_value(), i == 0) << "message " << i;
    EXPECT_EQ(q.persistent_keepalive.has_value(), i == 0) << "message " << i;
    // UPDATE_ONLY on every part: a tail must not create a peer the head skipped.
    EXPECT_TRUE(q.update_only) << "message " << i;
    EXPECT_FALSE(q.allowed_ips.empty()) << "message " << i;
  }
  EXPECT_EQ(ips, p.allowed_ips.size());

  auto back = parse_set_device_messages(*msgs).value();
  ASSERT_EQ(back.peers.size(), 2u);
  expect_same_peer(back.peers[0], p);
  EXPECT_TRUE(back.peers[0].replace_allowed_ips);
  expect_same_peer(back.peers[1], after);
  EXPECT_TRUE(back.peers[1].replace_allowed_ips);
}

TEST(WgSetDevice, EverySizeSplitsLosslessly) {
  // Small sizes force splits at every possible place: inside the header,
  // between peers, between allowed IPs.
  wg::WgDevice d = big_device(40);
  d.peers[3].allowed_ips.clear();
  d.peers[5].remove = true;
  for (int i = 0; i < 50; ++i) d.peers[6].allowed_ips.push_back(pfx("10.200.0.0/16"));
  for (std::size_t size = 200; size <= 1200; size += 13) {
    auto msgs = build_set_device(kTestFamily, d, size);
    ASSERT_TRUE(msgs) << "size " << size << ": " << msgs.error().message;
    for (const auto& m : *msgs) ASSERT_LE(m.size(), size);
    auto back = parse_set_device_messages(*msgs).value();
    ASSERT_EQ(back.peers.size(), d.peers.size()) << "size " << size;
    for (std::size_t i = 0; i < d.peers.size(); ++i) {
      if (i == 5) {
        EXPECT_TRUE(back.peers[i].remove);
        continue;
      }
      expect_same_peer(back.peers[i], d.peers[i]);
    }
  }
}

// --- GET_DEVICE: parsing and merging the kernel's dump ---

wg::WgDevice observed_device() {
  wg::WgDevice d;
  d.name = "wg0";
  d.ifindex = 5;
  d.private_key = keys::PrivateKey::generate();
  d.public_key = key_of(100);
  d.listen_port = 51820;
  d.fwmark = 0;
  wg::WgPeer a;
  a.public_key = key_of(1);
  a.preshared_key = keys::PresharedKey::generate();
  a.endpoint = ep("192.0.2.9:51820");
  a.persistent_keepalive = 25;
  a.last_handshake_sec = 1700000000;
  a.last_handshake_nsec = 123456789;
  a.rx_bytes = 1234;
  a.tx_bytes = 5678;
  a.allowed_ips = {pfx("10.1.0.0/24"), pfx("fd00:1::/64")};
  d.peers.push_back(std::move(a));
  wg::WgPeer b;
  b.public_key = key_of(2);
  b.endpoint = ep("[2001:db8::2]:51820");
  b.persistent_keepalive = 0;
  b.allowed_ips = {pfx("10.2.0.0/24")};
  d.peers.push_back(std::move(b));
  return d;
}

TEST(WgGetDevice, ParsesEveryAttributeOfADump) {
  wg::WgDevice d = observed_device();
  std::vector<std::uint8_t> stream;
  ASSERT_EQ(append_kernel_dump(stream, d, 8192), 1);
  auto got = parse_get_device_stream(stream);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->name, "wg0");
  EXPECT_EQ(got->ifindex, 5);
  ASSERT_TRUE(got->private_key);
  EXPECT_TRUE(*got->private_key == *d.private_key);
  EXPECT_EQ(got->public_key, key_of(100));
  EXPECT_EQ(got->listen_port, 51820);
  EXPECT_EQ(got->fwmark, 0u);
  ASSERT_EQ(got->peers.size(), 2u);
  expect_same_peer(got->peers[0], d.peers[0]);
  EXPECT_EQ(got->peers[0].last_handshake_sec, 1700000000);
  EXPECT_EQ(got->peers[0].last_handshake_nsec, 123456789);
  EXPECT_EQ(got->peers[0].rx_bytes, 1234u);
  EXPECT_EQ(got->peers[0].tx_bytes, 5678u);
  EXPECT_EQ(got->peers[0].protocol_version, 1);
  // The kernel reports "no PSK" as 32 zero bytes; the model as no value.
  EXPECT_FALSE(got->peers[1].preshared_key);
  expect_same_peer(got->peers[1], d.peers[1]);
  EXPECT_EQ(got->peers[1].persistent_keepalive, 0);
}

TEST(WgGetDevice, PeerContinuedInNextMessageIsMerged) {
  wg::WgDevice d = observed_device();
  for (std::uint32_t i = 0; i < 400; ++i)
    d.peers[0].allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0b000000u + i), 32});
  std::vector<std::uint8_t> stream;
  int parts = append_kernel_dump(stream, d, 4096);
  ASSERT_GE(parts, 2);  // peer 0's allowed IPs straddle messages
  auto got = parse_get_device_stream(stream);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->peers.size(), 2u);
  expect_same_peer(got->peers[0], d.peers[0]);
  EXPECT_EQ(got->peers[0].rx_bytes, 1234u);
  expect_same_peer(got->peers[1], d.peers[1]);
}

TEST(WgGetDevice, FiveThousandPeerDumpMerges) {
  wg::WgDevice d = big_device(5000);
  d.replace_peers = false;
  for (auto& p : d.peers) p.persistent_keepalive = 0;
  d.peers[17].allowed_ips.clear();
  for (std::uint32_t i = 0; i < 1000; ++i)
    d.peers[4000].allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0c000000u + i), 32});
  std::vector<std::uint8_t> stream;
  int parts = append_kernel_dump(stream, d, 4096);
  EXPECT_GT(parts, 100);
  auto got = parse_get_device_stream(stream);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->peers.size(), 5000u);
  for (std::size_t i = 0; i < 5000; ++i) expect_same_peer(got->peers[i], d.peers[i]);
}

TEST(WgGetDevice, MergerCountsMessages) {
  wg::WgDevice d = big_device(300);
  std::vector<std::uint8_t> stream;
  int parts = append_kernel_dump(stream, d, 4096);
  WgDumpMerger m;
  std::span<const std::uint8_t> rest(stream);
  for (int i = 0; i < parts; ++i) {
    nlmsghdr h;
    std::memcpy(&h, rest.data(), sizeof h);
    ASSERT_TRUE(m.add_message(rest.first(h.nlmsg_len)));
    rest = rest.subspan(NLMSG_ALIGN(h.nlmsg_len));
  }
  EXPECT_EQ(m.messages(), static_cast<std::size_t>(parts));
  EXPECT_EQ(m.take().peers.size(), 300u);
}

// --- GET_DEVICE: malformed input gives errors, never a shorter device ---

TEST(WgGetDevice, EveryTruncationIsAnError) {
  wg::WgDevice d = observed_device();
  std::vector<std::uint8_t> stream;
  append_kernel_dump(stream, d, 8192);
  for (std::size_t n = 0; n < stream.size(); ++n) {
    auto got = parse_get_device_stream(std::span(stream).first(n));
    EXPECT_FALSE(got) << "accepted a stream cut at byte " << n << " of " << stream.size();
  }
}

TEST(WgGetDevice, CorruptAttributeLengthsAreErrors) {
  wg::WgDevice d = observed_device();
  std::vector<std::uint8_t> stream;
  append_kernel_dump(stream, d, 8192);
  // Shorten the message, keeping nlmsg_len consistent, so that the last
  // nested attribute runs past its parent: the walk must notice.
  nlmsghdr h;
  std::memcpy(&h, stream.data(), sizeof h);
  std::vector<std::uint8_t> cut(stream.begin(), stream.begin() + h.nlmsg_len - 8);
  nlmsghdr c = h;
  c.nlmsg_len = static_cast<std::uint32_t>(cut.size());
  std::memcpy(cut.data(), &c, sizeof c);
  auto r = parse_device_message(cut);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EINVAL);
  EXPECT_NE(r.error().message.find("length"), std::string::npos) << r.error().message;
}

// A dump message with one peer whose attributes are given raw.
std::vector<std::uint8_t> one_peer_message(const std::function<void(nlmsghdr*)>& fill_peer) {
  std::vector<std::uint8_t> buf(4096, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = kTestFamily;
  auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  g->cmd = WG_CMD_GET_DEVICE;
  nlattr* peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
  nlattr* p = mnl_attr_nest_start(nlh, 0);
  fill_peer(nlh);
  mnl_attr_nest_end(nlh, p);
  mnl_attr_nest_end(nlh, peers);
  buf.resize(nlh->nlmsg_len);
  return buf;
}

TEST(WgGetDevice, WrongPayloadSizesAreErrorsNamingTheAttribute) {
  keys::KeyBytes k{};
  k[0] = 1;
  auto short_key = one_peer_message([&](nlmsghdr* n) {
    mnl_attr_put(n, WGPEER_A_PUBLIC_KEY, 31, k.data());
  });
  auto r = parse_device_message(short_key);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("WGPEER_A_PUBLIC_KEY"), std::string::npos);

  auto no_key = one_peer_message([&](nlmsghdr* n) {
    mnl_attr_put_u16(n, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 5);
  });
  EXPECT_FALSE(parse_device_message(no_key));

  auto bad_endpoint = one_peer_message([&](nlmsghdr* n) {
    mnl_attr_put(n, WGPEER_A_PUBLIC_KEY, 32, k.data());
    mnl_attr_put(n, WGPEER_A_ENDPOINT, 6, k.data());
  });
  r = parse_device_message(bad_endpoint);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("WGPEER_A_ENDPOINT"), std::string::npos);

  auto bad_family = one_peer_message([&](nlmsghdr* n) {
    mnl_attr_put(n, WGPEER_A_PUBLIC_KEY, 32, k.data());
    nlattr* ips = mnl_attr_nest_start(n, WGPEER_A_ALLOWEDIPS);
    nlattr* ip = mnl_attr_nest_start(n, 0);
    mnl_attr_put_u16(n, WGALLOWEDIP_A_FAMILY, 99);
    mnl_attr_put(n, WGALLOWEDIP_A_IPADDR, 4, k.data());
    mnl_attr_put_u8(n, WGALLOWEDIP_A_CIDR_MASK, 8);
    mnl_attr_nest_end(n, ip);
    mnl_attr_nest_end(n, ips);
  });
  r = parse_device_message(bad_family);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("family 99"), std::string::npos) << r.error().message;

  auto long_prefix = one_peer_message([&](nlmsghdr* n) {
    mnl_attr_put(n, WGPEER_A_PUBLIC_KEY, 32, k.data());
    nlattr* ips = mnl_attr_nest_start(n, WGPEER_A_ALLOWEDIPS);
    nlattr* ip = mnl_attr_nest_start(n, 0);
    mnl_attr_put_u16(n, WGALLOWEDIP_A_FAMILY, AF_INET);
    mnl_attr_put(n, WGALLOWEDIP_A_IPADDR, 4, k.data());
    mnl_attr_put_u8(n, WGALLOWEDIP_A_CIDR_MASK, 33);
    mnl_attr_nest_end(n, ip);
    mnl_attr_nest_end(n, ips);
  });
  EXPECT_FALSE(parse_device_message(long_prefix));

  auto unknown_attr_ok = one_peer_message([&](nlmsghdr* n) {
    mnl_attr_put(n, WGPEER_A_PUBLIC_KEY, 32, k.data());
    mnl_attr_put_u32(n, 250, 7);  // a future kernel's attribute
  });
  EXPECT_TRUE(parse_device_message(unknown_attr_ok));
}

TEST(WgGetDevice, KernelErrorAndInterruptedDumpAreReported) {
  std::vector<std::uint8_t> err(NLMSG_HDRLEN + sizeof(nlmsgerr), 0);
  nlmsghdr* h = mnl_nlmsg_put_header(err.data());
  h->nlmsg_type = NLMSG_ERROR;
  h->nlmsg_flags = NLM_F_CAPPED;  // meshd's sockets ask for capped acks (no echoed request)
  auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(h, sizeof(nlmsgerr)));
  e->error = -ENODEV;
  auto r = parse_get_device_stream(err);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), ENODEV);

  std::vector<std::uint8_t> stream;
  append_kernel_dump(stream, observed_device(), 8192, kTestFamily, NLM_F_DUMP_INTR);
  r = parse_get_device_stream(stream);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EINTR);
}

// --- The request messages ---

TEST(WgGetDevice, RequestIsADumpByNameOrIndex) {
  NlMessage by_name = build_get_device(kTestFamily, "wg7");
  EXPECT_EQ(nl_header(by_name).nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
  EXPECT_EQ(genl_header(by_name).cmd, WG_CMD_GET_DEVICE);
  EXPECT_EQ(parse_device_message(by_name.bytes()).value().name, "wg7");
  NlMessage by_index = build_get_device(kTestFamily, "", 42);
  EXPECT_EQ(parse_device_message(by_index.bytes()).value().ifindex, 42);
}

TEST(GenlFamily, RequestAndReply) {
  NlMessage req = build_get_family(WG_GENL_NAME);
  EXPECT_EQ(nl_header(req).nlmsg_type, GENL_ID_CTRL);
  EXPECT_EQ(genl_header(req).cmd, CTRL_CMD_GETFAMILY);

  std::vector<std::uint8_t> buf(256, 0);
  nlmsghdr* h = mnl_nlmsg_put_header(buf.data());
  h->nlmsg_type = GENL_ID_CTRL;
  auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(h, sizeof(genlmsghdr)));
  g->cmd = CTRL_CMD_NEWFAMILY;
  mnl_attr_put_strz(h, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
  mnl_attr_put_u16(h, CTRL_ATTR_FAMILY_ID, 0x22);
  buf.resize(h->nlmsg_len);
  auto id = parse_family_id(buf);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 0x22);
  buf.resize(buf.size() - 8);  // cut off the id
  nlmsghdr c;
  std::memcpy(&c, buf.data(), sizeof c);
  c.nlmsg_len = static_cast<std::uint32_t>(buf.size());
  std::memcpy(buf.data(), &c, sizeof c);
  EXPECT_FALSE(parse_family_id(buf));
}

// An NLMSG_ERROR whose error field is INT_MIN (found by the fuzzing
// campaign: the stream parser negated it, which is undefined behaviour) is a
// protocol error, as in the socket's own ack parsing; so is a positive one.
TEST(WgGetDevice, ErrorFieldsOutsideTheErrnoRangeAreProtocolErrors) {
  for (int bad : {INT_MIN, 5, -4096}) {
    std::vector<std::uint8_t> err(NLMSG_HDRLEN + sizeof(nlmsgerr), 0);
    nlmsghdr* h = mnl_nlmsg_put_header(err.data());
    h->nlmsg_type = NLMSG_ERROR;
    h->nlmsg_flags = NLM_F_CAPPED;
    auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(h, sizeof(nlmsgerr)));
    e->error = bad;
    auto r = parse_get_device_stream(err);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().value(), EPROTO) << bad;
  }
}

// --- The production path: WgGenl over a socket replaying the kernel ---

using meshd::testing::Datagram;
using meshd::testing::replay_socket;
using meshd::testing::ReplayTransport;

std::vector<Datagram> read_frames(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f) << path;
  std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  return meshd::testing::split_frames(bytes);
}

bool contains(std::span<const std::uint8_t> hay, std::span<const std::uint8_t> needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

TEST(WgGenlReplay, GetDeviceMergesADumpAcrossDatagramsAndLeavesNoKeyInTheBuffer) {
  wg::WgDevice d = observed_device();
  for (std::uint32_t i = 0; i < 40; ++i)
    d.peers[0].allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0x0b000000u + i), 32});
  std::vector<std::uint8_t> stream;
  ASSERT_GT(append_kernel_dump(stream, d, 600), 2);  // the first peer continues across messages
  meshd::testing::stamp(stream, 1);
  std::vector<Datagram> datagrams;  // one message per datagram
  ASSERT_TRUE(for_each_message(stream, [&](const nlmsghdr& m) -> Result<void> {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
    datagrams.emplace_back(p, p + m.nlmsg_len);
    return {};
  }));

  ReplayTransport* t = nullptr;
  auto genl = WgGenl::over(replay_socket(datagrams, &t), kTestFamily);
  auto got = genl.get_device("wg0");
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_TRUE(got->private_key);
  EXPECT_TRUE(*got->private_key == *d.private_key);
  ASSERT_EQ(got->peers.size(), 2u);
  EXPECT_EQ(got->peers[0].allowed_ips, d.peers[0].allowed_ips);
  expect_same_peer(got->peers[1], d.peers[1]);

  // What went out: one GET_DEVICE dump request for wg0.
  ASSERT_EQ(t->sent.size(), 1u);
  auto req = parse_device_message(t->sent[0]);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->name, "wg0");
  // Neither the private key nor the preshared key stays in the receive buffer.
  EXPECT_FALSE(contains(t->last_buffer, d.private_key->bytes()));
  EXPECT_FALSE(contains(t->last_buffer, d.peers[0].preshared_key->bytes()));
}

TEST(WgGenlReplay, InvalidNamesAreRefusedBeforeAnythingIsSent) {
  ReplayTransport* t = nullptr;
  auto genl = WgGenl::over(replay_socket({}, &t), kTestFamily);
  for (const char* name : {"wg%d", "", "a-name-that-is-too-long", "-wg0", "wg 0"}) {
    auto r = genl.get_device(name);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().value(), EINVAL) << name;
  }
  wg::WgDevice change;
  change.name = "wg%d";
  EXPECT_EQ(genl.set_device(change).error().value(), EINVAL);
  EXPECT_TRUE(t->sent.empty());
}

// Replies captured from this host's kernel by tests/fuzz/wireguard/make_seeds.cpp.
const std::string kFamilySeeds = MESHD_SOURCE_DIR "/tests/fuzz/wireguard/seeds/genl_family/";

TEST(GenlFamily, ResolvesFromTheKernelsRealReply) {
  auto frames = read_frames(kFamilySeeds + "nlctrl_captured.bin");
  ReplayTransport* t = nullptr;
  auto sock = replay_socket(frames, &t);
  auto id = resolve_genl_family(sock, "nlctrl");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, GENL_ID_CTRL);
  ASSERT_EQ(t->sent.size(), 1u);
  EXPECT_EQ(reinterpret_cast<const nlmsghdr*>(t->sent[0].data())->nlmsg_type, GENL_ID_CTRL);

  // The same reply does not resolve another family.
  auto other = replay_socket(frames);
  auto wrong = resolve_genl_family(other, WG_GENL_NAME);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().value(), EBADMSG);
  EXPECT_NE(wrong.error().message.find("\"nlctrl\", not \"wireguard\""), std::string::npos)
      << wrong.error().message;
}

TEST(GenlFamily, NoWireGuardModuleIsENOENTSayingSo) {
  auto frames = read_frames(kFamilySeeds + "wireguard_absent_captured.bin");
  auto g = WgGenl::open_on(replay_socket(frames));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().value(), ENOENT);
  EXPECT_NE(g.error().message.find("userspace backend"), std::string::npos) << g.error().message;

  auto built = WgGenl::open_on(replay_socket(read_frames(kFamilySeeds + "wireguard_built.bin")));
  ASSERT_TRUE(built) << built.error().message;
  EXPECT_EQ(built->family_id(), 0x22);
}

// Captured inside the test VM from Debian's kernel (make_seeds.cpp): a real
// "wireguard" family reply, and the real GET_DEVICE dump of a device with a
// private key, fwmark 0x42, port 51820 and three peers, the first with a
// preshared key and 301 allowed IPs.
TEST(WgGenlReplay, ReadsTheRealKernelsFamilyReplyAndDump) {
  auto family = WgGenl::open_on(replay_socket(read_frames(kFamilySeeds + "wireguard_present_captured.bin")));
  ASSERT_TRUE(family) << family.error().message;
  EXPECT_GE(family->family_id(), GENL_MIN_ID);

  auto frames = read_frames(MESHD_SOURCE_DIR "/tests/fuzz/wireguard/seeds/get_device/kernel_wg0_captured.bin");
  ReplayTransport* t = nullptr;
  auto genl = WgGenl::over(replay_socket(frames, &t), kTestFamily);
  auto dev = genl.get_device("wg0");
  ASSERT_TRUE(dev) << dev.error().message;
  EXPECT_EQ(dev->name, "wg0");
  ASSERT_TRUE(dev->private_key);
  EXPECT_EQ(dev->listen_port, 51820);
  EXPECT_EQ(dev->fwmark, 0x42u);
  ASSERT_EQ(dev->peers.size(), 3u);
  std::size_t with_psk = 0, ips = 0;
  for (const auto& p : dev->peers) {
    with_psk += p.preshared_key ? 1 : 0;
    ips += p.allowed_ips.size();
  }
  EXPECT_EQ(with_psk, 1u);
  EXPECT_EQ(ips, 301u + 1u + 2u);
  EXPECT_FALSE(contains(t->last_buffer, dev->private_key->bytes()));
}

TEST(GenlFamily, RepliesThatCannotBeAFamilyAreRefused) {
  auto reply = [](std::uint16_t type, std::uint8_t cmd, const char* name, std::uint16_t id) {
    std::vector<std::uint8_t> buf(256, 0);
    nlmsghdr* h = mnl_nlmsg_put_header(buf.data());
    h->nlmsg_type = type;
    auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(h, sizeof(genlmsghdr)));
    g->cmd = cmd;
    if (name) mnl_attr_put_strz(h, CTRL_ATTR_FAMILY_NAME, name);
    mnl_attr_put_u16(h, CTRL_ATTR_FAMILY_ID, id);
    buf.resize(h->nlmsg_len);
    return buf;
  };
  EXPECT_TRUE(parse_family_reply(reply(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, "wireguard", 0x22)));
  // An id below GENL_MIN_ID would address NLMSG_ERROR/NLMSG_DONE.
  EXPECT_FALSE(parse_family_reply(reply(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, "wireguard", NLMSG_ERROR)));
  EXPECT_FALSE(parse_family_reply(reply(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, nullptr, 0x22)));
  EXPECT_FALSE(parse_family_reply(reply(GENL_ID_CTRL, CTRL_CMD_DELFAMILY, "wireguard", 0x22)));
  EXPECT_FALSE(parse_family_reply(reply(0x22, CTRL_CMD_NEWFAMILY, "wireguard", 0x22)));
  EXPECT_FALSE(parse_family_reply(reply(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, "a-family-name-too-long", 0x22)));
}

}  // namespace
}  // namespace meshd::nl
