// The control plane with real meshd processes (userspace backend) in network
// namespaces on a bridge underlay: a founder and nodes that join it with
// bootstrap tokens, pods made by the real CNI plugin, the join listener under
// bad tokens, replays and a flood, simultaneous joins through different
// members, a node killed and restarted, and the sync port closed to pods.
//
// One cluster for the whole suite (SetUpTestSuite): the tests run in the
// order written and build on each other (nodes joined by one test are
// members in the next), which keeps the number of meshd processes and the
// wall time within what the integration label can afford on 2 cores. Each
// test checks its own preconditions, so a filtered run still works.
#include "keys/identity.h"
#include "keys/token.h"
#include "keys/wg_key.h"
#include "meshd/controlplane/join_client.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/sync_channel.h"
#include "meshd/controlplane/sync_message.h"
#include "netlink/netns.h"
#include "store/records.h"
#include "store/tokens.h"
#include "tests/support/api_client.h"
#include "tests/support/capture.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/prerequisite.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

namespace meshd::testing {
namespace {

namespace cp = meshd::controlplane;

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// "joined cluster <id> through <target>: pod CIDR <cidr>" and "founded
// cluster <id>: pod CIDR <cidr>", parsed from a log line.
struct Announced {
  std::string cluster_id, target, cidr;
};
std::optional<Announced> founded(const std::string& line) {
  static const std::regex re(R"(founded cluster (\S+): pod CIDR (\S+))");
  std::smatch m;
  if (!std::regex_search(line, m, re)) return std::nullopt;
  return Announced{m[1], "", m[2]};
}
std::optional<Announced> joined(const std::string& line) {
  static const std::regex re(R"(joined cluster (\S+) through (\S+): pod CIDR (\S+))");
  std::smatch m;
  if (!std::regex_search(line, m, re)) return std::nullopt;
  return Announced{m[1], m[2], m[3]};
}

// One join exchange from the test itself, inside `ns`: the reply frame.
Result<std::vector<std::uint8_t>> roundtrip_from(Netns& ns, const std::string& target,
                                                 const std::vector<std::uint8_t>& request) {
  return nl::run_in_netns(ns.fd(), [&]() -> Result<std::vector<std::uint8_t>> {
    return cp::join_roundtrip(*Endpoint::parse(target), request, std::chrono::seconds(10));
  });
}

cp::JoinClaims claims_for(const std::string& name) {
  cp::JoinClaims c;
  c.name = name;
  c.wg_public_key = keys::PrivateKey::generate().public_key();
  c.identity = keys::IdentitySecretKey::generate().public_key();
  c.timestamp = now_ms();
  return c;
}

class Cluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!is_root()) return;
    try {
      c_ = new ClusterNodes();
      // Everything the underlay carries, from before the founder starts.
      underlay_capture_ = new Capture(c_->underlay(), "br0");
      auto& n1 = c_->add_node("n1");
      c_->start(n1);
      if (!c_->wait_settled(n1)) throw std::runtime_error("n1 did not found a cluster:\n" + c_->log_tail(n1));
      // n2 joins through the founder, n3 through n2 (a member that joined,
      // with a token made at n2).
      auto& n2 = c_->add_node("n2", &n1);
      c_->write_token(n2, ClusterNodes::create_token(n1));
      auto& n3 = c_->add_node("n3", &n2);
      c_->start(n2);
      if (!c_->wait_log(n2, "joined cluster")) throw std::runtime_error("n2 did not join:\n" + c_->log_tail(n2));
      if (!c_->wait_settled(n2)) throw std::runtime_error("n2 did not settle:\n" + c_->log_tail(n2));
      c_->write_token(n3, ClusterNodes::create_token(n2));
      c_->start(n3);
      if (!c_->wait_log(n3, "joined cluster", 60s))
        throw std::runtime_error("n3 did not join:\n" + c_->log_tail(n3));
      if (!c_->wait_settled(n3)) throw std::runtime_error("n3 did not settle:\n" + c_->log_tail(n3));
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete underlay_capture_;
    underlay_capture_ = nullptr;
    delete c_;
    c_ = nullptr;
  }
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static ClusterNodes::Node& node(const std::string& name) { return c_->node(name); }
  static ClusterNodes::Pod& pod_on(ClusterNodes::Node& n) {
    return n.pods.empty() ? c_->add_pod(n) : n.pods.front();
  }
  // Every ordered pair of the nodes' pods reaches the other. Once a pair
  // has failed, the others get a short bound: a broken mesh fails in
  // seconds, not pairs x 15 s.
  static void expect_all_pods_reach(const std::vector<ClusterNodes::Node*>& nodes) {
    bool failed = false;
    for (auto* a : nodes)
      for (auto* b : nodes) {
        if (a == b) continue;
        auto& pa = pod_on(*a);
        auto& pb = pod_on(*b);
        bool ok = ClusterNodes::reaches(*pa.ns, pb.address, failed ? 2s : 15s);
        failed = failed || !ok;
        EXPECT_TRUE(ok)
            << "pod " << pa.address << " on " << a->name << " cannot reach pod " << pb.address << " on "
            << b->name;
      }
  }
  // A token for a meshd that joins through `member`, written to `joiner`.
  static void give_token(ClusterNodes::Node& joiner, const ClusterNodes::Node& member) {
    c_->write_token(joiner, ClusterNodes::create_token(member));
  }

