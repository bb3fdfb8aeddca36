// UserspaceBackend against the real wireguard-go and the real wg(8), each
// test in network namespaces and socket directories of its own. What a user
// would notice: the device exists and carries the configuration (also as
// `wg show` sees it), instances for different nodes never collide, a killed
// implementation comes back, a restarted meshd takes over without a restart,
// and two nodes configured this way ping each other through the tunnel.
#include "meshd/dataplane/userspace_backend.h"
#include "tests/support/eventually.h"
#include "tests/support/foreign_listener.h"
#include "tests/support/netns.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"
#include "tests/support/temp_dir.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>

namespace meshd::dataplane {
namespace {

using meshd::testing::file_mode;
using meshd::testing::Netns;
using meshd::testing::read_file;
using meshd::testing::sh;
using meshd::testing::sh_out;
using meshd::testing::write_file;
using namespace std::chrono_literals;

bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  // A zombie is dead for our purposes.
  std::string stat = sh_out("cat /proc/" + std::to_string(pid) + "/stat 2>/dev/null");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

using meshd::testing::eventually;

keys::PublicKey pub_n(int i) {
  keys::KeyBytes k{};
  k[0] = static_cast<std::uint8_t>(i);
  k[1] = static_cast<std::uint8_t>(i >> 8);
  k[31] = 0x42;
  return keys::PublicKey(k);
}

const wg::WgPeer* find_peer(const wg::WgDevice& d, const keys::PublicKey& k) {
  for (const auto& p : d.peers)
    if (p.public_key == k) return &p;
  return nullptr;
}

// One test node: a network namespace, a socket directory, a backend.
struct Node {
  std::unique_ptr<Netns> ns;
  std::string dir;
  UserspaceBackendOptions opts;
  std::unique_ptr<UserspaceBackend> backend;

  explicit Node(const std::string& tmp, const std::string& tag) {
    ns = std::make_unique<Netns>("uapi");
    dir = tmp + "/" + tag;
    std::filesystem::create_directories(dir);
    opts.socket_dir = dir + "/sock";
    opts.netns_path = ns->path();
    opts.start_timeout = 10s;
    backend = std::make_unique<UserspaceBackend>(opts);
  }
  // Takes new options (the backend resolves its binary when constructed).
  void reopen() { backend = std::make_unique<UserspaceBackend>(opts); }
  // `wg ARGS` as an operator runs it, looking at this node's socket.
  std::string wg(const std::string& args) const {
    return ns->out("unshare -m sh -c 'mkdir -p /var/run/wireguard && mount --bind " +
                   opts.socket_dir + " /var/run/wireguard && WG_COLOR_MODE=never wg " + args +
                   "' 2>&1");
  }
};

class UserspaceBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(meshd::testing::is_root(), "needs root (network namespaces)");
    MESHD_REQUIRE(sh("wireguard-go --version >/dev/null 2>&1") == 0, "wireguard-go (Debian package wireguard-go)");
    // Orphaned implementations (their "meshd" was killed) come back to us to
    // be reaped, instead of lingering as zombies under a PID 1 that may not reap.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    char tmpl[] = "/tmp/meshd-uapi-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
  }

  void TearDown() override {
    // Every implementation any test started, ended by PID, then the nodes.
    for (auto& n : nodes_)
      if (n->backend) track(n->backend->implementation_pid("wgt0"));
    for (auto& n : nodes_) n->backend.reset();
    for (pid_t pid : pids_) {
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
      else if (pid > 0) ::waitpid(pid, nullptr, WNOHANG);
    }
    nodes_.clear();
    if (!tmp_.empty()) std::filesystem::remove_all(tmp_);
  }

  Node& node(const std::string& tag) {
    nodes_.push_back(std::make_unique<Node>(tmp_, tag));
    return *nodes_.back();
  }
  void track(pid_t pid) {
    if (pid > 0) pids_.insert(pid);
  }
  Result<void> ensure(Node& n, const std::string& name = "wgt0") {
    auto r = n.backend->ensure_device(name);
    track(n.backend->implementation_pid(name));
    return r;
  }

