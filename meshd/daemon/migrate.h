// Moving a cluster from the embedded datastore to etcd (docs/datastore.md,
// "Moving a cluster"): one member's store, copied into the etcd of its
// [datastore] section. Run with meshd stopped on every node (the data planes
// keep running; the control plane is paused, so one allocator at a time),
// then every node is started with [datastore] kind = "etcd". Moving back
// needs no copy: every node's store holds the table it last saw.
#pragma once

#include "meshd/config/config.h"

#include <cstdio>

namespace meshd::daemon {

// Copies the cluster, every record and tombstone, and a claim for every
// record in effect. Idempotent: what etcd already holds of this cluster is
// kept (a second run, or a run after a partial one, finishes the copy);
// another cluster under the prefix, or a CIDR claimed there by another
// node, refuses the move. Prints what it did to `out`. Returns the exit
// status (0 done, 1 refused or failed; the reason on stderr).
int migrate_to_etcd(const config::Config& cfg, std::FILE* out);

}  // namespace meshd::daemon