  static ClusterNodes* c_;
  static Capture* underlay_capture_;
  static std::string setup_error_;
};
ClusterNodes* Cluster::c_ = nullptr;
Capture* Cluster::underlay_capture_ = nullptr;
std::string Cluster::setup_error_;

TEST_F(Cluster, TheFounderSettlesAtOnceAndTwoNodesJoinIt) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  auto& n3 = node("n3");
  auto f = founded(c_->log_line(n1, "founded cluster"));
  ASSERT_TRUE(f) << c_->log_tail(n1);
  EXPECT_EQ(f->cidr, "10.244.0.0/24");
  EXPECT_EQ(ClusterNodes::settled_cidr(n1), IpPrefix::parse("10.244.0.0/24").value());
  EXPECT_EQ(sh("test -s " + n1.conflist()), 0) << "the founder's CNI config is missing";

  auto j2 = joined(c_->log_line(n2, "joined cluster"));
  auto j3 = joined(c_->log_line(n3, "joined cluster"));
  ASSERT_TRUE(j2 && j3);
  EXPECT_EQ(j2->cluster_id, f->cluster_id);
  EXPECT_EQ(j3->cluster_id, f->cluster_id);
  EXPECT_EQ(j2->target, n1.join_endpoint());
  EXPECT_EQ(j3->target, n2.join_endpoint());
  // The announced CIDRs are the settled ones, and they differ.
  EXPECT_EQ(ClusterNodes::settled_cidr(n2), IpPrefix::parse(j2->cidr).value());
  EXPECT_EQ(ClusterNodes::settled_cidr(n3), IpPrefix::parse(j3->cidr).value());
  EXPECT_NE(j2->cidr, f->cidr);
  EXPECT_NE(j3->cidr, f->cidr);
  EXPECT_NE(j2->cidr, j3->cidr);
  EXPECT_EQ(c_->log(n1).find("joined cluster"), std::string::npos);
  EXPECT_EQ(c_->log(n2).find("founded cluster"), std::string::npos);
  EXPECT_EQ(c_->log(n3).find("founded cluster"), std::string::npos);
  // Every node's mesh address is the first host of its pod CIDR, on the device.
  for (auto* n : {&n1, &n2, &n3}) {
    auto mesh = ClusterNodes::mesh_address(*n);
    ASSERT_FALSE(mesh.empty());
    EXPECT_NE(n->ns->out("ip -o addr show dev " + c_->interface()).find(mesh + "/32"), std::string::npos)
        << n->name;
  }
}

TEST_F(Cluster, PodsMadeByThePluginReachPodsOnEveryOtherNodeWithTheirOwnAddress) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  auto& n3 = node("n3");
  for (auto* n : {&n1, &n2, &n3}) {
    auto& p = pod_on(*n);
    EXPECT_TRUE(ClusterNodes::settled_cidr(*n)->contains(*IpAddress::parse(p.address)))
        << p.address << " is not in " << n->name << "'s pod CIDR";
  }
  expect_all_pods_reach({&n1, &n2, &n3});
  // A node reaches a remote node's pod (from its mesh address).
  EXPECT_TRUE(ClusterNodes::reaches(*n1.ns, pod_on(n3).address));

  // The receiving pod, and the receiving node's WireGuard device, see the
  // sending pod's own address: no NAT anywhere.
  auto& from = pod_on(n1);
  auto& to = pod_on(n3);
  Capture at_pod(*to.ns, "eth0", "icmp");
  Capture at_device(*n3.ns, c_->interface(), "icmp");
  from.ns->run("ping -c 3 -i 0.2 -W 2 " + to.address + " >/dev/null 2>&1");
  at_pod.stop();
  at_device.stop();
  std::string request = from.address + " > " + to.address + ": ICMP echo request";
  EXPECT_NE(at_pod.read().find(request), std::string::npos) << at_pod.read();
  EXPECT_NE(at_device.read().find(request), std::string::npos) << at_device.read();
}

