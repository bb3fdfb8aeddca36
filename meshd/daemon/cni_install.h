// The daemon's side of meshd-cni: the conflist it installs for runtimes, and
// the pods a lower mesh MTU leaves with too large an MTU.
#pragma once

#include "meshd/config/config.h"

#include <spdlog/logger.h>

namespace meshd::store {
class Database;
}
namespace meshd::nl {
class Rtnl;
}

namespace meshd::daemon {

// Keeps the conflist in step with the node: written (with the chained
// plugins found in cfg.cni_bin_dirs) while the store holds a settled pod
// CIDR, removed otherwise, so a runtime reports the network ready only while
// meshd-cni can serve ADD. Warns when another network config in the
// directory sorts before ours (runtimes use the first).
void sync_cni_conflist(const config::Config& cfg, store::Database& db, spdlog::logger& log);

// Removes the conflist `cfg` names, if there is one. Returns whether a file
// was removed.
bool remove_cni_conflist(const config::Config& cfg, spdlog::logger& log);

// Warns, naming each, about pods of cfg.cni_network whose interface MTU is
// above `mesh_mtu` (cni/pod_mtu.h).
void warn_pods_above_mtu(const config::Config& cfg, store::Database& db, nl::Rtnl& rtnl,
                         unsigned mesh_mtu, spdlog::logger& log);

}  // namespace meshd::daemon
