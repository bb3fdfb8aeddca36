// Reads what keys::CanonicalEncoder writes, for records received from peers.
//
// Every read checks the type tag and the length against what is left, and
// every variable field against a caller's bound, so no input can make it read
// past the end or allocate more than the bound. The first failure is sticky:
// after it, every read fails, and the caller checks ok() once.
//
// Fields a newer schema appends are skipped with skip_rest(): a record of the
// next version still decodes here, and its signature is still checked over
// all of its bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::controlplane {

class CanonicalDecoder {
 public:
  explicit CanonicalDecoder(std::span<const std::uint8_t> data) : data_(data) {}

  // The context field; fails unless it equals `expected`.
  bool context(std::string_view expected);
  std::uint64_t u64();
  bool boolean();
  std::string str(std::size_t max_length);
  std::vector<std::uint8_t> bytes(std::size_t max_length);
  // A bytes field of exactly out.size() bytes.
  void fixed_bytes(std::span<std::uint8_t> out);
  // A list header; fails above `max_count`. Returns the element count.
  std::uint64_t list(std::uint64_t max_count);
  // Skips every remaining field (well-formed ones only, lists nested at most
  // a few levels deep).
  void skip_rest();

  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == data_.size(); }

 private:
  bool take_tag(std::uint8_t tag);
  std::optional<std::uint64_t> take_u64();
  std::span<const std::uint8_t> take_sized(std::uint8_t tag, std::size_t max_length);
  void skip_field(int depth);
  void fail() { ok_ = false; }

  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace meshd::controlplane
