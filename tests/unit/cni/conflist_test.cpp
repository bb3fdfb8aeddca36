// The conflist meshd installs: what runtimes parse, and how it is replaced.
#include "cni/conflist.h"

#include "cni/config.h"
#include "cni/pod_mtu.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace meshd::cni {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

TEST(Conflist, RendersAPluginEntryThePluginItselfAccepts) {
  ConflistOptions opts;
  opts.database = "/var/lib/meshd/meshd.db";
  opts.mtu = 1380;
  auto text = render_conflist(opts);
  auto o = json::parse(text).as_object();
  EXPECT_EQ(o["name"], "meshd");
  EXPECT_EQ(o["cniVersion"], "1.0.0");
  EXPECT_EQ(o["cniVersions"].as_array().size(), 3u);
  auto plugin = o["plugins"].as_array()[0].as_object();
  EXPECT_EQ(plugin["type"], "meshd-cni");
  EXPECT_EQ(plugin["mtu"], 1380);
  // The runtime passes the entry with name and cniVersion merged in.
  plugin["name"] = o["name"];
  plugin["cniVersion"] = o["cniVersion"];
  auto parsed = parse_config(json::serialize(plugin));
  ASSERT_TRUE(parsed) << parsed.error().msg;
  EXPECT_EQ(parsed->mtu, 1380u);
  EXPECT_FALSE(json::parse(render_conflist({})).as_object()["plugins"].as_array()[0].as_object().contains("mtu"));
}

// portmap and bandwidth follow meshd-cni with the capabilities runtimes look
// for, and the conflist declares no version a chained plugin cannot speak.
TEST(Conflist, ChainedPluginsDeclareTheirCapabilitiesAndCapTheVersions) {
  ConflistOptions opts;
  opts.chained = {"portmap", "bandwidth"};
  opts.log_file = "/var/log/meshd-cni.log";
  opts.cni_version = "1.1.0";  // asked for, but portmap and bandwidth stop at 1.0.0
  auto o = json::parse(render_conflist(opts)).as_object();
  EXPECT_EQ(o["cniVersion"], "1.0.0");
  EXPECT_EQ(json::serialize(o["cniVersions"]), R"(["0.4.0","1.0.0"])");
  auto plugins = o["plugins"].as_array();
  ASSERT_EQ(plugins.size(), 3u);
  EXPECT_EQ(plugins[0].as_object().at("type"), "meshd-cni");
  EXPECT_EQ(plugins[0].as_object().at("logFile"), "/var/log/meshd-cni.log");
  EXPECT_EQ(json::serialize(plugins[1]), R"({"type":"portmap","capabilities":{"portMappings":true}})");
  EXPECT_EQ(json::serialize(plugins[2]), R"({"type":"bandwidth","capabilities":{"bandwidth":true}})");
  // Without a chained plugin, 1.1.0 stays on offer (STATUS, GC).
  auto plain = json::parse(render_conflist({})).as_object();
  EXPECT_EQ(json::serialize(plain["cniVersions"]), R"(["0.4.0","1.0.0","1.1.0"])");
  EXPECT_EQ(plain["plugins"].as_array().size(), 1u);
  // An unknown type is never rendered (the config refuses it).
  opts.chained = {"nonsense"};
  EXPECT_EQ(json::parse(render_conflist(opts)).as_object()["plugins"].as_array().size(), 1u);
}

TEST(Conflist, DefaultNameSortsBeforeTheUsualOnes) {
  const std::string ours = default_conflist_name("meshd");
  EXPECT_EQ(ours, "05-meshd.conflist");
  const std::vector<std::string> usual = {
      "10-containerd-net.conflist", "10-flannel.conflist", "10-calico.conflist",
      "10-weave.conflist", "10-kuberouter.conflist", "87-podman-bridge.conflist",
      "99-loopback.conf", "10-meshd.conflist", "11-crio-ipv4-bridge.conflist",
      "100-crio-bridge.conf", "200-loopback.conf"};
  EXPECT_TRUE(configs_sorting_before(usual, ours).empty());
}

