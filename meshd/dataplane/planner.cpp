#include "meshd/dataplane/planner.h"

#include <algorithm>
#include <map>

namespace meshd::dataplane {

namespace {

std::vector<IpPrefix> sorted(std::vector<IpPrefix> v) {
  for (auto& p : v) p = p.network();
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string endpoint_text(const std::optional<Endpoint>& e) {
  return e ? e->to_string() : std::string("(none)");
}

}  // namespace

DevicePlan plan_device(const wg::WgDevice& desired, const wg::WgDevice& current,
                       const AppliedEndpoints& applied) {
  DevicePlan plan;
  wg::WgDevice change;
  change.name = desired.name;
  bool device_changed = false;

  if (desired.private_key) {
    bool same = current.private_key ? (*current.private_key == *desired.private_key)
                                    : (current.public_key == desired.private_key->public_key());
    if (!same) {
      change.private_key = desired.private_key->clone();
      plan.notes.push_back("private key -> public " + desired.private_key->public_key().short_id());
      device_changed = true;
    }
  }
  if (desired.listen_port && desired.listen_port != current.listen_port) {
    change.listen_port = desired.listen_port;
    plan.notes.push_back("listen port " + std::to_string(current.listen_port.value_or(0)) + " -> " +
                         std::to_string(*desired.listen_port));
    device_changed = true;
  }
  if (desired.fwmark && desired.fwmark != current.fwmark.value_or(0)) {
    change.fwmark = desired.fwmark;
    device_changed = true;
  }

  std::map<keys::PublicKey, const wg::WgPeer*> have;
  for (const auto& p : current.peers) have[p.public_key] = &p;
  std::map<keys::PublicKey, const wg::WgPeer*> want;
  for (const auto& p : desired.peers) want[p.public_key] = &p;

  for (const auto& [key, d] : want) {
    if (d->endpoint) plan.endpoints.emplace(key, *d->endpoint);
    auto it = have.find(key);
    if (it == have.end()) {
      wg::WgPeer add;
      add.public_key = key;
      add.endpoint = d->endpoint;
      add.persistent_keepalive = d->persistent_keepalive.value_or(0);
      add.allowed_ips = sorted(d->allowed_ips);
      add.replace_allowed_ips = true;
      change.peers.push_back(std::move(add));
      plan.notes.push_back({"add peer " + key.short_id() + " endpoint " + endpoint_text(d->endpoint), key});
      ++plan.peers_added;
      continue;
    }
    const wg::WgPeer& c = *it->second;
    wg::WgPeer upd;
    upd.public_key = key;
    upd.update_only = true;
    bool changed = false;
    // Compared with what we asked for last, not with the device's: a device
    // endpoint that moved since is WireGuard roaming, and setting ours back
    // would cut the peer off until its next packet moved it again.
    auto last = applied.find(key);
    bool desired_moved = last == applied.end() || d->endpoint != last->second;
    if (d->endpoint && desired_moved && d->endpoint != c.endpoint) {
      upd.endpoint = d->endpoint;
      plan.notes.push_back(
          {"peer " + key.short_id() + " endpoint " + endpoint_text(c.endpoint) + " -> " + endpoint_text(d->endpoint),
           key});
      changed = true;
    }
    std::uint16_t want_ka = d->persistent_keepalive.value_or(0);
    if (want_ka != c.persistent_keepalive.value_or(0)) {
      upd.persistent_keepalive = want_ka;
      plan.notes.push_back({"peer " + key.short_id() + " keepalive -> " + std::to_string(want_ka), key});
      changed = true;
    }
    auto want_ips = sorted(d->allowed_ips);
    if (want_ips != sorted(c.allowed_ips)) {
      upd.allowed_ips = want_ips;
      upd.replace_allowed_ips = true;
      plan.notes.push_back(
          {"peer " + key.short_id() + " allowed IPs changed (" + std::to_string(want_ips.size()) + ")", key});
      changed = true;
    }
    if (changed) {
      change.peers.push_back(std::move(upd));
      ++plan.peers_updated;
    }
  }
  for (const auto& [key, c] : have) {
    (void)c;
    if (want.count(key)) continue;
    wg::WgPeer rm;
    rm.public_key = key;
    rm.remove = true;
    change.peers.push_back(std::move(rm));
    plan.notes.push_back({"remove peer " + key.short_id(), key});
    ++plan.peers_removed;
  }

  if (device_changed || !change.peers.empty()) plan.change = std::move(change);
  return plan;
}

AddressOps plan_addresses(std::span<const IpPrefix> desired, std::span<const IpPrefix> current) {
  AddressOps ops;
  for (const auto& d : desired)
    if (std::find(current.begin(), current.end(), d) == current.end()) ops.add.push_back(d);
  auto link_local = [](const IpPrefix& p) {
    return p.address.is_v6() && p.address.bytes[0] == 0xfe && (p.address.bytes[1] & 0xc0) == 0x80;
  };
  for (const auto& c : current)
    if (!link_local(c) && std::find(desired.begin(), desired.end(), c) == desired.end())
      ops.remove.push_back(c);
  return ops;
}

namespace {

// Two routes are the "same slot" in the kernel's table when they share the
// table, destination and metric; other attributes are what `replace` changes.
struct Slot {
  std::uint32_t table;
  IpPrefix dst;  // network form
  std::uint32_t metric;
  auto operator<=>(const Slot&) const = default;
};
Slot slot_of(const nl::Route& r) { return {r.table, r.dst.network(), r.metric}; }

bool same_route(const nl::Route& a, const nl::Route& b) {
  return slot_of(a) == slot_of(b) && a.oif == b.oif && a.gateway == b.gateway &&
         a.prefsrc == b.prefsrc && a.scope == b.scope && a.protocol == b.protocol &&
         a.onlink == b.onlink;
}

}  // namespace

// Indexed by slot: a node with a thousand peers has a thousand routes on
// each side, and a pairwise comparison was a million of them every pass.
RouteOps plan_routes(std::span<const nl::Route> desired_in, std::span<const nl::Route> current_in) {
  std::vector<nl::Route> desired, current;
  desired.reserve(desired_in.size());
  current.reserve(current_in.size());
  for (const auto& r : desired_in) desired.push_back(kernel_route_form(r));
  for (const auto& r : current_in) current.push_back(kernel_route_form(r));
  // The first route the kernel listed in a slot is the one that holds it.
  std::map<Slot, const nl::Route*> held;
  for (const auto& c : current) held.emplace(slot_of(c), &c);
  std::map<Slot, const nl::Route*> wanted;
  for (const auto& d : desired) wanted.emplace(slot_of(d), &d);

  RouteOps ops;
  for (const auto& d : desired) {
    auto slot = held.find(slot_of(d));
    if (slot == held.end()) {
      ops.add.push_back(d);
    } else if (slot->second->protocol != nl::kMeshdRouteProtocol) {
      // Someone else's route in our slot stays: replacing it would break
      // whatever installed it. It is reported instead, even when it looks
      // like ours in every other attribute: its owner may change it any time.
      ops.conflicts.push_back({d, *slot->second});
    } else if (!same_route(*slot->second, d)) {
      ops.replace.push_back(d);  // ours, with stale attributes
    }
  }
  for (const auto& c : current)
    if (c.protocol == nl::kMeshdRouteProtocol && !wanted.count(slot_of(c))) ops.remove.push_back(c);
  return ops;
}

std::string route_protocol_name(std::uint8_t protocol) {
  // iproute2's /etc/iproute2/rt_protos and include/uapi/linux/rtnetlink.h.
  static const std::map<std::uint8_t, const char*> kNames = {
      {1, "redirect"}, {2, "kernel"},  {3, "boot"},   {4, "static"}, {8, "gated"},
      {9, "ra"},       {10, "mrt"},    {11, "zebra"}, {12, "bird"},  {13, "dnrouted"},
      {14, "xorp"},    {15, "ntk"},    {16, "dhcp"},  {17, "mrouted"}, {18, "keepalived"},
      {42, "babel"},   {99, "openr"},  {186, "bgp"},  {187, "isis"}, {188, "ospf"},
      {189, "rip"},    {192, "eigrp"}};
  auto it = kNames.find(protocol);
  if (it == kNames.end()) return std::to_string(protocol);
  return std::string(it->second) + " (" + std::to_string(protocol) + ")";
}

LinkOps plan_link(unsigned desired_mtu, const nl::Link& current) {
  LinkOps ops;
  if (desired_mtu != 0 && desired_mtu != current.mtu) ops.set_mtu = desired_mtu;
  ops.set_up = !current.up;
  return ops;
}

}  // namespace meshd::dataplane