TEST_F(Cluster, TheUnderlayCarriesOnlyWireGuardAndTheJoinExchange) {
  // Some pod traffic first, if the test before did not run.
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n1).ns, pod_on(n2).address));
  ASSERT_TRUE(underlay_capture_);
  underlay_capture_->stop();
  const std::string wg = "udp and src port 51820 and dst port 51820";
  const std::string join = "tcp port 51821";
  EXPECT_NE(underlay_capture_->read(wg), "") << "no WireGuard on the underlay";
  EXPECT_NE(underlay_capture_->read(join), "") << "no join exchange on the underlay";
  // A WireGuard packet that reaches a node before its wireguard-go listens
  // (a member sends its first handshake as soon as it admits the joiner) is
  // answered by the kernel with an ICMP port unreachable quoting it (type 3
  // code 3; the quoted UDP destination port at offset 8 + 20 + 2).
  const std::string wg_unreachable = "icmp and icmp[0] = 3 and icmp[1] = 3 and icmp[30:2] = 51820";
  EXPECT_EQ(underlay_capture_->read("not arp and not (" + wg + ") and not (" + join + ") and not (" +
                                    wg_unreachable + ")"),
            "")
      << "the underlay carried something else (sync must run inside the mesh)";
  // No pod or mesh address in the clear (also not in ARP: a packet from a
  // mesh address that took the underlay's default route asks for its gateway).
  std::string all = underlay_capture_->read(), clear;
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);)
    if (line.find("10.244.") != std::string::npos) clear += line + "\n";
  EXPECT_EQ(clear, "");
}

// A push of `owner`'s record at `version` (content as `receiver` stores it),
// signed by the owner, in an envelope from the owner to `receiver`: what the
// owner itself would send.
std::vector<std::uint8_t> forged_push(const ClusterNodes::Node& owner, const ClusterNodes::Node& receiver,
                                      std::uint64_t version, std::uint64_t& stored_version) {
  auto owner_key = ClusterNodes::identity(owner);
  auto receiver_key = ClusterNodes::identity(receiver);
  auto db = ClusterNodes::open_store(receiver);
  auto rows = store::RecordRepo(*db).load_all().value();
  auto row = std::find_if(rows.begin(), rows.end(), [&](const store::SignedRow& r) {
    return !r.tombstone && r.identity == owner_key.public_key().bytes();
  });
  if (row == rows.end()) throw std::runtime_error(receiver.name + " holds no record of " + owner.name);
  stored_version = row->version;
  keys::Signature sig;
  std::copy(row->signature.begin(), row->signature.end(), sig.begin());
  auto rec = cp::decode_record(row->body, sig).value();
  rec.record.version = version;
  auto signed_rec = cp::sign_record(rec.record, owner_key);
  cp::SyncMessage m;
  m.type = cp::MessageType::kPush;
  m.records.push_back({signed_rec.body, signed_rec.signature});
  return cp::seal_envelope(owner_key, receiver_key.public_key(), now_ms(), cp::encode_message(m));
}

std::uint64_t stored_version_of(const ClusterNodes::Node& owner, const ClusterNodes::Node& at) {
  auto id = ClusterNodes::identity(owner).public_key().bytes();
  auto db = ClusterNodes::open_store(at);
  for (const auto& r : store::RecordRepo(*db).load_all().value())
    if (!r.tombstone && r.identity == id) return r.version;
  return 0;
}

