// The UAPI text codec against the cross-platform protocol
// (wireguard.com/xplatform) and the exact forms wireguard-go 0.0.20220316
// writes: what a set request says is what the implementation will do; what a
// get reply says is what meshd will believe.
#include "meshd/dataplane/uapi.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace meshd::dataplane::uapi {
namespace {

keys::KeyBytes filled(std::uint8_t v) {
  keys::KeyBytes k;
  k.fill(v);
  return k;
}
keys::PublicKey pub(std::uint8_t v) { return keys::PublicKey(filled(v)); }
std::string hex(std::uint8_t v) { return keys::key_to_hex(filled(v)); }

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < s.size()) {
    std::size_t nl = s.find('\n', at);
    out.push_back(s.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

wg::WgPeer peer(std::uint8_t v) {
  wg::WgPeer p;
  p.public_key = pub(v);
  return p;
}

// ------------------------------------------------------------------ set=1

TEST(UapiEncodeSet, EmptyChangeIsJustTheOperationAndBlankLine) {
  wg::WgDevice d;
  d.name = "wg0";
  EXPECT_EQ(encode_set(d), "set=1\n\n");
}

TEST(UapiEncodeSet, DeviceFieldsInSpecOrder) {
  wg::WgDevice d;
  d.private_key = keys::PrivateKey(filled(0x11));
  d.listen_port = 51820;
  d.fwmark = 0x1234;
  d.replace_peers = true;
  EXPECT_EQ(encode_set(d), "set=1\nprivate_key=" + hex(0x11) +
                               "\nlisten_port=51820\nfwmark=4660\nreplace_peers=true\n\n");
}

TEST(UapiEncodeSet, AllZeroPrivateKeyAndZeroFwmarkAreWrittenToRemoveThem) {
  wg::WgDevice d;
  d.private_key = keys::PrivateKey(filled(0));
  d.fwmark = 0;
  EXPECT_EQ(encode_set(d),
            "set=1\nprivate_key=" + std::string(64, '0') + "\nfwmark=0\n\n");
}

TEST(UapiEncodeSet, FullPeerWithV4Endpoint) {
  wg::WgDevice d;
  auto p = peer(0x22);
  p.preshared_key = keys::PresharedKey(filled(0x33));
  p.endpoint = *Endpoint::parse("192.0.2.7:51820");
  p.persistent_keepalive = 25;
  p.replace_allowed_ips = true;
  p.allowed_ips = {*IpPrefix::parse("10.1.2.0/24"), *IpPrefix::parse("10.1.3.4/32")};
  d.peers.push_back(std::move(p));
  EXPECT_EQ(encode_set(d), "set=1\npublic_key=" + hex(0x22) + "\npreshared_key=" + hex(0x33) +
                               "\nendpoint=192.0.2.7:51820\npersistent_keepalive_interval=25\n"
                               "replace_allowed_ips=true\nallowed_ip=10.1.2.0/24\n"
                               "allowed_ip=10.1.3.4/32\n\n");
}

TEST(UapiEncodeSet, V6EndpointIsBracketedAndV6AllowedIpsPass) {
  wg::WgDevice d;
  auto p = peer(0x22);
  p.endpoint = *Endpoint::parse("[fd00::7]:4500");
  p.allowed_ips = {*IpPrefix::parse("fd10::/64")};
  d.peers.push_back(std::move(p));
  auto l = lines_of(encode_set(d));
  EXPECT_NE(std::find(l.begin(), l.end(), "endpoint=[fd00::7]:4500"), l.end());
  EXPECT_NE(std::find(l.begin(), l.end(), "allowed_ip=fd10::/64"), l.end());
}

TEST(UapiEncodeSet, KeepaliveZeroIsWrittenSoItTurnsKeepaliveOff) {
  wg::WgDevice d;
  auto p = peer(0x22);
  p.persistent_keepalive = 0;
  d.peers.push_back(std::move(p));
  EXPECT_EQ(encode_set(d), "set=1\npublic_key=" + hex(0x22) +
                               "\npersistent_keepalive_interval=0\n\n");
}

TEST(UapiEncodeSet, UnsetKeepaliveIsNotWrittenSoItIsLeftAlone) {
  wg::WgDevice d;
  d.peers.push_back(peer(0x22));
  EXPECT_EQ(encode_set(d), "set=1\npublic_key=" + hex(0x22) + "\n\n");
}

TEST(UapiEncodeSet, RemovedPeerCarriesOnlyItsKeyAndRemove) {
  wg::WgDevice d;
  auto p = peer(0x22);
  p.remove = true;
  p.endpoint = *Endpoint::parse("192.0.2.7:51820");  // ignored: the peer goes away
  p.allowed_ips = {*IpPrefix::parse("10.1.2.0/24")};
  d.peers.push_back(std::move(p));
  d.peers.push_back(peer(0x44));
  EXPECT_EQ(encode_set(d), "set=1\npublic_key=" + hex(0x22) + "\nremove=true\npublic_key=" +
                               hex(0x44) + "\n\n");
}

TEST(UapiEncodeSet, UpdateOnlyComesRightAfterThePublicKey) {
  // wireguard-go creates the peer on public_key and undoes that on update_only,
  // so it must precede anything that would configure the peer.
  wg::WgDevice d;
  auto p = peer(0x22);
  p.update_only = true;
  p.endpoint = *Endpoint::parse("192.0.2.7:51820");
  d.peers.push_back(std::move(p));
  auto l = lines_of(encode_set(d));
  ASSERT_GE(l.size(), 3u);
  EXPECT_EQ(l[1], "public_key=" + hex(0x22));
  EXPECT_EQ(l[2], "update_only=true");
}

TEST(UapiEncodeSet, ReplaceAllowedIpsWithAnEmptyListClearsThem) {
  wg::WgDevice d;
  auto p = peer(0x22);
  p.replace_allowed_ips = true;
  d.peers.push_back(std::move(p));
  EXPECT_EQ(encode_set(d), "set=1\npublic_key=" + hex(0x22) + "\nreplace_allowed_ips=true\n\n");
}

TEST(UapiEncodeSet, ThousandPeersEachGetTheirOwnSection) {
  wg::WgDevice d;
  for (int i = 0; i < 1000; ++i) {
    wg::WgPeer p;
    keys::KeyBytes k{};
    k[0] = static_cast<std::uint8_t>(i);
    k[1] = static_cast<std::uint8_t>(i >> 8);
    p.public_key = keys::PublicKey(k);
    p.allowed_ips = {IpPrefix{IpAddress::from_v4_u32(0x0a000000u | (i << 8)), 24}};
    d.peers.push_back(std::move(p));
  }
  std::string s = encode_set(d);
  auto l = lines_of(s);
  EXPECT_EQ(std::count_if(l.begin(), l.end(),
                          [](const std::string& x) { return x.rfind("public_key=", 0) == 0; }),
            1000);
  EXPECT_NE(std::find(l.begin(), l.end(), "allowed_ip=10.3.231.0/24"), l.end());  // peer 999
  EXPECT_EQ(s.substr(s.size() - 2), "\n\n");
  EXPECT_EQ(s.find("\n\n"), s.size() - 2);  // no early blank line ends it
}

// ------------------------------------------------------------------ get=1

// What wireguard-go 0.0.20220316 answers, key order included.
std::string wireguard_go_reply() {
  return "private_key=" + hex(0x11) +
         "\nlisten_port=51820\n"
         "public_key=" + hex(0x22) +
         "\npreshared_key=" + std::string(64, '0') +
         "\nprotocol_version=1\n"
         "endpoint=192.0.2.7:51820\n"
         "last_handshake_time_sec=1700000000\n"
         "last_handshake_time_nsec=123456789\n"
         "tx_bytes=1024\n"
         "rx_bytes=2048\n"
         "persistent_keepalive_interval=0\n"
         "allowed_ip=10.1.2.0/24\n"
         "allowed_ip=fd10::/64\n"
         "public_key=" + hex(0x33) +
         "\npreshared_key=" + hex(0x44) +
         "\nprotocol_version=1\n"
         "endpoint=[fd00::7]:4500\n"
         "last_handshake_time_sec=0\n"
         "last_handshake_time_nsec=0\n"
         "tx_bytes=0\n"
         "rx_bytes=0\n"
         "persistent_keepalive_interval=25\n"
         "errno=0\n\n";
}

TEST(UapiDecodeGet, ReadsTheDeviceAndEveryPeer) {
  auto d = decode_get(wireguard_go_reply(), "wg0");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->name, "wg0");
  ASSERT_TRUE(d->private_key);
  EXPECT_EQ(d->private_key->bytes(), filled(0x11));
  EXPECT_EQ(d->public_key, keys::PrivateKey(filled(0x11)).public_key());  // derived, as wg does
  EXPECT_EQ(d->listen_port, 51820);
  EXPECT_FALSE(d->fwmark);
  ASSERT_EQ(d->peers.size(), 2u);

  const auto& a = d->peers[0];
  EXPECT_EQ(a.public_key, pub(0x22));
  EXPECT_FALSE(a.preshared_key);  // all-zero means none
  EXPECT_EQ(a.protocol_version, 1);
  EXPECT_EQ(a.endpoint, *Endpoint::parse("192.0.2.7:51820"));
  EXPECT_EQ(a.last_handshake_sec, 1700000000);
  EXPECT_EQ(a.last_handshake_nsec, 123456789);
  EXPECT_EQ(a.tx_bytes, 1024u);
  EXPECT_EQ(a.rx_bytes, 2048u);
  EXPECT_EQ(a.persistent_keepalive, 0);
  ASSERT_EQ(a.allowed_ips.size(), 2u);
  EXPECT_EQ(a.allowed_ips[0], *IpPrefix::parse("10.1.2.0/24"));
  EXPECT_EQ(a.allowed_ips[1], *IpPrefix::parse("fd10::/64"));

  const auto& b = d->peers[1];
  EXPECT_EQ(b.public_key, pub(0x33));
  ASSERT_TRUE(b.preshared_key);
  EXPECT_EQ(b.preshared_key->bytes(), filled(0x44));
  EXPECT_EQ(b.endpoint, *Endpoint::parse("[fd00::7]:4500"));
  EXPECT_EQ(b.last_handshake_sec, 0);
  EXPECT_EQ(b.persistent_keepalive, 25);
  EXPECT_TRUE(b.allowed_ips.empty());
  // Flags are SET-only; a reply never turns them on.
  EXPECT_FALSE(b.remove || b.update_only || b.replace_allowed_ips);
}

TEST(UapiDecodeGet, FreshDeviceHasNoKeyNoPeers) {
  auto d = decode_get("listen_port=0\nerrno=0\n\n", "wg0");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_FALSE(d->private_key);
  EXPECT_TRUE(d->public_key.is_zero());
  EXPECT_EQ(d->listen_port, 0);
  EXPECT_TRUE(d->peers.empty());
}

TEST(UapiDecodeGet, ReadsFwmark) {
  auto d = decode_get("fwmark=51820\nerrno=0\n\n", "wg0");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->fwmark, 51820u);
}

