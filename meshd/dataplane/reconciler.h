// Observe, plan, execute: turns a DesiredState into reality through one
// WireGuard backend and rtnetlink, changing only what differs. Order: link →
// addresses → WireGuard peers → link up → routes → egress masquerade. One
// failing step does not stop the independent ones; every failure is reported
// with its cause.
#pragma once

#include "common/result.h"
#include "meshd/dataplane/desired_state.h"
#include "meshd/dataplane/egress.h"
#include "meshd/dataplane/planner.h"
#include "meshd/dataplane/wg_backend.h"
#include "netlink/rtnl.h"

#include <string>
#include <vector>

namespace meshd::dataplane {

struct ReconcileReport {
  std::vector<ChangeNote> changes;   // what was done (for info logs)
  std::vector<std::string> errors;   // what failed (warn logs; retried next pass)
  std::size_t peers = 0;             // peers on the device after the pass
  std::size_t routes = 0;            // our routes after the pass
  bool backend_restarted = false;    // userspace implementation was restarted
  // Why the egress masquerade is not as desired, in every pass until a full
  // pass sets or removes it. Apart from `errors`: without it the mesh still
  // carries pod-to-pod traffic, so it does not make the pass fail.
  std::optional<std::string> egress_error;
  bool ok() const { return errors.empty(); }
};

struct ReconcilerOptions {
  WgBackend* backend = nullptr;
  nl::Rtnl* rtnl = nullptr;
  EgressTable* egress = nullptr;  // nothing: meshd's nftables table is left alone
};

// kFull runs every step. kWireGuard runs only the WireGuard step: peers
// change without an rtnetlink event (`wg set ... remove`, an implementation
// that lost its state), while the link, its addresses and routes announce
// every change as an event that asks for a full pass.
enum class PassScope { kFull, kWireGuard };

// The periodic resync: a WireGuard pass, and a full one every
// kFullResyncEvery-th time in case an rtnetlink event was never delivered
// (events are datagrams; a dropped batch shows as ENOBUFS, but only if the
// socket noticed). `since_full` counts resyncs since the last full pass,
// this one included.
inline constexpr unsigned kFullResyncEvery = 30;
inline PassScope periodic_pass_scope(unsigned since_full) {
  return since_full >= kFullResyncEvery ? PassScope::kFull : PassScope::kWireGuard;
}

class Reconciler {
 public:
  explicit Reconciler(ReconcilerOptions opts) : opts_(opts) {}

  // One pass. Returns an error only when the device cannot be had at all
  // (no link, no implementation); step failures land in the report. A
  // kWireGuard pass carries the route count over from the last full pass; it
  // runs as a full pass when there was none yet, when that one had errors
  // (errors are retried by every pass), and when the implementation was
  // restarted (its device came back bare).
  Result<ReconcileReport> apply(const DesiredState& desired, PassScope scope = PassScope::kFull);

 private:
  struct Pass;
  // The six steps, in this order: MTU first, while (or before) the link
  // comes up; peers before link up, so the first packets find them; routes
  // last, since a link that was down has lost them.
  void set_link_mtu(Pass& pass);
  void sync_addresses(Pass& pass);
  void sync_peers(Pass& pass);
  void bring_link_up(Pass& pass);
  void sync_routes(Pass& pass);
  // Full passes only: a WireGuard-only pass has nothing to change there.
  void sync_egress(Pass& pass);

  ReconcilerOptions opts_;
  bool last_full_ok_ = false;    // the last full pass had no errors
  std::size_t last_routes_ = 0;  // our routes after it
  // The endpoints the last applied device plan asked for: a device endpoint
  // is set again only when the desired one moves from this (plan_device).
  AppliedEndpoints endpoints_;
  // The egress table this reconciler set and how nftables listed it right
  // after: a full pass lists it again and sets it again when the listing
  // differs (someone edited or deleted it). egress_absent_: a removal
  // succeeded, so no table of meshd's exists.
  std::optional<EgressSpec> egress_applied_;
  std::optional<std::string> egress_listing_;
  bool egress_absent_ = false;
  std::optional<std::string> egress_error_;  // of the last full pass's egress step
};

}  // namespace meshd::dataplane