TEST_F(Cluster, APodLocalOrRemoteCannotTalkToTheSyncPort) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  auto& n3 = node("n3");
  const std::string mesh1 = ClusterNodes::mesh_address(n1);
  const std::string mesh3 = ClusterNodes::mesh_address(n3);
  auto& local_pod = pod_on(n1);
  auto& remote_pod = pod_on(n2);
  ASSERT_TRUE(ClusterNodes::reaches(*remote_pod.ns, mesh1)) << "the remote pod must reach n1's mesh address";

  // The strongest a pod can send: a push of n3's record, validly signed with
  // n3's own identity key, in an envelope n3 would send to n1. Only its
  // source address (a pod's, not n3's mesh address) is wrong.
  const std::uint64_t v0 = stored_version_of(n3, n1);
  ASSERT_GT(v0, 0u) << "n1 holds no record of n3";
  // Far above any version n3 signs itself (its wall clock in ms) meanwhile.
  constexpr std::uint64_t kForged = 1'000'000'000'000;
  std::uint64_t seen = 0;
  for (auto* pod : {&local_pod, &remote_pod}) {
    auto env = forged_push(n3, n1, v0 + kForged, seen);
    int sent = send_tcp(*pod->ns, "", mesh1, kSyncPort, env);
    EXPECT_TRUE(sent == kSent || sent == kConnectFailed || sent == kWriteFailed) << sent;
  }
  // The same envelope form from n3's mesh address is accepted: the forged
  // ones were refused for their source alone.
  auto control = forged_push(n3, n1, v0 + 1, seen);
  ASSERT_EQ(send_tcp(*n3.ns, mesh3, mesh1, kSyncPort, control), kSent);
  ASSERT_TRUE(eventually([&] { return stored_version_of(n3, n1) >= v0 + 1; }, 15s, 100ms))
      << "n1 did not take a valid push from n3's mesh address; the test cannot tell refusal from loss";
  EXPECT_LT(stored_version_of(n3, n1), v0 + kForged) << "n1 accepted a sync envelope sent by a pod";
  // n1 says so: its (debug) log names each pod's address as a refused source.
  for (auto* pod : {&local_pod, &remote_pod})
    EXPECT_NE(c_->log_line(n1, "refused " + pod->address), "")
        << "n1 did not log the refused sync source " << pod->address;
}

