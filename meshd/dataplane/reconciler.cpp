#include "meshd/dataplane/reconciler.h"

#include <algorithm>

namespace meshd::dataplane {

struct Reconciler::Pass {
  const DesiredState& desired;
  const std::string& name;
  nl::Link link;
  ReconcileReport report;
};

Result<ReconcileReport> Reconciler::apply(const DesiredState& desired, PassScope scope) {
  WgBackend& backend = *opts_.backend;
  const std::string& name = desired.device.name;
  ReconcileReport report;

  if (auto r = backend.ensure_device(name); !r) return r.error();
  if (backend.restarted_since_last_check(name)) {
    report.backend_restarted = true;
    report.changes.push_back("the " + std::string(backend.kind()) + " implementation of " + name +
                             " was restarted; re-applying everything");
  }
  bool full = scope == PassScope::kFull || !last_full_ok_ || report.backend_restarted;

  if (!full) {
    Pass pass{desired, name, {}, std::move(report)};
    sync_peers(pass);
    pass.report.routes = last_routes_;
    pass.report.egress_error = egress_error_;
    return std::move(pass.report);
  }

  auto link = opts_.rtnl->get_link(name);
  if (!link) {
    last_full_ok_ = false;
    return link.error();
  }
  Pass pass{desired, name, std::move(*link), std::move(report)};
  set_link_mtu(pass);
  sync_addresses(pass);
  sync_peers(pass);
  bring_link_up(pass);
  sync_routes(pass);
  sync_egress(pass);
  pass.report.egress_error = egress_error_;
  last_full_ok_ = pass.report.ok();
  last_routes_ = pass.report.routes;
  return std::move(pass.report);
}

// 1. link MTU.
void Reconciler::set_link_mtu(Pass& pass) {
  LinkOps lops = plan_link(pass.desired.mtu, pass.link);
  if (!lops.set_mtu) return;
  if (auto r = opts_.rtnl->set_mtu(pass.name, *lops.set_mtu); r)
    pass.report.changes.push_back("mtu " + std::to_string(pass.link.mtu) + " -> " +
                                  std::to_string(*lops.set_mtu));
  else
    pass.report.errors.push_back(r.error().message);
}

// 2. addresses of our device.
void Reconciler::sync_addresses(Pass& pass) {
  nl::Rtnl& rtnl = *opts_.rtnl;
  auto addrs = rtnl.list_addresses(pass.link.index);
  if (!addrs) {
    pass.report.errors.push_back(addrs.error().message);
    return;
  }
  std::vector<IpPrefix> current;
  for (const auto& a : *addrs) current.push_back(a.prefix);
  AddressOps aops = plan_addresses(pass.desired.addresses, current);
  for (const auto& a : aops.add) {
    if (auto r = rtnl.add_address({pass.link.index, a}); r)
      pass.report.changes.push_back("add address " + a.to_string() + " dev " + pass.name);
    else
      pass.report.errors.push_back(r.error().message);
  }
  for (const auto& a : aops.remove) {
    if (auto r = rtnl.delete_address({pass.link.index, a}); r)
      pass.report.changes.push_back("remove address " + a.to_string() + " dev " + pass.name);
    else
      pass.report.errors.push_back(r.error().message);
  }
}

// 3. WireGuard device and peers, one entry per changed peer.
void Reconciler::sync_peers(Pass& pass) {
  WgBackend& backend = *opts_.backend;
  auto current = backend.get_device(pass.name);
  if (!current) {
    pass.report.errors.push_back(current.error().message);
    return;
  }
  DevicePlan dplan = plan_device(pass.desired.device, *current, endpoints_);
  pass.report.peers = current->peers.size() + dplan.peers_added - dplan.peers_removed;
  if (!dplan.change) {
    endpoints_ = std::move(dplan.endpoints);
    return;
  }
  if (auto r = backend.set_device(*dplan.change); !r) {
    // The old memory stays, so the next pass plans the same endpoints again.
    pass.report.errors.push_back(r.error().message);
    pass.report.peers = current->peers.size();
    return;
  }
  endpoints_ = std::move(dplan.endpoints);
  if (dplan.notes.size() <= 20) {
    for (auto& n : dplan.notes) pass.report.changes.push_back(std::move(n));
  } else {
    pass.report.changes.push_back("peers: " + std::to_string(dplan.peers_added) + " added, " +
                                  std::to_string(dplan.peers_updated) + " updated, " +
                                  std::to_string(dplan.peers_removed) + " removed");
  }
}

// 4. link up (after peers, so the first packets find them).
void Reconciler::bring_link_up(Pass& pass) {
  if (!plan_link(pass.desired.mtu, pass.link).set_up) return;
  if (auto r = opts_.rtnl->set_up(pass.name, true); r)
    pass.report.changes.push_back("link " + pass.name + " up");
  else
    pass.report.errors.push_back(r.error().message);
}

// 5. routes: ours only; a bounced link drops them, this puts them back.
// Every route in the main table is listed (not only protocol 77): a route
// of someone else's in the slot of one of ours must be seen to be reported.
void Reconciler::sync_routes(Pass& pass) {
  nl::Rtnl& rtnl = *opts_.rtnl;
  std::vector<nl::Route> want = pass.desired.routes;
  for (auto& r : want) r.oif = pass.link.index;
  nl::RouteFilter filter;
  filter.family = 0;
  auto routes = rtnl.list_routes(filter);
  if (!routes) {
    pass.report.errors.push_back(routes.error().message);
    return;
  }
  RouteOps rops = plan_routes(want, *routes);
  std::size_t missing = rops.conflicts.size();
  for (const auto& r : rops.add) {
    if (auto res = rtnl.add_route(r); res) {
      pass.report.changes.push_back("add route " + r.dst.to_string() + " dev " + pass.name);
    } else {
      pass.report.errors.push_back(res.error().message);
      ++missing;
    }
  }
  for (const auto& r : rops.replace) {
    if (auto res = rtnl.replace_route(r); res)
      pass.report.changes.push_back("replace route " + r.dst.to_string() + " dev " + pass.name);
    else
      pass.report.errors.push_back(res.error().message);
  }
  for (const auto& r : rops.remove) {
    if (auto res = rtnl.delete_route(r); res)
      pass.report.changes.push_back("remove stale route " + r.dst.to_string());
    else
      pass.report.errors.push_back(res.error().message);
  }
  for (const auto& c : rops.conflicts) {
    std::string holder_dev;
    if (c.holder.oif)
      if (auto l = rtnl.get_link(c.holder.oif); l) holder_dev = l->name;
    pass.report.errors.push_back(
        "route " + c.wanted.dst.to_string() + " dev " + pass.name + " not installed: its slot (table " +
        std::to_string(c.wanted.table) + ", metric " + std::to_string(c.wanted.metric) +
        ") holds a route of protocol " + route_protocol_name(c.holder.protocol) + " (" +
        nl::describe_route(c.holder, holder_dev) +
        "), which meshd leaves alone; remove it, or take the prefix out of the peer's allowed IPs");
  }
  pass.report.routes = want.size() - std::min(missing, want.size());
}

// 6. egress masquerade: meshd's nftables table, set as a whole or removed.
void Reconciler::sync_egress(Pass& pass) {
  if (!opts_.egress) return;
  EgressTable& table = *opts_.egress;
  const std::optional<EgressSpec>& want = pass.desired.egress;
  if (!want) {
    // Removed once: at the first pass (a table left by an earlier run with
    // masquerade on) and when it stops being wanted.
    if (egress_absent_) return;
    auto removed = table.remove();
    if (!removed) {
      egress_error_ = "egress: " + removed.error().message;
      return;
    }
    egress_error_.reset();
    if (*removed) pass.report.changes.push_back(std::string("egress: removed nftables table ") + kEgressTable);
    egress_applied_.reset();
    egress_listing_.reset();
    egress_absent_ = true;
    return;
  }
  bool same_spec = egress_applied_ == want;
  if (same_spec) {
    // Without a listing from the apply there is nothing to compare with:
    // it stays as applied.
    if (!egress_listing_) return;
    auto now = table.current();
    if (now && *now == egress_listing_) return;  // in place and untouched
  }
  egress_absent_ = false;
  if (auto r = table.apply(*want); !r) {
    egress_error_ = "egress: " + r.error().message;
    egress_applied_.reset();
    egress_listing_.reset();
    return;
  }
  egress_error_.reset();
  egress_applied_ = want;
  auto listing = table.current();
  egress_listing_ = listing ? *listing : std::nullopt;
  pass.report.changes.push_back(std::string(same_spec ? "egress: restored (the table was changed or deleted): "
                                                      : "egress: ") +
                                describe(*want));
}

}  // namespace meshd::dataplane
