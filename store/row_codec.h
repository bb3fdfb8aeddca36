// The store's TEXT and INTEGER columns that hold structured values, as pure
// functions: how a value is written, and how a column read back from the
// file is turned into a value again. A database file can be edited or
// corrupted by anyone with access to it, so decoding validates everything
// and answers with an error naming what was wrong, never a crash or a
// silently wrapped number. The fuzz target tests/fuzz/store/ drives these.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace meshd::store::codec {

// Prefix columns (cluster.cidr, local_node.pod_cidr): what
// IpPrefix::to_string() wrote.
Result<IpPrefix> decode_prefix(std::string_view text);

// cluster.node_prefix_length: an integer that must fit the cluster CIDR
// (cidr length to 32 or 128), not a number cut to 8 bits.
Result<std::uint8_t> decode_node_prefix_length(std::int64_t stored, const IpPrefix& cidr);

// local_node.mtu: 0 (not chosen yet) or an MTU up to 65535.
inline constexpr std::int64_t kMaxMtu = 65535;
Result<unsigned> decode_mtu(std::int64_t stored);

}  // namespace meshd::store::codec
