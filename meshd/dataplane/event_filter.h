// Which rtnetlink events can change what the reconciler would do. On a node
// every pod start makes a veth, addresses and a host route; none of those
// touch the mesh, and a full pass for each one (dumping addresses and the
// main table) is most of a busy node's reconcile cost. Pure: no I/O.
#pragma once

#include "common/ip.h"
#include "netlink/rtnl.h"

#include <optional>
#include <string>
#include <vector>

namespace meshd::dataplane {

// What the mesh depends on, as the daemon knows it when the event arrives.
struct EventScope {
  std::string device;             // the WireGuard interface
  int device_index = 0;           // its ifindex; 0 while unknown (matches by name only)
  std::uint32_t route_table = 254;
  std::vector<IpPrefix> route_slots;  // destinations of the mesh routes
  // The mesh MTU follows the underlay unless it is configured: the link it
  // was read from, and the destination whose route chose that link
  // (nullopt: the default route).
  bool mtu_from_underlay = false;
  int underlay_index = 0;
  std::optional<IpAddress> mtu_probe;
};

enum class EventEffect {
  kNone,      // nothing of the mesh: ignore
  kMesh,      // our device, its addresses, or a route in or of the mesh: reconcile
  kUnderlay,  // the link or route the mesh MTU comes from: derive the MTU again, reconcile
};

// kUnderlay wins over kMesh when both apply.
EventEffect event_effect(const nl::Event& ev, const EventScope& scope);

}  // namespace meshd::dataplane
