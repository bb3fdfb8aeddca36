// The daemon's side of the API as plain values a test sets: a status source
// and a cluster source (static mode when `snapshot` is reset).
#pragma once

#include "meshd/api/sources.h"
#include "meshd/api/status_source.h"

#include <optional>
#include <vector>

namespace meshd::api::fakes {

struct FakeStatus : StatusSource {
  bool is_ready = false;
  StatusSnapshot snapshot;
  bool ready() const override { return is_ready; }
  StatusSnapshot status() const override { return snapshot; }
};

struct FakeCluster : ClusterSource {
  std::optional<ClusterSnapshot> snapshot = ClusterSnapshot{.cluster_id = "c0ffee",
                                                            .cidr = "10.244.0.0/16",
                                                            .node_prefix_length = 24,
                                                            .join_target = "192.0.2.1:51821",
                                                            .settled = true};
  std::vector<NodeSnapshot> records;
  ControlPlaneCounters cp;
  std::optional<ClusterSnapshot> cluster() const override { return snapshot; }
  std::vector<NodeSnapshot> nodes() const override { return records; }
  ControlPlaneCounters counters() const override { return cp; }
};

}  // namespace meshd::api::fakes
