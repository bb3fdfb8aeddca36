// A node restored from a backup of its database taken before its last
// WireGuard key rotation runs with the backup's key, while every peer routes
// its pod CIDR to the key it rotated to, whose private half is gone. Sync runs
// inside the mesh, so neither side hears the other; the node must announce
// its record over the underlay (docs/protocol.md, "Underlay announcement")
// until the peers route to the key it runs with and every pod reaches every
// other. Once for a joined node (which announces to its [join] target) and
// once for the founder (which has none and announces to the other members'
// endpoint hosts at its join port). Real meshd processes on the userspace
// backend, pods from the real CNI plugin (tests/support/cluster_nodes.h).
#include "keys/wg_key.h"
#include "store/local_node.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/mesh_probe.h"
#include "tests/support/prerequisite.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

namespace meshd::testing {
namespace {


// POST /v1/key/rotate on `n`: the key it rotates to ("" on failure).
std::string rotate(const ClusterNodes::Node& n) {
  auto a = api_request(n.api_socket(), "POST", "/v1/key/rotate");
  if (a.status != 202) return "";
  boost::system::error_code ec;
  auto v = boost::json::parse(a.body, ec);
  if (ec || !v.is_object()) return "";
  auto* k = v.as_object().if_contains("public_key");
  return k && k->is_string() ? std::string(k->as_string().c_str()) : "";
}

void require_prerequisites() {
  MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  MESHD_REQUIRE(sh("command -v wireguard-go >/dev/null") == 0, "wireguard-go (the userspace backend)");
  MESHD_REQUIRE(sh("command -v sqlite3 >/dev/null") == 0, "sqlite3 (scripts/install-deps.sh installs it)");
}

// The online backup (SQLite's backup API, while meshd runs).
void backup(const ClusterNodes::Node& n, const std::string& file) {
  ASSERT_EQ(sh("sqlite3 " + n.db_path() + " \".backup '" + file + "'\""), 0);
}

// The restore as docs/operations.md has it: meshd stopped, the file put back
// (0600, no -wal/-shm), meshd started.
void restore(ClusterNodes& c, ClusterNodes::Node& n, const std::string& file) {
  ASSERT_EQ(c.stop(n), 0);
  std::filesystem::copy_file(file, n.db_path(), std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(n.db_path() + "-wal");
  std::filesystem::remove(n.db_path() + "-shm");
  ASSERT_EQ(::chmod(n.db_path().c_str(), 0600), 0);
  c.start(n);
}

// `n` rotates its key; once it switched, `peers` route its CIDR to the new one.
void rotate_and_wait(ClusterNodes& c, ClusterNodes::Node& n, const IpPrefix& cidr,
                     std::initializer_list<ClusterNodes::Node*> peers, std::string& rotated_to) {
  rotated_to = rotate(n);
  ASSERT_FALSE(rotated_to.empty()) << "POST /v1/key/rotate on " << n.name;
  ASSERT_TRUE(eventually([&] { return ClusterNodes::wg_public_key(n) == rotated_to; }, 60s, 200ms)) << c.log_tail(n);
  for (auto* p : peers)
    ASSERT_TRUE(eventually([&] { return c.peer_key_for(*p, cidr) == rotated_to; }, 60s, 200ms))
        << p->name << " routes " << n.name << "'s CIDR to " << c.peer_key_for(*p, cidr);
}

void expect_every_pod_reaches_every_other(ClusterNodes& c, std::initializer_list<ClusterNodes::Node*> nodes,
                                          const ClusterNodes::Node& restored) {
  for (auto* from : nodes)
    for (auto* to : nodes) {
      if (from == to) continue;
      EXPECT_TRUE(ClusterNodes::reaches(*from->pods[0].ns, to->pods[0].address, 30s))
          << from->name << " -> " << to->name << "\n"
          << c.log_tail(restored);
    }
}

TEST(StaleKey, ANodeRestoredFromABackupTakenBeforeItsKeyRotationAnnouncesItselfAndComesBack) {
  require_prerequisites();
  ClusterNodes c;
  auto& n1 = c.add_node("n1");
  c.start(n1);
  ASSERT_TRUE(c.wait_settled(n1, 60s)) << c.log_tail(n1);
  auto& n2 = c.add_node("n2", &n1);
  c.write_token(n2, ClusterNodes::create_token(n1));
  c.start(n2);
  ASSERT_TRUE(c.wait_settled(n2, 60s)) << c.log_tail(n2);
  c.add_pod(n1);
  c.add_pod(n2);
  ASSERT_TRUE(ClusterNodes::reaches(*n2.pods[0].ns, n1.pods[0].address, 20s));
  const auto n2_cidr = *ClusterNodes::settled_cidr(n2);

  const std::string file = n2.dir + "/backup.db";
  ASSERT_NO_FATAL_FAILURE(backup(n2, file));
  const std::string k0 = ClusterNodes::wg_public_key(n2);

  // After the backup: n2 rotates (the peers then route to K1), n3 joins.
  std::string k1;
  ASSERT_NO_FATAL_FAILURE(rotate_and_wait(c, n2, n2_cidr, {&n1}, k1));
  ASSERT_NE(k1, k0);
  auto& n3 = c.add_node("n3", &n1);
  c.write_token(n3, ClusterNodes::create_token(n1));
  c.start(n3);
  ASSERT_TRUE(c.wait_settled(n3, 60s)) << c.log_tail(n3);
  c.add_pod(n3);
  ASSERT_TRUE(eventually([&] { return c.peer_key_for(n3, n2_cidr) == k1; }, 30s, 200ms));

  ASSERT_NO_FATAL_FAILURE(restore(c, n2, file));
  ASSERT_EQ(ClusterNodes::wg_public_key(n2), k0);
  // The restored node is cut off: nobody routes to K0 until it announces.
  EXPECT_TRUE(c.wait_log(n2, "announcing this node's record over the underlay to", 90s)) << c.log_tail(n2);
  EXPECT_TRUE(eventually([&] { return c.peer_key_for(n1, n2_cidr) == k0; }, 90s, 200ms))
      << "n1 routes n2's CIDR to " << c.peer_key_for(n1, n2_cidr) << ", n2 runs " << k0 << "\n"
      << c.log_tail(n2) << "\n" << c.log_tail(n1);
  EXPECT_TRUE(eventually([&] { return c.peer_key_for(n3, n2_cidr) == k0; }, 90s, 200ms))
      << "n3 routes n2's CIDR to " << c.peer_key_for(n3, n2_cidr) << ", n2 runs " << k0;
  EXPECT_NE(c.log_line(n1, "received over the underlay from " + n2.underlay), "") << c.log_tail(n1);
  expect_every_pod_reaches_every_other(c, {&n1, &n2, &n3}, n2);
  // Sync reaches it again: it stopped announcing.
  EXPECT_TRUE(c.wait_log(n2, "stopped announcing over the underlay", 90s)) << c.log_tail(n2);
}

TEST(StaleKey, TheFounderRestoredFromABackupTakenBeforeItsKeyRotationAnnouncesToTheMembers) {
  require_prerequisites();
  ClusterNodes c;
  auto& n1 = c.add_node("n1");
  c.start(n1);
  ASSERT_TRUE(c.wait_settled(n1, 60s)) << c.log_tail(n1);
  auto& n2 = c.add_node("n2", &n1);
  c.write_token(n2, ClusterNodes::create_token(n1));
  c.start(n2);
  ASSERT_TRUE(c.wait_settled(n2, 60s)) << c.log_tail(n2);
  c.add_pod(n1);
  c.add_pod(n2);
  ASSERT_TRUE(ClusterNodes::reaches(*n2.pods[0].ns, n1.pods[0].address, 20s));
  const auto n1_cidr = *ClusterNodes::settled_cidr(n1);

  const std::string file = n1.dir + "/backup.db";
  ASSERT_NO_FATAL_FAILURE(backup(n1, file));
  const std::string k0 = ClusterNodes::wg_public_key(n1);
  std::string k1;
  ASSERT_NO_FATAL_FAILURE(rotate_and_wait(c, n1, n1_cidr, {&n2}, k1));
  // n3 joins through n2: the restored founder has never heard of it.
  auto& n3 = c.add_node("n3", &n2);
  c.write_token(n3, ClusterNodes::create_token(n2));
  c.start(n3);
  ASSERT_TRUE(c.wait_settled(n3, 60s)) << c.log_tail(n3);
  c.add_pod(n3);
  ASSERT_TRUE(eventually([&] { return c.peer_key_for(n3, n1_cidr) == k1; }, 30s, 200ms));

  ASSERT_NO_FATAL_FAILURE(restore(c, n1, file));
  ASSERT_EQ(ClusterNodes::wg_public_key(n1), k0);
  EXPECT_TRUE(c.wait_log(n1, "announcing this node's record over the underlay to " + n2.underlay, 90s))
      << c.log_tail(n1);
  for (auto* peer : {&n2, &n3})
    EXPECT_TRUE(eventually([&] { return c.peer_key_for(*peer, n1_cidr) == k0; }, 90s, 200ms))
        << peer->name << " routes n1's CIDR to " << c.peer_key_for(*peer, n1_cidr) << ", n1 runs " << k0
        << "\n" << c.log_tail(n1) << "\n" << c.log_tail(*peer);
  expect_every_pod_reaches_every_other(c, {&n1, &n2, &n3}, n1);
}

}  // namespace
}  // namespace meshd::testing