TEST_F(Cluster, EveryBadTokenIsRefusedWithItsReasonAndMeshdExits2) {
  auto& n1 = node("n1");
  Netns& client = c_->add_host({"172.31.78.150"});
  struct Case {
    std::string node, token, reason;
    std::string config_name;  // "" = the node's name
  };
  std::vector<Case> cases;
  std::string wrong_secret_id;
  cases.push_back({"bad-unknown", keys::Token::generate().reveal(), "bootstrap token refused"});
  {
    std::string real = ClusterNodes::create_token(n1, 5);
    std::string other = keys::Token::generate().reveal();
    cases.push_back({"bad-secret", real.substr(0, 7) + other.substr(7), "bootstrap token refused"});
    wrong_secret_id = real.substr(0, 6);
  }
  std::string expired = ClusterNodes::create_token(n1, 5, 1);
  cases.push_back({"bad-expired", expired, "token expired"});
  std::string revoked = ClusterNodes::create_token(n1, 5);
  ClusterNodes::revoke_token(n1, revoked.substr(0, 6));
  cases.push_back({"bad-revoked", revoked, "token revoked"});
  {
    // Used up: its one use spent by a join of the test's own.
    std::string once = ClusterNodes::create_token(n1, 1);
    auto token = keys::Token::parse(once).value();
    auto claims = claims_for("spender");
    cp::JoinNonce nonce{};
    randombytes_buf(nonce.data(), nonce.size());
    auto reply = roundtrip_from(client, n1.join_endpoint(), cp::make_join_request(token, claims, nonce));
    ASSERT_TRUE(reply) << reply.error().message;
    auto outcome = cp::open_join_reply(*reply, token, claims, nonce);
    ASSERT_TRUE(outcome && std::holds_alternative<cp::JoinAdmitted>(*outcome));
    cases.push_back({"bad-usedup", once, "token used up"});
  }
  std::string held = ClusterNodes::create_token(n1, 5);
  cases.push_back({"bad-name", held, "name held by another node", "n2"});

  // Not a token at all: meshd refuses the file before it sends anything
  // (status 1, a local error, not a member's refusal) and never repeats it.
  cases.push_back({"bad-garbage", "not a token, maybe a password", "", ""});

  // ttl 1 s: expired once a second has passed (expires_at <= now).
  std::this_thread::sleep_for(2100ms);
  for (auto& k : cases) {
    auto& n = c_->add_node(k.node, &n1);
    if (!k.config_name.empty()) {
      std::string cfg = read_file(n.config_path());
      const std::string from = "name = \"" + k.node + "\"";
      cfg.replace(cfg.find(from), from.size(), "name = \"" + k.config_name + "\"");
      write_file(n.config_path(), cfg);
    }
    c_->write_token(n, k.token);
  }
  for (auto& k : cases) c_->start(node(k.node));
  for (auto& k : cases) {
    auto& n = node(k.node);
    auto rc = c_->exit_status(n, 60s);
    if (k.reason.empty()) {
      EXPECT_EQ(rc, std::optional<int>(1)) << k.node << "\n" << c_->log_tail(n);
      EXPECT_NE(c_->log_line(n, "join token file " + n.token_file()), "") << c_->log_tail(n);
      EXPECT_EQ(c_->log(n).find("password"), std::string::npos) << "the token file's content was logged";
      continue;
    }
    EXPECT_EQ(rc, std::optional<int>(2)) << k.node << "\n" << c_->log_tail(n);
    std::string line = c_->log_line(n, "join refused by ");
    EXPECT_NE(line.find("join refused by " + n1.join_endpoint() + ": " + k.reason), std::string::npos)
        << k.node << ": " << line;
    // The secret never reaches the log.
    EXPECT_EQ(c_->log(n).find(k.token.substr(7)), std::string::npos) << k.node;
    EXPECT_EQ(c_->log(n).find("joined cluster"), std::string::npos) << k.node;
    // The member logs the refusal of that source.
    EXPECT_TRUE(eventually([&] {
      return c_->log_line(n1, "join from " + n.underlay).find("refused") != std::string::npos;
    }, 5s)) << k.node;
  }
  // A refusal costs no use: neither a wrong secret nor a held name spent one.
  auto db = ClusterNodes::open_store(n1);
  store::TokenRepo tokens(*db);
  EXPECT_EQ(tokens.get(wrong_secret_id).value()->usages_left, std::optional<std::int64_t>(5));
  EXPECT_EQ(tokens.get(held.substr(0, 6)).value()->usages_left, std::optional<std::int64_t>(5));
  // Refused nodes leave the mesh as it was.
  for (auto& k : cases) {
    auto& n = node(k.node);
    EXPECT_FALSE(ClusterNodes::settled_cidr(n).has_value()) << k.node;
  }
}

TEST_F(Cluster, AReplayedJoinRequestIsRefused) {
  auto& n1 = node("n1");
  Netns& client = c_->add_host({"172.31.78.151"});
  auto token = keys::Token::parse(ClusterNodes::create_token(n1, 5)).value();
  auto claims = claims_for("replayer");
  cp::JoinNonce nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  const auto request = cp::make_join_request(token, claims, nonce);

  auto first = roundtrip_from(client, n1.join_endpoint(), request);
  ASSERT_TRUE(first) << first.error().message;
  auto admitted = cp::open_join_reply(*first, token, claims, nonce);
  ASSERT_TRUE(admitted) << admitted.error().message;
  ASSERT_TRUE(std::holds_alternative<cp::JoinAdmitted>(*admitted)) << "the original request must be admitted";

  // The same bytes again, as someone who recorded them would send them.
  auto second = roundtrip_from(client, n1.join_endpoint(), request);
  ASSERT_TRUE(second) << second.error().message;
  auto replayed = cp::open_join_reply(*second, token, claims, nonce);
  ASSERT_TRUE(replayed) << replayed.error().message;
  ASSERT_TRUE(std::holds_alternative<cp::JoinRefused>(*replayed)) << "a replayed request was admitted";
  EXPECT_EQ(std::get<cp::JoinRefused>(*replayed).reason, std::optional(cp::JoinRefusal::kReplayed));
  // The replay spent no use: one of five was taken, by the original.
  auto db = ClusterNodes::open_store(n1);
  EXPECT_EQ(store::TokenRepo(*db).get(token.id()).value()->usages_left, std::optional<std::int64_t>(4));
}

