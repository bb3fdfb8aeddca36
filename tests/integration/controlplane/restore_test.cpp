// Backing up a node's database while meshd runs and restoring it later, as
// docs/operations.md tells an operator to: `sqlite3 DB ".backup FILE"`
// online; later, meshd stopped, the file put back (0600, no -wal/-shm) and
// meshd started. Between the backup and the restore the cluster moved on: a
// new node joined, which the backup has never heard of. The restored node
// must come back without joining again, learn the new node by sync, and
// every pod must reach every other. Real meshd processes on the userspace backend, pods from the
// real CNI plugin (tests/support/cluster_nodes.h).
#include "keys/wg_key.h"
#include "store/local_node.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/mesh_probe.h"
#include "tests/support/prerequisite.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

namespace meshd::testing {
namespace {


TEST(BackupRestore, ANodeRestoredFromAnOlderBackupComesBackWithoutJoiningAndEveryPodReachesIt) {
  MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  MESHD_REQUIRE(sh("command -v wireguard-go >/dev/null") == 0, "wireguard-go (the userspace backend)");
  MESHD_REQUIRE(sh("command -v sqlite3 >/dev/null") == 0, "sqlite3 (scripts/install-deps.sh installs it)");
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

  // The backup, online: SQLite's backup API copies a consistent snapshot
  // while meshd keeps writing.
  const std::string backup = n2.dir + "/backup.db";
  ASSERT_EQ(sh("sqlite3 " + n2.db_path() + " \".backup '" + backup + "'\""), 0);
  const std::string key_in_backup = ClusterNodes::wg_public_key(n2);

  // The cluster moves on: n3 joins, n2 takes new leases.
  auto& n3 = c.add_node("n3", &n1);
  c.write_token(n3, ClusterNodes::create_token(n1));
  c.start(n3);
  ASSERT_TRUE(c.wait_settled(n3, 60s)) << c.log_tail(n3);
  c.add_pod(n3);

  // The restore: meshd stopped (the data plane stays), the file put back.
  ASSERT_EQ(c.stop(n2), 0);
  std::filesystem::copy_file(backup, n2.db_path(), std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(n2.db_path() + "-wal");
  std::filesystem::remove(n2.db_path() + "-shm");
  ASSERT_EQ(::chmod(n2.db_path().c_str(), 0600), 0);
  ASSERT_EQ(ClusterNodes::wg_public_key(n2), key_in_backup);
  c.start(n2);
  ASSERT_TRUE(c.wait_settled(n2, 60s)) << c.log_tail(n2);
  EXPECT_EQ(c.log_of_this_run(n2).find("joined cluster"), std::string::npos)
      << "a restored node joined again instead of coming back from its store";

  // n1 and n3 route its CIDR to the key it runs with (the backup's).
  const std::string key_now = ClusterNodes::wg_public_key(n2);
  EXPECT_TRUE(eventually([&] { return c.peer_key_for(n1, n2_cidr) == key_now; }, 30s, 200ms))
      << "n1 routes n2's CIDR to " << c.peer_key_for(n1, n2_cidr) << ", n2 runs " << key_now;
  EXPECT_TRUE(eventually([&] { return c.peer_key_for(n3, n2_cidr) == key_now; }, 30s, 200ms))
      << "n3 routes n2's CIDR to " << c.peer_key_for(n3, n2_cidr) << ", n2 runs " << key_now;
  for (auto* from : {&n1, &n2, &n3})
    for (auto* to : {&n1, &n2, &n3}) {
      if (from == to) continue;
      EXPECT_TRUE(ClusterNodes::reaches(*from->pods[0].ns, to->pods[0].address, 20s))
          << from->name << " -> " << to->name << "\n"
          << c.log_tail(n2);
    }
}

}  // namespace
}  // namespace meshd::testing
