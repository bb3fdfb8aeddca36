// The reconciler's two kinds of pass against a real kernel (rtnetlink in a
// network namespace of the test's own) and an in-memory WireGuard backend: a
// WireGuard pass repairs peers and sends rtnetlink nothing; a full pass
// repairs everything; a WireGuard pass becomes a full one while the last
// full pass had errors or after the implementation restarted. The egress
// step: meshd's nftables table set, restored, replaced and removed (for real,
// in the test's namespace), and its failures reported without failing a pass.
#include "meshd/dataplane/reconciler.h"
#include "netlink/netns.h"
#include "tests/support/netns.h"
#include "tests/support/prerequisite.h"
#include "tests/unit/dataplane/test_keys.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace meshd::dataplane {
namespace {

using meshd::testing::Netns;
using meshd::testing::pk;
using meshd::testing::sh;

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }

// Applies partial updates as a UAPI implementation would.
class FakeBackend : public WgBackend {
 public:
  std::string_view kind() const override { return "fake"; }
  Result<void> ensure_device(const std::string& name) override {
    dev.name = name;
    return {};
  }
  Result<wg::WgDevice> get_device(const std::string&) override { return dev.clone(); }
  Result<void> set_device(const wg::WgDevice& change) override {
    if (fail_set) return Error::from_errno(EIO, "set device " + change.name + " (test)");
    if (change.listen_port) dev.listen_port = change.listen_port;
    if (change.private_key) dev.private_key = change.private_key->clone();
    for (const auto& p : change.peers) {
      auto it = std::find_if(dev.peers.begin(), dev.peers.end(),
                             [&](const wg::WgPeer& q) { return q.public_key == p.public_key; });
      if (p.remove) {
        if (it != dev.peers.end()) dev.peers.erase(it);
        continue;
      }
      if (it == dev.peers.end()) {
        dev.peers.push_back(p.clone());
        continue;
      }
      if (p.endpoint) it->endpoint = p.endpoint;
      if (p.persistent_keepalive) it->persistent_keepalive = p.persistent_keepalive;
      if (p.replace_allowed_ips) it->allowed_ips = p.allowed_ips;
    }
    return {};
  }
  Result<void> delete_device(const std::string&) override { return {}; }
  bool restarted_since_last_check(const std::string&) override { return std::exchange(restarted, false); }

  wg::WgDevice dev;
  bool restarted = false;
  bool fail_set = false;
};

class ReconcilerPasses : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(meshd::testing::is_root(), "needs root (network namespaces)");
    ns_ = std::make_unique<Netns>("mrec");
    // A veth stands in for the WireGuard link: rtnetlink treats them alike
    // (this kernel has no WireGuard), and its peer end gives it a carrier.
    ASSERT_EQ(ns_->run("ip link add meshd0 type veth peer name meshd0p"), 0);
    ASSERT_EQ(ns_->run("ip link set meshd0p up"), 0);
    auto r = nl::Rtnl::open_in_netns(ns_->fd());
    ASSERT_TRUE(r) << r.error().message;
    rtnl_.emplace(std::move(*r));

    desired_.device.name = "meshd0";
    desired_.device.listen_port = 51820;
    desired_.mtu = 1400;
    desired_.addresses = {P("10.77.1.1/32")};
    for (std::uint8_t n : {2, 3}) {
      IpPrefix pods = P(n == 2 ? "10.77.2.0/24" : "10.77.3.0/24");
      wg::WgPeer p;
      p.public_key = pk(n);
      p.persistent_keepalive = 0;
      p.allowed_ips = {pods};
      desired_.device.peers.push_back(std::move(p));
      nl::Route r;
      r.dst = pods;
      r.scope = 253;  // RT_SCOPE_LINK
      r.prefsrc = P("10.77.1.1/32").address;
      desired_.routes.push_back(r);
    }
  }

  bool has_route(const char* dst) { return ns_->out("ip route show " + std::string(dst)).find("meshd0") != std::string::npos; }
  bool has_peer(std::uint8_t n) {
    return std::any_of(backend_.dev.peers.begin(), backend_.dev.peers.end(),
                       [&](const wg::WgPeer& p) { return p.public_key == pk(n); });
  }
  // One pass inside the test's namespace: libnftables works in the calling
  // thread's namespace (rtnetlink already does, through its socket).
  Result<ReconcileReport> apply_in_ns(Reconciler& rec, PassScope scope) {
    return nl::run_in_netns(ns_->fd(), [&] { return rec.apply(desired_, scope); });
  }
  bool has_egress_table() { return ns_->run("nft list table inet meshd >/dev/null 2>&1") == 0; }
  static bool says(const ReconcileReport& r, const std::string& what) {
    return std::any_of(r.changes.begin(), r.changes.end(),
                       [&](const ChangeNote& c) { return c.text.find(what) != std::string::npos; });
  }

  std::unique_ptr<Netns> ns_;
  std::optional<nl::Rtnl> rtnl_;
  FakeBackend backend_;
  DesiredState desired_;
};

