// Pure diffs of desired against observed state. Each returns the smallest
// change that turns what the kernel (or wireguard-go) reports into what the
// desired state says, and nothing when they already agree.
#pragma once

#include "meshd/dataplane/desired_state.h"
#include "netlink/rtnl.h"
#include "netlink/wg_device.h"

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace meshd::dataplane {

// The endpoint meshd last asked for, per peer key: what the desired state
// said when the peer was added or its endpoint last set (or found already so).
using AppliedEndpoints = std::map<keys::PublicKey, Endpoint>;

// One line of what a pass changed, for the caller to log; `peer`: the key
// of the WireGuard peer it is about, when it is about one (the caller names
// the peer in the log's MESHD_PEER field: logging/fields.h).
struct ChangeNote {
  ChangeNote(std::string t, std::optional<keys::PublicKey> p = std::nullopt)
      : text(std::move(t)), peer(std::move(p)) {}
  std::string text;
  std::optional<keys::PublicKey> peer;
};

// The WireGuard change: a partial WgDevice with one entry per peer to add,
// update or remove (never replace_peers: that would reset every session).
// std::nullopt when nothing differs. `notes` says what changed and why, for
// the caller to log (keys shown as short prefixes).
struct DevicePlan {
  std::optional<wg::WgDevice> change;
  std::vector<ChangeNote> notes;
  std::size_t peers_added = 0, peers_updated = 0, peers_removed = 0;
  // What the caller keeps as `applied` for the next plan once `change` has
  // been applied (or at once when there is none): the desired endpoint of
  // every desired peer that has one.
  AppliedEndpoints endpoints;
};
// Endpoints: WireGuard roams (a peer's authenticated packets from a new
// address move its endpoint there: https://www.wireguard.com/#built-in-roaming),
// so a device endpoint that differs from the desired one is not
// drift. A peer's endpoint is set when the peer is added, and when its
// desired endpoint differs from `applied`'s entry for its key; with no
// entry (a first pass) it is set when the device's differs.
DevicePlan plan_device(const wg::WgDevice& desired, const wg::WgDevice& current,
                       const AppliedEndpoints& applied = {});

struct AddressOps {
  std::vector<IpPrefix> add;
  std::vector<IpPrefix> remove;
  bool empty() const { return add.empty() && remove.empty(); }
};
// The WireGuard interface belongs to meshd: addresses on it that the desired
// state does not list are removed, except IPv6 link-local ones (fe80::/10),
// which the kernel configures itself on every IPv6-enabled link (RFC 4862):
// removing one only makes the kernel's routes for it churn.
AddressOps plan_addresses(std::span<const IpPrefix> desired, std::span<const IpPrefix> current);

// Someone else's route (another protocol) in the slot a mesh route needs.
struct RouteConflict {
  nl::Route wanted;   // ours, not installed
  nl::Route holder;   // theirs, left alone
};
struct RouteOps {
  std::vector<nl::Route> add;
  std::vector<nl::Route> replace;  // same destination, other attributes
  std::vector<nl::Route> remove;
  // Not operations: the routes we cannot install without breaking whoever
  // installed the holder. The caller reports them (the mesh is out of sync).
  std::vector<RouteConflict> conflicts;
  bool empty() const { return add.empty() && replace.empty() && remove.empty(); }
};
// `desired` routes must already carry the interface's oif. Only routes tagged
// with kMeshdRouteProtocol are ours to replace or remove. Both sides are
// compared in the form the kernel stores (kernel_route_form), so an IPv6
// route asked for with metric 0 matches the metric-1024 route it became.
RouteOps plan_routes(std::span<const nl::Route> desired, std::span<const nl::Route> current);

// "static (4)", "bgp (186)", "77": a route protocol number as iproute2's
// rt_protos names it, for messages.
std::string route_protocol_name(std::uint8_t protocol);

struct LinkOps {
  std::optional<unsigned> set_mtu;
  bool set_up = false;
  bool empty() const { return !set_mtu && !set_up; }
};
LinkOps plan_link(unsigned desired_mtu, const nl::Link& current);

}  // namespace meshd::dataplane
