// The cluster's lifecycle with real meshd processes (userspace backend) in
// network namespaces on a bridge underlay (issue 12): a node removed by an
// operator, a node restarted while another changed its record, a partition
// and its heal, a key rotation under a 100/s pod-to-pod ping, and a silent
// node pruned. Every assertion reads what the other nodes' data planes hold
// (their WireGuard devices over UAPI, their route tables) or what their APIs
// answer, not what the acting node says it did.
//
// One cluster for the whole suite (SetUpTestSuite), as in cluster_test.cpp:
// a founder and three joiners, a pod on each, liveness and rotation timings
// short enough for a test (silent after 3 s; a rotation announced 1.5 s
// ahead, peers switching at the latest 1 s after). The tests run in the
// order written and build on each other: the removal replaces node "nd" by a
// new node of the same name, and pruning, which removes a node for good, is
// last.
#include "keys/identity.h"
#include "keys/wg_key.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/sync_channel.h"
#include "meshd/controlplane/sync_message.h"
#include "store/local_node.h"
#include "store/records.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/mesh_probe.h"
#include "tests/support/prerequisite.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace meshd::testing {
namespace {

namespace cp = meshd::controlplane;
namespace json = boost::json;

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The timings every node runs with (the contract of issue 12's tests).
const std::string kLifecycleConfig =
    "[liveness]\nsilent_after_s = 3\n"
    "[rotation]\nlead_ms = 1500\ngrace_ms = 1000\n";
constexpr int kGraceMs = 1000;

// --- the nodes' APIs ----------------------------------------------------------

std::optional<json::value> get_json(const ClusterNodes::Node& at, const std::string& target) {
  std::string body = api_get(at.api_socket(), target);
  if (body.empty()) return std::nullopt;
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v;
}

std::string text(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}
bool flag(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_bool() && v->as_bool();
}

// A node entry's removal (GET /v1/nodes): "removed" is an object {by, at_ms,
// reason, released} on a tombstone and absent on a live node.
bool removed(const json::object& e) {
  auto* v = e.if_contains("removed");
  return v && (v->is_object() || (v->is_bool() && v->as_bool()));
}
const json::object* removal(const json::object& e) {
  auto* v = e.if_contains("removed");
  return v && v->is_object() ? &v->as_object() : nullptr;
}
std::string removal_reason(const json::object& e) {
  auto* r = removal(e);
  return r ? text(*r, "reason") : text(e, "removal_reason");
}
bool released(const json::object& e) {
  auto* r = removal(e);
  return r ? flag(*r, "released") : flag(e, "released");
}

// The entries of `at`'s GET /v1/nodes named `name` (a removed node and a new
// node of the same name may both be listed).
std::vector<json::object> entries_named(const ClusterNodes::Node& at, const std::string& name) {
  std::vector<json::object> out;
  auto v = get_json(at, "/v1/nodes");
  if (!v || !v->as_object().contains("nodes")) return out;
  for (const auto& e : v->as_object().at("nodes").as_array())
    if (e.is_object() && text(e.as_object(), "name") == name) out.push_back(e.as_object());
  return out;
}
// `at`'s entry for the node of this identity (base64), removed or not.
std::optional<json::object> entry_of(const ClusterNodes::Node& at, const std::string& identity) {
  auto v = get_json(at, "/v1/nodes");
  if (!v || !v->as_object().contains("nodes")) return std::nullopt;
  for (const auto& e : v->as_object().at("nodes").as_array())
    if (e.is_object() && text(e.as_object(), "identity") == identity) return e.as_object();
  return std::nullopt;
}
// The liveness `at` reports for the live (not removed) node named `name`.
std::string liveness(const ClusterNodes::Node& at, const std::string& name) {
  for (const auto& e : entries_named(at, name))
    if (!removed(e)) return text(e, "liveness");
  return "";
}

std::optional<json::object> status(const ClusterNodes::Node& n) {
  auto v = get_json(n, "/v1/status");
  if (!v) return std::nullopt;
  return v->as_object();
}
std::string table_hash(const ClusterNodes::Node& n) {
  auto s = status(n);
  if (!s || !s->contains("cluster") || !s->at("cluster").is_object()) return "";
  return text(s->at("cluster").as_object(), "table_hash");
}
// The node's status says it was removed from the cluster.
bool status_removed(const ClusterNodes::Node& n) {
  auto s = status(n);
  if (!s) return false;
  auto says = [](const json::value* v) {
    return v && ((v->is_bool() && v->as_bool()) || v->is_object());
  };
  if (says(s->if_contains("removed")) || says(s->if_contains("removal"))) return true;
  auto* c = s->if_contains("cluster");
  return c && c->is_object() && (says(c->as_object().if_contains("removed")) ||
                                 says(c->as_object().if_contains("removal")));
}

// The node's WireGuard public key (base64) as its store holds it.
std::string wg_public_key(const ClusterNodes::Node& n) {
  auto db = ClusterNodes::open_store(n);
  auto key = store::LocalNodeRepo(*db).wg_private_key().value();
  return key ? key->public_key().to_base64() : "";
}
std::string identity_of(const ClusterNodes::Node& n) { return ClusterNodes::identity(n).public_key().to_base64(); }

double metric(const ClusterNodes::Node& at, const std::string& series) {
  return api_metric(at.api_socket(), series);
}
const std::string kRejectedRemoved = "meshd_records_rejected_total{reason=\"removed_identity\"}";
const std::string kSyncIn = "meshd_sync_messages_total{direction=\"in\"}";

struct Rotation {
  std::string previous_public_key, public_key;
  std::uint64_t switch_at_ms = 0;
};
// POST /v1/key/rotate on `n`: 202 and the announced switch, or a failure.
::testing::AssertionResult rotate(const ClusterNodes::Node& n, Rotation& out) {
  auto a = api_request(n.api_socket(), "POST", "/v1/key/rotate");
  if (a.status != 202) return ::testing::AssertionFailure() << "POST /v1/key/rotate: " << a.status << " " << a.body;
  boost::system::error_code ec;
  auto v = json::parse(a.body, ec);
  if (ec || !v.is_object()) return ::testing::AssertionFailure() << "not JSON: " << a.body;
  const auto& o = v.as_object();
  out.previous_public_key = text(o, "previous_public_key");
  out.public_key = text(o, "public_key");
  if (auto* s = o.if_contains("switch_at_ms"); s && s->is_number()) out.switch_at_ms = s->to_number<std::uint64_t>();
  if (out.public_key.empty() || out.switch_at_ms == 0)
    return ::testing::AssertionFailure() << "no public_key or switch_at_ms in " << a.body;
  return ::testing::AssertionSuccess();
}
// No rotation of `n` is pending in its own table (a new one may start).
bool rotation_done(const ClusterNodes::Node& n) {
  for (const auto& e : entries_named(n, n.name))
    if (flag(e, "self")) {
      auto* p = e.if_contains("pending_public_key");
      return !p || p->is_null();
    }
  return false;
}

// --- the data planes -----------------------------------------------------------

// A peer with `key` on the device of `n` (whose allowed IPs hold `cidr` when
// given). Nothing when the device does not answer.
std::optional<bool> device_has(const ClusterNodes& c, const ClusterNodes::Node& n, const std::string& key,
                               const std::string& cidr = "") {
  auto peers = wg_peers(c.uapi_socket(n));
  if (!peers) return std::nullopt;
  auto p = find_peer(*peers, key);
  if (!p) return false;
  return cidr.empty() || std::find(p->allowed_ips.begin(), p->allowed_ips.end(), cidr) != p->allowed_ips.end();
}

// A push of one signed record (body and signature as stored), in an envelope
// from the member `sender` to `receiver`: what a member forwarding a record
// sends over the sync channel.
std::vector<std::uint8_t> push_envelope(const ClusterNodes::Node& sender, const ClusterNodes::Node& receiver,
                                        const std::vector<std::uint8_t>& body, const keys::Signature& sig) {
  cp::SyncMessage m;
  m.type = cp::MessageType::kPush;
  m.records.push_back({body, sig});
  return cp::seal_envelope(ClusterNodes::identity(sender), ClusterNodes::identity(receiver).public_key(),
                           now_ms(), cp::encode_message(m));
}

class Lifecycle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!is_root()) return;
    try {
      c_ = new ClusterNodes();
      auto& na = c_->add_node("na");
      na.extra_config = kLifecycleConfig;
      c_->write_config(na);
      c_->start(na);
      if (!c_->wait_settled(na)) throw std::runtime_error("na did not found a cluster:\n" + c_->log_tail(na));
      for (const char* name : {"nb", "nc", "nd"}) {
        auto& n = c_->add_node(name, &na);
        n.extra_config = kLifecycleConfig;
        c_->write_config(n);
        c_->write_token(n, ClusterNodes::create_token(na));
        c_->start(n);
        if (!c_->wait_log(n, "joined cluster", 60s))
          throw std::runtime_error(std::string(name) + " did not join:\n" + c_->log_tail(n));
        if (!c_->wait_settled(n))
          throw std::runtime_error(std::string(name) + " did not settle:\n" + c_->log_tail(n));
        members_.push_back(&n);
      }
      members_.insert(members_.begin(), &na);
      for (auto* n : members_) c_->add_pod(*n);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete c_;
    c_ = nullptr;
    members_.clear();
  }
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
    MESHD_REQUIRE(sh("command -v wireguard-go >/dev/null") == 0, "wireguard-go (the userspace backend)");
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static ClusterNodes::Node& node(const std::string& name) { return c_->node(name); }
  // The live member that carries the name "nd" (the removal replaces it).
  static ClusterNodes::Node& member_d() { return *members_.back(); }
  static ClusterNodes::Pod& pod_on(ClusterNodes::Node& n) {
    return n.pods.empty() ? c_->add_pod(n) : n.pods.front();
  }
  static void expect_pods_reach(const std::vector<ClusterNodes::Node*>& nodes) {
    bool failed = false;
    for (auto* a : nodes)
      for (auto* b : nodes) {
        if (a == b) continue;
        bool ok = ClusterNodes::reaches(*pod_on(*a).ns, pod_on(*b).address, failed ? 2s : 15s);
        failed = failed || !ok;
        EXPECT_TRUE(ok) << "pod on " << a->name << " cannot reach pod " << pod_on(*b).address << " on "
                        << b->name;
      }
  }
  // Every live member but `except` has (or, want = false, has not) a peer
  // with `key`; `cidr`: and that peer's allowed IPs hold it.
  static bool on_devices(const std::string& key, bool want, const ClusterNodes::Node* except,
                         const std::string& cidr = "") {
    for (auto* n : members_) {
      if (n == except) continue;
      auto has = device_has(*c_, *n, key, cidr);
      if (!has || *has != want) return false;
    }
    return true;
  }
  // For failure messages: which live member's device holds `key`.
  static std::string holders(const std::string& key) {
    std::string out;
    for (auto* n : members_) {
      auto has = device_has(*c_, *n, key);
      out += n->name + (!has ? ": no device; " : *has ? ": has it; " : ": has not; ");
    }
    return out;
  }
  static bool hashes_agree() {
    std::string first = table_hash(*members_.front());
    if (first.empty()) return false;
    for (auto* n : members_)
      if (table_hash(*n) != first) return false;
    return true;
  }
  static std::string hashes() {
    std::string out;
    for (auto* n : members_) out += n->name + "=" + table_hash(*n) + " ";
    return out;
  }

