// Pure diffs of desired against observed state. Each returns the smallest
// change that turns what the kernel (or wireguard-go) reports into what the
// desired state says, and nothing when they already agree.
#pragma once

#include "meshd/dataplane/desired_state.h"
#include "netlink/rtnl.h"
#include "netlink/wg_device.h"

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace meshd::dataplane {

// The WireGuard change: a partial WgDevice with one entry per peer to add,
// update or remove (never replace_peers: that would reset every session).
// std::nullopt when nothing differs. `notes` says what changed and why, for
// the caller to log (keys shown as short prefixes).
struct DevicePlan {
  std::optional<wg::WgDevice> change;
  std::vector<std::string> notes;
  std::size_t peers_added = 0, peers_updated = 0, peers_removed = 0;
};
DevicePlan plan_device(const wg::WgDevice& desired, const wg::WgDevice& current);

struct AddressOps {
  std::vector<IpPrefix> add;
  std::vector<IpPrefix> remove;
  bool empty() const { return add.empty() && remove.empty(); }
};
// The WireGuard interface belongs to meshd: addresses on it that the desired
// state does not list are removed.
AddressOps plan_addresses(std::span<const IpPrefix> desired, std::span<const IpPrefix> current);

struct RouteOps {
  std::vector<nl::Route> add;
  std::vector<nl::Route> replace;  // same destination, other attributes
  std::vector<nl::Route> remove;
  bool empty() const { return add.empty() && replace.empty() && remove.empty(); }
};
// `desired` routes must already carry the interface's oif. Only routes tagged
// with kMeshdRouteProtocol are ours to replace or remove.
RouteOps plan_routes(std::span<const nl::Route> desired, std::span<const nl::Route> current);

struct LinkOps {
  std::optional<unsigned> set_mtu;
  bool set_up = false;
  bool empty() const { return !set_mtu && !set_up; }
};
LinkOps plan_link(unsigned desired_mtu, const nl::Link& current);

}  // namespace meshd::dataplane
