// Real CNI runtimes drive meshd-cni: libcni (a small Go driver built from
// Debian's libcni source at test time), podman 4.3 with the CNI backend, and
// containerd 1.6 `ctr run --cni`. Everything runs inside a test node
// namespace, the runtimes in a private mount namespace with private config
// and state, so the host's network, /etc/cni, /var/lib and /run are untouched.
#include "cni/conflist.h"
#include "cni/naming.h"
#include "tests/support/cni_harness.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <filesystem>

namespace meshd::testing {
namespace {

namespace fs = std::filesystem;

bool have(const std::string& tool) { return sh("command -v " + tool + " >/dev/null 2>&1") == 0; }

// A node with the plugin (and the reference loopback plugin, which ctr wants)
// in a private bin dir and the conflist written by the library meshd uses.
struct ClientNode {
  CniNode node;
  std::string bin, netd;
  explicit ClientNode(const std::string& cidr) {
    node.set_pod_cidr(cidr, true, 1380);
    bin = node.dir() + "/bin";
    netd = node.dir() + "/netd";
    fs::create_directories(bin);
    fs::create_directories(netd);
    fs::copy_file(plugin_path(), bin + "/meshd-cni");
    if (fs::exists("/usr/lib/cni/loopback")) fs::copy_file("/usr/lib/cni/loopback", bin + "/loopback");
    cni::ConflistOptions opts;
    opts.database = node.db_path();
    opts.log_file = node.dir() + "/cni.log";
    if (auto r = cni::write_conflist(netd + "/10-meshd.conflist", opts); !r)
      throw std::runtime_error(r.error().message);
  }
  std::string run_script(const std::string& script) {
    return sh_out("ip netns exec " + node.name() + " unshare -m --propagation private sh " +
                  std::string(CNI_CLIENTS_SOURCE_DIR) + "/" + script + " " + node.dir() + " 2>" +
                  node.dir() + "/script.err");
  }
  std::string script_errors() { return sh_out("cat " + node.dir() + "/script.err; tail -20 " + node.dir() + "/cni.log"); }
};

class CniClients : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "needs root (network namespaces, mounts)");
  }
};

std::string build_libcni_driver() {
  const std::string gopath = std::string(CNI_CLIENTS_BUILD_DIR) + "/gopath";
  const std::string src = gopath + "/src/meshd/libcni_driver";
  const std::string out = std::string(CNI_CLIENTS_BUILD_DIR) + "/libcni_driver";
  fs::create_directories(src);
  fs::copy_file(std::string(CNI_CLIENTS_SOURCE_DIR) + "/libcni_driver/main.go", src + "/main.go",
                fs::copy_options::overwrite_existing);
  int rc = sh("cd " + src + " && GO111MODULE=off GOPATH=" + gopath + ":/usr/share/gocode GOCACHE=" +
              std::string(CNI_CLIENTS_BUILD_DIR) + "/gocache go build -o " + out + " . >&2");
  return rc == 0 ? out : "";
}

TEST_F(CniClients, LibcniRunsAddCheckAndDel) {
  MESHD_REQUIRE(have("go") && fs::exists("/usr/share/gocode/src/github.com/containernetworking/cni/libcni"), "golang-go and golang-github-appc-cni-dev are needed");
  const std::string driver = build_libcni_driver();
  ASSERT_FALSE(driver.empty()) << "building the libcni driver failed";
  ClientNode cn("10.244.4.0/24");
  Netns pod("lc");
  const std::string conflist = cn.netd + "/10-meshd.conflist";
  const std::string cache = cn.node.dir() + "/cache";
  auto drive = [&](const std::string& cmd) {
    return run_process({"/usr/sbin/ip", "netns", "exec", cn.node.name(), driver, cmd, conflist,
                        cn.bin, cache, "libcni-1", pod.path(), "eth0"},
                       {}, "");
  };
  auto add = drive("add");
  ASSERT_EQ(add.exit_code, 0) << add.out << cn.script_errors();
  EXPECT_NE(add.out.find("10.244.4.2/24"), std::string::npos) << add.out;
  EXPECT_NE(pod.out("ip -4 -o addr show dev eth0").find("10.244.4.2/24"), std::string::npos);
  EXPECT_EQ(cn.node.leases().size(), 1u);
  auto check = drive("check");
  EXPECT_EQ(check.exit_code, 0) << check.out;
  // CHECK through libcni notices a broken pod.
  pod.run("ip route del default");
  EXPECT_NE(drive("check").exit_code, 0);
  auto del = drive("del");
  EXPECT_EQ(del.exit_code, 0) << del.out;
  EXPECT_TRUE(cn.node.leases().empty());
  EXPECT_EQ(cn.node.links(), "");
  EXPECT_EQ(drive("del").exit_code, 0) << "a second DEL succeeds too";
}

TEST_F(CniClients, PodmanRunsAContainerOnTheMeshdNetwork) {
  MESHD_REQUIRE(have("podman") && have("runc"), "podman and runc are needed");
  ClientNode cn("10.244.5.0/24");
  auto out = cn.run_script("podman_run.sh");
  EXPECT_NE(out.find("inet 10.244.5.2/24"), std::string::npos) << out << cn.script_errors();
  EXPECT_NE(out.find("default via 10.244.5.1"), std::string::npos) << out;
  EXPECT_NE(out.find("mtu 1380"), std::string::npos) << out;
  // `--rm`: podman sent DEL, so nothing is left on the node.
  EXPECT_TRUE(cn.node.leases().empty());
  EXPECT_EQ(cn.node.links(), "");
}

TEST_F(CniClients, ContainerdCtrRunCniRunsAContainerOnTheMeshdNetwork) {
  MESHD_REQUIRE(have("containerd") && have("ctr") && have("podman"), "containerd, ctr and podman are needed");
  ClientNode cn("10.244.6.0/24");
  auto out = cn.run_script("containerd_run.sh");
  EXPECT_NE(out.find("inet 10.244.6.2/24"), std::string::npos) << out << cn.script_errors();
  EXPECT_NE(out.find("default via 10.244.6.1"), std::string::npos) << out;
  EXPECT_NE(out.find("mtu 1380"), std::string::npos) << out;
  // ctr sends DEL with an empty CNI_NETNS: the lease and the host veth still go.
  EXPECT_NE(sh_out("cat " + cn.node.dir() + "/cni.log").find("DEL meshd default-meshd-ctr eth0 (netns \"\")"), std::string::npos)
      << cn.script_errors();
  EXPECT_TRUE(cn.node.leases().empty()) << cn.script_errors();
  EXPECT_EQ(cn.node.links(), "");
}

}  // namespace
}  // namespace meshd::testing
