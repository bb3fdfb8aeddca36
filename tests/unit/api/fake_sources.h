// The daemon's side of the API as plain values a test sets: a status source
// and a cluster source (static mode when `snapshot` is reset). The cluster's
// actions answer what the test put in `removal` / `rotation` and record what
// they were asked.
#pragma once

#include "meshd/api/sources.h"
#include "meshd/api/status_source.h"

#include <optional>
#include <string>
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

  // What remove_node() and rotate_key() answer, and what they were asked.
  Result<RemovalResult> removal = RemovalResult{.name = "beta",
                                                .identity = "aWRlbnRpdHk=",
                                                .pod_cidr = "10.244.2.0/24",
                                                .removed_at_ms = 1'800'000'000'000};
  Result<RotationResult> rotation = RotationResult{.previous_public_key = "b2xkIGtleQ==",
                                                   .public_key = "bmV3IGtleQ==",
                                                   .switch_at_ms = 1'800'000'005'000};
  std::vector<std::string> removals_asked;
  int rotations_asked = 0;
  Result<RemovalResult> remove_node(const std::string& name_or_identity) override {
    removals_asked.push_back(name_or_identity);
    return removal;
  }
  Result<RotationResult> rotate_key() override {
    ++rotations_asked;
    return rotation;
  }
};

}  // namespace meshd::api::fakes