TEST(UapiDecodeGet, LinkLocalEndpointZoneIsDropped) {
  auto d = decode_get("public_key=" + hex(0x22) + "\nendpoint=[fe80::1%veth0]:51820\nerrno=0\n\n",
                      "wg0");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->peers.at(0).endpoint, *Endpoint::parse("[fe80::1]:51820"));
}

TEST(UapiDecodeGet, UnknownKeysAreSkippedLikeWgDoes) {
  auto d = decode_get("listen_port=1\nfuture_device_thing=x\npublic_key=" + hex(0x22) +
                          "\nfuture_peer_thing=y\nallowed_ip=10.0.0.0/8\nerrno=0\n\n",
                      "wg0");
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_EQ(d->peers.size(), 1u);
  EXPECT_EQ(d->peers[0].allowed_ips.size(), 1u);
}

TEST(UapiDecodeGet, ManyPeersKeepTheirOrderAndAllowedIps) {
  std::string reply;
  for (int i = 0; i < 1000; ++i) {
    keys::KeyBytes k{};
    k[0] = static_cast<std::uint8_t>(i);
    k[1] = static_cast<std::uint8_t>(i >> 8);
    reply += "public_key=" + keys::key_to_hex(k) + "\nprotocol_version=1\nallowed_ip=" +
             IpAddress::from_v4_u32(0x0a000000u | (i << 8)).to_string() + "/24\n";
  }
  reply += "errno=0\n\n";
  auto d = decode_get(reply, "wg0");
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_EQ(d->peers.size(), 1000u);
  EXPECT_EQ(d->peers[999].public_key.bytes()[1], 999 >> 8);
  EXPECT_EQ(d->peers[999].allowed_ips.at(0), *IpPrefix::parse("10.3.231.0/24"));
}

