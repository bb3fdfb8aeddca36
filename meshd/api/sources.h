// What the API reads from the running daemon's control plane: plain
// snapshots, as for StatusSource (status_source.h). The daemon implements
// ClusterSource; tests use a struct. In static mode there is none (ApiOptions
// holds a null pointer) and the nodes routes answer from an empty table.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace meshd::api {

struct PeerStats {
  std::optional<double> last_handshake_age_seconds;  // nothing: never a handshake
  std::uint64_t rx_bytes = 0, tx_bytes = 0;
  bool reachable = false;
};

struct NodeSnapshot {
  std::string name;
  std::string identity;    // base64 Ed25519 public key
  std::string public_key;  // base64 WireGuard public key
  std::vector<std::string> endpoints;  // "addr:port"
  std::string pod_cidr;
  std::uint64_t version = 0;
  std::int64_t admitted_at_ms = 0;
  bool self = false;
  bool in_effect = true;  // false: a record that lost its name or CIDR claim
  PeerStats stats;        // this node's view of that peer; empty for self
};

struct ClusterSnapshot {
  std::string cluster_id;
  std::string cidr;
  int node_prefix_length = 0;
  std::string join_target;  // this member's join listener as a joiner dials it ("addr:port")
  bool settled = false;
};

struct ControlPlaneCounters {
  std::uint64_t sync_messages_in = 0, sync_messages_out = 0, sync_bytes_in = 0, sync_bytes_out = 0;
  // By reason (controlplane::to_string(MergeOutcome)).
  std::map<std::string, std::uint64_t> records_rejected;
  // Sync messages dropped whole, by reason: malformed (did not decode),
  // unknown_type (a newer version's message type, ignored).
  std::map<std::string, std::uint64_t> sync_dropped;
  // By outcome: admitted, refused_<reason>, unproven, malformed, rate_limited.
  std::map<std::string, std::uint64_t> join_attempts;
};

class ClusterSource {
 public:
  virtual ~ClusterSource() = default;
  virtual std::optional<ClusterSnapshot> cluster() const = 0;  // nothing in static mode
  virtual std::vector<NodeSnapshot> nodes() const = 0;  // every record this node holds, self included
  virtual ControlPlaneCounters counters() const = 0;
};

}  // namespace meshd::api
