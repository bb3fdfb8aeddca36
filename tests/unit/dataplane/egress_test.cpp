// The egress masquerade's ruleset as text (what libnftables is given) and
// when a node has one at all.
#include "meshd/dataplane/desired_state.h"
#include "meshd/dataplane/egress.h"
#include "tests/unit/dataplane/test_keys.h"

#include <gtest/gtest.h>

namespace meshd::dataplane {
namespace {

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }

TEST(Egress, TheIPv4TableMasqueradesPodsToOutsideTheClusterButNotThroughTheMesh) {
  EgressSpec spec{P("10.244.1.0/24"), P("10.244.0.0/16"), "meshd0"};
  EXPECT_EQ(egress_table_text(spec),
            "table inet meshd {\n"
            "\tchain postrouting {\n"
            "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            "\t\tip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 oifname != \"meshd0\" masquerade\n"
            "\t}\n"
            "}\n");
}

TEST(Egress, TheIPv6TableUsesIp6Matches) {
  EgressSpec spec{P("fd00:10:0:2::/64"), P("fd00:10::/48"), "wg.mesh-0"};
  EXPECT_EQ(egress_table_text(spec),
            "table inet meshd {\n"
            "\tchain postrouting {\n"
            "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            "\t\tip6 saddr fd00:10:0:2::/64 ip6 daddr != fd00:10::/48 oifname != \"wg.mesh-0\" masquerade\n"
            "\t}\n"
            "}\n");
}

// Declare (a no-op when it exists), delete, define: one transaction that
// succeeds whether or not the table is there, and never leaves none.
TEST(Egress, TheApplyScriptReplacesTheWholeTableInOneTransaction) {
  EgressSpec spec{P("10.244.1.0/24"), P("10.244.0.0/16"), "meshd0"};
  EXPECT_EQ(egress_apply_script(spec),
            "table inet meshd {}\n"
            "delete table inet meshd\n" +
                egress_table_text(spec));
}

TEST(Egress, OnlyAClusterNodeWithAPodCidrAndMasqueradeOnHasOne) {
  const auto pods = P("10.244.1.0/24");
  const auto cluster = P("10.244.0.0/16");
  auto on = egress_for(pods, cluster, "meshd0", true);
  ASSERT_TRUE(on);
  EXPECT_EQ(on->pod_cidr, pods);
  EXPECT_EQ(on->cluster_cidr, cluster);
  EXPECT_EQ(on->mesh_interface, "meshd0");
  EXPECT_FALSE(egress_for(pods, cluster, "meshd0", false));                  // [egress] masquerade = false
  EXPECT_FALSE(egress_for(pods, std::nullopt, "meshd0", true));              // static mode: no cluster CIDR
  EXPECT_FALSE(egress_for(std::nullopt, cluster, "meshd0", true));           // a joiner before its CIDR
  EXPECT_FALSE(egress_for(P("fd00:10:0:1::/64"), cluster, "meshd0", true));  // families differ
  // Host bits never reach the rule.
  EXPECT_EQ(egress_for(P("10.244.1.1/24"), P("10.244.7.0/16"), "m", true)->cluster_cidr, cluster);
  EXPECT_EQ(describe(*on), "masquerade 10.244.1.0/24 to outside 10.244.0.0/16 (nftables table inet meshd)");
}

TEST(Egress, TheDesiredStateCarriesItFromTheLocalSpec) {
  LocalSpec l;
  l.interface = "meshd0";
  l.public_key = meshd::testing::pk(100);
  l.pod_cidr = P("10.244.1.0/24");
  l.cluster_cidr = P("10.244.0.0/16");
  EXPECT_FALSE(compute_desired(l, {}).egress);  // off unless asked for
  l.masquerade_egress = true;
  auto d = compute_desired(l, {});
  ASSERT_TRUE(d.egress);
  EXPECT_EQ(*d.egress, (EgressSpec{P("10.244.1.0/24"), P("10.244.0.0/16"), "meshd0"}));
  l.cluster_cidr.reset();
  EXPECT_FALSE(compute_desired(l, {}).egress);
}

}  // namespace
}  // namespace meshd::dataplane
