#include "store/row_codec.h"

namespace meshd::store::codec {

namespace {

bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace

std::string encode_endpoints(std::span<const Endpoint> endpoints) {
  std::string s;
  for (const auto& e : endpoints) {
    if (!s.empty()) s += ' ';
    s += e.to_string();
  }
  return s;
}

Result<std::vector<Endpoint>> decode_endpoints(std::string_view text) {
  std::vector<Endpoint> out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (is_space(text[i])) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < text.size() && !is_space(text[end])) ++end;
    auto e = Endpoint::parse(text.substr(i, end - i));
    if (!e) return e.error();
    out.push_back(*e);
    i = end;
  }
  return out;
}

Result<IpPrefix> decode_prefix(std::string_view text) { return IpPrefix::parse(text); }

Result<std::uint8_t> decode_node_prefix_length(std::int64_t stored, const IpPrefix& cidr) {
  if (stored < cidr.length || stored > cidr.max_length())
    return Error::invalid("node prefix length " + std::to_string(stored) + " does not fit in " +
                          cidr.to_string() + " (expected " + std::to_string(cidr.length) + " to " +
                          std::to_string(cidr.max_length()) + ")");
  return static_cast<std::uint8_t>(stored);
}

Result<unsigned> decode_mtu(std::int64_t stored) {
  if (stored < 0 || stored > kMaxMtu)
    return Error::invalid("MTU " + std::to_string(stored) + " is out of range (expected 0 to " +
                          std::to_string(kMaxMtu) + ")");
  return static_cast<unsigned>(stored);
}

}  // namespace meshd::store::codec
