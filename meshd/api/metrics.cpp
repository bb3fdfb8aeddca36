#include "meshd/api/metrics.h"

#include <cstdio>
#include <map>

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

namespace {

std::string label(std::string_view name, std::string_view value) {
  return "{" + std::string(name) + "=\"" + escape_label_value(value) + "\"}";
}

std::string format_bound(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", b);
  return buf;
}

void by_label(std::string& out, std::string_view name, std::string_view help,
              std::string_view label_name, const std::map<std::string, std::uint64_t>& values) {
  // A family with no samples says nothing; its label values are open-ended
  // (reasons, outcomes), so there is no fixed set to print as zeros.
  if (values.empty()) return;
  family(out, name, "counter", help);
  for (const auto& [key, n] : values)
    sample(out, name, static_cast<double>(n), label(label_name, key));
}

}  // namespace

std::string render_metrics(const StatusSnapshot& s, bool ready,
                           const std::optional<ClusterMetrics>& cluster) {
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
  family(out, "meshd_peers_reachable", "gauge",
         "WireGuard peers with a recent handshake (reachable).");
  sample(out, "meshd_peers_reachable", static_cast<double>(s.peers_reachable));
  family(out, "meshd_reconciles_total", "counter", "Reconcile passes since meshd started.");
  sample(out, "meshd_reconciles_total", static_cast<double>(s.reconcile.passes));
  family(out, "meshd_reconcile_errors_total", "counter",
         "Reconcile passes that failed since meshd started.");
  sample(out, "meshd_reconcile_errors_total", static_cast<double>(s.reconcile.failures));
  {
    const DurationHistogram& h = s.reconcile.durations;
    family(out, "meshd_reconcile_duration_seconds", "histogram",
           "How long reconcile passes took since meshd started.");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < DurationHistogram::kBounds.size(); ++i) {
      cumulative += h.counts[i];
      sample(out, "meshd_reconcile_duration_seconds_bucket", static_cast<double>(cumulative),
             label("le", format_bound(DurationHistogram::kBounds[i])));
    }
    sample(out, "meshd_reconcile_duration_seconds_bucket", static_cast<double>(h.count),
           label("le", "+Inf"));
    sample(out, "meshd_reconcile_duration_seconds_sum", h.sum_seconds);
    sample(out, "meshd_reconcile_duration_seconds_count", static_cast<double>(h.count));
  }
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
  if (s.cni_leases_in_use && s.cni_leases_free) {
    family(out, "meshd_cni_leases", "gauge",
           "Pod addresses in this node's pod CIDR, leased by the CNI plugin (in_use) or free.");
    sample(out, "meshd_cni_leases", static_cast<double>(*s.cni_leases_in_use),
           label("state", "in_use"));
    sample(out, "meshd_cni_leases", static_cast<double>(*s.cni_leases_free), label("state", "free"));
  }
  if (!cluster) return out;

  // By liveness, always the same four series (zeros included), so that a
  // query sees a node move from one to another: the live records in effect
  // (this node counts as alive, as does a record without a liveness) and
  // the tombstones. Their sum but "removed" is the records in effect.
  std::map<std::string, std::uint64_t> by_liveness{
      {"alive", 0}, {"silent", 0}, {"prunable", 0}, {"removed", 0}};
  bool rotation_pending = false;
  for (const NodeSnapshot& n : cluster->nodes) {
    if (n.removed || n.liveness == "removed") {
      ++by_liveness["removed"];
      continue;
    }
    if (n.self && n.pending_public_key) rotation_pending = true;
    if (!n.in_effect) continue;
    ++by_liveness[n.liveness == "silent" || n.liveness == "prunable" ? n.liveness : "alive"];
  }
  family(out, "meshd_nodes", "gauge",
         "Node records in this node's table by liveness: live records in effect (alive, this node "
         "included; silent; prunable) and tombstones of removed nodes (removed).");
  for (const auto& [liveness, count] : by_liveness)
    sample(out, "meshd_nodes", static_cast<double>(count), label("liveness", liveness));
  family(out, "meshd_key_rotation_pending", "gauge",
         "1 while a rotation of this node's WireGuard key is announced and not yet switched, else 0.");
  sample(out, "meshd_key_rotation_pending", rotation_pending ? 1 : 0);
  // Per peer: the live records in effect other than this node's own (a
  // record that lost its claim, or a removed node, is not configured as a
  // peer).
  std::vector<const NodeSnapshot*> peers;
  for (const NodeSnapshot& n : cluster->nodes)
    if (!n.self && n.in_effect && !n.removed && n.liveness != "removed") peers.push_back(&n);
  bool any_handshake = false;
  for (const NodeSnapshot* p : peers) any_handshake |= p->stats.last_handshake_age_seconds.has_value();
  if (any_handshake) {
    family(out, "meshd_peer_last_handshake_age_seconds", "gauge",
           "Seconds since the last WireGuard handshake with the peer (absent: never).");
    for (const NodeSnapshot* p : peers)
      if (p->stats.last_handshake_age_seconds)
        sample(out, "meshd_peer_last_handshake_age_seconds", *p->stats.last_handshake_age_seconds,
               label("peer", p->name));
  }
  if (!peers.empty()) {
    family(out, "meshd_peer_receive_bytes_total", "counter",
           "Bytes received from the peer over WireGuard.");
    for (const NodeSnapshot* p : peers)
      sample(out, "meshd_peer_receive_bytes_total", static_cast<double>(p->stats.rx_bytes),
             label("peer", p->name));
    family(out, "meshd_peer_transmit_bytes_total", "counter",
           "Bytes sent to the peer over WireGuard.");
    for (const NodeSnapshot* p : peers)
      sample(out, "meshd_peer_transmit_bytes_total", static_cast<double>(p->stats.tx_bytes),
             label("peer", p->name));
  }
  const ControlPlaneCounters& c = cluster->counters;
  family(out, "meshd_sync_messages_total", "counter",
         "Control-plane sync messages received (in) and sent (out).");
  sample(out, "meshd_sync_messages_total", static_cast<double>(c.sync_messages_in),
         label("direction", "in"));
  sample(out, "meshd_sync_messages_total", static_cast<double>(c.sync_messages_out),
         label("direction", "out"));
  family(out, "meshd_sync_bytes_total", "counter",
         "Control-plane sync bytes received (in) and sent (out).");
  sample(out, "meshd_sync_bytes_total", static_cast<double>(c.sync_bytes_in),
         label("direction", "in"));
  sample(out, "meshd_sync_bytes_total", static_cast<double>(c.sync_bytes_out),
         label("direction", "out"));
  by_label(out, "meshd_sync_messages_dropped_total",
           "Sync messages dropped whole: malformed, or of a message type this version does not know.",
           "reason", c.sync_dropped);
  by_label(out, "meshd_records_rejected_total", "Node records refused by the merge, by reason.",
           "reason", c.records_rejected);
  by_label(out, "meshd_join_attempts_total", "Join attempts at this node's join listener, by outcome.",
           "outcome", c.join_attempts);
  if (c.datastore) {
    const auto& d = *c.datastore;
    family(out, "meshd_datastore_reachable", "gauge", "1 while the last call to etcd succeeded.");
    sample(out, "meshd_datastore_reachable", d.reachable ? 1 : 0);
    family(out, "meshd_datastore_revision", "gauge", "The last etcd revision applied to the node table.");
    sample(out, "meshd_datastore_revision", static_cast<double>(d.revision));
    family(out, "meshd_datastore_values_refused_total", "counter",
           "Values read from etcd that the node table refused (tampered, malformed, another key's).");
    sample(out, "meshd_datastore_values_refused_total", static_cast<double>(d.refused));
    family(out, "meshd_datastore_relists_total", "counter",
           "Full listings of the cluster in etcd: at start, after a compaction, every resync interval.");
    sample(out, "meshd_datastore_relists_total", static_cast<double>(d.relists));
  }
  return out;
}

}  // namespace meshd::api
