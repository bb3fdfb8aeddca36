// Deterministic, unambiguous bytes for a record that is signed or hashed.
//
// Signatures are over bytes, not over JSON or structs: two nodes must turn the
// same record into the same bytes, and no two different records may share
// bytes (else a signature over one vouches for the other). So:
//   - the encoding starts with a domain-separation context (e.g.
//     "meshd/node-record/v1"): a signature made for one kind of record can
//     never be replayed as another kind;
//   - every field carries a one-byte type tag and, when variable, a u64
//     big-endian length or element count: ("ab","c") and ("a","bc") differ, a
//     string never reads as bytes, a list's end is known;
//   - integers are fixed-width big-endian; no optional whitespace, no maps, no
//     floating point.
// The encoder never sorts or reorders: the caller writes fields in the order
// the record's schema fixes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::keys {

class CanonicalEncoder {
 public:
  enum Tag : std::uint8_t {
    kContext = 0x00,
    kU64 = 0x01,
    kString = 0x02,
    kBytes = 0x03,
    kList = 0x04,
    kBool = 0x05,
  };

  // `context` names the record kind and version; it must not be empty.
  explicit CanonicalEncoder(std::string_view context);

  CanonicalEncoder& u64(std::uint64_t v);
  CanonicalEncoder& boolean(bool v);
  CanonicalEncoder& str(std::string_view s);
  CanonicalEncoder& bytes(std::span<const std::uint8_t> b);
  // A list header: `count` elements follow, each written with the calls above
  // (nested lists included). The caller writes exactly `count` of them.
  CanonicalEncoder& list(std::uint64_t count);
  // Convenience for the common list of strings (e.g. pod CIDRs, endpoints).
  CanonicalEncoder& str_list(std::span<const std::string> items);

  // Takes bytes another encoder produced (a signed record received from a
  // peer) as they are, so that a signature is checked over exactly the bytes
  // that were signed, fields unknown to this version included. Nothing unless
  // they start with a non-empty context field.
  static std::optional<CanonicalEncoder> adopt(std::span<const std::uint8_t> encoded);

  const std::string& context() const { return context_; }
  const std::vector<std::uint8_t>& data() const { return out_; }

 private:
  CanonicalEncoder() = default;
  void put_u64(std::uint64_t v);
  void put_tagged(Tag tag, const void* p, std::size_t n);

  std::string context_;
  std::vector<std::uint8_t> out_;
};

}  // namespace meshd::keys
