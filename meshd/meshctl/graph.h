// `meshctl graph`: the mesh as Graphviz DOT, from GET /v1/nodes. Pure: the
// same nodes give the same text, so it is tested with canned answers and
// rendered by `dot` in a test.
#pragma once

#include "meshd/meshctl/views.h"

#include <string>
#include <vector>

namespace meshd::meshctl {

// A handshake older than this is "old": WireGuard rejects a session's keys
// 180 s after the handshake that made them (REJECT_AFTER_TIME, WireGuard
// paper section 6.1), so an older handshake means no session is live now.
inline constexpr double kHandshakeOldSeconds = 180;

enum class LinkState { up, old, down };

// up (green): reachable and a handshake within kHandshakeOldSeconds;
// old (orange): reachable, but the last handshake is older;
// down (red): never a handshake, or not reachable.
LinkState link_state(const NodeView& peer);
const char* link_colour(LinkState s);  // "green", "orange", "red"

// One DOT node per record but removed ones, with its name as the node id
// (label: name, pod CIDR, endpoints, and "silent" or "prunable" for a quiet
// node); this node drawn bold, records not in effect and quiet nodes dashed.
// One edge from this node to every other record in effect, coloured by
// link_state, labelled with the handshake age, dashed to a quiet node.
// Without a self record there are no edges. Every string is a DOT quoted string with `"`, `\` and
// control characters escaped, so no node name can break out of it.
std::string format_dot(const std::vector<NodeView>& nodes);

}  // namespace meshd::meshctl
