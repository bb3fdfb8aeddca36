// Observe, plan, execute: turns a DesiredState into reality through one
// WireGuard backend and rtnetlink, changing only what differs. Order: link →
// addresses → WireGuard peers → link up → routes. One failing step does not
// stop the independent ones; every failure is reported with its cause.
#pragma once

#include "common/result.h"
#include "meshd/dataplane/desired_state.h"
#include "meshd/dataplane/planner.h"
#include "meshd/dataplane/wg_backend.h"
#include "netlink/rtnl.h"

#include <string>
#include <vector>

namespace meshd::dataplane {

struct ReconcileReport {
  std::vector<std::string> changes;  // what was done (for info logs)
  std::vector<std::string> errors;   // what failed (warn logs; retried next pass)
  std::size_t peers = 0;             // peers on the device after the pass
  std::size_t routes = 0;            // our routes after the pass
  bool backend_restarted = false;    // userspace implementation was restarted
  bool ok() const { return errors.empty(); }
};

struct ReconcilerOptions {
  WgBackend* backend = nullptr;
  nl::Rtnl* rtnl = nullptr;
};

class Reconciler {
 public:
  explicit Reconciler(ReconcilerOptions opts) : opts_(opts) {}

  // One pass. Returns an error only when the device cannot be had at all
  // (no link, no implementation); step failures land in the report.
  Result<ReconcileReport> apply(const DesiredState& desired);

 private:
  ReconcilerOptions opts_;
};

}  // namespace meshd::dataplane
