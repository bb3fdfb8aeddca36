// The metrics page: its families and values, and Prometheus' own checker.
#include "meshd/api/metrics.h"

#include "tests/support/prerequisite.h"
#include "tests/support/process.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace meshd::api {
namespace {

StatusSnapshot busy_node() {
  return StatusSnapshot{.backend = "kernel",
                        .interface = "meshd0",
                        .mtu = 1420,
                        .public_key = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
                        .pod_cidr = "10.244.1.0/24",
                        .pod_cidr_settled = true,
                        .peer_count = 7,
                        .reconcile = {.last_at_ms = 1'800'000'000'250,
                                      .last_duration_seconds = 0.0125,
                                      .last_error = std::nullopt,
                                      .passes = 1234,
                                      .failures = 5}};
}

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(ApiMetrics, FamiliesAndValues) {
  std::string m = render_metrics(busy_node(), true);
  for (const char* line : {
           "# TYPE meshd_info gauge",
           "meshd_info{backend=\"kernel\",interface=\"meshd0\"} 1",
           "meshd_ready 1",
           "meshd_interface_mtu_bytes 1420",
           "meshd_pod_cidr_settled 1",
           "# TYPE meshd_peers gauge",
           "meshd_peers 7",
           "# TYPE meshd_reconciles_total counter",
           "meshd_reconciles_total 1234",
           "# TYPE meshd_reconcile_errors_total counter",
           "meshd_reconcile_errors_total 5",
           "meshd_last_reconcile_timestamp_seconds 1800000000.25",
           "meshd_last_reconcile_duration_seconds 0.012500000000000001",
       })
    EXPECT_TRUE(has_line(m, line)) << line << "\n" << m;
  // The public key is not a metric, and a HELP precedes every TYPE.
  EXPECT_EQ(m.find("HIgo9x"), std::string::npos);
  std::size_t helps = 0, types = 0;
  for (std::size_t p = 0; (p = m.find("# HELP ", p)) != std::string::npos; ++p) ++helps;
  for (std::size_t p = 0; (p = m.find("# TYPE ", p)) != std::string::npos; ++p) ++types;
  EXPECT_EQ(helps, types);
  EXPECT_EQ(types, 11u);
}

ClusterMetrics two_peers() {
  NodeSnapshot self{.name = "alpha", .self = true};
  NodeSnapshot beta{.name = "beta"};
  beta.stats = {.last_handshake_age_seconds = 12.5, .rx_bytes = 1000, .tx_bytes = 2000, .reachable = true};
  NodeSnapshot gamma{.name = "gam\"ma"};  // never a handshake
  NodeSnapshot lost{.name = "beta", .in_effect = false};
  // A removed node's tombstone: no peer, counted as removed.
  NodeSnapshot gone{.name = "omega", .liveness = "removed", .removed = true, .removed_by = "alpha"};
  ClusterMetrics c{.nodes = {self, beta, gamma, lost, gone}};
  c.counters = {.sync_messages_in = 10,
                .sync_messages_out = 11,
                .sync_bytes_in = 1200,
                .sync_bytes_out = 1300,
                .records_rejected = {{"stale", 3}, {"bad_signature", 1}},
                .join_attempts = {{"admitted", 2}, {"refused_expired", 1}, {"rate_limited", 4}}};
  return c;
}

TEST(ApiMetrics, ClusterFamiliesAndValues) {
  StatusSnapshot s = busy_node();
  s.peers_reachable = 1;
  s.cni_leases_in_use = 5;
  s.cni_leases_free = 248;
  s.reconcile.durations.observe(0.003);
  s.reconcile.durations.observe(0.2);
  s.reconcile.durations.observe(0.2);
  s.reconcile.durations.observe(30);
  std::string m = render_metrics(s, true, two_peers());
  for (const char* line : {
           "# TYPE meshd_nodes gauge",
           "meshd_nodes{liveness=\"alive\"} 3",
           "meshd_nodes{liveness=\"silent\"} 0",
           "meshd_nodes{liveness=\"prunable\"} 0",
           "meshd_nodes{liveness=\"removed\"} 1",
           "# TYPE meshd_key_rotation_pending gauge",
           "meshd_key_rotation_pending 0",
           "meshd_peers_reachable 1",
           "# TYPE meshd_peer_last_handshake_age_seconds gauge",
           "meshd_peer_last_handshake_age_seconds{peer=\"beta\"} 12.5",
           "# TYPE meshd_peer_receive_bytes_total counter",
           "meshd_peer_receive_bytes_total{peer=\"beta\"} 1000",
           "meshd_peer_receive_bytes_total{peer=\"gam\\\"ma\"} 0",
           "meshd_peer_transmit_bytes_total{peer=\"beta\"} 2000",
           "# TYPE meshd_reconcile_duration_seconds histogram",
           "meshd_reconcile_duration_seconds_bucket{le=\"0.005\"} 1",
           "meshd_reconcile_duration_seconds_bucket{le=\"0.1\"} 1",
           "meshd_reconcile_duration_seconds_bucket{le=\"0.25\"} 3",
           "meshd_reconcile_duration_seconds_bucket{le=\"10\"} 3",
           "meshd_reconcile_duration_seconds_bucket{le=\"+Inf\"} 4",
           "meshd_reconcile_duration_seconds_count 4",
           "meshd_reconcile_duration_seconds_sum 30.402999999999999",
           "meshd_sync_messages_total{direction=\"in\"} 10",
           "meshd_sync_messages_total{direction=\"out\"} 11",
           "meshd_sync_bytes_total{direction=\"in\"} 1200",
           "meshd_sync_bytes_total{direction=\"out\"} 1300",
           "meshd_records_rejected_total{reason=\"stale\"} 3",
           "meshd_records_rejected_total{reason=\"bad_signature\"} 1",
           "meshd_join_attempts_total{outcome=\"admitted\"} 2",
           "meshd_join_attempts_total{outcome=\"rate_limited\"} 4",
           "meshd_cni_leases{state=\"in_use\"} 5",
           "meshd_cni_leases{state=\"free\"} 248",
       })
    EXPECT_TRUE(has_line(m, line)) << line << "\n" << m;
  // A peer without a handshake has no age sample (0 would read as "just now"),
  // and neither self nor a record that lost its claim is a peer.
  EXPECT_EQ(m.find("meshd_peer_last_handshake_age_seconds{peer=\"gam"), std::string::npos);
  EXPECT_EQ(m.find("peer=\"alpha\""), std::string::npos);
  EXPECT_EQ(m.find("peer=\"omega\""), std::string::npos);
  std::size_t beta_rx = 0;
  for (std::size_t p = 0; (p = m.find("meshd_peer_receive_bytes_total{peer=\"beta\"}", p)) != std::string::npos; ++p)
    ++beta_rx;
  EXPECT_EQ(beta_rx, 1u);
}

// Liveness as the control plane reports it, in four bounded series (no
// per-node label), and this node's own rotation only.
TEST(ApiMetrics, NodesByLivenessAndThisNodesRotation) {
  ClusterMetrics c;
  NodeSnapshot self{.name = "alpha", .self = true, .liveness = "self"};
  self.pending_public_key = "bmV3";
  NodeSnapshot peer{.name = "beta", .liveness = "alive"};
  peer.pending_public_key = "b3RoZXI=";  // a peer's rotation is not this node's
  NodeSnapshot quiet{.name = "gamma", .liveness = "silent"};
  NodeSnapshot quieter{.name = "delta", .liveness = "prunable"};
  NodeSnapshot lost{.name = "delta", .in_effect = false, .liveness = "silent"};
  NodeSnapshot gone1{.name = "eps", .liveness = "removed", .removed = true};
  NodeSnapshot gone2{.name = "", .liveness = "removed", .removed = true};
  c.nodes = {self, peer, quiet, quieter, lost, gone1, gone2};
  std::string m = render_metrics(busy_node(), true, c);
  for (const char* line : {"meshd_nodes{liveness=\"alive\"} 2", "meshd_nodes{liveness=\"silent\"} 1",
                           "meshd_nodes{liveness=\"prunable\"} 1",
                           "meshd_nodes{liveness=\"removed\"} 2", "meshd_key_rotation_pending 1"})
    EXPECT_TRUE(has_line(m, line)) << line << "\n" << m;
  std::size_t series = 0;
  for (std::size_t p = 0; (p = m.find("\nmeshd_nodes{", p)) != std::string::npos; ++p) ++series;
  EXPECT_EQ(series, 4u);
  c.nodes[0].pending_public_key.reset();
  EXPECT_TRUE(has_line(render_metrics(busy_node(), true, c), "meshd_key_rotation_pending 0"));
}

// The etcd mode's own families appear only in that mode.
TEST(ApiMetrics, DatastoreFamiliesOnlyInEtcdMode) {
  ClusterMetrics c;
  std::string m = render_metrics(busy_node(), true, c);
  EXPECT_EQ(m.find("meshd_datastore_"), std::string::npos) << m;
  c.counters.datastore = ControlPlaneCounters::Datastore{.reachable = true, .revision = 4711, .refused = 2, .relists = 3};
  m = render_metrics(busy_node(), true, c);
  for (const char* line : {"meshd_datastore_reachable 1", "meshd_datastore_revision 4711",
                           "meshd_datastore_values_refused_total 2", "meshd_datastore_relists_total 3",
                           "# TYPE meshd_datastore_values_refused_total counter"})
    EXPECT_TRUE(has_line(m, line)) << line << "\n" << m;
  c.counters.datastore->reachable = false;
  EXPECT_TRUE(has_line(render_metrics(busy_node(), true, c), "meshd_datastore_reachable 0"));
}

TEST(ApiMetrics, StaticModeHasNoControlPlaneFamilies) {
  std::string m = render_metrics(busy_node(), true);
  for (const char* name : {"meshd_nodes", "meshd_sync_", "meshd_join_attempts", "meshd_peer_",
                           "meshd_records_rejected", "meshd_cni_leases", "meshd_key_rotation"})
    EXPECT_EQ(m.find(name), std::string::npos) << name;
}

TEST(ApiMetrics, BeforeTheFirstReconcileThereIsNoTimestamp) {
  std::string m = render_metrics(StatusSnapshot{}, false);
  EXPECT_TRUE(has_line(m, "meshd_ready 0"));
  EXPECT_TRUE(has_line(m, "meshd_reconciles_total 0"));
  EXPECT_TRUE(has_line(m, "meshd_pod_cidr_settled 0"));
  EXPECT_EQ(m.find("meshd_last_reconcile"), std::string::npos);
}

TEST(ApiMetrics, LabelValuesAreEscaped) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  StatusSnapshot s;
  s.interface = "we\"ird\n";
  EXPECT_TRUE(
      has_line(render_metrics(s, false), "meshd_info{backend=\"\",interface=\"we\\\"ird\\n\"} 1"));
}

// promtool comes from Debian's prometheus package (scripts/install-deps.sh).
TEST(ApiMetrics, PromtoolAcceptsThePage) {
  const char* promtool = "/usr/bin/promtool";
  MESHD_REQUIRE(::access(promtool, X_OK) == 0, "promtool (Debian package prometheus)");
  for (int variant = 0; variant < 3; ++variant) {
    const bool ready = variant > 0;
    StatusSnapshot s = ready ? busy_node() : StatusSnapshot{};
    std::optional<ClusterMetrics> cluster;
    if (variant == 2) {
      cluster = two_peers();
      s.cni_leases_in_use = 1;
      s.cni_leases_free = 2;
      s.reconcile.durations.observe(0.02);
    }
    auto r = meshd::testing::run_process({promtool, "check", "metrics"},
                                         render_metrics(s, ready, cluster));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    // promtool prints lint findings (naming, missing HELP) and still may exit 0 on some; none
    // expected.
    EXPECT_EQ(r.out + r.err, "");
  }
}

}  // namespace
}  // namespace meshd::api
