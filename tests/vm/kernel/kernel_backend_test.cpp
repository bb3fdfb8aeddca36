// KernelBackend against real kernel WireGuard, inside the vm guest (root,
// only lo; every test makes its own namespaces). Cross-checks what meshd
// reads back with wg(8), which speaks the same netlink family independently.
#include "meshd/dataplane/kernel_backend.h"

#include "netlink/netns.h"
#include "netlink/wireguard.h"
#include "tests/support/netns.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace meshd::dataplane {
namespace {

using meshd::testing::Netns;
using meshd::testing::sh;

IpPrefix pfx(const std::string& s) { return IpPrefix::parse(s).value(); }

keys::PublicKey key_of(std::uint32_t n) {
  keys::KeyBytes b{};
  b[0] = 0x77;
  std::memcpy(b.data() + 1, &n, sizeof n);
  return keys::PublicKey(b);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string f; std::getline(in, f, '\t');) out.push_back(f);
  return out;
}

// `wg show DEV dump` indexed by peer public key (base64).
std::map<std::string, std::vector<std::string>> wg_dump_peers(const Netns& ns, const std::string& dev) {
  std::map<std::string, std::vector<std::string>> peers;
  auto ls = lines(ns.out("wg show " + dev + " dump"));
  for (std::size_t i = 1; i < ls.size(); ++i) {
    auto f = fields(ls[i]);
    if (!f.empty()) peers[f[0]] = f;
  }
  return peers;
}

std::set<IpPrefix> as_set(const std::vector<IpPrefix>& v) { return {v.begin(), v.end()}; }

const wg::WgPeer* find_peer(const wg::WgDevice& d, const keys::PublicKey& k) {
  for (const auto& p : d.peers)
    if (p.public_key == k) return &p;
  return nullptr;
}

class KernelBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(meshd::testing::is_root()) << "runs as root inside the vm guest";
  }
  Netns ns_{"kb"};
  KernelBackend backend_{KernelBackendOptions{ns_.path()}};
};

TEST(KernelProbe, ReportsWireguardAndLeavesNothingBehind) {
  Netns ns("kbprobe");
  auto fd = nl::open_netns(ns.path());
  ASSERT_TRUE(fd);
  bool available = false;
  // setns() moves only the calling thread: probe from a thread inside the test namespace.
  std::thread t([&] {
    auto g = nl::NetnsGuard::enter(fd->get());
    if (g) available = kernel_wireguard_available();
  });
  t.join();
  EXPECT_TRUE(available);
  EXPECT_EQ(ns.out("ip -o link show | grep -c meshd-p || true"), "0\n");
}

TEST_F(KernelBackendTest, CreatesAdoptsAndDeletesTheLink) {
  ASSERT_TRUE(backend_.ensure_device("wg0")) << "create";
  EXPECT_NE(ns_.out("ip -d link show wg0").find("wireguard"), std::string::npos);
  auto first = backend_.get_device("wg0");
  ASSERT_TRUE(first) << first.error().message;
  // A restarted meshd adopts the running device instead of recreating it.
  KernelBackend again(KernelBackendOptions{ns_.path()});
  ASSERT_TRUE(again.ensure_device("wg0"));
  auto second = again.get_device("wg0");
  ASSERT_TRUE(second);
  EXPECT_EQ(first->ifindex, second->ifindex);

  ASSERT_TRUE(backend_.delete_device("wg0"));
  EXPECT_NE(ns_.run("ip link show wg0 >/dev/null 2>&1"), 0);
  EXPECT_TRUE(backend_.delete_device("wg0")) << "missing device is success";
  auto gone = backend_.get_device("wg0");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().value(), ENODEV) << gone.error().message;
}

TEST_F(KernelBackendTest, RefusesALinkOfAnotherKind) {
  ASSERT_EQ(ns_.run("ip link add wg1 type veth peer name wg1p"), 0);
  auto r = backend_.ensure_device("wg1");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("wg1"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("veth"), std::string::npos) << r.error().message;
  EXPECT_FALSE(backend_.delete_device("wg1"));
  EXPECT_EQ(ns_.run("ip link show wg1 >/dev/null"), 0) << "someone else's link must survive";
}

