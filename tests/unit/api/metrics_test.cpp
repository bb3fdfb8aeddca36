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
  EXPECT_EQ(types, 9u);
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
  for (bool ready : {false, true}) {
    StatusSnapshot s = ready ? busy_node() : StatusSnapshot{};
    auto r = meshd::testing::run_process({promtool, "check", "metrics"}, render_metrics(s, ready));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    // promtool prints lint findings (naming, missing HELP) and still may exit 0 on some; none
    // expected.
    EXPECT_EQ(r.out + r.err, "");
  }
}

}  // namespace
}  // namespace meshd::api
