#include "meshd/api/metrics.h"

#include <cstdio>

namespace meshd::api {

namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, double value, std::string_view labels = {}) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  out.append(name).append(labels).append(" ").append(buf).append("\n");
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string render_metrics(const StatusSnapshot& s, bool ready) {
  std::string out;
  family(out, "meshd_info", "gauge", "Always 1; the labels name the WireGuard backend and device.");
  sample(out, "meshd_info", 1,
         "{backend=\"" + escape_label_value(s.backend) + "\",interface=\"" +
             escape_label_value(s.interface) + "\"}");
  family(out, "meshd_ready", "gauge", "1 once a reconcile pass has succeeded, else 0.");
  sample(out, "meshd_ready", ready ? 1 : 0);
  family(out, "meshd_interface_mtu_bytes", "gauge", "MTU of the WireGuard device.");
  sample(out, "meshd_interface_mtu_bytes", s.mtu);
  family(out, "meshd_pod_cidr_settled", "gauge", "1 when this node's pod CIDR is settled, else 0.");
  sample(out, "meshd_pod_cidr_settled", s.pod_cidr && s.pod_cidr_settled ? 1 : 0);
  family(out, "meshd_peers", "gauge", "WireGuard peers configured on the device.");
  sample(out, "meshd_peers", static_cast<double>(s.peer_count));
  family(out, "meshd_reconciles_total", "counter", "Reconcile passes since meshd started.");
  sample(out, "meshd_reconciles_total", static_cast<double>(s.reconcile.passes));
  family(out, "meshd_reconcile_errors_total", "counter",
         "Reconcile passes that failed since meshd started.");
  sample(out, "meshd_reconcile_errors_total", static_cast<double>(s.reconcile.failures));
  // Absent before the first pass: a 0 timestamp would read as 1970.
  if (s.reconcile.last_at_ms) {
    family(out, "meshd_last_reconcile_timestamp_seconds", "gauge",
           "Unix time at which the last reconcile pass ran.");
    sample(out, "meshd_last_reconcile_timestamp_seconds",
           static_cast<double>(*s.reconcile.last_at_ms) / 1000.0);
    family(out, "meshd_last_reconcile_duration_seconds", "gauge",
           "How long the last reconcile pass took.");
    sample(out, "meshd_last_reconcile_duration_seconds", s.reconcile.last_duration_seconds);
  }
  return out;
}

}  // namespace meshd::api
