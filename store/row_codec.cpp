#include "store/row_codec.h"

namespace meshd::store::codec {

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