TEST(Conflist, ConfigsSortingBeforeOursAreThoseARuntimeWouldRead) {
  const std::vector<std::string> names = {"00-multus.conf", "04-x.json", "01-notes.txt",
                                          "02-backup.conflist.bak", "10-flannel.conflist",
                                          "05-meshd.conflist", ".conf", "03-a.conflist"};
  EXPECT_EQ(configs_sorting_before(names, "05-meshd.conflist"),
            (std::vector<std::string>{"00-multus.conf", "03-a.conflist", "04-x.json"}));
  EXPECT_EQ(configs_sorting_before(names, "00-a.conflist"), std::vector<std::string>{});
  // The same read from a directory.
  char tmpl[] = "/tmp/meshd-confdir-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  for (const auto& n : names)
    if (n != ".conf") std::ofstream(std::string(tmpl) + "/" + n) << "{}";
  fs::create_directory(std::string(tmpl) + "/01-dir.conf");  // a directory is no config
  EXPECT_EQ(configs_sorting_before_in(tmpl, "05-meshd.conflist"),
            (std::vector<std::string>{"00-multus.conf", "03-a.conflist", "04-x.json"}));
  fs::remove_all(tmpl);
  EXPECT_TRUE(configs_sorting_before_in("/nonexistent/dir", "05-meshd.conflist").empty());
}

TEST(Conflist, ChainedPluginsAreThoseInstalledInABinDir) {
  char tmpl[] = "/tmp/meshd-bindir-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string a = std::string(tmpl) + "/a", b = std::string(tmpl) + "/b";
  fs::create_directories(a);
  fs::create_directories(b);
  std::ofstream(b + "/bandwidth") << "#!/bin/sh\n";
  fs::permissions(b + "/bandwidth", fs::perms::owner_all);
  std::ofstream(a + "/portmap") << "not executable";
  std::vector<std::string> missing;
  EXPECT_EQ(installed_plugins({"portmap", "bandwidth"}, {a, b}, &missing),
            std::vector<std::string>{"bandwidth"});
  EXPECT_EQ(missing, std::vector<std::string>{"portmap"});
  fs::permissions(a + "/portmap", fs::perms::owner_all);
  EXPECT_EQ(installed_plugins({"portmap", "bandwidth"}, {a, b}),
            (std::vector<std::string>{"portmap", "bandwidth"}));
  fs::remove_all(tmpl);
}

TEST(Conflist, OnlyAConflistStartingWithMeshdCniIsMeshds) {
  EXPECT_EQ(legacy_conflist_name("meshd"), "10-meshd.conflist");
  EXPECT_TRUE(is_meshd_conflist(render_conflist({})));
  ConflistOptions chained;
  chained.chained = {"portmap"};
  EXPECT_TRUE(is_meshd_conflist(render_conflist(chained)));
  EXPECT_FALSE(is_meshd_conflist(
      R"({"cniVersion":"1.0.0","name":"meshd","plugins":[{"type":"flannel"},{"type":"portmap"}]})"));
  EXPECT_FALSE(is_meshd_conflist(R"({"cniVersion":"1.0.0","name":"meshd","type":"meshd-cni"})"));
  EXPECT_FALSE(is_meshd_conflist(R"({"plugins":[]})"));
  EXPECT_FALSE(is_meshd_conflist(R"({"plugins":["meshd-cni"]})"));
  EXPECT_FALSE(is_meshd_conflist("not json"));
  EXPECT_FALSE(is_meshd_conflist(""));
}

TEST(PodMtu, NamesPodsAboveTheMeshMtu) {
  std::vector<PodLink> pods = {{"c1", "eth0", "mc1", 1420}, {"c2", "eth0", "mc2", 1380},
                               {"c3", "net1", "mc3", 1400}, {"gone", "eth0", "mc4", 0}};
  EXPECT_EQ(pods_above_mtu(pods, 1380),
            (std::vector<std::string>{"c1/eth0 (host veth mc1, mtu 1420)",
                                      "c3/net1 (host veth mc3, mtu 1400)"}));
  EXPECT_TRUE(pods_above_mtu(pods, 1420).empty());
}

TEST(Conflist, WriteReplacesAtomicallyAndLeavesNoTemporaryFiles) {
  char tmpl[] = "/tmp/meshd-conflist-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  fs::path dir = tmpl;
  auto path = (dir / "10-meshd.conflist").string();
  ConflistOptions opts;
  ASSERT_TRUE(write_conflist(path, opts));
  opts.mtu = 1300;
  ASSERT_TRUE(write_conflist(path, opts));
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, render_conflist(opts));
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  int files = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1);
  auto bad = write_conflist((dir / "missing" / "x.conflist").string(), opts);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("missing"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace meshd::cni