  static ClusterNodes* c_;
  static std::vector<ClusterNodes::Node*> members_;  // live members: na, nb, nc, then "nd"
  static std::string setup_error_;
};
ClusterNodes* Lifecycle::c_ = nullptr;
std::vector<ClusterNodes::Node*> Lifecycle::members_;
std::string Lifecycle::setup_error_;

TEST_F(Lifecycle, ARemovedNodeLeavesEveryDeviceAndRouteAndItsIdentityNeverComesBack) {
  auto& na = node("na");
  auto& nb = node("nb");
  auto& nd = node("nd");
  ASSERT_EQ(&member_d(), &nd) << "the removal runs once, on the first node named nd";
  const std::string d_key = wg_public_key(nd);
  const std::string d_identity = identity_of(nd);
  const auto d_cidr_prefix = ClusterNodes::settled_cidr(nd);
  ASSERT_TRUE(d_cidr_prefix);
  const std::string d_cidr = d_cidr_prefix->to_string();
  // Before: every other member routes D's CIDR to D's key.
  ASSERT_TRUE(eventually([&] { return on_devices(d_key, true, &nd, d_cidr); }, 15s)) << holders(d_key);
  for (auto* n : members_) {
    if (n != &nd) {
      ASSERT_TRUE(has_route(*n->ns, d_cidr)) << n->name << " has no route to " << d_cidr;
    }
  }
  // D's own signed record as A holds it, replayed below.
  store::SignedRow d_row;
  {
    auto db = ClusterNodes::open_store(na);
    auto id = ClusterNodes::identity(nd).public_key().bytes();
    bool found = false;
    for (auto& r : store::RecordRepo(*db).load_all().value())
      if (!r.tombstone && r.identity == id) {
        d_row = r;
        found = true;
      }
    ASSERT_TRUE(found) << "na holds no record of nd";
  }

  auto a = api_request(na.api_socket(), "DELETE", "/v1/nodes/nd");
  const auto answered = std::chrono::steady_clock::now();
  ASSERT_EQ(a.status, 200) << a.body;
  {
    auto v = json::parse(a.body).as_object();
    ASSERT_TRUE(v.contains("removed") && v.at("removed").is_object()) << a.body;
    const auto& r = v.at("removed").as_object();
    EXPECT_EQ(text(r, "name"), "nd");
    EXPECT_EQ(text(r, "identity"), d_identity);
    EXPECT_EQ(text(r, "pod_cidr"), d_cidr);
    EXPECT_TRUE(r.contains("removed_at_ms")) << a.body;
  }
  // Within 2 s (the bound) D's key is on no other device and its
  // CIDR in no other route table.
  auto gone_everywhere = [&] {
    if (!on_devices(d_key, false, &nd)) return false;
    for (auto* n : members_)
      if (n != &nd && has_route(*n->ns, d_cidr)) return false;
    return true;
  };
  bool gone = eventually(gone_everywhere, 2s, 10ms);
  std::printf("removal: D's key and route left every other node %.0f ms after the DELETE answer\n",
              ms_since(answered));
  EXPECT_TRUE(gone) << holders(d_key);
  for (auto* n : members_) {
    if (n != &nd) {
      EXPECT_FALSE(has_route(*n->ns, d_cidr)) << n->name << " still routes " << d_cidr;
    }
  }

  // D learns it, says so, and tears its mesh down, while its API stays.
  EXPECT_TRUE(c_->wait_log(nd, "was removed from the cluster", 10s)) << c_->log_tail(nd);
  EXPECT_TRUE(eventually([&] { return nd.ns->run("ip link show dev " + c_->interface() + " >/dev/null 2>&1") != 0; },
                         10s))
      << "nd's WireGuard device is still there";
  EXPECT_TRUE(eventually([&] { return sh("test -e " + nd.conflist()) != 0; }, 10s)) << "nd's conflist stays";
  EXPECT_TRUE(eventually([&] { return status_removed(nd); }, 5s)) << api_get(nd.api_socket(), "/v1/status");
  for (auto* n : members_)
    if (n != &nd) {
      auto cidr = ClusterNodes::settled_cidr(*n);
      if (cidr) {
        EXPECT_FALSE(has_route(*nd.ns, cidr->to_string())) << "nd still routes " << n->name << "'s CIDR";
      }
    }
  // Restarted, it stays removed: no device, no conflist.
  ASSERT_EQ(c_->stop(nd), 0) << c_->log_tail(nd, 10);
  c_->start(nd);
  EXPECT_TRUE(eventually([&] { return status_removed(nd); }, 15s))
      << api_get(nd.api_socket(), "/v1/status") << "\n" << c_->log_tail(nd);
  EXPECT_NE(nd.ns->run("ip link show dev " + c_->interface() + " >/dev/null 2>&1"), 0)
      << "the removed node brought its device up again after a restart";
  EXPECT_NE(sh("test -e " + nd.conflist()), 0) << "the removed node wrote its conflist again";
  EXPECT_EQ(c_->log_of_this_run(nd).find("joined cluster"), std::string::npos);
  members_.pop_back();

  // Its record, replayed over the sync channel by a member (B, from its mesh
  // address, in an envelope B signed to A), arrives and is refused.
  const std::string mesh_a = ClusterNodes::mesh_address(na), mesh_b = ClusterNodes::mesh_address(nb);
  double rejected0 = metric(na, kRejectedRemoved), in0 = metric(na, kSyncIn);
  keys::Signature sig;
  std::copy(d_row.signature.begin(), d_row.signature.end(), sig.begin());
  ASSERT_EQ(send_tcp(*nb.ns, mesh_b, mesh_a, kSyncPort, push_envelope(nb, na, d_row.body, sig)), kSent);
  EXPECT_TRUE(eventually([&] { return metric(na, kRejectedRemoved) > rejected0; }, 10s))
      << "na did not count the replayed record of nd as removed_identity (sync messages in: " << in0 << " -> "
      << metric(na, kSyncIn) << ")";
  // A newer record signed by D itself (its key from its store): refused too.
  double rejected1 = metric(na, kRejectedRemoved);
  {
    auto rec = cp::decode_record(d_row.body, sig).value();
    rec.record.version = now_ms() + 1000;
    auto later = cp::sign_record(rec.record, ClusterNodes::identity(nd));
    ASSERT_EQ(send_tcp(*nb.ns, mesh_b, mesh_a, kSyncPort, push_envelope(nb, na, later.body, later.signature)),
              kSent);
  }
  EXPECT_TRUE(eventually([&] { return metric(na, kRejectedRemoved) > rejected1; }, 10s))
      << "na did not count a later record of nd as removed_identity";
  EXPECT_FALSE(device_has(*c_, na, d_key).value_or(true)) << "the replay put nd back on na's device";
  auto at_a = entry_of(na, d_identity);
  ASSERT_TRUE(at_a) << "na lists nothing for nd's identity";
  EXPECT_TRUE(removed(*at_a)) << json::serialize(*at_a);
  EXPECT_EQ(text(*at_a, "liveness"), "removed") << json::serialize(*at_a);

  // A join with D's identity (a fresh store holding only its identity key,
  // a new valid token) is refused: status 2, "removed".
  auto& old = c_->add_node("nd-old", &na);
  {
    auto db = ClusterNodes::open_store(old, false);
    ASSERT_TRUE(store::LocalNodeRepo(*db).set_identity_key(ClusterNodes::identity(nd)));
  }
  ::chmod(old.db_path().c_str(), 0600);
  c_->write_token(old, ClusterNodes::create_token(na));
  c_->start(old);
  EXPECT_EQ(c_->exit_status(old, 60s), std::optional<int>(2)) << c_->log_tail(old);
  std::string refused = c_->log_line(old, "join refused by ");
  EXPECT_NE(refused.find("removed"), std::string::npos) << c_->log_tail(old);
  EXPECT_EQ(c_->log(old).find("joined cluster"), std::string::npos);

  // The tombstone is released once A knows every live member holds it; a
  // node admitted after that may get D's CIDR again: A admits the lowest
  // free prefix, and D's is the only one below the others' that is free.
  EXPECT_TRUE(eventually([&] {
    auto e = entry_of(na, d_identity);
    return e && released(*e);
  }, 30s)) << "na never reported nd's tombstone released: "
           << (entry_of(na, d_identity) ? json::serialize(*entry_of(na, d_identity)) : "no entry");
  // The same host back under the same name, with a new token and identity.
  auto& fresh = c_->add_node("nd2", &na);
  fresh.extra_config = kLifecycleConfig;
  c_->write_config(fresh);
  {
    std::string cfg = read_file(fresh.config_path());
    const std::string from = "name = \"nd2\"";
    cfg.replace(cfg.find(from), from.size(), "name = \"nd\"");
    write_file(fresh.config_path(), cfg);
  }
  c_->write_token(fresh, ClusterNodes::create_token(na));
  c_->start(fresh);
  ASSERT_TRUE(c_->wait_log(fresh, "joined cluster", 60s)) << c_->log_tail(fresh);
  ASSERT_TRUE(c_->wait_settled(fresh)) << c_->log_tail(fresh);
  EXPECT_NE(identity_of(fresh), d_identity);
  EXPECT_EQ(ClusterNodes::settled_cidr(fresh)->to_string(), d_cidr)
      << "admitted after the release, the new nd should get the lowest free CIDR, D's old one";
  members_.push_back(&fresh);
  c_->add_pod(fresh);
  expect_pods_reach(members_);
}