TEST_F(KernelBackendTest, SetsEveryAttributeAndReadsItBack) {
  ASSERT_TRUE(backend_.ensure_device("wg0"));
  wg::WgDevice d;
  d.name = "wg0";
  d.private_key = keys::PrivateKey::generate();
  d.listen_port = 51820;
  d.fwmark = 0x1234;
  wg::WgPeer a;
  a.public_key = keys::PrivateKey::generate().public_key();
  a.preshared_key = keys::PresharedKey::generate();
  a.endpoint = Endpoint::parse("192.0.2.1:51820").value();
  a.persistent_keepalive = 25;
  a.allowed_ips = {pfx("10.1.0.0/24"), pfx("fd00:1::/64")};
  wg::WgPeer b;
  b.public_key = keys::PrivateKey::generate().public_key();
  b.endpoint = Endpoint::parse("[2001:db8::2]:4242").value();
  b.allowed_ips = {pfx("10.2.0.0/24")};
  d.peers.push_back(a.clone());
  d.peers.push_back(b.clone());
  auto set = backend_.set_device(d);
  ASSERT_TRUE(set) << set.error().message;

  auto got = backend_.get_device("wg0");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->name, "wg0");
  ASSERT_TRUE(got->private_key);
  EXPECT_TRUE(*got->private_key == *d.private_key);
  EXPECT_EQ(got->public_key, d.private_key->public_key());
  EXPECT_EQ(got->listen_port, 51820);
  EXPECT_EQ(got->fwmark, 0x1234u);
  ASSERT_EQ(got->peers.size(), 2u);
  const wg::WgPeer* ga = find_peer(*got, a.public_key);
  ASSERT_TRUE(ga);
  ASSERT_TRUE(ga->preshared_key);
  EXPECT_TRUE(*ga->preshared_key == *a.preshared_key);
  EXPECT_EQ(ga->endpoint, a.endpoint);
  EXPECT_EQ(ga->persistent_keepalive, 25);
  EXPECT_EQ(as_set(ga->allowed_ips), as_set(a.allowed_ips));
  EXPECT_EQ(ga->protocol_version, 1);
  const wg::WgPeer* gb = find_peer(*got, b.public_key);
  ASSERT_TRUE(gb);
  EXPECT_FALSE(gb->preshared_key);
  EXPECT_EQ(gb->endpoint, b.endpoint);
  EXPECT_EQ(gb->persistent_keepalive, 0);

  // wg(8) agrees.
  auto dump = lines(ns_.out("wg show wg0 dump"));
  ASSERT_EQ(dump.size(), 3u);
  auto dev = fields(dump[0]);
  ASSERT_GE(dev.size(), 4u);
  EXPECT_EQ(dev[1], d.private_key->public_key().to_base64());
  EXPECT_EQ(dev[2], "51820");
  EXPECT_EQ(dev[3], "0x1234");
  auto peers = wg_dump_peers(ns_, "wg0");
  ASSERT_EQ(peers.count(a.public_key.to_base64()), 1u);
  auto& wa = peers[a.public_key.to_base64()];
  EXPECT_EQ(wa[2], "192.0.2.1:51820");
  EXPECT_EQ(wa[7], "25");
  EXPECT_EQ(peers[b.public_key.to_base64()][2], "[2001:db8::2]:4242");
}

