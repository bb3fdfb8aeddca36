#include "meshd/controlplane/canonical_decoder.h"

#include "keys/canonical_encoder.h"

namespace meshd::controlplane {

using Enc = keys::CanonicalEncoder;

namespace {
constexpr int kMaxDepth = 4;
}

bool CanonicalDecoder::take_tag(std::uint8_t tag) {
  if (!ok_ || pos_ >= data_.size() || data_[pos_] != tag) {
    fail();
    return false;
  }
  ++pos_;
  return true;
}

std::optional<std::uint64_t> CanonicalDecoder::take_u64() {
  if (!ok_ || data_.size() - pos_ < 8) {
    fail();
    return std::nullopt;
  }
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | data_[pos_++];
  return v;
}

std::span<const std::uint8_t> CanonicalDecoder::take_sized(std::uint8_t tag,
                                                           std::size_t max_length) {
  if (!take_tag(tag)) return {};
  auto n = take_u64();
  if (!n || *n > max_length || *n > data_.size() - pos_) {
    fail();
    return {};
  }
  auto out = data_.subspan(pos_, static_cast<std::size_t>(*n));
  pos_ += out.size();
  return out;
}

bool CanonicalDecoder::context(std::string_view expected) {
  auto s = take_sized(Enc::kContext, expected.size());
  if (ok_ && std::string_view(reinterpret_cast<const char*>(s.data()), s.size()) != expected)
    fail();
  return ok_;
}

std::uint64_t CanonicalDecoder::u64() {
  if (!take_tag(Enc::kU64)) return 0;
  return take_u64().value_or(0);
}

bool CanonicalDecoder::boolean() {
  if (!take_tag(Enc::kBool)) return false;
  if (pos_ >= data_.size() || data_[pos_] > 1) {
    fail();  // only 0 and 1: one value, one encoding
    return false;
  }
  return data_[pos_++] == 1;
}

std::string CanonicalDecoder::str(std::size_t max_length) {
  auto s = take_sized(Enc::kString, max_length);
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

std::vector<std::uint8_t> CanonicalDecoder::bytes(std::size_t max_length) {
  auto s = take_sized(Enc::kBytes, max_length);
  return {s.begin(), s.end()};
}

void CanonicalDecoder::fixed_bytes(std::span<std::uint8_t> out) {
  auto s = take_sized(Enc::kBytes, out.size());
  if (ok_ && s.size() != out.size()) fail();
  if (ok_) std::copy(s.begin(), s.end(), out.begin());
}

std::uint64_t CanonicalDecoder::list(std::uint64_t max_count) {
  if (!take_tag(Enc::kList)) return 0;
  auto n = take_u64();
  if (!n || *n > max_count) {
    fail();
    return 0;
  }
  return *n;
}

void CanonicalDecoder::skip_field(int depth) {
  if (!ok_ || pos_ >= data_.size() || depth > kMaxDepth) {
    fail();
    return;
  }
  switch (data_[pos_]) {
    case Enc::kU64:
      u64();
      return;
    case Enc::kBool:
      boolean();
      return;
    case Enc::kString:
    case Enc::kBytes:
      take_sized(data_[pos_], data_.size());
      return;
    case Enc::kList: {
      // Each element takes at least one byte, which bounds the loop.
      std::uint64_t n = list(data_.size() - pos_);
      for (std::uint64_t i = 0; i < n && ok_; ++i) skip_field(depth + 1);
      return;
    }
    default:
      fail();  // a context inside a record, or an unknown tag
  }
}

void CanonicalDecoder::skip_rest() {
  while (ok_ && !at_end()) skip_field(0);
}

}  // namespace meshd::controlplane