TEST_F(Lifecycle, ANodeKilledWhileAnotherRotatesCatchesUpFromTheStoreWithoutJoining) {
  auto& nb = node("nb");
  auto& nc = node("nc");
  ASSERT_TRUE(eventually([&] { return rotation_done(nb); }, 10s));
  const auto b_cidr = ClusterNodes::settled_cidr(nb)->to_string();
  const std::string b_old = wg_public_key(nb);
  ASSERT_EQ(c_->stop(nc, SIGKILL), 128 + SIGKILL);

  Rotation r;
  ASSERT_TRUE(rotate(nb, r));
  EXPECT_EQ(r.previous_public_key, b_old);
  EXPECT_NE(r.public_key, b_old);
  // B has switched, and the members that are up route B's CIDR to the new key.
  ASSERT_TRUE(eventually([&] { return wg_public_key(nb) == r.public_key; }, 15s)) << c_->log_tail(nb);
  ASSERT_TRUE(eventually([&] {
    for (auto* n : members_)
      if (n != &nb && n != &nc && !device_has(*c_, *n, r.public_key, b_cidr).value_or(false)) return false;
    return true;
  }, 15s)) << holders(r.public_key);
  // C, down all along, still has B's old key.
  EXPECT_TRUE(device_has(*c_, nc, r.previous_public_key).value_or(false)) << holders(r.previous_public_key);

  c_->start(nc);
  ASSERT_TRUE(c_->wait_log(nc, "(from the store)", 30s)) << c_->log_tail(nc);
  const auto up = std::chrono::steady_clock::now();
  std::string run = c_->log_of_this_run(nc);
  EXPECT_EQ(run.find("joined cluster"), std::string::npos) << run;
  EXPECT_EQ(run.find("joining the cluster"), std::string::npos) << run;
  bool caught_up = eventually([&] {
    auto peers = wg_peers(c_->uapi_socket(nc));
    if (!peers) return false;
    auto p = find_peer(*peers, r.public_key);
    return p && std::find(p->allowed_ips.begin(), p->allowed_ips.end(), b_cidr) != p->allowed_ips.end() &&
           !find_peer(*peers, r.previous_public_key);
  }, 5s, 20ms);
  std::printf("restart: nc's device held B's new key %.0f ms after the test saw \"(from the store)\" in its log\n",
              ms_since(up));
  EXPECT_TRUE(caught_up) << holders(r.public_key) << "\n" << c_->log_tail(nc);
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(nc).ns, pod_on(nb).address));
  EXPECT_TRUE(ClusterNodes::reaches(*pod_on(nb).ns, pod_on(nc).address));
}

