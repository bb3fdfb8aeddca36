// What the API reads from the running daemon's control plane: plain
// snapshots, as for StatusSource (status_source.h). The daemon implements
// ClusterSource; tests use a struct. In static mode there is none (ApiOptions
// holds a null pointer) and the nodes routes answer from an empty table.
#pragma once

#include "common/result.h"

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
  // Liveness (controlplane/liveness.h): "self", "alive", "silent",
  // "prunable", or "removed" for a tombstone.
  std::string liveness;
  std::optional<double> last_seen_age_seconds;  // handshake or sync message, the later; nothing: never
  // A key rotation in progress: the next public key (base64) and when the
  // owner switches to it.
  std::optional<std::string> pending_public_key;
  std::int64_t switch_at_ms = 0;
  // A tombstone (the node was removed): who removed it (name, or identity
  // when the remover's name is unknown), when, why, and whether every live
  // member holds the tombstone (its CIDR and name may then be reused).
  bool removed = false;
  std::string removed_by;
  std::int64_t removed_at_ms = 0;
  std::string removal_reason;
  bool released = false;
};

// The answer to a removal: what was removed.
struct RemovalResult {
  std::string name;
  std::string identity;  // base64
  std::string pod_cidr;
  std::int64_t removed_at_ms = 0;
};

// The answer to a key rotation request: the announced switch.
struct RotationResult {
  std::string previous_public_key;  // base64
  std::string public_key;           // base64, the next key
  std::int64_t switch_at_ms = 0;
};

struct ClusterSnapshot {
  std::string cluster_id;
  std::string cidr;
  int node_prefix_length = 0;
  std::string join_target;  // this member's join listener as a joiner dials it ("addr:port")
  bool settled = false;
  std::string table_hash;  // hex of the node table's hash: nodes that agree show the same
  // This node was removed from the cluster: its mesh is torn down.
  bool removed = false;
  std::string removed_by;
  std::int64_t removed_at_ms = 0;
  std::string removal_reason;
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
  // The etcd datastore mode only (docs/datastore.md, "The daemon in etcd mode").
  struct Datastore {
    bool reachable = false;       // the last call to etcd succeeded
    std::int64_t revision = 0;    // the last etcd revision applied to the node table
    std::uint64_t refused = 0;    // values read from etcd that the table refused
    std::uint64_t relists = 0;    // full listings: start, compaction, periodic resync
  };
  std::optional<Datastore> datastore;
};

class ClusterSource {
 public:
  virtual ~ClusterSource() = default;
  virtual std::optional<ClusterSnapshot> cluster() const = 0;  // nothing in static mode
  virtual std::vector<NodeSnapshot> nodes() const = 0;  // every record this node holds, self included
  virtual ControlPlaneCounters counters() const = 0;

  // Removes a node (by name, or by base64 identity): a tombstone signed by
  // this member, pushed to every member. Errors: ENOENT no such node,
  // EALREADY already removed, EAGAIN not a member yet (joining) or removed
  // itself, ENOTCONN the tombstone could not be written to the datastore (etcd)
  // (a timed-out write may still land there). Removing this node itself is allowed: it tears its mesh down.
  virtual Result<RemovalResult> remove_node(const std::string& name_or_identity) = 0;
  // Starts a key rotation of this node: EBUSY one is in progress, EAGAIN not
  // a member yet or removed.
  virtual Result<RotationResult> rotate_key() = 0;
};

}  // namespace meshd::api
