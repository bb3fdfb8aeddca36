// netlink/netns.h against real namespaces: the calling thread goes in and
// always comes back.
#include "netlink/netns.h"
#include "netlink/rtnl.h"
#include "tests/support/netns.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <sys/stat.h>

#include <fstream>
#include <stdexcept>

using meshd::Result;
using meshd::testing::Netns;
using namespace meshd::nl;

namespace {

ino_t current_netns_inode() {
  struct stat st {};
  EXPECT_EQ(stat("/proc/thread-self/ns/net", &st), 0);
  return st.st_ino;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return st.st_ino;
}

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(meshd::testing::is_root(), "needs root");
  }
};

TEST_F(NetnsTest, OpenByNameAndPath) {
  Netns ns("nsx");
  auto by_name = open_netns_by_name(ns.name());
  ASSERT_TRUE(by_name) << by_name.error().message;
  auto by_path = open_netns(ns.path());
  ASSERT_TRUE(by_path);

  auto missing = open_netns_by_name("meshd-no-such-netns");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(ENOENT));
  EXPECT_NE(missing.error().message.find("/var/run/netns/meshd-no-such-netns"), std::string::npos);

  for (const char* bad : {"", ".", "..", "a/b", "../etc"}) {
    auto r = open_netns_by_name(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().is(EINVAL)) << bad;
  }
  // A plain file is refused at open, not later at setns.
  auto notns = open_netns("/etc/hostname");
  ASSERT_FALSE(notns);
  EXPECT_TRUE(notns.error().is(EINVAL)) << notns.error().message;
}

TEST_F(NetnsTest, GuardEntersAndRestores) {
  Netns ns("nsg");
  const ino_t home = current_netns_inode();
  {
    auto g = NetnsGuard::enter(ns.fd());
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_EQ(current_netns_inode(), inode_of(ns.path()));
  }
  EXPECT_EQ(current_netns_inode(), home);

  // Early, checked restore.
  auto g = NetnsGuard::enter(ns.fd()).value();
  EXPECT_TRUE(g.restore());
  EXPECT_EQ(current_netns_inode(), home);
  EXPECT_TRUE(g.restore());  // twice is harmless

  auto bad = NetnsGuard::enter(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(current_netns_inode(), home);
}

TEST_F(NetnsTest, RunInNetnsReturnsValueErrorAndRestoresOnThrow) {
  Netns ns("nsr");
  const ino_t home = current_netns_inode();
  const ino_t target = inode_of(ns.path());

  auto seen = run_in_netns(ns.fd(), [] { return Result<ino_t>(current_netns_inode()); });
  ASSERT_TRUE(seen);
  EXPECT_EQ(*seen, target);
  EXPECT_EQ(current_netns_inode(), home);

  auto err = run_in_netns(ns.fd(), []() -> Result<int> { return meshd::fail(EPERM, "inside"); });
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().message.rfind("inside", 0), 0u);
  EXPECT_EQ(current_netns_inode(), home);

  EXPECT_THROW(run_in_netns(ns.fd(), []() -> Result<int> { throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_EQ(current_netns_inode(), home);

  auto cannot = run_in_netns(-1, [] { return Result<int>(1); });
  ASSERT_FALSE(cannot);
  EXPECT_TRUE(cannot.error().is(EBADF)) << cannot.error().message;
}

// The backends' "netns_path" option: a path opens the socket in that
// namespace, an empty one in the caller's own; a bad path names itself.
TEST_F(NetnsTest, RtnlOpenAtAPathOrHere) {
  Netns ns("nsa");
  auto inside = Rtnl::open_at(ns.path());
  ASSERT_TRUE(inside) << inside.error().message;
  ASSERT_TRUE(inside->create_veth("at0", "at1"));
  EXPECT_EQ(ns.run("ip link show at0 >/dev/null 2>&1"), 0);
  EXPECT_NE(meshd::testing::sh("ip link show at0 >/dev/null 2>&1"), 0);

  auto here = Rtnl::open_at("");
  ASSERT_TRUE(here) << here.error().message;
  EXPECT_TRUE(here->get_link("at0").error().is(ENODEV));
  EXPECT_TRUE(inside->get_link("at0"));

  auto missing = Rtnl::open_at("/var/run/netns/no-such-" + ns.name());
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(ENOENT));
  EXPECT_NE(missing.error().message.find("no-such-" + ns.name()), std::string::npos);

  auto not_ns = Rtnl::open_at("/proc/self/status");
  ASSERT_FALSE(not_ns);
  EXPECT_TRUE(not_ns.error().is(EINVAL)) << not_ns.error().message;
}

TEST_F(NetnsTest, SocketOpenedInNetnsStaysThereAfterThreadReturns) {
  Netns ns("nss");
  auto rt = Rtnl::open_in_netns(ns.fd()).value();
  ASSERT_TRUE(rt.create_veth("inside0", "inside1"));
  // Visible in the namespace, not on the host.
  EXPECT_EQ(ns.run("ip link show inside0 >/dev/null 2>&1"), 0);
  EXPECT_NE(meshd::testing::sh("ip link show inside0 >/dev/null 2>&1"), 0);
}

}  // namespace
