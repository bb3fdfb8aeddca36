// The unit, tmpfiles entry, default config, install rules and Debian
// package as users get them (docs/systemd.md). Everything is installed into
// a temporary DESTDIR or read out of the .deb: the host's /etc, /usr and
// systemd are never touched. The unit under a running systemd and the
// package's install/remove/purge are proven in the qemu guest.
#include "meshd/config/config.h"
#include "tests/support/prerequisite.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace meshd::testing {
namespace {

namespace fs = std::filesystem;

std::string tool(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin"}) {
    std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

ProcessResult run(const std::vector<std::string>& argv,
                  std::optional<std::map<std::string, std::string>> env = std::nullopt) {
  RunOptions o;
  o.env = std::move(env);
  return run_process(argv, "", o);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

// `cmake --install` of this build into DESTDIR=dest with prefix /usr (what
// the package ships); the manifest it wrote is copied to dest/../manifest.
void install_into(const std::string& dest, const std::string& manifest_copy) {
  auto r = run({MESHD_CMAKE, "--install", MESHD_BUILD_DIR, "--prefix", "/usr"},
               std::map<std::string, std::string>{{"DESTDIR", dest}, {"PATH", "/usr/bin:/bin"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  fs::copy_file(std::string(MESHD_BUILD_DIR) + "/install_manifest.txt", manifest_copy,
                fs::copy_options::overwrite_existing);
}

void uninstall_from(const std::string& dest, const std::string& manifest) {
  auto r = run({MESHD_CMAKE, "-DMANIFEST=" + manifest, "-P",
                std::string(MESHD_BUILD_DIR) + "/cmake_uninstall.cmake"},
               std::map<std::string, std::string>{{"DESTDIR", dest}, {"PATH", "/usr/bin:/bin"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

const std::vector<std::string> kInstalled = {
    "/usr/bin/meshd",          "/usr/bin/meshctl",   "/opt/cni/bin/meshd-cni",
    "/usr/lib/systemd/system/meshd.service", "/usr/lib/tmpfiles.d/meshd.conf",
    "/etc/meshd/meshd.toml"};

// systemd-analyze verify accepts a unit: exit 0 and nothing said. verify
// only warns (exit 0) about an unknown key or a bad value, which systemd
// then ignores: a typo in a hardening line would silently drop it.
::testing::AssertionResult verifies(const std::string& unit) {
  auto r = run({tool("systemd-analyze"), "verify", unit});
  if (r.exit_code != 0 || !r.out.empty() || !r.err.empty())
    return ::testing::AssertionFailure() << "systemd-analyze verify " << unit << ": exit "
                                         << r.exit_code << "\n" << r.out << r.err;
  return ::testing::AssertionSuccess();
}

class Installed : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(!tool("systemd-analyze").empty(), "systemd-analyze (package systemd)");
    install_into(root_.path() + "/root", manifest());
  }
  std::string root() const { return root_.path() + "/root"; }
  std::string manifest() const { return root_.file("manifest.txt"); }
  // The installed unit, with meshd's path moved into DESTDIR, for verify
  // (which checks that ExecStart's program exists) and the offline analysis.
  std::string unit_for_analysis() {
    std::string text = read_file(root() + "/usr/lib/systemd/system/meshd.service");
    const std::string from = "ExecStart=/usr/bin/meshd ";
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << text;
    if (at != std::string::npos) text.replace(at, from.size(), "ExecStart=" + root() + "/usr/bin/meshd ");
    fs::create_directories(root_.file("analysis"));
    std::string path = root_.file("analysis/meshd.service");
    write_file(path, text);
    return path;
  }
  TempDir root_{"meshd-package"};
};

TEST_F(Installed, UnitVerifiesAndABrokenOneDoesNot) {
  auto unit = unit_for_analysis();
  EXPECT_TRUE(verifies(unit));
  // The check above must catch what breaks a unit quietly.
  std::string good = read_file(unit);
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"Type=notify\n", "Type=notifyy\n"},
           {"ProtectSystem=strict\n", "ProtectSytem=strict\n"},
           {"ExecStart=" + root() + "/usr/bin/meshd", "ExecStart=" + root() + "/usr/bin/meshd-missing"}}) {
    std::string bad = good;
    auto at = bad.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    bad.replace(at, from.size(), to);
    std::string path = root_.file("analysis/broken.service");
    write_file(path, bad);
    EXPECT_FALSE(verifies(path)) << "accepted with " << to;
  }
}

TEST_F(Installed, ExposureIsAtMostThree) {
  auto r = run({tool("systemd-analyze"), "security", "--offline=yes", "--no-pager", unit_for_analysis()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(Overall exposure level for meshd\.service: ([0-9.]+))")))
      << r.out;
  double exposure = std::stod(m[1]);
  std::printf("systemd-analyze security exposure: %.1f\n", exposure);
  EXPECT_LE(exposure, 3.0) << r.out;
}

// The choices docs/systemd.md explains, as the installed unit has them.
TEST_F(Installed, UnitMakesTheDocumentedChoices) {
  std::string unit = read_file(root() + "/usr/lib/systemd/system/meshd.service");
  std::set<std::string> have;
  for (const auto& l : lines(unit))
    if (l[0] != '#') have.insert(l);
  for (const char* line :
       {"Type=notify", "NotifyAccess=main", "ExecStart=/usr/bin/meshd --config /etc/meshd/meshd.toml",
        "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30", "Restart=on-failure",
        "RestartPreventExitStatus=2", "KillMode=process", "StateDirectory=meshd",
        "ConfigurationDirectory=meshd", "RuntimeDirectory=meshd wireguard", "RuntimeDirectoryPreserve=yes",
        "CapabilityBoundingSet=CAP_NET_ADMIN", "NoNewPrivileges=yes", "ProtectSystem=strict",
        "ReadWritePaths=-/etc/cni/net.d", "ProtectHome=yes", "PrivateTmp=yes", "PrivateMounts=yes", "DeviceAllow=/dev/net/tun rw",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6", "SystemCallFilter=@system-service",
        "WantedBy=multi-user.target"})
    EXPECT_TRUE(have.contains(line)) << "missing: " << line;
  // The directories meshd writes agree with the shipped config's.
  auto cfg = config::load_config(root() + "/etc/meshd/meshd.toml");
  EXPECT_EQ(cfg.database.rfind("/var/lib/meshd/", 0), 0u) << cfg.database;  // StateDirectory
  EXPECT_EQ(cfg.runtime_dir, "/run/meshd");                                // RuntimeDirectory
  EXPECT_EQ(cfg.userspace_socket_dir, "/var/run/wireguard");               // RuntimeDirectory (/run)
  EXPECT_EQ(cfg.cni_conf_dir, "/etc/cni/net.d");                           // ReadWritePaths
}

TEST_F(Installed, LayoutThenUninstallRemovesIt) {
  for (const auto& f : kInstalled) EXPECT_TRUE(fs::is_regular_file(root() + f)) << f;
  for (const char* exe : {"/usr/bin/meshd", "/usr/bin/meshctl", "/opt/cni/bin/meshd-cni"})
    EXPECT_EQ(file_mode(root() + exe), 0755u) << exe;
  EXPECT_EQ(file_mode(root() + "/etc/meshd/meshd.toml"), 0644u);
  EXPECT_EQ(file_mode(root() + "/usr/lib/systemd/system/meshd.service"), 0644u);
  // Test and benchmark builds are never installed, nor a conflist (meshd
  // writes it once its pod CIDR is settled).
  std::vector<std::string> all;
  for (const auto& e : fs::recursive_directory_iterator(root()))
    if (!e.is_directory()) all.push_back(e.path().string().substr(root().size()));
  std::sort(all.begin(), all.end());
  auto want = kInstalled;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(all, want);
  // The manifest lists exactly that, and uninstalling removes it all.
  auto listed = lines(read_file(manifest()));
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, want);
  uninstall_from(root(), manifest());
  for (const auto& f : kInstalled) EXPECT_FALSE(fs::exists(root() + f)) << f;
  EXPECT_FALSE(fs::exists(root() + "/etc/meshd"));
}

TEST_F(Installed, AnEditedConfigIsNeverOverwrittenNorUninstalled) {
  const std::string conf = root() + "/etc/meshd/meshd.toml";
  std::string shipped = read_file(conf);
  write_file(conf, shipped + "\n# the operator's edit\n");
  install_into(root(), manifest());
  EXPECT_EQ(read_file(conf), shipped + "\n# the operator's edit\n");
  auto listed = lines(read_file(manifest()));
  EXPECT_EQ(std::count(listed.begin(), listed.end(), "/etc/meshd/meshd.toml"), 0);
  uninstall_from(root(), manifest());
  EXPECT_TRUE(fs::exists(conf));
  EXPECT_FALSE(fs::exists(root() + "/usr/bin/meshd"));
}

// The shipped config loads, through meshd itself as installed; so do its
// two documented edits ([cluster] on the first node, [join] on the others).
TEST_F(Installed, ShippedConfigLoadsAsShippedAndAsEditedForAClusterNode) {
  const std::string conf = root() + "/etc/meshd/meshd.toml";
  auto r = run({root() + "/usr/bin/meshd", "--config", conf, "--check-config"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("interface=meshd0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cni_conflist=/etc/cni/net.d/"), std::string::npos) << r.out;
  auto cfg = config::load_config(conf);
  EXPECT_FALSE(cfg.cluster_mode) << "as shipped, a node founds nothing until told";

  std::string text = read_file(conf);
  auto uncomment = [](std::string t, const std::string& section) {
    // "# [cluster]" and the "# key = ..." lines under it, up to a blank line.
    auto at = t.find("# " + section + "\n");
    EXPECT_NE(at, std::string::npos) << section;
    while (at != std::string::npos && at < t.size() && t.compare(at, 2, "# ") == 0) {
      t.erase(at, 2);
      at = t.find('\n', at);
      if (at != std::string::npos) ++at;
    }
    return t;
  };
  write_file(root_.file("cluster.toml"), uncomment(text, "[cluster]"));
  auto founder = config::load_config(root_.file("cluster.toml"));
  EXPECT_TRUE(founder.cluster_mode);
  EXPECT_EQ(founder.cluster_cidr.to_string(), "10.244.0.0/16");
  write_file(root_.file("join.toml"), uncomment(text, "[join]"));
  auto joiner = config::load_config(root_.file("join.toml"));
  EXPECT_TRUE(joiner.cluster_mode);
  ASSERT_TRUE(joiner.join_target);
  EXPECT_EQ(joiner.join_target->to_string(), "192.0.2.10:51821");

  r = run({root() + "/usr/bin/meshd", "--config", root_.file("missing.toml"), "--check-config"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
}

// The tmpfiles entry makes the directories the unit's sandbox needs.
TEST_F(Installed, TmpfilesEntryCreatesTheDirectories) {
  auto tmpfiles = tool("systemd-tmpfiles");
  MESHD_REQUIRE(!tmpfiles.empty(), "systemd-tmpfiles (package systemd)");
  auto r = run({tmpfiles, "--create", "--root=" + root(), "meshd.conf"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_TRUE(fs::is_directory(root() + "/etc/cni/net.d"));
  EXPECT_EQ(file_mode(root() + "/var/lib/meshd"), 0700u);
  EXPECT_EQ(file_mode(root() + "/run/meshd"), 0755u);
}

class Package : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* t : {"dpkg-deb", "dpkg-shlibdeps", "file"})
      MESHD_REQUIRE(!tool(t).empty(), std::string(t) + " (packages dpkg-dev, file)");
    auto r = run({MESHD_CPACK, "-G", "DEB", "-B", dir_.file("out"), "--config",
                  std::string(MESHD_BUILD_DIR) + "/CPackConfig.cmake"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    deb_ = dir_.file("out/meshd_" MESHD_VERSION_TEXT "_amd64.deb");
    ASSERT_TRUE(fs::is_regular_file(deb_)) << r.out;
    r = run({tool("dpkg-deb"), "-e", deb_, dir_.file("control")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string field(const std::string& name) {
    auto r = run({tool("dpkg-deb"), "-f", deb_, name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  }
  std::string control(const std::string& file) { return read_file(dir_.file("control/" + file)); }
  TempDir dir_{"meshd-deb"};
  std::string deb_;
};

TEST_F(Package, ControlFields) {
  EXPECT_EQ(field("Package"), "meshd");
  EXPECT_EQ(field("Version"), MESHD_VERSION_TEXT);
  EXPECT_EQ(field("Architecture"), "amd64");
  auto depends = field("Depends");
  EXPECT_EQ(depends.rfind("wireguard-tools, ", 0), 0u) << depends;
  // Computed by dpkg-shlibdeps from the binaries, not written by hand.
  for (const char* lib : {"libc6 (>= ", "libsodium23", "libmnl0", "libnftables1", "libsqlite3-0"})
    EXPECT_NE(depends.find(lib), std::string::npos) << lib << " in " << depends;
  EXPECT_EQ(field("Recommends"), "wireguard-go");
  EXPECT_FALSE(field("Description").empty());
}

TEST_F(Package, ContentsAndConffiles) {
  auto r = run({tool("dpkg-deb"), "-c", deb_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> files;
  for (const auto& l : lines(r.out)) {
    if (l[0] == 'd') continue;
    auto at = l.find(" ./");
    ASSERT_NE(at, std::string::npos) << l;
    files.push_back(l.substr(at + 2));
    if (files.back().find("/bin/") != std::string::npos) {
      EXPECT_EQ(l.rfind("-rwxr-xr-x root/root", 0), 0u) << l;
    }
  }
  std::sort(files.begin(), files.end());
  auto want = kInstalled;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(files, want);
  EXPECT_EQ(control("conffiles"), "/etc/meshd/meshd.toml\n");
}

TEST_F(Package, MaintainerScriptsNeverEnableOrStartAndGuardSystemd) {
  for (const char* s : {"postinst", "prerm", "postrm"}) {
    EXPECT_EQ(file_mode(dir_.file(std::string("control/") + s)), 0755u) << s;
    std::string text = control(s);
    EXPECT_EQ(text.rfind("#!/bin/sh\n", 0), 0u) << s;
    // Each systemctl command (not the messages that tell the operator what
    // to run): never enable, start or restart; and every call to a running
    // systemd sits inside `if [ -d /run/systemd/system ]` (a chroot or an
    // image build has none), but the offline `--no-reload disable`.
    std::vector<bool> guards;  // the open `if`s: is each the systemd test?
    int commands = 0;
    for (auto l : lines(text)) {
      l.erase(0, l.find_first_not_of(' '));
      if (l.rfind("if ", 0) == 0) guards.push_back(l.find("[ -d /run/systemd/system ]") != std::string::npos);
      if (l.rfind("fi", 0) == 0 && !guards.empty()) guards.pop_back();
      if (l.rfind("systemctl ", 0) != 0) continue;
      ++commands;
      for (const char* verb : {" enable", " start ", " restart ", " reenable", " unmask"})
        EXPECT_EQ(l.find(verb), std::string::npos) << s << ": " << l;
      if (l.find("--no-reload disable") != std::string::npos) continue;
      EXPECT_TRUE(std::find(guards.begin(), guards.end(), true) != guards.end()) << s << ": unguarded: " << l;
    }
    EXPECT_GT(commands, 0) << s;
    if (auto sc = tool("shellcheck"); !sc.empty()) {
      auto r = run({sc, "-s", "sh", dir_.file(std::string("control/") + s)});
      EXPECT_EQ(r.exit_code, 0) << s << ":\n" << r.out << r.err;
    } else {
      MESHD_REQUIRE(false, "shellcheck");
    }
  }
  // Purge tears the mesh down and deletes config and state; remove does not.
  std::string postrm = control("postrm");
  auto purge = postrm.find("  purge)");
  ASSERT_NE(purge, std::string::npos);
  EXPECT_NE(postrm.find("rm -rf /var/lib/meshd /etc/meshd", purge), std::string::npos);
  EXPECT_NE(postrm.find("teardown\n", purge), std::string::npos);
  auto remove = postrm.find("  remove)");
  ASSERT_NE(remove, std::string::npos);
  EXPECT_EQ(postrm.substr(remove, purge - remove).find("rm "), std::string::npos);
  // An upgrade (postinst configure with the old version) restarts only a
  // running meshd, and nothing else touches config or state.
  EXPECT_NE(control("postinst").find("try-restart meshd.service"), std::string::npos);
  EXPECT_EQ(control("postinst").find("rm "), std::string::npos);
}

}  // namespace
}  // namespace meshd::testing