TEST_F(Cluster, AJoinerWhoseClockIsOutsideTheWindowIsToldSoAndSpendsNoUse) {
  auto& n1 = node("n1");
  Netns& client = c_->add_host({"172.31.78.152"});
  auto token = keys::Token::parse(ClusterNodes::create_token(n1, 1)).value();
  auto claims = claims_for("late");
  claims.timestamp -= 2 * cp::kJoinWindowMs;  // this "node" runs ten minutes behind
  cp::JoinNonce nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  auto reply = roundtrip_from(client, n1.join_endpoint(), cp::make_join_request(token, claims, nonce));
  ASSERT_TRUE(reply) << reply.error().message;
  auto outcome = cp::open_join_reply(*reply, token, claims, nonce);
  ASSERT_TRUE(outcome) << outcome.error().message;
  ASSERT_TRUE(std::holds_alternative<cp::JoinRefused>(*outcome));
  const auto& refused = std::get<cp::JoinRefused>(*outcome);
  EXPECT_EQ(refused.reason, std::optional(cp::JoinRefusal::kClockSkew));
  // The member's time comes back, so the joiner can say by how much it is off.
  EXPECT_GT(refused.member_time, claims.timestamp + cp::kJoinWindowMs);
  auto db = ClusterNodes::open_store(n1);
  EXPECT_EQ(store::TokenRepo(*db).get(token.id()).value()->usages_left, std::optional<std::int64_t>(1));
}

// Keeps connections to address:port open from every address of `ns` until
// killed: half stalled after a partial header, half sending garbage (and
// reconnecting whenever the member closes them).
pid_t start_flood(const Netns& ns, const std::vector<std::string>& sources, const std::string& address,
                  std::uint16_t port) {
  int fd = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
  pid_t pid = ::fork();
  if (pid != 0) {
    ::close(fd);
    return pid;
  }
  ::alarm(120);
  if (::setns(fd, CLONE_NEWNET) != 0) ::_exit(100);
  constexpr int kPerSource = 20;
  std::vector<int> socks(sources.size() * kPerSource, -1);
  std::vector<std::uint8_t> junk(4096);
  randombytes_buf(junk.data(), junk.size());
  for (;;) {
    for (std::size_t i = 0; i < socks.size(); ++i) {
      if (socks[i] < 0) {
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_in src{}, dst{};
        src.sin_family = dst.sin_family = AF_INET;
        ::inet_pton(AF_INET, sources[i / kPerSource].c_str(), &src.sin_addr);
        ::inet_pton(AF_INET, address.c_str(), &dst.sin_addr);
        dst.sin_port = htons(port);
        ::bind(s, reinterpret_cast<sockaddr*>(&src), sizeof src);
        ::connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
        socks[i] = s;
        continue;
      }
      ssize_t w;
      if (i % 2 == 0)
        w = ::send(socks[i], "MJRQ\0", 5, MSG_NOSIGNAL);  // a header begun, never finished
      else
        w = ::send(socks[i], junk.data(), junk.size(), MSG_NOSIGNAL);
      char b[512];
      ssize_t r = ::recv(socks[i], b, sizeof b, MSG_DONTWAIT);
      if ((w < 0 && errno != EAGAIN && errno != ENOTCONN) || r == 0 ||
          (r < 0 && errno != EAGAIN && errno != ENOTCONN)) {
        ::close(socks[i]);
        socks[i] = -1;
      }
    }
    ::usleep(20000);
  }
}

TEST_F(Cluster, AValidNodeJoinsThroughAFloodOfGarbageAndStalledConnections) {
  auto& n1 = node("n1");
  std::vector<std::string> sources;
  for (int i = 200; i < 205; ++i) sources.push_back(ClusterNodes::underlay_address(i));
  Netns& attacker = c_->add_host(sources);
  pid_t flood = start_flood(attacker, sources, n1.underlay, kJoinPort);
  // The flood holds connections before the joiner starts.
  EXPECT_TRUE(eventually([&] {
    return std::atoi(attacker.out("sh -c 'ss -Htn state established | wc -l'").c_str()) >= 20;
  }, 10s, 100ms)) << attacker.out("ss -tn");

  auto& n4 = c_->add_node("n4", &n1);
  give_token(n4, n1);
  c_->start(n4);
  bool ok = c_->wait_log(n4, "joined cluster", 60s);
  ::kill(flood, SIGKILL);
  wait_exit(flood);
  ASSERT_TRUE(ok) << "n4 did not join during the flood:\n" << c_->log_tail(n4);
  EXPECT_TRUE(c_->wait_settled(n4));
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(n4).ns, pod_on(n1).address));
}

