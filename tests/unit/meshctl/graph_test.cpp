// `meshctl graph`: DOT from canned nodes, rendered by Graphviz's `dot` (the
// real tool, as a person would) and checked in the SVG it draws: one node per
// record, one edge from this node to each peer, coloured by handshake state.
#include "meshd/meshctl/graph.h"

#include "tests/support/prerequisite.h"
#include "tests/support/process.h"
#include "tests/unit/meshctl/test_server.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>

namespace meshd::meshctl {
namespace {

bool dot_available() { return ::access("/usr/bin/dot", X_OK) == 0; }

std::string unescape_svg(std::string s) {
  for (auto [from, to] : {std::pair<std::string, std::string>{"&#45;", "-"}, {"&gt;", ">"},
                          {"&lt;", "<"}, {"&quot;", "\""}, {"&#92;", "\\"}, {"&amp;", "&"}}) {
    for (std::size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
  }
  return s;
}

struct Drawn {
  std::set<std::string> nodes;
  std::map<std::string, std::string> edge_colour;  // "a->b" -> stroke
  std::string svg;
};

// Renders `dot_text` with `dot -Tsvg` and reads back node titles and each
// edge's title with the stroke colour of its path.
Drawn render(const std::string& dot_text) {
  auto r = testing::run_process({"/usr/bin/dot", "-Tsvg"}, dot_text);
  EXPECT_EQ(r.exit_code, 0) << r.err << dot_text;
  EXPECT_EQ(r.err, "") << dot_text;
  Drawn d;
  d.svg = r.out;
  static const std::regex node_re(R"(<g id="node\d+" class="node">\s*<title>([^<]*)</title>)");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), node_re), end; it != end; ++it)
    d.nodes.insert(unescape_svg((*it)[1]));
  static const std::regex edge_re(
      R"re(<g id="edge\d+" class="edge">\s*<title>([^<]*)</title>\s*<path fill="none" stroke="([^"]*)")re");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), edge_re), end; it != end; ++it)
    d.edge_colour[unescape_svg((*it)[1])] = (*it)[2];
  return d;
}

TEST(MeshctlGraph, LinkStateThresholds) {
  NodeView n;
  n.reachable = true;
  n.last_handshake_age_seconds = 0;
  EXPECT_EQ(link_state(n), LinkState::up);
  n.last_handshake_age_seconds = kHandshakeOldSeconds;
  EXPECT_EQ(link_state(n), LinkState::up);
  n.last_handshake_age_seconds = kHandshakeOldSeconds + 1;
  EXPECT_EQ(link_state(n), LinkState::old);
  n.last_handshake_age_seconds.reset();
  EXPECT_EQ(link_state(n), LinkState::down);  // never
  n.last_handshake_age_seconds = 5;
  n.reachable = false;
  EXPECT_EQ(link_state(n), LinkState::down);
  EXPECT_STREQ(link_colour(LinkState::up), "green");
  EXPECT_STREQ(link_colour(LinkState::old), "orange");
  EXPECT_STREQ(link_colour(LinkState::down), "red");
}

TEST(MeshctlGraph, DotRendersEveryNodeAndAnEdgePerPeerColouredByHandshake) {
  MESHD_REQUIRE(dot_available(), "graphviz (dot) not installed");
  auto nodes = parse_nodes(testing::kNodesJson);
  ASSERT_TRUE(nodes);
  std::string dot_text = format_dot(*nodes);
  Drawn d = render(dot_text);
  EXPECT_EQ(d.nodes, (std::set<std::string>{"node-a", "node-b", "node-c", "node-d"})) << d.svg;
  EXPECT_EQ(d.edge_colour, (std::map<std::string, std::string>{{"node-a->node-b", "green"},
                                                                {"node-a->node-c", "orange"},
                                                                {"node-a->node-d", "red"}}))
      << d.svg;
  // The labels carry pod CIDRs and endpoints.
  for (const char* text : {"10.244.2.0/24", "192.0.2.2:51820", "[2001:db8::3]:51820", "never"})
    EXPECT_NE(unescape_svg(d.svg).find(text), std::string::npos) << text;
}

TEST(MeshctlGraph, NoSelfRecordMeansNoEdgesAndRecordsNotInEffectAreDashedWithoutAnEdge) {
  MESHD_REQUIRE(dot_available(), "graphviz (dot) not installed");
  auto nodes = parse_nodes(
      R"({"nodes":[{"name":"a","self":true},{"name":"b","in_effect":false,"stats":{"reachable":true,"last_handshake_age_seconds":1}}]})");
  ASSERT_TRUE(nodes);
  Drawn d = render(format_dot(*nodes));
  EXPECT_EQ(d.nodes, (std::set<std::string>{"a", "b"}));
  EXPECT_TRUE(d.edge_colour.empty()) << d.svg;
  EXPECT_NE(d.svg.find("stroke-dasharray"), std::string::npos) << d.svg;

  auto peers_only = parse_nodes(R"({"nodes":[{"name":"a"},{"name":"b"}]})");
  ASSERT_TRUE(peers_only);
  EXPECT_TRUE(render(format_dot(*peers_only)).edge_colour.empty());
}

// Whether the SVG draws the node or edge titled `title` dashed.
bool drawn_dashed(const std::string& svg, const std::string& kind, const std::string& title) {
  std::regex re("<g id=\"" + kind + "\\d+\" class=\"" + kind + "\">\\s*<title>" + title +
                "</title>\\s*<(path|polygon)[^>]*>");
  std::smatch m;
  std::string s = unescape_svg(svg);
  if (!std::regex_search(s, m, re)) {
    ADD_FAILURE() << kind << " " << title << " not drawn\n" << svg;
    return false;
  }
  return m.str().find("stroke-dasharray") != std::string::npos;
}

// Removed nodes are not drawn (a reinstalled host may have their name);
// silent and prunable ones are dashed, and so is the edge to them.
TEST(MeshctlGraph, RemovedNodesAreNotDrawnAndQuietOnesAreDashed) {
  MESHD_REQUIRE(dot_available(), "graphviz (dot) not installed");
  auto nodes = parse_nodes(testing::kLifecycleNodesJson);
  ASSERT_TRUE(nodes);
  std::string dot_text = format_dot(*nodes);
  Drawn d = render(dot_text);
  EXPECT_EQ(d.nodes, (std::set<std::string>{"node-a", "node-b", "node-c", "node-e"})) << dot_text;
  EXPECT_EQ(d.edge_colour, (std::map<std::string, std::string>{{"node-a->node-b", "green"},
                                                                {"node-a->node-c", "red"},
                                                                {"node-a->node-e", "red"}}))
      << dot_text;
  EXPECT_EQ(dot_text.find("10.244.9.0/24"), std::string::npos) << "the tombstone of node-b\n" << dot_text;
  EXPECT_EQ(dot_text.find("node-d"), std::string::npos) << dot_text;
  EXPECT_FALSE(drawn_dashed(d.svg, "node", "node-b"));
  EXPECT_FALSE(drawn_dashed(d.svg, "edge", "node-a->node-b"));
  for (const char* quiet : {"node-c", "node-e"}) {
    EXPECT_TRUE(drawn_dashed(d.svg, "node", quiet)) << quiet << "\n" << dot_text;
    EXPECT_TRUE(drawn_dashed(d.svg, "edge", std::string("node-a->") + quiet)) << quiet << "\n" << dot_text;
  }
  for (const char* text : {"silent", "prunable"})
    EXPECT_NE(unescape_svg(d.svg).find(text), std::string::npos) << text;
}

// A name cannot break out of its quoted string: quotes, backslashes (one at
// the end too), braces, newlines and escapes all stay inside one node.
TEST(MeshctlGraph, HostileNamesStayInsideTheirQuotes) {
  MESHD_REQUIRE(dot_available(), "graphviz (dot) not installed");
  std::vector<NodeView> nodes(3);
  nodes[0].name = "self";
  nodes[0].self = true;
  nodes[1].name = "x\"; evil -> self; \"y\\";
  nodes[1].reachable = true;
  nodes[1].last_handshake_age_seconds = 1;
  nodes[2].name = "a}\n\x1b[2J{b\\";
  std::string dot_text = format_dot(nodes);
  Drawn d = render(dot_text);
  EXPECT_EQ(d.nodes.size(), 3u) << dot_text;
  EXPECT_EQ(d.edge_colour.size(), 2u) << dot_text;
  EXPECT_FALSE(d.nodes.contains("evil")) << dot_text;
  EXPECT_EQ(dot_text.find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace meshd::meshctl
