// meshd's log lines as journal entries (issue 14), with real meshd processes
// and the real libsystemd: each node runs as systemd would run it with
// StandardOutput=journal ($JOURNAL_STREAM naming its stdout), in a mount
// namespace where /run/systemd/journal/socket is a datagram socket of the
// test's (tests/support/journal_socket.h). The test reads the entries as
// journald would receive them and checks the fields docs/logging.md lists:
// MESSAGE, PRIORITY from the level, SYSLOG_IDENTIFIER, MESHD_COMPONENT,
// MESHD_NODE, MESHD_PEER on the lines about a peer; that the lines went to
// the journal instead of stdout; and that neither a bootstrap token nor a
// WireGuard private key reaches the journal.
#include "store/database.h"
#include "store/local_node.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/journal_socket.h"
#include "tests/support/netns.h"
#include "tests/support/prerequisite.h"
#include "tests/support/process.h"
#include "tests/support/underlay.h"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>

namespace meshd::testing {
namespace {

// The fields of an entry, one a line, for failure messages.
std::string show(const JournalEntry& e) {
  std::ostringstream o;
  for (const auto& [k, v] : e) o << "  " << k << "=" << v << "\n";
  return o.str();
}
std::string show_all(const JournalSocket& j) {
  std::ostringstream o;
  for (const auto& e : j.entries()) {
    auto m = e.find("MESSAGE");
    if (m != e.end() && m->second.rfind("in sync:", 0) == 0) continue;  // every pass at debug level
    o << (e.count("PRIORITY") ? e.at("PRIORITY") : "?") << " "
      << (e.count("MESHD_COMPONENT") ? e.at("MESHD_COMPONENT") : "?") << " "
      << (e.count("MESHD_PEER") ? "[" + e.at("MESHD_PEER") + "] " : "") << (m == e.end() ? "" : m->second)
      << "\n";
  }
  return o.str();
}

// The first entry whose MESSAGE holds `needle`, waited for up to `bound`.
std::optional<JournalEntry> wait_entry(const JournalSocket& j, const std::string& needle,
                                       std::chrono::milliseconds bound = 30s) {
  std::optional<JournalEntry> found;
  eventually(
      [&] {
        for (const auto& e : j.entries())
          if (auto m = e.find("MESSAGE"); m != e.end() && m->second.find(needle) != std::string::npos) {
            found = e;
            return true;
          }
        return false;
      },
      bound, 50ms);
  return found;
}

std::string field(const JournalEntry& e, const std::string& key) {
  auto it = e.find(key);
  return it == e.end() ? "(absent)" : it->second;
}

// The WireGuard private key in a node's store (base64), to look for in its journal.
std::string private_key_of(const ClusterNodes::Node& n) {
  auto db = ClusterNodes::open_store(n);
  auto key = store::LocalNodeRepo(*db).wg_private_key();
  if (!key || !*key) return "";
  return (*key)->to_base64_secret();
}

TEST(Journal, FieldsPriorityPeerAndNoSecrets) {
  MESHD_REQUIRE(is_root(), "needs root (network and mount namespaces)");
  MESHD_REQUIRE(sh("command -v unshare >/dev/null && command -v wireguard-go >/dev/null") == 0,
                "needs unshare (util-linux) and wireguard-go");
  ClusterNodes c;
  TempDir jdir("meshd-journal");
  const std::string meshd = std::string(MESHD_BIN_DIR) + "/meshd";
  std::map<std::string, std::unique_ptr<JournalSocket>> journals;
  auto start = [&](ClusterNodes::Node& n) {
    auto& j = journals[n.name];
    if (!j) j = std::make_unique<JournalSocket>(jdir.path() + "/" + n.name);
    c.start(n, journal_wrapper(jdir.path() + "/" + n.name + "-meshd.sh", *j, meshd));
  };

  auto& n1 = c.add_node("node1");
  start(n1);
  ASSERT_TRUE(c.wait_settled(n1)) << show_all(*journals["node1"]) << c.log_tail(n1);
  auto& n2 = c.add_node("node2", &n1);
  const std::string token = ClusterNodes::create_token(n1);
  c.write_token(n2, token);
  start(n2);
  JournalSocket& j1 = *journals["node1"];
  JournalSocket& j2 = *journals["node2"];

  // The control plane: node1 admits node2.
  auto admitted = wait_entry(j1, "admitted node2");
  ASSERT_TRUE(admitted) << show_all(j1);
  EXPECT_EQ(field(*admitted, "PRIORITY"), "6") << show(*admitted);
  EXPECT_EQ(field(*admitted, "SYSLOG_IDENTIFIER"), "meshd") << show(*admitted);
  EXPECT_EQ(field(*admitted, "MESHD_COMPONENT"), "cluster") << show(*admitted);
  EXPECT_EQ(field(*admitted, "MESHD_NODE"), "node1") << show(*admitted);
  EXPECT_EQ(field(*admitted, "MESHD_PEER"), "node2") << show(*admitted);
  // Only the documented fields: no CODE_FILE naming the sink's own source.
  EXPECT_EQ(admitted->size(), 6u) << show(*admitted);
  // The data plane: node1 adds node2's WireGuard peer.
  auto added = wait_entry(j1, "add peer ");
  ASSERT_TRUE(added) << show_all(j1);
  EXPECT_EQ(field(*added, "MESHD_COMPONENT"), "reconcile") << show(*added);
  EXPECT_EQ(field(*added, "MESHD_PEER"), "node2") << show(*added);
  EXPECT_EQ(field(*added, "MESHD_NODE"), "node1") << show(*added);
  // A line about no peer carries none.
  auto starting = wait_entry(j1, "starting (config ");
  ASSERT_TRUE(starting) << show_all(j1);
  EXPECT_EQ(field(*starting, "MESHD_PEER"), "(absent)") << show(*starting);
  EXPECT_EQ(field(*starting, "MESHD_COMPONENT"), "meshd") << show(*starting);
  // node2 names itself.
  auto joined = wait_entry(j2, "joined cluster");
  ASSERT_TRUE(joined) << show_all(j2);
  EXPECT_EQ(field(*joined, "MESHD_NODE"), "node2") << show(*joined);

  // A warning: a join with a token node1 never issued (the secret part is
  // the test's, so that it can be looked for).
  auto& n3 = c.add_node("node3", &n1);
  const std::string forged = token.substr(0, token.find('.')) + ".jrnltestsecret99";
  c.write_token(n3, forged);
  start(n3);
  JournalSocket& j3 = *journals["node3"];
  auto refused = wait_entry(j1, "join from " + n3.underlay);
  ASSERT_TRUE(refused) << show_all(j1);
  EXPECT_NE(field(*refused, "MESSAGE").find("refused"), std::string::npos) << show(*refused);
  EXPECT_EQ(field(*refused, "PRIORITY"), "4") << show(*refused);
  EXPECT_TRUE(wait_entry(j3, "joining the cluster through " + n1.join_endpoint())) << show_all(j3);
  c.stop(n3);

  // node2 removed: node1 names it on the removal and on its peer's removal;
  // node2 logs its own removal as an error.
  auto del = api_request(n1.api_socket(), "DELETE", "/v1/nodes/node2");
  ASSERT_TRUE(del.status == 200 || del.status == 202) << del.status << " " << del.body;
  auto removed = wait_entry(j1, "removed node node2");
  ASSERT_TRUE(removed) << show_all(j1);
  EXPECT_EQ(field(*removed, "MESHD_PEER"), "node2") << show(*removed);
  auto peer_removed = wait_entry(j1, "remove peer ");
  ASSERT_TRUE(peer_removed) << show_all(j1);
  EXPECT_EQ(field(*peer_removed, "MESHD_PEER"), "node2") << show(*peer_removed);
  auto self_removed = wait_entry(j2, "was removed from the cluster");
  ASSERT_TRUE(self_removed) << show_all(j2);
  EXPECT_EQ(field(*self_removed, "PRIORITY"), "3") << show(*self_removed);

  // The debug lines (--log-level debug) arrive with PRIORITY=7.
  bool debug_seen = false;
  for (const auto& e : j1.entries()) debug_seen |= field(e, "PRIORITY") == "7";
  EXPECT_TRUE(debug_seen) << show_all(j1);

  // Every datagram parsed; the lines went to the journal, not to stdout.
  for (auto* j : {&j1, &j2, &j3}) EXPECT_EQ(j->error(), "");
  EXPECT_EQ(c.log(n1).find("admitted node2"), std::string::npos) << c.log(n1);

  // No secret in any datagram: the tokens (whole and their secret halves),
  // the private keys.
  std::vector<std::string> secrets{token, token.substr(token.find('.') + 1), forged,
                                   forged.substr(forged.find('.') + 1)};
  for (auto* n : {&n1, &n2, &n3}) {
    auto k = private_key_of(*n);
    ASSERT_FALSE(k.empty()) << n->name << " has no private key in its store";
    secrets.push_back(k);
  }
  for (auto* j : {&j1, &j2, &j3}) {
    std::string raw = j->raw();
    ASSERT_FALSE(raw.empty());
    for (const auto& s : secrets) EXPECT_EQ(raw.find(s), std::string::npos) << "a secret reached the journal";
  }
}

// A start-up error under the journal: an entry with PRIORITY=3 (not a bare
// stderr line), which names the problem and not the secret: a token file
// others can read is refused without its contents being shown.
TEST(Journal, StartupErrorIsAnErrorEntryWithoutTheSecret) {
  MESHD_REQUIRE(is_root(), "needs root (mount namespaces)");
  MESHD_REQUIRE(sh("command -v unshare >/dev/null && command -v wireguard-go >/dev/null") == 0,
                "needs unshare (util-linux) and wireguard-go");
  TempDir dir("meshd-journal");
  JournalSocket j(dir.path() + "/sd");
  const std::string secret = "startupsecret123";  // a well-formed secret: the mode is what is wrong
  write_file(dir.path() + "/token", "abcdef." + secret + "\n");
  ::chmod((dir.path() + "/token").c_str(), 0644);
  write_file(dir.path() + "/meshd.toml",
             "[node]\nname = \"lonely\"\n[wireguard]\ninterface = \"mj0\"\nbackend = \"userspace\"\n"
             "[userspace]\nsocket_dir = \"" + dir.path() + "/wg\"\n"
             "[state]\ndatabase = \"" + dir.path() + "/meshd.db\"\nruntime_dir = \"" + dir.path() + "/run\"\n"
             "[cluster]\n[join]\ntarget = \"127.0.0.1:51821\"\ntoken_file = \"" + dir.path() + "/token\"\n"
             "[api]\nsocket = \"\"\n[cni]\nconf_dir = \"" + dir.path() + "/net.d\"\n");
  auto wrapper = journal_wrapper(dir.path() + "/meshd.sh", j, std::string(MESHD_BIN_DIR) + "/meshd");
  // In a namespace of its own: meshd makes its device before it reads the token.
  Netns ns("mjs");
  std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
  auto r = run_process({ip, "netns", "exec", ns.name(), wrapper, "--config", dir.path() + "/meshd.toml"}, "");
  end_processes_in(ns);  // a wireguard-go it may have started
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto e = wait_entry(j, "token", 10s);
  ASSERT_TRUE(e) << show_all(j) << r.out << r.err;
  EXPECT_EQ(field(*e, "PRIORITY"), "3") << show(*e);
  EXPECT_EQ(field(*e, "MESHD_NODE"), "lonely") << show(*e);
  EXPECT_EQ(j.raw().find(secret), std::string::npos) << show_all(j);
  EXPECT_EQ((r.out + r.err).find(secret), std::string::npos) << r.out << r.err;
}

}  // namespace
}  // namespace meshd::testing
