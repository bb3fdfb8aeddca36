// Host veth names: what DEL and GC rely on to find a pod's host side without state.
#include "cni/naming.h"

#include <gtest/gtest.h>

#include <set>

namespace meshd::cni {
namespace {

TEST(HostVethName, IsStableFitsIfnamsizAndCarriesTheNetworkPrefix) {
  auto a = host_veth_name("meshd", "abc", "eth0");
  EXPECT_EQ(a, host_veth_name("meshd", "abc", "eth0"));
  EXPECT_EQ(a.size(), 15u);
  EXPECT_EQ(a.rfind(host_veth_prefix("meshd"), 0), 0u);
  EXPECT_EQ(host_veth_prefix("meshd").size(), 6u);
  // A pinned value: a newer plugin must find veths an older one made.
  EXPECT_EQ(a, "mcd10881be81b20");
}

TEST(HostVethName, DiffersPerAttachmentAndNetwork) {
  EXPECT_NE(host_veth_name("meshd", "abc", "eth0"), host_veth_name("meshd", "abc", "eth1"));
  EXPECT_NE(host_veth_name("meshd", "ab", "ceth0"), host_veth_name("meshd", "abc", "eth0"));
  EXPECT_NE(host_veth_prefix("meshd"), host_veth_prefix("other"));
  std::set<std::string> names;
  for (int i = 0; i < 10000; ++i) names.insert(host_veth_name("meshd", "c" + std::to_string(i), "eth0"));
  EXPECT_EQ(names.size(), 10000u);
}

}  // namespace
}  // namespace meshd::cni