  std::string tmp_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::set<pid_t> pids_;
};

wg::WgDevice full_config(const keys::PrivateKey& priv) {
  wg::WgDevice d;
  d.name = "wgt0";
  d.private_key = priv.clone();
  d.listen_port = 51820;
  d.fwmark = 0x51;
  wg::WgPeer a;
  a.public_key = pub_n(1);
  a.endpoint = *Endpoint::parse("192.0.2.1:51820");
  a.persistent_keepalive = 25;
  a.allowed_ips = {*IpPrefix::parse("10.1.1.0/24"), *IpPrefix::parse("fd10:1::/64")};
  a.preshared_key = keys::PresharedKey::generate();
  wg::WgPeer b;
  b.public_key = pub_n(2);
  b.endpoint = *Endpoint::parse("[2001:db8::2]:4500");
  b.allowed_ips = {*IpPrefix::parse("10.1.2.0/24")};
  d.peers.push_back(std::move(a));
  d.peers.push_back(std::move(b));
  return d;
}

TEST_F(UserspaceBackendTest, StartsDeviceInNamespaceAndReadsBackWhatWasSet) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n)) << ensure(n).error().message;
  pid_t pid = n.backend->implementation_pid("wgt0");
  EXPECT_GT(pid, 0);
  EXPECT_EQ(n.ns->run("ip link show wgt0 >/dev/null 2>&1"), 0) << "device not in the namespace";
  EXPECT_NE(sh("ip link show wgt0 >/dev/null 2>&1"), 0) << "device leaked into the host";
  EXPECT_TRUE(std::filesystem::exists(n.opts.socket_dir + "/wgt0.sock"));

  auto priv = keys::PrivateKey::generate();
  auto want = full_config(priv);
  auto set = n.backend->set_device(want);
  ASSERT_TRUE(set) << set.error().message;

  auto got = n.backend->get_device("wgt0");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->public_key, priv.public_key());
  EXPECT_EQ(got->listen_port, 51820);
  EXPECT_EQ(got->fwmark, 0x51u);
  ASSERT_EQ(got->peers.size(), 2u);
  const auto* a = find_peer(*got, pub_n(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->endpoint, want.peers[0].endpoint);
  EXPECT_EQ(a->persistent_keepalive, 25);
  EXPECT_EQ(a->allowed_ips, want.peers[0].allowed_ips);
  ASSERT_TRUE(a->preshared_key);
  EXPECT_TRUE(*a->preshared_key == *want.peers[0].preshared_key);
  EXPECT_EQ(a->protocol_version, 1);
  const auto* b = find_peer(*got, pub_n(2));
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->endpoint, *Endpoint::parse("[2001:db8::2]:4500"));
  EXPECT_FALSE(b->preshared_key);

  // The operator's view through the real wg(8) agrees.
  std::string shown = n.wg("show wgt0 dump");
  EXPECT_NE(shown.find(priv.public_key().to_base64()), std::string::npos) << shown;
  EXPECT_NE(shown.find(pub_n(1).to_base64() + "\t" + want.peers[0].preshared_key->to_base64_secret() +
                       "\t192.0.2.1:51820\t10.1.1.0/24,fd10:1::/64"),
            std::string::npos)
      << shown;
  EXPECT_NE(shown.find(pub_n(2).to_base64()), std::string::npos) << shown;
  EXPECT_NE(shown.find("[2001:db8::2]:4500"), std::string::npos) << shown;
  EXPECT_NE(shown.find("51820\t0x51"), std::string::npos) << shown;

  // ensure_device again: the same instance, no restart.
  ASSERT_TRUE(ensure(n));
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), pid);
  EXPECT_FALSE(n.backend->restarted_since_last_check("wgt0"));
}