TEST(UapiDecodeGet, NonZeroErrnoIsAnErrorNamingDeviceAndErrno) {
  auto d = decode_get("errno=19\n\n", "wg7");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().value(), 19);
  EXPECT_NE(d.error().message.find("wg7"), std::string::npos);
  EXPECT_NE(d.error().message.find("errno=19"), std::string::npos);
}

TEST(UapiDecodeGet, NegativeErrnoAsWireguardGoWritesItMeansTheSame) {
  auto d = decode_get("errno=-22\n\n", "wg0");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().value(), EINVAL);
}

struct Malformed {
  const char* what;
  std::string reply;
};

class UapiDecodeGetMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(UapiDecodeGetMalformed, IsAProtocolErrorNamingTheDevice) {
  auto d = decode_get(GetParam().reply, "wg9");
  ASSERT_FALSE(d) << GetParam().what;
  EXPECT_EQ(d.error().value(), EPROTO) << GetParam().what << ": " << d.error().message;
  EXPECT_NE(d.error().message.find("wg9"), std::string::npos) << d.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, UapiDecodeGetMalformed,
    ::testing::Values(
        Malformed{"empty", ""},
        Malformed{"only a blank line", "\n"},
        Malformed{"no errno", "listen_port=1\n\n"},
        Malformed{"truncated before blank line", "listen_port=1\nerrno=0\n"},
        Malformed{"truncated mid-line", "listen_port=1\nerr"},
        Malformed{"line without =", "listen_port\nerrno=0\n\n"},
        Malformed{"bad errno", "errno=x\n\n"},
        Malformed{"empty errno", "errno=\n\n"},
        Malformed{"errno not last", "errno=0\nlisten_port=1\n\n"},
        Malformed{"port too big", "listen_port=70000\nerrno=0\n\n"},
        Malformed{"negative port", "listen_port=-1\nerrno=0\n\n"},
        Malformed{"port with space", "listen_port= 1\nerrno=0\n\n"},
        Malformed{"fwmark too big", "fwmark=4294967296\nerrno=0\n\n"},
        Malformed{"short public key", "public_key=abcd\nerrno=0\n\n"},
        Malformed{"non-hex public key", "public_key=" + std::string(64, 'g') + "\nerrno=0\n\n"},
        Malformed{"bad private key", "private_key=" + std::string(64, 'x') + "\nerrno=0\n\n"},
        Malformed{"peer key before public_key", "endpoint=1.2.3.4:5\nerrno=0\n\n"},
        Malformed{"device key after a peer",
                  "public_key=" + std::string(64, 'a') + "\nlisten_port=1\nerrno=0\n\n"},
        Malformed{"bad endpoint",
                  "public_key=" + std::string(64, 'a') + "\nendpoint=1.2.3.4\nerrno=0\n\n"},
        Malformed{"bare v6 endpoint",
                  "public_key=" + std::string(64, 'a') + "\nendpoint=fd00::1:5\nerrno=0\n\n"},
        Malformed{"allowed ip without length",
                  "public_key=" + std::string(64, 'a') + "\nallowed_ip=10.0.0.1\nerrno=0\n\n"},
        Malformed{"allowed ip length too long",
                  "public_key=" + std::string(64, 'a') + "\nallowed_ip=10.0.0.0/33\nerrno=0\n\n"},
        Malformed{"keepalive too big", "public_key=" + std::string(64, 'a') +
                                           "\npersistent_keepalive_interval=65536\nerrno=0\n\n"},
        Malformed{"nsec out of range", "public_key=" + std::string(64, 'a') +
                                           "\nlast_handshake_time_nsec=1000000000\nerrno=0\n\n"},
        Malformed{"rx bytes overflow", "public_key=" + std::string(64, 'a') +
                                           "\nrx_bytes=18446744073709551616\nerrno=0\n\n"}),
    [](const ::testing::TestParamInfo<Malformed>& info) {
      std::string n;
      for (const char* c = info.param.what; *c; ++c) n += std::isalnum(*c) ? *c : '_';
      return n;
    });

