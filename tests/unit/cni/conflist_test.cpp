// The conflist meshd installs: what runtimes parse, and how it is replaced.
#include "cni/conflist.h"

#include "cni/config.h"

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