TEST_F(UserspaceBackendTest, UpdatesOnePeerAndRemovesAnotherLeavingTheRestAlone) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n));
  auto priv = keys::PrivateKey::generate();
  ASSERT_TRUE(n.backend->set_device(full_config(priv)));

  wg::WgDevice change;
  change.name = "wgt0";
  wg::WgPeer upd;
  upd.public_key = pub_n(1);
  upd.update_only = true;
  upd.endpoint = *Endpoint::parse("192.0.2.9:6000");
  upd.persistent_keepalive = 0;
  upd.replace_allowed_ips = true;
  upd.allowed_ips = {*IpPrefix::parse("10.9.0.0/16")};
  wg::WgPeer gone;
  gone.public_key = pub_n(2);
  gone.remove = true;
  wg::WgPeer never;  // update_only on an unknown peer must not create it
  never.public_key = pub_n(3);
  never.update_only = true;
  never.allowed_ips = {*IpPrefix::parse("10.3.0.0/16")};
  change.peers.push_back(std::move(upd));
  change.peers.push_back(std::move(gone));
  change.peers.push_back(std::move(never));
  auto r = n.backend->set_device(change);
  ASSERT_TRUE(r) << r.error().message;

  auto got = n.backend->get_device("wgt0");
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->peers.size(), 1u);
  const auto& p = got->peers[0];
  EXPECT_EQ(p.public_key, pub_n(1));
  EXPECT_EQ(p.endpoint, *Endpoint::parse("192.0.2.9:6000"));
  EXPECT_EQ(p.persistent_keepalive.value_or(99), 0);
  EXPECT_EQ(p.allowed_ips, std::vector<IpPrefix>{*IpPrefix::parse("10.9.0.0/16")});
  EXPECT_TRUE(p.preshared_key) << "untouched fields must stay";
  EXPECT_EQ(got->public_key, priv.public_key());
}

TEST_F(UserspaceBackendTest, RejectedSetReportsTheImplementationsErrno) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n, "wgt0"));
  ASSERT_TRUE(ensure(n, "wgt1"));  // a second device on the same node holds the port
  wg::WgDevice holder;
  holder.name = "wgt1";
  holder.listen_port = 40123;
  ASSERT_TRUE(n.backend->set_device(holder));

  wg::WgDevice change;
  change.name = "wgt0";
  change.listen_port = 40123;
  auto r = n.backend->set_device(change);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EADDRINUSE) << r.error().message;
  EXPECT_NE(r.error().message.find("wgt0"), std::string::npos) << r.error().message;
}

TEST_F(UserspaceBackendTest, ThousandPeersGoInAndComeBack) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n));
  wg::WgDevice d;
  d.name = "wgt0";
  d.private_key = keys::PrivateKey::generate();
  for (int i = 0; i < 1000; ++i) {
    wg::WgPeer p;
    p.public_key = pub_n(i);
    p.endpoint = Endpoint{IpAddress::from_v4_u32(0xc0000200u + static_cast<unsigned>(i % 250) + 1),
                          static_cast<std::uint16_t>(40000 + i)};
    p.allowed_ips = {IpPrefix{IpAddress::from_v4_u32(0x0a000000u | (static_cast<unsigned>(i) << 8)), 24}};
    d.peers.push_back(std::move(p));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto r = n.backend->set_device(d);
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(r) << r.error().message;
  auto got = n.backend->get_device("wgt0");
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->peers.size(), 1000u);
  const auto* last = find_peer(*got, pub_n(999));
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->allowed_ips.at(0), *IpPrefix::parse("10.3.231.0/24"));
  EXPECT_EQ(last->endpoint->port, 40999);
  std::string count = n.wg("show wgt0 peers | wc -l");
  EXPECT_EQ(std::atoi(count.c_str()), 1000) << count;
  auto ms = [](auto a, auto b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  std::printf("[figures] 1000 peers: set %.1f ms, get+decode %.1f ms\n", ms(t0, t1), ms(t1, t2));
}