TEST_F(ReconcilerPasses, AWireGuardPassRepairsPeersOnlyAFullPassRepairsRoutes) {
  Reconciler rec({&backend_, &*rtnl_});
  auto first = rec.apply(desired_, PassScope::kWireGuard);  // no full pass yet: runs fully
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(first->ok()) << first->errors.front();
  ASSERT_TRUE(has_route("10.77.2.0/24") && has_route("10.77.3.0/24")) << ns_->out("ip route");
  ASSERT_TRUE(has_peer(2) && has_peer(3));

  // Drift of both kinds.
  backend_.dev.peers.erase(backend_.dev.peers.begin());
  ASSERT_EQ(ns_->run("ip route del 10.77.3.0/24"), 0);

  auto wg_pass = rec.apply(desired_, PassScope::kWireGuard);
  ASSERT_TRUE(wg_pass);
  EXPECT_TRUE(has_peer(2) && has_peer(3)) << "the WireGuard pass did not restore the peer";
  EXPECT_TRUE(says(*wg_pass, "add peer"));
  // It did not look at routes: the deleted one stays deleted (its rtnetlink
  // event is what brings the full pass), and the count is the last full pass's.
  EXPECT_FALSE(has_route("10.77.3.0/24"));
  EXPECT_FALSE(says(*wg_pass, "add route"));
  EXPECT_EQ(wg_pass->routes, 2u);

  auto full = rec.apply(desired_, PassScope::kFull);
  ASSERT_TRUE(full);
  EXPECT_TRUE(full->ok());
  EXPECT_TRUE(has_route("10.77.3.0/24")) << ns_->out("ip route");
  EXPECT_TRUE(says(*full, "add route 10.77.3.0/24"));
}

TEST_F(ReconcilerPasses, AWireGuardPassRunsFullyAfterAFailedFullPass) {
  // Someone else's route in a mesh route's slot: the full pass reports it.
  ASSERT_EQ(ns_->run("ip route add 10.77.2.0/24 dev meshd0p proto static"), 0);
  Reconciler rec({&backend_, &*rtnl_});
  auto full = rec.apply(desired_, PassScope::kFull);
  ASSERT_TRUE(full);
  EXPECT_FALSE(full->ok());
  EXPECT_EQ(full->routes, 1u);

  // Its owner removes it; the next WireGuard pass retries everything.
  ASSERT_EQ(ns_->run("ip route del 10.77.2.0/24 dev meshd0p proto static"), 0);
  auto next = rec.apply(desired_, PassScope::kWireGuard);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->ok()) << next->errors.front();
  EXPECT_TRUE(has_route("10.77.2.0/24")) << ns_->out("ip route");
  EXPECT_EQ(next->routes, 2u);
}

TEST_F(ReconcilerPasses, AWireGuardPassRunsFullyAfterTheImplementationRestarted) {
  Reconciler rec({&backend_, &*rtnl_});
  ASSERT_TRUE(rec.apply(desired_, PassScope::kFull));
  // A restarted implementation makes its device again: bare, and without
  // the routes through it (here: removed by hand, as the kernel would).
  backend_.dev = {};
  backend_.restarted = true;
  ASSERT_EQ(ns_->run("ip route del 10.77.2.0/24"), 0);
  auto pass = rec.apply(desired_, PassScope::kWireGuard);
  ASSERT_TRUE(pass);
  EXPECT_TRUE(pass->backend_restarted);
  EXPECT_TRUE(has_peer(2) && has_peer(3));
  EXPECT_TRUE(has_route("10.77.2.0/24")) << ns_->out("ip route");
}