TEST(UapiDecodeGet, ErrorsNeverQuoteSecrets) {
  // A bad private or preshared key must not reach a log, even partly.
  std::string secret = "deadbeefcafe" + std::string(51, '1') + "Z";
  for (std::string key : {"private_key", "preshared_key"}) {
    std::string reply = (key == "private_key" ? "" : "public_key=" + std::string(64, 'a') + "\n") +
                        key + "=" + secret + "\nerrno=0\n\n";
    auto d = decode_get(reply, "wg0");
    ASSERT_FALSE(d) << key;
    EXPECT_EQ(d.error().message.find("deadbeef"), std::string::npos) << d.error().message;
    EXPECT_NE(d.error().message.find(key), std::string::npos) << d.error().message;
  }
}

TEST(UapiDecodeGet, NonSecretBadValuesAreQuotedToHelpTheOperator) {
  auto d = decode_get("listen_port=99999\nerrno=0\n\n", "wg0");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("99999"), std::string::npos) << d.error().message;
  EXPECT_NE(d.error().message.find("line 1"), std::string::npos) << d.error().message;
}

TEST(UapiDecodeGet, BytesAfterTheBlankLineAreNotPartOfTheReply) {
  auto d = decode_get("listen_port=5\nerrno=0\n\nlisten_port=6\nerrno=0\n\n", "wg0");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->listen_port, 5);
}

