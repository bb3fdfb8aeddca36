// KernelBackend on the build host, inside namespaces the test makes. This
// host's kernel has no WireGuard: the `auto` backend choice must see that
// cleanly, and the backend's errors must say what is missing. Where the
// kernel does have WireGuard the same tests check the positive outcome.
#include "meshd/dataplane/kernel_backend.h"

#include "netlink/netns.h"
#include "tests/support/netns.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <thread>

namespace meshd::dataplane {
namespace {

using meshd::testing::Netns;

// Independent of meshd's code: can iproute2 make a wireguard link here?
bool iproute_can_make_wireguard(const Netns& ns) {
  bool ok = ns.run("ip link add meshd-chk0 type wireguard 2>/dev/null") == 0;
  if (ok) ns.run("ip link del meshd-chk0");
  return ok;
}

class KernelBackendHost : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(meshd::testing::is_root(), "needs root for network namespaces");
    ns_ = std::make_unique<Netns>("kbh");
  }
  std::unique_ptr<Netns> ns_;
};

TEST_F(KernelBackendHost, ProbeMatchesTheKernelAndLeavesNoLink) {
  auto fd = nl::open_netns(ns_->path());
  ASSERT_TRUE(fd) << fd.error().message;
  bool available = true;
  Result<void> why;
  // The probe works in the calling thread's namespace: run it in ours.
  std::thread t([&] {
    auto g = nl::NetnsGuard::enter(fd->get());
    ASSERT_TRUE(g);
    why = probe_kernel_wireguard();
    available = kernel_wireguard_available();
  });
  t.join();
  EXPECT_EQ(available, iproute_can_make_wireguard(*ns_));
  if (!available) {
    ASSERT_FALSE(why);
    EXPECT_NE(why.error().message.find("wireguard"), std::string::npos) << why.error().message;
  }
  EXPECT_EQ(ns_->out("ip -o link show | grep -c meshd- || true"), "0\n");
}

TEST_F(KernelBackendHost, EnsureDeviceCreatesOrSaysWhyNot) {
  KernelBackend be(KernelBackendOptions{ns_->path()});
  EXPECT_EQ(be.kind(), "kernel");
  auto r = be.ensure_device("wg0");
  if (iproute_can_make_wireguard(*ns_)) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_NE(ns_->out("ip -d link show wg0").find("wireguard"), std::string::npos);
    EXPECT_TRUE(be.delete_device("wg0"));
  } else {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value(), EOPNOTSUPP) << r.error().message;
    EXPECT_NE(r.error().message.find("wg0"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("wireguard"), std::string::npos) << r.error().message;
    EXPECT_NE(ns_->run("ip link show wg0 >/dev/null 2>&1"), 0);
    auto g = be.get_device("wg0");
    ASSERT_FALSE(g);
    EXPECT_NE(g.error().message.find("wireguard"), std::string::npos) << g.error().message;
  }
}

TEST_F(KernelBackendHost, LinkOfAnotherKindIsNeitherAdoptedNorDeleted) {
  ASSERT_EQ(ns_->run("ip link add wg1 type veth peer name wg1p"), 0);
  KernelBackend be(KernelBackendOptions{ns_->path()});
  auto r = be.ensure_device("wg1");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("wg1"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("veth"), std::string::npos) << r.error().message;
  auto d = be.delete_device("wg1");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("veth"), std::string::npos) << d.error().message;
  EXPECT_EQ(ns_->run("ip link show wg1 >/dev/null"), 0);
}

TEST_F(KernelBackendHost, DeletingAMissingDeviceSucceeds) {
  KernelBackend be(KernelBackendOptions{ns_->path()});
  EXPECT_TRUE(be.delete_device("wg-none"));
}

TEST_F(KernelBackendHost, AMissingNamespaceIsAnErrorNamingIt) {
  KernelBackend be(KernelBackendOptions{"/var/run/netns/meshd-no-such-ns"});
  auto r = be.ensure_device("wg0");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("meshd-no-such-ns"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace meshd::dataplane