// WireGuard roaming across passes: the reconciler remembers the endpoints it
// applied, so a roamed one stays, and one whose setting failed is retried.
TEST_F(ReconcilerPasses, ARoamedEndpointSurvivesPassesAndAFailedSetIsRetried) {
  auto ep = [](const char* s) { return *Endpoint::parse(s); };
  desired_.device.peers[0].endpoint = ep("10.0.0.2:51820");
  Reconciler rec({&backend_, &*rtnl_});
  ASSERT_TRUE(rec.apply(desired_, PassScope::kFull));
  ASSERT_EQ(backend_.dev.peers.at(0).endpoint, ep("10.0.0.2:51820"));

  backend_.dev.peers.at(0).endpoint = ep("192.0.2.7:40001");  // the peer roamed
  for (auto scope : {PassScope::kWireGuard, PassScope::kFull}) {
    auto pass = rec.apply(desired_, scope);
    ASSERT_TRUE(pass);
    EXPECT_FALSE(says(*pass, "endpoint"));
    EXPECT_EQ(backend_.dev.peers.at(0).endpoint, ep("192.0.2.7:40001"));
  }

  // The desired endpoint moves, but the device refuses the change.
  desired_.device.peers[0].endpoint = ep("10.0.0.9:51820");
  backend_.fail_set = true;
  auto failed = rec.apply(desired_, PassScope::kWireGuard);
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->ok());
  backend_.fail_set = false;
  auto retried = rec.apply(desired_, PassScope::kWireGuard);
  ASSERT_TRUE(retried);
  EXPECT_TRUE(retried->ok());
  EXPECT_EQ(backend_.dev.peers.at(0).endpoint, ep("10.0.0.9:51820"));
}

// An EgressTable in memory, which can be made to fail.
class FakeEgress : public EgressTable {
 public:
  Result<void> apply(const EgressSpec& spec) override {
    ++applies;
    if (fail) return Error::from_errno(EPERM, "set nftables table inet meshd (test)");
    listing = egress_table_text(spec);
    return {};
  }
  Result<bool> remove() override {
    ++removes;
    return std::exchange(listing, std::nullopt).has_value();
  }
  Result<std::optional<std::string>> current() override { return listing; }

  std::optional<std::string> listing;
  bool fail = false;
  int applies = 0, removes = 0;
};

TEST_F(ReconcilerPasses, TheEgressTableIsSetRestoredReplacedAndRemovedInTheNodesNamespace) {
  MESHD_REQUIRE(sh("command -v nft >/dev/null 2>&1") == 0, "needs nft (the nftables package)");
  NftEgressTable table;
  Reconciler rec({&backend_, &*rtnl_, &table});
  desired_.egress = EgressSpec{P("10.77.1.0/24"), P("10.77.0.0/16"), "meshd0"};
  const std::string rule = "ip saddr 10.77.1.0/24 ip daddr != 10.77.0.0/16 oifname != \"meshd0\" masquerade";
  auto first = apply_in_ns(rec, PassScope::kFull);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->ok());
  ASSERT_FALSE(first->egress_error) << *first->egress_error;
  EXPECT_TRUE(says(*first, "egress: masquerade 10.77.1.0/24 to outside 10.77.0.0/16"));
  std::string listed = ns_->out("nft list table inet meshd");
  EXPECT_NE(listed.find(rule), std::string::npos) << listed;
  EXPECT_NE(listed.find("type nat hook postrouting priority srcnat"), std::string::npos) << listed;

  // In place: the next full pass lists it and changes nothing.
  auto again = apply_in_ns(rec, PassScope::kFull);
  ASSERT_TRUE(again);
  EXPECT_FALSE(says(*again, "egress")) << again->changes.front().text;

  // Deleted by hand: a WireGuard pass does not look, the next full pass restores it.
  ASSERT_EQ(ns_->run("nft delete table inet meshd"), 0);
  ASSERT_TRUE(apply_in_ns(rec, PassScope::kWireGuard));
  EXPECT_FALSE(has_egress_table());
  auto restored = apply_in_ns(rec, PassScope::kFull);
  ASSERT_TRUE(restored);
  EXPECT_TRUE(says(*restored, "egress: restored"));
  EXPECT_NE(ns_->out("nft list table inet meshd").find(rule), std::string::npos);

  // The table is meshd's: a rule added to it by hand goes with the next full pass.
  ASSERT_EQ(ns_->run("nft add rule inet meshd postrouting ip saddr 10.9.9.9 accept"), 0);
  ASSERT_TRUE(apply_in_ns(rec, PassScope::kFull));
  listed = ns_->out("nft list table inet meshd");
  EXPECT_EQ(listed.find("10.9.9.9"), std::string::npos) << listed;
  EXPECT_NE(listed.find(rule), std::string::npos) << listed;

  // Another cluster CIDR: the one rule is replaced, not added to.
  desired_.egress->cluster_cidr = P("10.76.0.0/15");
  ASSERT_TRUE(apply_in_ns(rec, PassScope::kFull));
  listed = ns_->out("nft list table inet meshd");
  EXPECT_NE(listed.find("ip daddr != 10.76.0.0/15"), std::string::npos) << listed;
  EXPECT_EQ(listed.find("10.77.0.0/16"), std::string::npos) << listed;

  // Not wanted any more: removed, once.
  desired_.egress.reset();
  auto off = apply_in_ns(rec, PassScope::kFull);
  ASSERT_TRUE(off);
  EXPECT_TRUE(says(*off, "egress: removed nftables table inet meshd"));
  EXPECT_FALSE(has_egress_table()) << ns_->out("nft list ruleset");
  auto quiet = apply_in_ns(rec, PassScope::kFull);
  ASSERT_TRUE(quiet);
  EXPECT_FALSE(says(*quiet, "egress"));
  // Removing an absent table is no error.
  auto none = nl::run_in_netns(ns_->fd(), [&] { return table.remove(); });
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);
  auto listing = nl::run_in_netns(ns_->fd(), [&] { return table.current(); });
  ASSERT_TRUE(listing) << listing.error().message;
  EXPECT_FALSE(*listing);
}