TEST_F(Cluster, FiveSimultaneousJoinsThroughThreeMembersGetDisjointCidrs) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  auto& n3 = node("n3");
  std::vector<ClusterNodes::Node*> through = {&n1, &n2, &n3, &n1, &n2};
  std::vector<ClusterNodes::Node*> joiners;
  for (int i = 0; i < 5; ++i) {
    auto& j = c_->add_node("j" + std::to_string(i + 1), through[i]);
    give_token(j, *through[i]);
    joiners.push_back(&j);
  }
  for (auto* j : joiners) c_->start(*j);
  std::vector<std::string> admitted_cidr;
  for (std::size_t i = 0; i < joiners.size(); ++i) {
    auto& j = *joiners[i];
    ASSERT_TRUE(c_->wait_log(j, "joined cluster", 60s)) << j.name << ":\n" << c_->log_tail(j);
    auto line = joined(c_->log_line(j, "joined cluster"));
    ASSERT_TRUE(line);
    EXPECT_EQ(line->target, through[i]->join_endpoint());
    admitted_cidr.push_back(line->cidr);
  }

  // Every live node's settled CIDR; none overlaps another.
  std::vector<ClusterNodes::Node*> live;
  for (auto& n : c_->nodes())
    if (n.pid > 0) live.push_back(&n);
  std::map<std::string, IpPrefix> cidrs;
  for (auto* n : live) {
    ASSERT_TRUE(c_->wait_settled(*n, 60s)) << n->name << ":\n" << c_->log_tail(*n);
    cidrs.emplace(n->name, *ClusterNodes::settled_cidr(*n));
  }
  for (auto& [a, pa] : cidrs)
    for (auto& [b, pb] : cidrs)
      if (a < b)
        EXPECT_FALSE(pa.contains(pb.address) || pb.contains(pa.address))
            << a << " " << pa.to_string() << " overlaps " << b << " " << pb.to_string();
  // A joiner that settled on another CIDR than its join gave it lost that
  // claim and was re-admitted by the member it joined through, with the
  // CIDR it settled on last.
  int readmitted = 0;
  for (std::size_t i = 0; i < joiners.size(); ++i) {
    auto& j = *joiners[i];
    const std::string settled = cidrs.at(j.name).to_string();
    if (settled == admitted_cidr[i]) continue;
    ++readmitted;
    std::string log = c_->log(j);
    std::string want = "re-admitted by " + through[i]->join_endpoint() + ": pod CIDR " + settled;
    auto last = log.rfind("re-admitted by ");
    ASSERT_NE(last, std::string::npos) << j.name << " moved from " << admitted_cidr[i] << " to "
                                       << settled << " without a re-admission:\n" << c_->log_tail(j);
    EXPECT_EQ(log.compare(last, want.size(), want), 0) << j.name << ": " << log.substr(last, 120);
  }
  std::printf("%d of %zu joiners were re-admitted with another pod CIDR\n", readmitted, joiners.size());
  expect_all_pods_reach(live);
}

std::string wg_public_key(const ClusterNodes::Node& n) {
  auto db = ClusterNodes::open_store(n);
  auto key = store::LocalNodeRepo(*db).wg_private_key().value();
  return key ? key->public_key().to_base64() : "";
}

TEST_F(Cluster, ANodeKilledOrStoppedAndRestartedKeepsItsCidrKeysAndMesh) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  auto& n3 = node("n3");
  pod_on(n1);
  pod_on(n2);
  pod_on(n3);
  for (auto [n, sig] : {std::pair{&n2, SIGKILL}, std::pair{&n3, SIGTERM}}) {
    auto cidr = ClusterNodes::settled_cidr(*n);
    ASSERT_TRUE(cidr);
    std::string wg_before = wg_public_key(*n);
    std::string identity_before = ClusterNodes::identity(*n).public_key().to_base64();
    int rc = c_->stop(*n, sig);
    if (sig == SIGTERM) EXPECT_EQ(rc, 0) << n->name << " did not stop cleanly:\n" << c_->log_tail(*n, 10);
    c_->start(*n);
    ASSERT_TRUE(c_->wait_log(*n, "member of cluster")) << c_->log_tail(*n);
    std::string run = c_->log_of_this_run(*n);
    EXPECT_EQ(run.find("joined cluster"), std::string::npos) << run;
    EXPECT_EQ(run.find("joining the cluster"), std::string::npos) << run;
    EXPECT_EQ(run.find("founded cluster"), std::string::npos) << run;
    EXPECT_TRUE(c_->wait_settled(*n));
    EXPECT_EQ(ClusterNodes::settled_cidr(*n), cidr);
    EXPECT_EQ(ClusterNodes::identity(*n).public_key().to_base64(), identity_before);
    EXPECT_EQ(wg_public_key(*n), wg_before);
  }
  expect_all_pods_reach({&n1, &n2, &n3});
}

