#include "meshd/meshctl/graph.h"

#include <cmath>

namespace meshd::meshctl {

namespace {

// A DOT quoted string (graphviz.org/doc/info/lang.html: inside quotes only
// \" is an escape for the parser; in labels a backslash starts an escape
// such as \n). Control characters become \xNN first, then every backslash is
// doubled, so neither a quote nor a trailing backslash can end the string
// early and no name can inject DOT.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : printable(s)) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

// A label of several lines: each line quoted as above, joined with DOT's \n.
std::string label(const std::vector<std::string>& lines) {
  std::string out = "\"";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\\n";
    std::string q = quoted(lines[i]);
    out.append(q, 1, q.size() - 2);
  }
  out += '"';
  return out;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

}  // namespace

LinkState link_state(const NodeView& peer) {
  if (!peer.reachable || !peer.last_handshake_age_seconds ||
      !std::isfinite(*peer.last_handshake_age_seconds))
    return LinkState::down;
  return *peer.last_handshake_age_seconds > kHandshakeOldSeconds ? LinkState::old : LinkState::up;
}

const char* link_colour(LinkState s) {
  switch (s) {
    case LinkState::up: return "green";
    case LinkState::old: return "orange";
    case LinkState::down: return "red";
  }
  return "red";
}

std::string format_dot(const std::vector<NodeView>& nodes) {
  std::string out =
      "digraph meshd {\n"
      "  graph [rankdir=LR];\n"
      "  node [shape=box, fontname=\"monospace\"];\n";
  const NodeView* self = nullptr;
  for (const NodeView& n : nodes) {
    // A removed node is no longer part of the mesh (and a reinstalled host
    // may have taken its name).
    if (n.removed) continue;
    if (n.self && !self) self = &n;
    std::vector<std::string> lines{n.name, n.pod_cidr.value_or("-"),
                                   n.endpoints.empty() ? "-" : joined(n.endpoints)};
    if (!n.self && n.quiet()) lines.push_back(*n.liveness);
    out += "  " + quoted(n.name) + " [label=" + label(lines);
    if (n.self) out += ", style=bold";
    else if (!n.in_effect || n.quiet()) out += ", style=dashed";
    out += "];\n";
  }
  if (self)
    for (const NodeView& n : nodes) {
      if (n.self || n.removed || !n.in_effect) continue;
      LinkState s = link_state(n);
      std::string age = n.last_handshake_age_seconds ? format_age(*n.last_handshake_age_seconds)
                                                     : std::string("never");
      out += "  " + quoted(self->name) + " -> " + quoted(n.name) + " [color=" + link_colour(s) +
             ", label=" + quoted(age) + (n.quiet() ? ", style=dashed" : "") + "];\n";
    }
  out += "}\n";
  return out;
}

}  // namespace meshd::meshctl