TEST_F(Lifecycle, APartitionedNodeIsSilentTheOthersKeepTalkingAndEveryoneAgreesAfterTheHeal) {
  auto& na = node("na");
  auto& nb = node("nb");
  auto& nc = node("nc");
  auto& pa = pod_on(na);
  auto& pb = pod_on(nb);
  ASSERT_TRUE(eventually([&] { return rotation_done(nb); }, 10s));
  ASSERT_TRUE(eventually(hashes_agree, 15s)) << "the members disagree before the partition: " << hashes();
  ASSERT_TRUE(ClusterNodes::reaches(*pa.ns, pb.address));
  EXPECT_EQ(liveness(na, "nc"), "alive");

  // 5/s both ways for the whole partition and a bit after.
  PingRun ab(*pa.ns, pb.address, 65, 0.2);
  PingRun ba(*pb.ns, pa.address, 65, 0.2);
  std::this_thread::sleep_for(500ms);  // the pings are under way before the cut
  c_->partition(nc);
  const auto cut = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return liveness(na, "nc") == "silent"; }, 8s))
      << "na reports nc " << liveness(na, "nc") << " while it is cut off";
  // B rotates its key while C cannot hear it.
  Rotation r;
  EXPECT_TRUE(rotate(nb, r));
  EXPECT_TRUE(eventually([&] { return wg_public_key(nb) == r.public_key; }, 8s)) << c_->log_tail(nb);
  std::this_thread::sleep_until(cut + 10s);  // the partition lasts 10 s
  c_->heal(nc);
  const auto healed = std::chrono::steady_clock::now();
  bool agree = eventually(hashes_agree, 5s, 20ms);
  std::printf("partition: every member's table hash agreed %.0f ms after the heal\n", ms_since(healed));
  EXPECT_TRUE(agree) << hashes();
  auto sab = ab.wait(), sba = ba.wait();
  std::printf("partition: na->nb lost %d of %d (largest gap %.0f ms), nb->na lost %d of %d (%.0f ms)\n",
              sab.lost(), sab.sent, sab.max_gap_ms, sba.lost(), sba.sent, sba.max_gap_ms);
  // The partition costs A and B nothing. B's rotation may cost the one
  // probe that falls into its gap (the next test bounds that gap at 100 ms,
  // less than the 200 ms between these probes): only a probe sent between
  // just before the switch and the end of the grace is forgiven, and one at
  // most each way.
  for (auto* s : {&sab, &sba}) {
    int in_rotation = 0;
    for (long seq : s->lost_seqs) {
      double at_ms = s->sent_at(seq, 0.2) * 1000;
      bool forgiven = at_ms >= static_cast<double>(r.switch_at_ms) - 300 &&
                      at_ms <= static_cast<double>(r.switch_at_ms + kGraceMs) + 300;
      std::printf("partition: probe %ld lost, sent %+.0f ms from B's switch%s\n", seq,
                  at_ms - static_cast<double>(r.switch_at_ms), forgiven ? " (in the rotation)" : "");
      EXPECT_TRUE(forgiven) << "probe " << seq << " lost outside B's rotation:\n" << s->output;
      in_rotation += forgiven;
    }
    EXPECT_LE(in_rotation, 1) << s->output;
  }
  EXPECT_TRUE(eventually([&] { return liveness(na, "nc") == "alive"; }, 10s))
      << "na reports nc " << liveness(na, "nc") << " after the heal";
  // C learned B's new key after the heal, and every pod reaches C's again.
  EXPECT_TRUE(eventually([&] { return device_has(*c_, nc, r.public_key).value_or(false); }, 10s))
      << holders(r.public_key);
  expect_pods_reach({&na, &nb, &nc});
}