TEST_F(UserspaceBackendTest, TwoNodesWithTheSameInterfaceNameDoNotCollide) {
  Node& a = node("a");
  Node& b = node("b");
  ASSERT_TRUE(ensure(a));
  ASSERT_TRUE(ensure(b)) << "second instance must not find the first one's socket";
  EXPECT_NE(a.backend->implementation_pid("wgt0"), b.backend->implementation_pid("wgt0"));
  auto ka = keys::PrivateKey::generate(), kb = keys::PrivateKey::generate();
  wg::WgDevice da, db;
  da.name = db.name = "wgt0";
  da.private_key = ka.clone();
  da.listen_port = 41001;
  db.private_key = kb.clone();
  db.listen_port = 41002;
  ASSERT_TRUE(a.backend->set_device(da));
  ASSERT_TRUE(b.backend->set_device(db));
  auto ga = a.backend->get_device("wgt0"), gb = b.backend->get_device("wgt0");
  ASSERT_TRUE(ga && gb);
  EXPECT_EQ(ga->listen_port, 41001);
  EXPECT_EQ(gb->listen_port, 41002);
  EXPECT_EQ(ga->public_key, ka.public_key());
  EXPECT_EQ(gb->public_key, kb.public_key());
  EXPECT_NE(a.wg("show wgt0 listen-port").find("41001"), std::string::npos);
  EXPECT_NE(b.wg("show wgt0 listen-port").find("41002"), std::string::npos);
  // Nothing appeared in the host's own socket directory.
  EXPECT_FALSE(std::filesystem::exists("/var/run/wireguard/wgt0.sock"));
}

TEST_F(UserspaceBackendTest, KilledImplementationIsRestartedAndReported) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n));
  pid_t first = n.backend->implementation_pid("wgt0");
  wg::WgDevice d;
  d.name = "wgt0";
  d.listen_port = 41003;
  ASSERT_TRUE(n.backend->set_device(d));
  EXPECT_FALSE(n.backend->restarted_since_last_check("wgt0"));

  ASSERT_EQ(::kill(first, SIGKILL), 0);
  pid_t second = 0;
  ASSERT_TRUE(eventually([&] {
    second = n.backend->implementation_pid("wgt0");
    return second > 0 && second != first;
  })) << "no new instance after SIGKILL";
  track(second);
  EXPECT_FALSE(process_alive(first));
  EXPECT_TRUE(n.backend->restarted_since_last_check("wgt0"));
  EXPECT_FALSE(n.backend->restarted_since_last_check("wgt0")) << "reported once, then cleared";
  // The new instance serves the device, empty: the caller re-applies its state.
  auto got = n.backend->get_device("wgt0");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_NE(got->listen_port, 41003);
  ASSERT_TRUE(n.backend->set_device(d));
  EXPECT_EQ(n.backend->get_device("wgt0")->listen_port, 41003);
}

TEST_F(UserspaceBackendTest, RestartedMeshdAdoptsTheRunningInstance) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n));
  pid_t pid = n.backend->implementation_pid("wgt0");
  auto priv = keys::PrivateKey::generate();
  ASSERT_TRUE(n.backend->set_device(full_config(priv)));

  n.backend.reset();  // meshd stops
  ASSERT_TRUE(process_alive(pid)) << "the data plane must outlive the control plane";

  n.backend = std::make_unique<UserspaceBackend>(n.opts);  // meshd starts again
  ASSERT_TRUE(ensure(n));
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), pid) << "adopted, not restarted";
  EXPECT_FALSE(n.backend->restarted_since_last_check("wgt0"));
  auto got = n.backend->get_device("wgt0");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->public_key, priv.public_key());
  EXPECT_EQ(got->peers.size(), 2u);

  // The adopted instance is supervised too.
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] {
    pid_t now = n.backend->implementation_pid("wgt0");
    return now > 0 && now != pid;
  }));
  track(n.backend->implementation_pid("wgt0"));
  EXPECT_TRUE(n.backend->restarted_since_last_check("wgt0"));
}

