#include "meshd/dataplane/event_filter.h"

#include <algorithm>

namespace meshd::dataplane {

namespace {

bool ours(int ifindex, const EventScope& s) { return s.device_index != 0 && ifindex == s.device_index; }

// The route towards the MTU probe: a change of any route that covers it may
// move the underlay (a more specific one appears, the default changes).
bool underlay_route(const nl::Route& r, const EventScope& s) {
  if (!s.mtu_from_underlay) return false;
  if (s.mtu_probe) return r.dst.contains(*s.mtu_probe);
  return r.dst.length == 0;
}

}  // namespace

EventEffect event_effect(const nl::Event& ev, const EventScope& s) {
  switch (ev.type) {
    case nl::Event::Type::kLink:
      // By name too: a device deleted and made again has a new index.
      if (s.mtu_from_underlay && s.underlay_index != 0 && ev.ifindex == s.underlay_index)
        return EventEffect::kUnderlay;
      if (ours(ev.ifindex, s) || (!ev.ifname.empty() && ev.ifname == s.device)) return EventEffect::kMesh;
      return EventEffect::kNone;
    case nl::Event::Type::kAddress:
      return ours(ev.ifindex, s) ? EventEffect::kMesh : EventEffect::kNone;
    case nl::Event::Type::kRoute: {
      // A route event the parser could not describe: assume the worst.
      if (!ev.route) return EventEffect::kMesh;
      const nl::Route& r = *ev.route;
      if (underlay_route(r, s)) return EventEffect::kUnderlay;
      if (r.protocol == nl::kMeshdRouteProtocol || ours(r.oif, s)) return EventEffect::kMesh;
      // Someone else's route taking or leaving the slot of a mesh route.
      if (r.table == s.route_table) {
        IpPrefix dst = r.dst.network();
        if (std::find(s.route_slots.begin(), s.route_slots.end(), dst) != s.route_slots.end())
          return EventEffect::kMesh;
      }
      return EventEffect::kNone;
    }
  }
  return EventEffect::kMesh;
}

}  // namespace meshd::dataplane
