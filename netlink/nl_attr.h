// The one netlink attribute walker, for bytes of unknown origin (kernel
// replies, events, extended acks, fuzzer input). libmnl's mnl_attr_for_each
// and mnl_attr_ok stop silently at the first attribute that does not fit,
// which turns a truncated reply into a shorter one (a device with fewer
// peers, a route without its gateway). This walker reports it instead, and
// copies headers out with memcpy so unaligned input is never dereferenced.
#pragma once

#include "common/result.h"

#include <linux/netlink.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

namespace meshd::nl {

struct NlAttr {
  std::uint16_t type = 0;  // NLA_TYPE_MASK applied: the kernel may set NLA_F_NESTED
  std::span<const std::uint8_t> payload;
};

class NlAttrReader {
 public:
  explicit NlAttrReader(std::span<const std::uint8_t> bytes) : rest_(bytes) {}

  // The next attribute into `out`; false at the end. EINVAL, naming the
  // attribute and the lengths, when one is truncated. Up to 3 bytes of
  // alignment padding (NLA_ALIGNTO) may trail the last attribute.
  Result<bool> next(NlAttr& out) {
    if (rest_.size() < NLA_HDRLEN) {
      if (rest_.size() >= NLA_ALIGNTO) return Error::invalid("truncated netlink attribute header");
      return false;
    }
    nlattr h;
    std::memcpy(&h, rest_.data(), sizeof h);
    if (h.nla_len < NLA_HDRLEN || h.nla_len > rest_.size())
      return Error::invalid("netlink attribute " + std::to_string(h.nla_type & NLA_TYPE_MASK) +
                            " has length " + std::to_string(h.nla_len) + " but " +
                            std::to_string(rest_.size()) + " bytes remain");
    out.type = h.nla_type & NLA_TYPE_MASK;
    out.payload = rest_.subspan(NLA_HDRLEN, h.nla_len - NLA_HDRLEN);
    const std::size_t step = NLA_ALIGN(h.nla_len);
    rest_ = step >= rest_.size() ? std::span<const std::uint8_t>{} : rest_.subspan(step);
    return true;
  }

 private:
  std::span<const std::uint8_t> rest_;
};

// Attribute payloads indexed by type; absent types are empty optionals.
template <std::size_t N>
using NlAttrTable = std::array<std::optional<std::span<const std::uint8_t>>, N>;

// Walks every attribute of `bytes` into a table, as the kernel's nla_parse
// does: a later duplicate wins, types >= N are skipped (newer kernels add
// attributes). A truncated attribute fails the whole walk (EINVAL).
template <std::size_t N>
Result<NlAttrTable<N>> attr_table(std::span<const std::uint8_t> bytes) {
  NlAttrTable<N> tb{};
  NlAttrReader r(bytes);
  NlAttr a;
  for (;;) {
    auto more = r.next(a);
    if (!more) return more.error();
    if (!*more) return tb;
    if (a.type < N) tb[a.type] = a.payload;
  }
}

}  // namespace meshd::nl
