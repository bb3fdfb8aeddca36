// Drives the real meshd-cni binary the way a runtime does — env + stdin in,
// stdout + exit status out — always inside a test "node" namespace, never in
// the host's own (the plugin creates veths and routes and sets ip_forward
// where it runs). Each node has its own temporary database.
#pragma once

#include "store/database.h"
#include "store/ipam.h"
#include "store/local_node.h"
#include "tests/support/netns.h"
#include "tests/support/process.h"

#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace meshd::testing {

inline std::string plugin_path() { return std::string(MESHD_BIN_DIR) + "/meshd-cni"; }
// The test build that fails after a named ADD step (MESHD_CNI_TEST_FAIL_AT).
inline std::string faults_plugin_path() { return std::string(MESHD_BIN_DIR) + "/meshd-cni-faults"; }

struct PluginRun : ProcessResult {
  boost::json::object json() const {
    boost::system::error_code ec;
    auto v = boost::json::parse(out, ec);
    if (ec || !v.is_object()) return {};
    return v.as_object();
  }
  int code() const {  // the CNI error code, 0 if none
    auto o = json();
    auto it = o.find("code");
    return it == o.end() ? 0 : static_cast<int>(it->value().to_number<int>());
  }
};

// Runs `argv` with exactly `env` (plus PATH) and `in` on stdin, as a runtime
// runs a plugin; collects stdout. The plugin's stderr goes to the test's own
// (it shows in a failing test's log). The child inherits the caller's
// network namespace.
inline PluginRun run_process(const std::vector<std::string>& argv,
                             const std::map<std::string, std::string>& env, const std::string& in) {
  return PluginRun{run_process(argv, in, RunOptions{.env = env, .capture_stderr = false})};
}

// "ip netns exec NODE <bin>": the plugin runs in the node namespace.
inline PluginRun run_in_node(const std::string& node, const std::string& bin,
                             const std::map<std::string, std::string>& env, const std::string& in) {
  std::string ip = access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
  return run_process({ip, "netns", "exec", node, bin}, env, in);
}

// A node: its namespace and its database (with or without a pod CIDR).
class CniNode {
 public:
  explicit CniNode(const std::string& prefix = "cn") : ns_(prefix) {
    char tmpl[] = "/tmp/meshd-cni-test-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    db_path_ = dir_ + "/meshd.db";
  }
  ~CniNode() { sh("rm -rf " + dir_); }

  Netns& ns() { return ns_; }
  const std::string& name() const { return ns_.name(); }
  const std::string& db_path() const { return db_path_; }
  const std::string& dir() const { return dir_; }

  // Created the way meshd creates it (default options: create and migrate);
  // the plugin itself never creates or migrates it.
  store::Database& db() {
    if (!db_) db_ = std::make_unique<store::Database>(store::DatabaseOptions{.path = db_path_});
    return *db_;
  }
  void set_pod_cidr(const std::string& cidr, bool settled = true, unsigned mtu = 1380) {
    store::LocalNodeRepo repo(db());
    repo.set_pod_cidr(*IpPrefix::parse(cidr), settled).value();
    repo.set_mtu(mtu).value();
  }
  std::vector<store::Lease> leases(const std::string& network = "meshd") {
    return store::Ipam(db()).list(network).value();
  }

  std::string config(const std::string& version, const std::string& extra = "",
                     const std::string& network = "meshd") const {
    return R"({"cniVersion":")" + version + R"(","name":")" + network +
           R"(","type":"meshd-cni","database":")" + db_path_ + "\"" + extra + "}";
  }

  PluginRun run(const std::string& command, const std::string& stdin_json,
                std::map<std::string, std::string> env = {},
                const std::string& bin = plugin_path()) {
    env["CNI_COMMAND"] = command;
    if (!env.count("CNI_PATH")) env["CNI_PATH"] = "/opt/cni/bin";
    return run_in_node(name(), bin, env, stdin_json);
  }
  PluginRun attach(const std::string& command, const std::string& stdin_json,
                   const std::string& container, const std::string& netns_path,
                   const std::string& ifname = "eth0",
                   std::map<std::string, std::string> extra_env = {},
                   const std::string& bin = plugin_path()) {
    extra_env["CNI_CONTAINERID"] = container;
    extra_env["CNI_NETNS"] = netns_path;
    extra_env["CNI_IFNAME"] = ifname;
    return run(command, stdin_json, std::move(extra_env), bin);
  }
  // Links of the node namespace whose names start with `prefix`.
  std::string links(const std::string& prefix = "mc") {
    return ns_.out("sh -c \"ip -o link show | awk -F': ' '{print \\$2}' | cut -d@ -f1 | grep '^" +
                   prefix + "' || true\"");
  }

 private:
  Netns ns_;
  std::string dir_;
  std::string db_path_;
  std::unique_ptr<store::Database> db_;
};

// What a runtime hands the chain's first plugin from a conflist (meshd's):
// that plugin's entry plus the network's name and version.
inline std::string plugin_config_from_conflist(const std::string& conflist_path) {
  auto list = boost::json::parse(read_file(conflist_path)).as_object();
  auto plugin = list.at("plugins").as_array().at(0).as_object();
  plugin["name"] = list.at("name");
  plugin["cniVersion"] = list.at("cniVersion");
  return boost::json::serialize(plugin);
}

// The config a runtime passes on DEL/CHECK: the plugin entry plus prevResult.
inline std::string with_prev_result(const std::string& config, const std::string& add_out) {
  auto o = boost::json::parse(config).as_object();
  o["prevResult"] = boost::json::parse(add_out);
  return boost::json::serialize(o);
}

}  // namespace meshd::testing