TEST_F(KernelBackendTest, FiveThousandPeersUpdateOneRemoveOne) {
  ASSERT_TRUE(backend_.ensure_device("wg0"));
  wg::WgDevice d;
  d.name = "wg0";
  d.private_key = keys::PrivateKey::generate();
  d.listen_port = 51821;
  for (std::uint32_t i = 0; i < 5000; ++i) {
    wg::WgPeer p;
    p.public_key = key_of(i);
    p.endpoint = Endpoint{IpAddress::from_v4_u32(0xc6120000u + i), 51820};  // 198.18/15
    p.allowed_ips = {IpPrefix{IpAddress::from_v4_u32(0x0a000000u + (i << 8)), 24},
                     IpPrefix{IpAddress::from_v4_u32(0x64400000u + i), 32}};
    d.peers.push_back(std::move(p));
  }
  // And one peer whose allowed IPs alone need several messages both ways.
  wg::WgPeer big;
  big.public_key = key_of(99999);
  for (std::uint32_t i = 0; i < 3000; ++i)
    big.allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0xac100000u + i), 32});
  d.peers.push_back(big.clone());

  auto t0 = std::chrono::steady_clock::now();
  auto set = backend_.set_device(d);
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(set) << set.error().message;
  auto got = backend_.get_device("wg0");
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_TRUE(got) << got.error().message;
  std::printf("figures: set 5001 peers (11000 allowed IPs) %.0f ms, get %.0f ms (emulated guest)\n",
              std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t2 - t1).count());

  EXPECT_EQ(lines(ns_.out("wg show wg0 dump")).size(), 5002u);  // device line + peers
  ASSERT_EQ(got->peers.size(), 5001u);
  std::map<keys::PublicKey, const wg::WgPeer*> by_key;
  for (const auto& p : got->peers) by_key[p.public_key] = &p;
  ASSERT_EQ(by_key.size(), 5001u) << "a peer split across dump messages came back twice";
  for (const auto& want : d.peers) {
    auto it = by_key.find(want.public_key);
    ASSERT_NE(it, by_key.end());
    ASSERT_EQ(as_set(it->second->allowed_ips), as_set(want.allowed_ips));
    if (want.endpoint) {
      ASSERT_EQ(it->second->endpoint, want.endpoint);
    }
  }

  // Update one peer: new endpoint, allowed IPs replaced. UPDATE_ONLY: it exists.
  wg::WgDevice upd;
  upd.name = "wg0";
  wg::WgPeer p42;
  p42.public_key = key_of(42);
  p42.update_only = true;
  p42.endpoint = Endpoint::parse("[2001:db8::42]:1042").value();
  p42.replace_allowed_ips = true;
  p42.allowed_ips = {pfx("10.250.0.0/24"), pfx("fd00:42::/64")};
  upd.peers.push_back(p42.clone());
  // Replace the big peer's 3000 IPs with 2500 others: only the first message
  // may carry REPLACE_ALLOWEDIPS, or the result would be the last part only.
  wg::WgPeer big2;
  big2.public_key = key_of(99999);
  big2.replace_allowed_ips = true;
  for (std::uint32_t i = 0; i < 2500; ++i)
    big2.allowed_ips.push_back(IpPrefix{IpAddress::from_v4_u32(0xac200000u + i), 32});
  upd.peers.push_back(big2.clone());
  // UPDATE_ONLY for an unknown peer must not create it.
  wg::WgPeer ghost;
  ghost.public_key = key_of(123456);
  ghost.update_only = true;
  ghost.allowed_ips = {pfx("10.251.0.0/24")};
  upd.peers.push_back(std::move(ghost));
  ASSERT_TRUE(backend_.set_device(upd));

  auto after = backend_.get_device("wg0").value();
  ASSERT_EQ(after.peers.size(), 5001u);
  const wg::WgPeer* g42 = find_peer(after, key_of(42));
  ASSERT_TRUE(g42);
  EXPECT_EQ(g42->endpoint, p42.endpoint);
  EXPECT_EQ(as_set(g42->allowed_ips), as_set(p42.allowed_ips));
  const wg::WgPeer* gbig = find_peer(after, key_of(99999));
  ASSERT_TRUE(gbig);
  EXPECT_EQ(as_set(gbig->allowed_ips), as_set(big2.allowed_ips));
  EXPECT_FALSE(find_peer(after, key_of(123456)));
  const wg::WgPeer* g43 = find_peer(after, key_of(43));
  ASSERT_TRUE(g43);
  EXPECT_EQ(g43->endpoint, d.peers[43].endpoint) << "untouched peer changed";
  auto wg42 = wg_dump_peers(ns_, "wg0")[key_of(42).to_base64()];
  ASSERT_GE(wg42.size(), 4u);
  EXPECT_EQ(wg42[2], "[2001:db8::42]:1042");

  // Remove one peer.
  wg::WgDevice rm;
  rm.name = "wg0";
  wg::WgPeer gone;
  gone.public_key = key_of(7);
  gone.remove = true;
  rm.peers.push_back(std::move(gone));
  ASSERT_TRUE(backend_.set_device(rm));
  auto last = backend_.get_device("wg0").value();
  EXPECT_EQ(last.peers.size(), 5000u);
  EXPECT_FALSE(find_peer(last, key_of(7)));
  EXPECT_EQ(lines(ns_.out("wg show wg0 dump")).size(), 5001u);
  EXPECT_EQ(wg_dump_peers(ns_, "wg0").count(key_of(7).to_base64()), 0u);
}