// `at`'s view of `owner` through its API: (record version, first endpoint).
std::optional<std::pair<std::uint64_t, std::string>> node_seen(const ClusterNodes::Node& at,
                                                               const ClusterNodes::Node& owner) {
  std::string body = api_get(at.dir + "/run/meshd.sock", "/v1/nodes/" + owner.name);
  if (body.empty()) return std::nullopt;
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  const auto& eps = o.at("endpoints").as_array();
  return std::pair{static_cast<std::uint64_t>(o.at("version").to_number<double>()),
                   eps.empty() ? std::string() : std::string(eps.at(0).as_string())};
}

// A node restored from a backup older than the record its peers hold: it
// takes up their newer copy of its own record and signs a version above it
// with what it is now, instead of being refused as stale for ever.
TEST_F(Cluster, ANodeRestoredFromAnOlderBackupTakesUpItsNewestRecordAndCarriesOn) {
  auto& n1 = node("n1");
  auto& n2 = node("n2");
  auto& n3 = node("n3");
  pod_on(n1);
  pod_on(n3);
  const std::string port = ":" + std::to_string(kWireGuardPort);
  const std::string moved = ":" + std::to_string(kWireGuardPort + 10);
  ASSERT_EQ(c_->stop(n3), 0) << c_->log_tail(n3, 10);
  const std::string backup = n3.dir + "/backup.db";
  std::filesystem::copy_file(n3.db_path(), backup, std::filesystem::copy_options::overwrite_existing);
  ASSERT_FALSE(std::filesystem::exists(n3.db_path() + "-wal")) << "a clean stop leaves no WAL";

  // Later, n3 moves to another WireGuard port: a new version of its record.
  const std::string config = read_file(n3.config_path());
  const std::string listen = "listen_port = " + std::to_string(kWireGuardPort);
  ASSERT_NE(config.find(listen), std::string::npos);
  std::string other = config;
  other.replace(other.find(listen), listen.size(), "listen_port = " + std::to_string(kWireGuardPort + 10));
  write_file(n3.config_path(), other);
  c_->start(n3);
  std::uint64_t newer = 0;
  ASSERT_TRUE(eventually([&] {
    auto a = node_seen(n1, n3), b = node_seen(n2, n3);
    if (!a || !b || a->second.find(moved) == std::string::npos || a->first != b->first) return false;
    newer = a->first;
    return true;
  }, 15s)) << c_->log_tail(n3);

  // Then it is restored from the backup, with the configuration of then.
  ASSERT_EQ(c_->stop(n3), 0);
  std::filesystem::copy_file(backup, n3.db_path(), std::filesystem::copy_options::overwrite_existing);
  ::chmod(n3.db_path().c_str(), 0600);
  write_file(n3.config_path(), config);
  c_->start(n3);
  ASSERT_TRUE(c_->wait_log(n3, "member of cluster")) << c_->log_tail(n3);
  // Its record there is older than the one n1 and n2 hold; it learns theirs,
  // and publishes one above it with the endpoint it has again.
  EXPECT_TRUE(eventually([&] {
    for (auto* at : {&n1, &n2, &n3}) {
      auto seen = node_seen(*at, n3);
      if (!seen || seen->first <= newer || seen->second.find(port) == std::string::npos) return false;
    }
    return true;
  }, 15s)) << "n1 sees " << (node_seen(n1, n3) ? node_seen(n1, n3)->second : "nothing") << "\n"
           << c_->log_tail(n3);
  EXPECT_NE(c_->log_of_this_run(n3).find("published version"), std::string::npos) << c_->log_tail(n3);
  EXPECT_TRUE(c_->wait_settled(n3));
  expect_all_pods_reach({&n1, &n3});
}

}  // namespace
}  // namespace meshd::testing