// ------------------------------------------------------------- set replies

TEST(UapiDecodeSetReply, ZeroIsSuccess) { EXPECT_TRUE(decode_set_reply("errno=0\n\n", "wg0")); }

TEST(UapiDecodeSetReply, NonZeroCarriesTheErrno) {
  auto r = decode_set_reply("errno=-98\n\n", "wg3");  // EADDRINUSE: port taken
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EADDRINUSE);
  EXPECT_NE(r.error().message.find("wg3"), std::string::npos);
  EXPECT_NE(r.error().message.find("set"), std::string::npos);
}

TEST(UapiDecodeSetReply, MalformedRepliesAreProtocolErrors) {
  for (std::string reply : {"", "\n", "errno=0\n", "ok\n\n", "listen_port=1\nerrno=0\n\n",
                            "errno=abc\n\n", "errno=99999999999\n\n"}) {
    auto r = decode_set_reply(reply, "wg0");
    ASSERT_FALSE(r) << reply;
    EXPECT_EQ(r.error().value(), EPROTO) << reply;
  }
}

TEST(UapiReplyEnd, FindsTheFirstBlankLine) {
  EXPECT_EQ(reply_end(""), std::string::npos);
  EXPECT_EQ(reply_end("errno=0\n"), std::string::npos);
  EXPECT_EQ(reply_end("errno=0\n\n"), 9u);
  EXPECT_EQ(reply_end("a=1\nerrno=0\n\nrest"), 13u);
}

TEST(UapiWipe, ClearsTheBuffer) {
  std::string s = "private_key=" + hex(0x11);
  wipe(s);
  EXPECT_TRUE(s.empty());
}

}  // namespace
}  // namespace meshd::dataplane::uapi
