// The meshd daemon: opens the node's store, keeps its keys, chooses the
// WireGuard backend, and runs the reconcile loop (triggered by rtnetlink
// events, a periodic resync, and implementation restarts; bursts coalesce;
// failures retry with backoff). Stopping it leaves the data plane in place.
#pragma once

#include "meshd/config/config.h"

namespace meshd::daemon {

struct DaemonOptions {
  config::Config config;
  bool once = false;      // one reconcile pass, then exit (0 = converged)
  bool teardown = false;  // remove the device, meshd's routes and its CNI conflist, then exit
};

// Runs until SIGTERM/SIGINT (or after one pass with `once`). Returns the
// process exit code. Throws ErrorException for start-up failures.
int run_daemon(DaemonOptions opts);

}  // namespace meshd::daemon