TEST_F(UserspaceBackendTest, KilledMeshdProcessLeavesTheImplementationRunning) {
  Node& n = node("a");
  n.backend.reset();
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t meshd = ::fork();
  ASSERT_GE(meshd, 0);
  if (meshd == 0) {
    // A stand-in meshd: starts the device, says which PID serves it, waits.
    ::close(report[0]);
    UserspaceBackend b(n.opts);
    pid_t served = b.ensure_device("wgt0") ? b.implementation_pid("wgt0") : -1;
    (void)!::write(report[1], &served, sizeof served);
    ::pause();
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t served = -1;
  ASSERT_EQ(::read(report[0], &served, sizeof served), static_cast<ssize_t>(sizeof served));
  ::close(report[0]);
  track(served);
  ASSERT_GT(served, 0);
  ::kill(meshd, SIGKILL);
  ::waitpid(meshd, nullptr, 0);

  EXPECT_TRUE(process_alive(served));
  n.backend = std::make_unique<UserspaceBackend>(n.opts);
  ASSERT_TRUE(ensure(n));
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), served);
}

TEST_F(UserspaceBackendTest, DeleteDeviceRemovesLinkAndStopsImplementation) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n));
  pid_t pid = n.backend->implementation_pid("wgt0");
  auto r = n.backend->delete_device("wgt0");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_NE(n.ns->run("ip link show wgt0 >/dev/null 2>&1"), 0);
  EXPECT_FALSE(process_alive(pid));
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
  EXPECT_FALSE(std::filesystem::exists(n.opts.socket_dir + "/wgt0.sock"));
  // Nothing restarts it, and deleting a missing device is success.
  std::this_thread::sleep_for(n.opts.restart_backoff * 2);
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
  EXPECT_TRUE(n.backend->delete_device("wgt0"));
}

