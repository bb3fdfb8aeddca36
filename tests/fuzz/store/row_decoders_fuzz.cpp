// The store's column decoders (store/row_codec.h) read text and integers
// from a file anyone with access could have edited. Input: one selector
// byte, then the column's bytes. Decoding must never crash; whatever it
// accepts must be in range and survive encode -> decode unchanged.
#include "store/row_codec.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

using namespace meshd;
using namespace meshd::store;

namespace {

std::int64_t int64_of(std::string_view s) {
  std::uint64_t v = 0;
  std::memcpy(&v, s.data(), std::min(s.size(), sizeof v));
  return static_cast<std::int64_t>(v);
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {  // prefix columns
      auto p = codec::decode_prefix(text);
      if (!p) return 0;
      check(p->length <= p->max_length());
      auto back = codec::decode_prefix(p->to_string());
      check(back && *back == *p);
      break;
    }
    case 1: {  // cluster: 8 bytes of node_prefix_length, then the CIDR text
      if (text.size() < 8) return 0;
      auto cidr = codec::decode_prefix(text.substr(8));
      if (!cidr) return 0;
      auto len = codec::decode_node_prefix_length(int64_of(text.substr(0, 8)), *cidr);
      if (!len) return 0;
      check(*len >= cidr->length && *len <= cidr->max_length() &&
            *len == int64_of(text.substr(0, 8)));
      break;
    }
    case 2: {  // local_node.mtu
      const std::int64_t stored = int64_of(text);
      auto mtu = codec::decode_mtu(stored);
      check(!mtu || (static_cast<std::int64_t>(*mtu) == stored && stored <= codec::kMaxMtu));
      break;
    }
  }
  return 0;
}