TEST_F(ReconcilerPasses, AnEgressFailureIsReportedWithoutFailingThePassAndRetriedByFullPasses) {
  FakeEgress table;
  table.fail = true;
  Reconciler rec({&backend_, &*rtnl_, &table});
  desired_.egress = EgressSpec{P("10.77.1.0/24"), P("10.77.0.0/16"), "meshd0"};
  auto first = rec.apply(desired_, PassScope::kFull);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->ok()) << "the mesh works without the masquerade: the pass must not fail";
  ASSERT_TRUE(first->egress_error);
  EXPECT_EQ(*first->egress_error, "egress: set nftables table inet meshd (test): Operation not permitted");
  EXPECT_TRUE(has_route("10.77.2.0/24"));

  // A WireGuard pass keeps reporting it, without trying again.
  auto wg_pass = rec.apply(desired_, PassScope::kWireGuard);
  ASSERT_TRUE(wg_pass);
  EXPECT_TRUE(wg_pass->egress_error);
  EXPECT_EQ(table.applies, 1);

  table.fail = false;
  auto full = rec.apply(desired_, PassScope::kFull);
  ASSERT_TRUE(full);
  EXPECT_FALSE(full->egress_error);
  EXPECT_EQ(table.applies, 2);
  EXPECT_TRUE(says(*full, "egress: masquerade"));
  wg_pass = rec.apply(desired_, PassScope::kWireGuard);
  ASSERT_TRUE(wg_pass);
  EXPECT_FALSE(wg_pass->egress_error);
}

TEST_F(ReconcilerPasses, ALeftoverEgressTableIsRemovedOnceWhenNoneIsWanted) {
  FakeEgress table;
  table.listing = "table inet meshd { }";  // from an earlier run with masquerade on
  Reconciler rec({&backend_, &*rtnl_, &table});
  auto first = rec.apply(desired_, PassScope::kFull);
  ASSERT_TRUE(first);
  EXPECT_TRUE(says(*first, "egress: removed nftables table inet meshd"));
  EXPECT_FALSE(table.listing);
  for (auto scope : {PassScope::kFull, PassScope::kWireGuard, PassScope::kFull})
    ASSERT_TRUE(rec.apply(desired_, scope));
  EXPECT_EQ(table.removes, 1);
  EXPECT_EQ(table.applies, 0);
}

}  // namespace
}  // namespace meshd::dataplane