TEST_F(UserspaceBackendTest, LeftoverDeviceOfTheSameNameIsAClearError) {
  Node& n = node("a");
  ASSERT_EQ(n.ns->run("ip link add wgt0 type veth peer name wgt0p"), 0);
  auto r = ensure(n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EEXIST);
  EXPECT_NE(r.error().message.find("wgt0"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("veth"), std::string::npos) << r.error().message;
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
}

TEST_F(UserspaceBackendTest, MissingImplementationIsAClearError) {
  Node& n = node("a");
  auto opts = n.opts;
  opts.implementation = tmp_ + "/no-such-wireguard-go";
  n.backend = std::make_unique<UserspaceBackend>(opts);
  auto r = ensure(n);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no-such-wireguard-go"), std::string::npos) << r.error().message;
}

// The directory where the socket appears decides who can pose as the
// implementation: one that anybody may write to is refused, with the fix.
TEST_F(UserspaceBackendTest, SocketDirectoryWritableByOthersIsRefused) {
  Node& n = node("a");
  std::filesystem::create_directories(n.opts.socket_dir);
  ASSERT_EQ(::chmod(n.opts.socket_dir.c_str(), 0777), 0);
  auto r = ensure(n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EPERM) << r.error().message;
  EXPECT_NE(r.error().message.find(n.opts.socket_dir), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("0777"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chmod go-w"), std::string::npos) << r.error().message;
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
  EXPECT_NE(n.ns->run("ip link show wgt0 >/dev/null 2>&1"), 0) << "an implementation was started";
}

TEST_F(UserspaceBackendTest, SocketDirectoryOwnedByAnotherUserIsRefused) {
  Node& n = node("a");
  ASSERT_EQ(::mkdir(n.opts.socket_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(n.opts.socket_dir.c_str(), 65534, 65534), 0);
  auto r = ensure(n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EPERM) << r.error().message;
  EXPECT_NE(r.error().message.find("uid 65534"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chown root " + n.opts.socket_dir), std::string::npos)
      << r.error().message;
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
}

TEST_F(UserspaceBackendTest, SocketAndLogDirectoriesAreCreatedPrivate) {
  Node& n = node("a");
  n.opts.log_dir = n.dir + "/logs/meshd";
  n.reopen();
  ::umask(0);  // the modes are explicit, not the umask's
  auto r = ensure(n);
  ::umask(022);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(file_mode(n.opts.socket_dir), 0700u);
  EXPECT_EQ(file_mode(n.dir + "/logs"), 0755u);
  EXPECT_EQ(file_mode(n.opts.log_dir), 0700u);
  EXPECT_EQ(file_mode(n.backend->log_path("wgt0")), 0600u);
}

// A process of another user answering on the socket is neither adopted nor
// told anything.
TEST_F(UserspaceBackendTest, ImpostorOnTheSocketIsRefusedBeforeAnythingIsSent) {
  Node& n = node("a");
  ASSERT_EQ(::mkdir(n.opts.socket_dir.c_str(), 0700), 0);
  const std::string path = n.opts.socket_dir + "/wgt0.sock";
  meshd::testing::ForeignUnixListener impostor(path);

  auto r = ensure(n);
  const std::size_t received = impostor.stop();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EPERM) << r.error().message;
  EXPECT_NE(r.error().message.find("uid 65534"), std::string::npos) << r.error().message;
  EXPECT_EQ(received, 0u) << "bytes reached a socket served by another user";
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
}

TEST_F(UserspaceBackendTest, BinaryInADirectoryWritableByOthersIsRefused) {
  Node& n = node("a");
  const std::string bin_dir = tmp_ + "/bin";
  ASSERT_EQ(::mkdir(bin_dir.c_str(), 0755), 0);
  ASSERT_EQ(sh("cp \"$(command -v wireguard-go)\" " + bin_dir + "/wireguard-go"), 0);
  ASSERT_EQ(::chmod(bin_dir.c_str(), 0777), 0);
  n.opts.implementation = bin_dir + "/wireguard-go";
  n.reopen();
  auto r = ensure(n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EPERM) << r.error().message;
  EXPECT_NE(r.error().message.find(bin_dir), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("0777"), std::string::npos) << r.error().message;
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);

  // The same binary in a directory only root may write to is fine.
  ASSERT_EQ(::chmod(bin_dir.c_str(), 0755), 0);
  n.reopen();
  ASSERT_TRUE(ensure(n)) << "a root-owned 0755 directory must be accepted";
}

// meshd's systemd variables (and anything else of its environment) stay
// with meshd: NOTIFY_SOCKET in the implementation would let it report for
// meshd.
TEST_F(UserspaceBackendTest, ImplementationGetsAMinimalEnvironment) {
  Node& n = node("a");
  const char* planted[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                           "LISTEN_PID", "MESHD_TEST_UNRELATED"};
  for (const char* v : planted) ::setenv(v, "1", 1);
  ::setenv("LOG_LEVEL", "error", 1);  // wireguard-go's log switch is passed on
  n.reopen();
  auto r = ensure(n);
  for (const char* v : planted) ::unsetenv(v);
  ::unsetenv("LOG_LEVEL");
  ASSERT_TRUE(r) << r.error().message;
  pid_t pid = n.backend->implementation_pid("wgt0");
  std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
  ASSERT_FALSE(env.empty());
  for (const char* v : planted)
    EXPECT_EQ((std::string(1, '\0') + env).find(std::string(1, '\0') + v + "="), std::string::npos)
        << v << " reached the implementation";
  EXPECT_NE(env.find("WG_PROCESS_FOREGROUND=1"), std::string::npos);
  EXPECT_NE(env.find("LOG_LEVEL=error"), std::string::npos);
  EXPECT_NE(env.find("PATH="), std::string::npos);
}

TEST_F(UserspaceBackendTest, DescriptorsOfMeshdDoNotLeakIntoTheImplementation) {
  Node& n = node("a");
  const std::string marker = tmp_ + "/meshd-private-descriptor";
  write_file(marker, "x");
  int leaky = ::open(marker.c_str(), O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaky, 0);
  auto r = ensure(n);
  pid_t pid = n.backend->implementation_pid("wgt0");
  std::string fds = sh_out("ls -l /proc/" + std::to_string(pid) + "/fd");
  ::close(leaky);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_NE(fds.find("/dev/net/tun"), std::string::npos) << fds;  // the listing works
  EXPECT_EQ(fds.find(marker), std::string::npos) << fds;
}

// wireguard-go takes any argument for an interface name ("--version" would
// create a device called so); names are checked before they reach argv or a
// socket path.
TEST_F(UserspaceBackendTest, InterfaceNamesAreCheckedBeforeUse) {
  Node& n = node("a");
  for (const std::string bad : {"--version", "../wgt0", "wg t0", "waytoolonginterfacename"}) {
    auto r = n.backend->ensure_device(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().value(), EINVAL) << r.error().message;
    EXPECT_NE(r.error().message.find("interface name"), std::string::npos) << r.error().message;
    EXPECT_EQ(n.backend->implementation_pid(bad), 0);
    EXPECT_EQ(n.backend->get_device(bad).error().value(), EINVAL);
    EXPECT_EQ(n.backend->delete_device(bad).error().value(), EINVAL);
    wg::WgDevice d;
    d.name = bad;
    EXPECT_EQ(n.backend->set_device(d).error().value(), EINVAL);
  }
  EXPECT_EQ(n.ns->out("ip -o link show | grep -c -- version"), "0\n");
}

// Teardown deletes only the TUN device of the implementation serving the
// socket, as the kernel backend deletes only wireguard links.
TEST_F(UserspaceBackendTest, TeardownLeavesAVethOfTheSameNameAlone) {
  Node& n = node("a");
  ASSERT_EQ(n.ns->run("ip link add wgt0 type veth peer name wgt0p"), 0);
  auto r = n.backend->delete_device("wgt0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EINVAL);
  EXPECT_NE(r.error().message.find("veth"), std::string::npos) << r.error().message;
  EXPECT_EQ(n.ns->run("ip link show wgt0 >/dev/null 2>&1"), 0) << "the veth was deleted";
}

TEST_F(UserspaceBackendTest, RefusedTeardownKeepsTheImplementationSupervised) {
  Node& n = node("a");
  ASSERT_TRUE(ensure(n));
  pid_t pid = n.backend->implementation_pid("wgt0");
  // Its TUN renamed away, a veth takes the name: not ours to delete.
  ASSERT_EQ(n.ns->run("sh -c 'ip link set wgt0 name wgt0x && "
                      "ip link add wgt0 type veth peer name wgt0p'"),
            0);
  auto r = n.backend->delete_device("wgt0");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("veth"), std::string::npos) << r.error().message;
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), pid) << "no longer supervised";
  EXPECT_TRUE(process_alive(pid));
  EXPECT_EQ(n.ns->run("ip link show wgt0x >/dev/null 2>&1"), 0);
}

TEST_F(UserspaceBackendTest, TeardownLeavesATunNobodyServesAlone) {
  Node& n = node("a");
  ASSERT_EQ(n.ns->run("ip tuntap add dev wgt0 mode tun"), 0);
  auto r = n.backend->delete_device("wgt0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EINVAL);
  EXPECT_NE(r.error().message.find("nothing serves"), std::string::npos) << r.error().message;
  EXPECT_EQ(n.ns->run("ip link show wgt0 >/dev/null 2>&1"), 0) << "someone else's TUN was deleted";
}

// An implementation that neither exits when its device goes nor on SIGTERM
// (here: stopped) is killed, and delete_device returns.
TEST_F(UserspaceBackendTest, ImplementationThatIgnoresTeardownIsKilled) {
  Node& n = node("a");
  n.opts.stop_timeout = 300ms;
  n.reopen();
  ASSERT_TRUE(ensure(n));
  pid_t pid = n.backend->implementation_pid("wgt0");
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  auto r = n.backend->delete_device("wgt0");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(process_alive(pid));
  EXPECT_NE(n.ns->run("ip link show wgt0 >/dev/null 2>&1"), 0);
}

TEST(ProcessRunning, ZombieIsNotRunning) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  // Exited, not reaped: kill(pid, 0) still succeeds.
  ASSERT_TRUE(eventually([&] {
    return sh_out("cat /proc/" + std::to_string(child) + "/stat").find(") Z") != std::string::npos;
  }));
  EXPECT_EQ(::kill(child, 0), 0);
  EXPECT_FALSE(process_running(child));
  EXPECT_TRUE(process_running(::getpid()));
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(process_running(child));
}

// A symlink planted where the log goes must not turn root's writes into
// writes to its target.
TEST_F(UserspaceBackendTest, SymlinkAtTheLogPathIsNotFollowed) {
  Node& n = node("a");
  n.opts.log_dir = n.dir + "/logs";
  n.reopen();
  ASSERT_EQ(::mkdir(n.opts.log_dir.c_str(), 0700), 0);
  const std::string target = tmp_ + "/target";
  write_file(target, "precious\n");
  ASSERT_EQ(::symlink(target.c_str(), n.backend->log_path("wgt0").c_str()), 0);
  auto r = ensure(n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), ELOOP) << r.error().message;
  EXPECT_NE(r.error().message.find(n.backend->log_path("wgt0")), std::string::npos)
      << r.error().message;
  EXPECT_EQ(read_file(target), "precious\n");
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
}

TEST_F(UserspaceBackendTest, FifoAtTheLogPathIsRefusedWithoutBlocking) {
  Node& n = node("a");
  n.opts.log_dir = n.dir + "/logs";
  n.reopen();
  ASSERT_EQ(::mkdir(n.opts.log_dir.c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo(n.backend->log_path("wgt0").c_str(), 0600), 0);
  auto r = ensure(n);  // a blocking open would wait here for a reader forever
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(n.backend->log_path("wgt0")), std::string::npos)
      << r.error().message;
  EXPECT_EQ(n.backend->implementation_pid("wgt0"), 0);
}

TEST_F(UserspaceBackendTest, TwoNodesPingEachOtherThroughTheTunnel) {
  Node& a = node("a");
  Node& b = node("b");
  ASSERT_EQ(sh("ip link add uapiva netns " + a.ns->name() + " type veth peer name uapivb netns " +
               b.ns->name()),
            0);
  ASSERT_EQ(a.ns->run("sh -c 'ip addr add 192.168.240.1/24 dev uapiva && ip link set uapiva up'"), 0);
  ASSERT_EQ(b.ns->run("sh -c 'ip addr add 192.168.240.2/24 dev uapivb && ip link set uapivb up'"), 0);
  ASSERT_TRUE(ensure(a));
  ASSERT_TRUE(ensure(b));
  auto ka = keys::PrivateKey::generate(), kb = keys::PrivateKey::generate();
  auto config = [](const keys::PrivateKey& own, const keys::PrivateKey& other,
                   const char* endpoint, const char* tunnel_peer) {
    wg::WgDevice d;
    d.name = "wgt0";
    d.private_key = own.clone();
    d.listen_port = 51820;
    wg::WgPeer p;
    p.public_key = other.public_key();
    p.endpoint = *Endpoint::parse(endpoint);
    p.allowed_ips = {*IpPrefix::parse(tunnel_peer)};
    d.peers.push_back(std::move(p));
    return d;
  };
  ASSERT_TRUE(a.backend->set_device(config(ka, kb, "192.168.240.2:51820", "10.240.0.2/32")));
  ASSERT_TRUE(b.backend->set_device(config(kb, ka, "192.168.240.1:51820", "10.240.0.1/32")));
  ASSERT_EQ(a.ns->run("sh -c 'ip addr add 10.240.0.1/24 dev wgt0 && ip link set wgt0 up'"), 0);
  ASSERT_EQ(b.ns->run("sh -c 'ip addr add 10.240.0.2/24 dev wgt0 && ip link set wgt0 up'"), 0);

  EXPECT_EQ(a.ns->run("ping -c 3 -i 0.2 -W 5 10.240.0.2 >/dev/null"), 0);
  EXPECT_EQ(b.ns->run("ping -c 3 -i 0.2 -W 5 10.240.0.1 >/dev/null"), 0);
  auto ga = a.backend->get_device("wgt0");
  ASSERT_TRUE(ga);
  ASSERT_EQ(ga->peers.size(), 1u);
  EXPECT_GT(ga->peers[0].last_handshake_sec, 0) << "a handshake happened";
  EXPECT_GT(ga->peers[0].rx_bytes, 0u);
  EXPECT_GT(ga->peers[0].tx_bytes, 0u);
}

}  // namespace
}  // namespace meshd::dataplane
