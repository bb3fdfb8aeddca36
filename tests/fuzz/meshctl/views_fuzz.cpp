// meshctl prints what meshd's API answers: any bytes, as any of the answers it
// parses (the first byte picks which: 0 status, 1 nodes, 2 one node, 3 token
// list, 4 created token, 5 events, 6 a node removal, 7 a key rotation), must
// give a view or an error with a
// message, never a crash; the text printed for a person has no control
// character but the newline ending each line; and the DOT graph drawn from
// nodes has balanced quotes on every line, so no name can escape its string.
#include "meshd/meshctl/graph.h"
#include "meshd/meshctl/views.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace meshd::meshctl;

void check_text(const std::string& out) {
  for (unsigned char c : out)
    if ((c < 0x20 && c != '\n') || c == 0x7f) std::abort();  // would reach the terminal
  if (!out.empty() && out.back() != '\n') std::abort();
}

// Every DOT line holds an even number of unescaped quotes.
void check_dot(const std::string& dot) {
  check_text(dot);
  bool in_string = false;
  for (std::size_t i = 0; i < dot.size(); ++i) {
    char c = dot[i];
    if (in_string && c == '\\') {
      ++i;  // the escaped character
      continue;
    }
    if (c == '"') in_string = !in_string;
    if (c == '\n' && in_string) std::abort();
  }
  if (in_string) std::abort();
}

template <class T>
bool failed_well(const meshd::Result<T>& r) {
  if (r) return false;
  if (r.error().message.empty()) std::abort();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::int64_t now = 1800000000;
  switch (data[0] % 8) {
    case 0: {
      auto s = parse_status(text);
      if (failed_well(s)) return 0;
      std::string out = format_status(*s, now * 1000);
      check_text(out);
      if (out.find(s->in_sync() ? "in sync:    yes\n" : "in sync:    no\n") == std::string::npos)
        std::abort();
      break;
    }
    case 1: {
      auto n = parse_nodes(text);
      if (failed_well(n)) return 0;
      std::string table = format_nodes(*n);
      check_text(table);
      std::size_t lines = 0;
      for (char c : table) lines += c == '\n';
      if (lines != n->size() + 1) std::abort();
      check_dot(format_dot(*n));
      break;
    }
    case 2: {
      auto n = parse_node(text);
      if (failed_well(n)) return 0;
      check_text(format_node(*n));
      break;
    }
    case 3: {
      auto t = parse_tokens(text);
      if (failed_well(t)) return 0;
      check_text(format_tokens(*t, now));
      break;
    }
    case 4: {
      auto t = parse_created_token(text);
      if (failed_well(t)) return 0;
      check_text(format_created_token(*t, now));
      break;
    }
    case 6: {
      auto r = parse_removal(text);
      if (failed_well(r)) return 0;
      std::string out = format_removal(*r);
      check_text(out);
      if (std::count(out.begin(), out.end(), '\n') != 1) std::abort();
      break;
    }
    case 7: {
      auto r = parse_rotation(text);
      if (failed_well(r)) return 0;
      std::string out = format_rotation(*r, now * 1000);
      check_text(out);
      if (std::count(out.begin(), out.end(), '\n') != 2) std::abort();
      break;
    }
    default: {
      auto e = parse_events(text);
      if (failed_well(e)) return 0;
      std::string out = format_events(*e);
      check_text(out);
      std::size_t lines = 0;
      for (char c : out) lines += c == '\n';
      if (lines != e->events.size()) std::abort();
      break;
    }
  }
  return 0;
}
