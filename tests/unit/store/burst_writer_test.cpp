// A burst writer's connection (the CNI plugin's): no fsync per commit, yet a
// committed lease survives a kill -9; short lock waits, yet bounded.
#include "store/database.h"
#include "store/ipam.h"
#include "tests/support/temp_dir.h"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Transaction.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace meshd::store {
namespace {

using namespace std::chrono_literals;

store::AttachmentKey key(const std::string& cid) { return {"net", cid, "eth0"}; }

store::IpamPool pool() { return {IpPrefix::parse("10.244.1.0/24").value(), {}}; }

class LeaseConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // meshd creates and migrates the database; the plugin only opens it.
    store::Database created({.path = path_});
  }
  std::unique_ptr<store::Database> open_plugin(std::chrono::milliseconds timeout = 10s) {
    return std::make_unique<store::Database>(store::DatabaseOptions{
        .path = path_,
        .busy_timeout_ms = static_cast<int>(timeout.count()),
        .migrate = false,
        .burst_writer = true});
  }
  testing::TempDir dir_{"meshd-lease-conn"};
  std::string path_ = dir_.file("meshd.db");
};

TEST_F(LeaseConnectionTest, PluginConnectionIsNormalAndMeshdsStaysFull) {
  auto plugin = open_plugin();
  store::Database daemon({.path = path_});
  EXPECT_EQ(plugin->sql().execAndGet("PRAGMA synchronous").getInt(), 1);  // NORMAL
  EXPECT_EQ(daemon.sql().execAndGet("PRAGMA synchronous").getInt(), 2);   // FULL
  EXPECT_EQ(plugin->sql().execAndGet("PRAGMA journal_mode").getString(), "wal");
}

// WAL + NORMAL: the commit is in the -wal file when it returns; only the
// fsync is skipped. A process killed right after its commit loses nothing.
TEST_F(LeaseConnectionTest, LeaseCommittedWithoutFsyncSurvivesKill9) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto db = open_plugin();
    auto lease = store::Ipam(*db).allocate(key("killed"), pool(), 1);
    char c = lease ? 'y' : 'n';
    if (::write(ready[1], &c, 1) != 1) ::_exit(3);
    ::raise(SIGKILL);  // no destructor, no close, no checkpoint
    ::_exit(4);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_EQ(c, 'y');

  store::Database after({.path = path_});
  auto found = store::Ipam(after).find(key("killed"));
  ASSERT_TRUE(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->address.to_string(), "10.244.1.1");
  // And the address is not handed out again.
  auto next = store::Ipam(after).allocate(key("next"), pool(), 2);
  ASSERT_TRUE(next);
  EXPECT_NE(next->address, (*found)->address);
}

// The short waits still give up: a writer that never lets go makes the
// allocation fail with EBUSY after the timeout instead of hanging.
TEST_F(LeaseConnectionTest, WaitForTheWriteLockIsBounded) {
  store::Database holder({.path = path_});
  SQLite::Transaction tx(holder.sql(), SQLite::TransactionBehavior::IMMEDIATE);
  auto plugin = open_plugin(200ms);
  auto lease = store::Ipam(*plugin).allocate(key("blocked"), pool(), 1);
  ASSERT_FALSE(lease);
  EXPECT_TRUE(lease.error().is(EBUSY)) << lease.error().message;
}

// ... and a writer that lets go is waited for: the allocation succeeds.
TEST_F(LeaseConnectionTest, WaitsOutAWriterThatLetsGo) {
  auto plugin = open_plugin(10s);
  store::Database holder({.path = path_});
  auto tx = std::make_unique<SQLite::Transaction>(holder.sql(), SQLite::TransactionBehavior::IMMEDIATE);
  std::thread release([&] {
    std::this_thread::sleep_for(50ms);
    tx->commit();
  });
  auto lease = store::Ipam(*plugin).allocate(key("waited"), pool(), 1);
  release.join();
  ASSERT_TRUE(lease) << lease.error().message;
  EXPECT_EQ(lease->address.to_string(), "10.244.1.1");
}

}  // namespace
}  // namespace meshd::store