TEST_F(Lifecycle, AKeyRotationUnderA100PerSecondPingLeavesAGapOfAtMost100Ms) {
  auto& na = node("na");
  auto& nb = node("nb");
  auto& pa = pod_on(na);
  auto& pb = pod_on(nb);
  ASSERT_TRUE(eventually([&] { return rotation_done(nb); }, 10s));
  ASSERT_TRUE(ClusterNodes::reaches(*pa.ns, pb.address));
  const auto b_cidr = ClusterNodes::settled_cidr(nb)->to_string();

  // 100/s for 6 s: 0.5 s before the request, the lead (1.5 s) and the grace
  // (1 s) after it, with room to spare.
  PingRun ping(*pa.ns, pb.address, 600, 0.01);
  std::this_thread::sleep_for(500ms);
  Rotation r;
  ASSERT_TRUE(rotate(nb, r));
  auto s = ping.wait();
  std::printf("rotation gap: %.0f ms, lost %d\n", s.max_gap_ms, s.lost());
  ASSERT_GT(s.received, 0) << s.output;
  // The ping covered the switch and the grace after it.
  EXPECT_LT(s.first_reply * 1000, static_cast<double>(r.switch_at_ms));
  EXPECT_GT(s.last_reply * 1000, static_cast<double>(r.switch_at_ms + kGraceMs));
  EXPECT_LE(s.max_gap_ms, 100.0);
  // Afterwards the old key is on no device, the new one on every other.
  EXPECT_TRUE(eventually([&] { return on_devices(r.previous_public_key, false, &nb); }, 5s))
      << holders(r.previous_public_key);
  EXPECT_TRUE(eventually([&] { return on_devices(r.public_key, true, &nb, b_cidr); }, 5s))
      << holders(r.public_key);
  EXPECT_EQ(wg_public_key(nb), r.public_key);
}

