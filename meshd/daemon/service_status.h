// The one line `systemctl status meshd` shows (sd_notify's STATUS=): what
// the node is doing right now, in the words an operator needs to decide
// whether to wait or act. Pure: the daemon gathers the facts after every
// pass and sends the line when it changed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace meshd::daemon {

struct ServiceFacts {
  bool removed = false;       // tombstoned: the mesh is torn down
  bool cluster_mode = false;  // [cluster]/[join] or a cluster in the store
  bool joined = false;        // founded or admitted (the node table exists)
  std::string join_target;    // "addr:port" when joining; "" when founding
  // etcd mode only: whether the last call to etcd succeeded.
  std::optional<bool> datastore_reachable;
  bool settled = false;                 // this node's pod CIDR may serve pods
  std::optional<std::string> pod_cidr;  // this node's, when it has one
  bool passed = false;                  // at least one pass ran
  std::optional<std::string> error;     // the last pass's first error
  std::size_t peers = 0;                // WireGuard peers on the device
};

// One line, no newline (sd_notify separates its assignments by newlines).
std::string service_status(const ServiceFacts& f);

}  // namespace meshd::daemon
