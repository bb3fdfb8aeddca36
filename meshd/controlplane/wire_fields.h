// The field encoding the join exchange and re-admission share (internal to
// meshd/controlplane/): big-endian integers and `u8 id | u32 length | value`
// fields, split back with a bound on their number.
#pragma once

#include "meshd/controlplane/node_record.h"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::controlplane::wire {

using Bytes = std::vector<std::uint8_t>;

inline void put_u16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v & 0xff));
}
inline void put_u32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>((v >> s) & 0xff));
}
inline void put_u64(Bytes& b, std::uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>((v >> s) & 0xff));
}
inline std::uint64_t get_be(std::span<const std::uint8_t> b) {
  std::uint64_t v = 0;
  for (auto x : b) v = (v << 8) | x;
  return v;
}

inline void put_field(Bytes& b, std::uint8_t id, std::span<const std::uint8_t> v) {
  b.push_back(id);
  put_u32(b, static_cast<std::uint32_t>(v.size()));
  b.insert(b.end(), v.begin(), v.end());
}
inline void put_field(Bytes& b, std::uint8_t id, std::string_view s) {
  put_field(b, id, std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}
inline void put_field_u64(Bytes& b, std::uint8_t id, std::uint64_t v) {
  Bytes t;
  put_u64(t, v);
  put_field(b, id, t);
}
// meshd-next (see kProtocolVersion) ends every field list it writes with a
// field this version does not know; this version writes nothing here.
inline void put_next_version_field(Bytes& b) {
  if constexpr (kWritesNextVersionFields) put_field(b, kNextVersionFieldId, kNextVersionFieldValue);
}

struct Field {
  std::uint8_t id;
  std::span<const std::uint8_t> value;
};
// Splits `body` into fields; nothing if a length runs past the end or there
// are more than `max_fields`.
inline std::optional<std::vector<Field>> fields(std::span<const std::uint8_t> body,
                                                std::size_t max_fields) {
  std::vector<Field> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    if (body.size() - pos < 5 || out.size() == max_fields) return std::nullopt;
    std::uint8_t id = body[pos];
    std::uint64_t len = get_be(body.subspan(pos + 1, 4));
    pos += 5;
    if (len > body.size() - pos) return std::nullopt;
    out.push_back({id, body.subspan(pos, len)});
    pos += len;
  }
  return out;
}
inline std::string as_string(std::span<const std::uint8_t> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}
template <std::size_t N>
bool take_fixed(std::span<const std::uint8_t> v, std::array<std::uint8_t, N>& out) {
  if (v.size() != N) return false;
  std::copy(v.begin(), v.end(), out.begin());
  return true;
}
inline bool take_u64(std::span<const std::uint8_t> v, std::uint64_t& out) {
  if (v.size() != 8) return false;
  out = get_be(v);
  return true;
}

}  // namespace meshd::controlplane::wire