TEST(KernelBackendMesh, TwoNamespacesPingThroughKernelWireguard) {
  Netns a("kba"), b("kbb");
  // Underlay: a veth between the two namespaces, 192.168.241.0/24.
  ASSERT_EQ(a.run("ip link add ua type veth peer name ub netns " + b.name()), 0);
  ASSERT_EQ(a.run("ip addr add 192.168.241.1/24 dev ua"), 0);
  ASSERT_EQ(b.run("ip addr add 192.168.241.2/24 dev ub"), 0);
  ASSERT_EQ(a.run("ip link set ua up"), 0);
  ASSERT_EQ(b.run("ip link set ub up"), 0);

  KernelBackend ka(KernelBackendOptions{a.path()});
  KernelBackend kb(KernelBackendOptions{b.path()});
  ASSERT_TRUE(ka.ensure_device("wgm"));
  ASSERT_TRUE(kb.ensure_device("wgm"));
  auto key_a = keys::PrivateKey::generate();
  auto key_b = keys::PrivateKey::generate();

  auto configure = [](KernelBackend& be, const keys::PrivateKey& own, const keys::PublicKey& peer,
                      const char* peer_endpoint, const char* peer_mesh_ip) {
    wg::WgDevice d;
    d.name = "wgm";
    d.private_key = own.clone();
    d.listen_port = 51820;
    wg::WgPeer p;
    p.public_key = peer;
    p.endpoint = Endpoint::parse(peer_endpoint).value();
    p.persistent_keepalive = 1;
    p.allowed_ips = {pfx(peer_mesh_ip)};
    d.peers.push_back(std::move(p));
    return be.set_device(d);
  };
  ASSERT_TRUE(configure(ka, key_a, key_b.public_key(), "192.168.241.2:51820", "10.241.0.2/32"));
  ASSERT_TRUE(configure(kb, key_b, key_a.public_key(), "192.168.241.1:51820", "10.241.0.1/32"));
  ASSERT_EQ(a.run("ip addr add 10.241.0.1/24 dev wgm"), 0);
  ASSERT_EQ(a.run("ip link set wgm up"), 0);
  ASSERT_EQ(b.run("ip addr add 10.241.0.2/24 dev wgm"), 0);
  ASSERT_EQ(b.run("ip link set wgm up"), 0);

  EXPECT_EQ(a.run("ping -c 3 -i 0.3 -W 5 10.241.0.2 >/dev/null"), 0);
  EXPECT_EQ(b.run("ping -c 3 -i 0.3 -W 5 10.241.0.1 >/dev/null"), 0);

  auto seen = ka.get_device("wgm");
  ASSERT_TRUE(seen) << seen.error().message;
  ASSERT_EQ(seen->peers.size(), 1u);
  EXPECT_GT(seen->peers[0].last_handshake_sec, 0) << "no handshake recorded";
  EXPECT_GT(seen->peers[0].rx_bytes, 0u);
  EXPECT_GT(seen->peers[0].tx_bytes, 0u);
  EXPECT_EQ(seen->peers[0].endpoint, Endpoint::parse("192.168.241.2:51820").value());
}

}  // namespace
}  // namespace meshd::dataplane
