// The Prometheus text exposition format (0.0.4) of what a status snapshot
// holds, named by Prometheus' rules (https://prometheus.io/docs/practices/naming/):
// the meshd_ prefix, base units (seconds, bytes), _total for counters, and
// HELP and TYPE before each family.
#pragma once

#include "meshd/api/sources.h"
#include "meshd/api/status_source.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::api {

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// What the control plane adds in cluster mode.
struct ClusterMetrics {
  std::vector<NodeSnapshot> nodes;
  ControlPlaneCounters counters;
};

std::string render_metrics(const StatusSnapshot& s, bool ready,
                           const std::optional<ClusterMetrics>& cluster = std::nullopt);

// A label value escaped for the text format: backslash, double quote and
// newline become \\, \" and \n.
std::string escape_label_value(std::string_view v);

}  // namespace meshd::api
