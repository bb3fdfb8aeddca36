// meshd's [cni] section: what the conflist meshd writes is made of.
#include "meshd/config/config.h"
#include "tests/support/config_error.h"

#include <gtest/gtest.h>

namespace meshd::config {
namespace {

std::string error_of(const std::string& text) { return testing::config_error_of(text); }

TEST(CniSettings, Defaults) {
  auto c = parse_config("", "meshd.toml");
  EXPECT_EQ(cni_conflist_path(c), "/etc/cni/net.d/05-meshd.conflist");
  EXPECT_EQ(c.cni_bin_dirs, (std::vector<std::string>{"/opt/cni/bin", "/usr/lib/cni"}));
  EXPECT_EQ(c.cni_chained, (std::vector<std::string>{"portmap", "bandwidth"}));
  EXPECT_EQ(c.cni_mtu, 0u);
  EXPECT_EQ(c.cni_log_file, "");
  c.cni_network = "pods";
  EXPECT_EQ(cni_conflist_path(c), "/etc/cni/net.d/05-pods.conflist");
  c.cni_conf_dir = "";
  EXPECT_EQ(cni_conflist_path(c), "");
}

TEST(CniSettings, EveryKey) {
  auto c = parse_config(R"([cni]
conf_dir = "/tmp/netd"
network = "pods"
conflist = "00-pods.conflist"
bin_dirs = ["/opt/cni/bin"]
chained_plugins = ["bandwidth"]
mtu = 1380
log_file = "/var/log/meshd-cni.log"
)", "meshd.toml");
  EXPECT_EQ(cni_conflist_path(c), "/tmp/netd/00-pods.conflist");
  EXPECT_EQ(c.cni_bin_dirs, std::vector<std::string>{"/opt/cni/bin"});
  EXPECT_EQ(c.cni_chained, std::vector<std::string>{"bandwidth"});
  EXPECT_EQ(c.cni_mtu, 1380u);
  EXPECT_EQ(c.cni_log_file, "/var/log/meshd-cni.log");
  // An empty list chains nothing (not the default).
  EXPECT_TRUE(parse_config("[cni]\nchained_plugins = []\n", "m").cni_chained.empty());
}

TEST(CniSettings, BadValuesAreNamed) {
  for (const char* bad : {"conflist = \"../x.conflist\"", "conflist = \"meshd.conf\"",
                          "conflist = \".conflist\"", "conflist = \"a/b.conflist\"",
                          "conflist = \"a b.conflist\"", "conflist = \"a\\u0000.conflist\""})
    EXPECT_NE(error_of(std::string("[cni]\n") + bad + "\n").find("cni.conflist: expected a file name"),
              std::string::npos)
        << bad;
  EXPECT_NE(error_of("[cni]\nchained_plugins = [\"tuning\"]\n").find("cni.chained_plugins"),
            std::string::npos);
  EXPECT_NE(error_of("[cni]\nchained_plugins = \"portmap\"\n").find("cni.chained_plugins"),
            std::string::npos);
  EXPECT_NE(error_of("[cni]\nbin_dirs = [\"relative\"]\n").find("cni.bin_dirs"), std::string::npos);
  EXPECT_NE(error_of("[cni]\nmtu = 20\n").find("cni.mtu"), std::string::npos);
  EXPECT_NE(error_of("[cni]\nmtu = 70000\n").find("cni.mtu"), std::string::npos);
  EXPECT_NE(error_of("[cni]\nlog_file = \"x.log\"\n").find("cni.log_file"), std::string::npos);
}

}  // namespace
}  // namespace meshd::config