TEST_F(Lifecycle, ASilentNodeIsPrunedEverywhereWhenPruningIsOnAndNoOneElseIs) {
  auto& na = node("na");
  auto& nc = node("nc");
  const std::string c_identity = identity_of(nc);
  const std::string c_key = wg_public_key(nc);
  // Pruning on A only, by SIGHUP: silent after 3 s, pruned after 6 s.
  na.extra_config = "[liveness]\nsilent_after_s = 3\nprune_after_s = 6\n[rotation]\nlead_ms = 1500\ngrace_ms = 1000\n";
  c_->write_config(na);
  const std::size_t mark = c_->log(na).size();
  ::kill(na.pid, SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return c_->log(na).find("configuration reloaded", mark) != std::string::npos;
  }, 10s)) << c_->log_tail(na);
  // C's machine goes dark: nothing from it reaches anyone any more.
  c_->partition(nc);
  members_.erase(std::find(members_.begin(), members_.end(), &nc));
  // Every live member holds C's tombstone, with a reason that says pruned.
  EXPECT_TRUE(eventually([&] {
    for (auto* n : members_) {
      auto e = entry_of(*n, c_identity);
      if (!e || !removed(*e) || removal_reason(*e).find("pruned") == std::string::npos)
        return false;
    }
    return true;
  }, 30s)) << [&] {
    std::string out;
    for (auto* n : members_) {
      auto e = entry_of(*n, c_identity);
      out += n->name + ": " + (e ? json::serialize(*e) : "nothing") + "\n";
    }
    return out;
  }();
  EXPECT_TRUE(eventually([&] { return on_devices(c_key, false, nullptr); }, 5s)) << holders(c_key);
  // No live member was pruned, A included, at any member.
  for (auto* at : members_)
    for (auto* n : members_) {
      auto e = entry_of(*at, identity_of(*n));
      ASSERT_TRUE(e) << at->name << " lists nothing for " << n->name;
      EXPECT_FALSE(removed(*e)) << at->name << " removed " << n->name << ": " << json::serialize(*e);
    }
  for (auto* n : members_) EXPECT_FALSE(status_removed(*n)) << n->name;
  expect_pods_reach(members_);
}

}  // namespace
}  // namespace meshd::testing
