// CNI_NETNS is opened without trusting it: only a network namespace other
// than the plugin's own passes, and nothing on the way can block.
#include "cni/container_netns.h"
#include "cni/netns_facts.h"

#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <linux/magic.h>
#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>

namespace meshd::cni {
namespace {

void expect_refused(const std::string& path, int code, const std::string& says) {
  auto fd = open_container_netns(path);
  ASSERT_FALSE(fd) << path << " was accepted";
  EXPECT_EQ(fd.error().code, code) << fd.error().msg << ": " << fd.error().details;
  const std::string text = fd.error().msg + ": " + fd.error().details;
  EXPECT_NE(text.find(says), std::string::npos) << text;
  if (code == kInvalidEnvironment) {
    EXPECT_NE(text.find("CNI_NETNS"), std::string::npos) << text;
  }
}

TEST(CniContainerNetns, AFifoIsRefusedAtOnceInsteadOfBlockingTheOpen) {
  testing::TempDir dir;
  const auto fifo = dir.file("netns");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Nobody ever opens the writing end: a blocking open(2) would wait forever.
  expect_refused(fifo, kInvalidEnvironment, "FIFO");
}

TEST(CniContainerNetns, ARegularFileOrDirectoryIsRefused) {
  testing::TempDir dir;
  const auto file = dir.file("netns");
  std::ofstream(file) << "not a namespace";
  expect_refused(file, kInvalidEnvironment, "regular file");
  expect_refused(dir.path(), kInvalidEnvironment, "directory");
}

TEST(CniContainerNetns, ThePluginsOwnNetworkNamespaceIsRefused) {
  // ADD there would put the pod's address and default route on the node.
  expect_refused("/proc/self/ns/net", kInvalidEnvironment, "own");
  expect_refused("/proc/thread-self/ns/net", kInvalidEnvironment, "own");
}

TEST(CniContainerNetns, ANamespaceOfAnotherTypeIsRefused) {
  expect_refused("/proc/self/ns/mnt", kInvalidEnvironment, "mount namespace");
  expect_refused("/proc/self/ns/uts", kInvalidEnvironment, "uts namespace");
}

TEST(CniContainerNetns, AMissingPathIsAnUnknownContainer) {
  expect_refused("/var/run/netns/meshd-test-does-not-exist", kUnknownContainer, "No such file");
}

TEST(CniContainerNetns, FactsOfRealFilesAreWhatTheRuleExpects) {
  auto net = netns_facts("/proc/self/ns/net");
  EXPECT_EQ(net.open_errno, 0);
  EXPECT_EQ(net.fs_type, static_cast<std::int64_t>(NSFS_MAGIC));
  EXPECT_EQ(net.ns_type, CLONE_NEWNET);
  struct stat st {};
  ASSERT_EQ(::stat("/proc/self/ns/net", &st), 0);
  EXPECT_EQ(net.id, (FileId{st.st_dev, st.st_ino}));
  EXPECT_EQ(netns_facts("/proc/self/ns/mnt").ns_type, CLONE_NEWNS);
  EXPECT_EQ(netns_facts("/nonexistent/x").open_errno, ENOENT);
}

TEST(CniNetnsRule, Table) {
  const FileId own{4, 100};
  NetnsFacts good{.fs_type = NSFS_MAGIC, .ns_type = CLONE_NEWNET, .mode = S_IFREG | 0444,
                  .id = {4, 200}};
  EXPECT_TRUE(check_container_netns("/var/run/netns/p", good, own));

  struct Case {
    const char* name;
    NetnsFacts facts;
    int code;
    const char* says;
  };
  auto with = [&](auto f) {
    NetnsFacts n = good;
    f(n);
    return n;
  };
  const Case cases[] = {
      {"gone", NetnsFacts{.open_errno = ENOENT}, kUnknownContainer, "cannot open"},
      {"no access", NetnsFacts{.open_errno = EACCES}, kUnknownContainer, "Permission denied"},
      {"tmpfs fifo", with([](NetnsFacts& n) { n.fs_type = 0x01021994; n.mode = S_IFIFO | 0600; n.ns_type = 0; }),
       kInvalidEnvironment, "FIFO"},
      {"procfs file", with([](NetnsFacts& n) { n.fs_type = 0x9fa0; n.ns_type = 0; }),
       kInvalidEnvironment, "not a namespace file"},
      {"pid ns", with([](NetnsFacts& n) { n.ns_type = CLONE_NEWPID; }), kInvalidEnvironment, "pid namespace"},
      {"type unknown", with([](NetnsFacts& n) { n.ns_type = 0; }), kInvalidEnvironment, "unknown type"},
      {"own", with([&](NetnsFacts& n) { n.id = own; }), kInvalidEnvironment, "own"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = check_container_netns("/x", c.facts, own);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, c.code);
    EXPECT_NE((r.error().msg + r.error().details).find(c.says), std::string::npos)
        << r.error().msg << ": " << r.error().details;
  }
}

}  // namespace
}  // namespace meshd::cni
