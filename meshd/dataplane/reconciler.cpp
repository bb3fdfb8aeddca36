#include "meshd/dataplane/reconciler.h"

#include <algorithm>

namespace meshd::dataplane {

Result<ReconcileReport> Reconciler::apply(const DesiredState& desired) {
  ReconcileReport report;
  WgBackend& backend = *opts_.backend;
  nl::Rtnl& rtnl = *opts_.rtnl;
  const std::string& name = desired.device.name;

  if (auto r = backend.ensure_device(name); !r) return r.error();
  if (backend.restarted_since_last_check(name)) {
    report.backend_restarted = true;
    report.changes.push_back("the " + std::string(backend.kind()) + " implementation of " + name +
                             " was restarted; re-applying everything");
  }

  auto link = rtnl.get_link(name);
  if (!link) return link.error();

  // 1. link: MTU first, while (or before) the link comes up.
  LinkOps lops = plan_link(desired.mtu, *link);
  if (lops.set_mtu) {
    if (auto r = rtnl.set_mtu(name, *lops.set_mtu); r)
      report.changes.push_back("mtu " + std::to_string(link->mtu) + " -> " +
                               std::to_string(*lops.set_mtu));
    else
      report.errors.push_back(r.error().message);
  }

  // 2. addresses
  if (auto addrs = rtnl.list_addresses(link->index); addrs) {
    std::vector<IpPrefix> current;
    for (const auto& a : *addrs) current.push_back(a.prefix);
    AddressOps aops = plan_addresses(desired.addresses, current);
    for (const auto& a : aops.add) {
      if (auto r = rtnl.add_address({link->index, a}); r)
        report.changes.push_back("add address " + a.to_string() + " dev " + name);
      else
        report.errors.push_back(r.error().message);
    }
    for (const auto& a : aops.remove) {
      if (auto r = rtnl.delete_address({link->index, a}); r)
        report.changes.push_back("remove address " + a.to_string() + " dev " + name);
      else
        report.errors.push_back(r.error().message);
    }
  } else {
    report.errors.push_back(addrs.error().message);
  }

  // 3. WireGuard device and peers, one entry per changed peer.
  if (auto current = backend.get_device(name); current) {
    DevicePlan dplan = plan_device(desired.device, *current);
    report.peers = current->peers.size() + dplan.peers_added - dplan.peers_removed;
    if (dplan.change) {
      if (auto r = backend.set_device(*dplan.change); r) {
        if (dplan.notes.size() <= 20) {
          for (auto& n : dplan.notes) report.changes.push_back(std::move(n));
        } else {
          report.changes.push_back("peers: " + std::to_string(dplan.peers_added) + " added, " +
                                   std::to_string(dplan.peers_updated) + " updated, " +
                                   std::to_string(dplan.peers_removed) + " removed");
        }
      } else {
        report.errors.push_back(r.error().message);
        report.peers = current->peers.size();
      }
    }
  } else {
    report.errors.push_back(current.error().message);
  }

  // 4. link up (after peers, so the first packets find them).
  if (lops.set_up) {
    if (auto r = rtnl.set_up(name, true); r)
      report.changes.push_back("link " + name + " up");
    else
      report.errors.push_back(r.error().message);
  }

  // 5. routes: ours only; a bounced link drops them, this puts them back.
  // Every route in the main table is listed (not only protocol 77): a route
  // of someone else's in the slot of one of ours must be seen to be reported.
  std::vector<nl::Route> want = desired.routes;
  for (auto& r : want) r.oif = link->index;
  nl::RouteFilter filter;
  filter.family = 0;
  if (auto routes = rtnl.list_routes(filter); routes) {
    RouteOps rops = plan_routes(want, *routes);
    std::size_t missing = rops.conflicts.size();
    for (const auto& r : rops.add) {
      if (auto res = rtnl.add_route(r); res) {
        report.changes.push_back("add route " + r.dst.to_string() + " dev " + name);
      } else {
        report.errors.push_back(res.error().message);
        ++missing;
      }
    }
    for (const auto& r : rops.replace) {
      if (auto res = rtnl.replace_route(r); res)
        report.changes.push_back("replace route " + r.dst.to_string() + " dev " + name);
      else
        report.errors.push_back(res.error().message);
    }
    for (const auto& r : rops.remove) {
      if (auto res = rtnl.delete_route(r); res)
        report.changes.push_back("remove stale route " + r.dst.to_string());
      else
        report.errors.push_back(res.error().message);
    }
    for (const auto& c : rops.conflicts) {
      std::string holder_dev;
      if (c.holder.oif)
        if (auto l = rtnl.get_link(c.holder.oif); l) holder_dev = l->name;
      report.errors.push_back(
          "route " + c.wanted.dst.to_string() + " dev " + name + " not installed: its slot (table " +
          std::to_string(c.wanted.table) + ", metric " + std::to_string(c.wanted.metric) +
          ") holds a route of protocol " + route_protocol_name(c.holder.protocol) + " (" +
          nl::describe_route(c.holder, holder_dev) +
          "), which meshd leaves alone; remove it, or take the prefix out of the peer's allowed IPs");
    }
    report.routes = want.size() - std::min(missing, want.size());
  } else {
    report.errors.push_back(routes.error().message);
  }
  return report;
}

}  // namespace meshd::dataplane
