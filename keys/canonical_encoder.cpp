#include "keys/canonical_encoder.h"

#include <stdexcept>

namespace meshd::keys {

CanonicalEncoder::CanonicalEncoder(std::string_view context) : context_(context) {
  // An empty context would make domain separation meaningless; it is a
  // programming error, not input.
  if (context.empty()) throw std::invalid_argument("CanonicalEncoder: empty context");
  put_tagged(kContext, context.data(), context.size());
}

void CanonicalEncoder::put_u64(std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out_.push_back(static_cast<std::uint8_t>(v >> shift));
}

void CanonicalEncoder::put_tagged(Tag tag, const void* p, std::size_t n) {
  out_.push_back(tag);
  put_u64(n);
  const auto* b = static_cast<const std::uint8_t*>(p);
  out_.insert(out_.end(), b, b + n);
}

CanonicalEncoder& CanonicalEncoder::u64(std::uint64_t v) {
  out_.push_back(kU64);
  put_u64(v);
  return *this;
}

CanonicalEncoder& CanonicalEncoder::boolean(bool v) {
  out_.push_back(kBool);
  out_.push_back(v ? 1 : 0);
  return *this;
}

CanonicalEncoder& CanonicalEncoder::str(std::string_view s) {
  put_tagged(kString, s.data(), s.size());
  return *this;
}

CanonicalEncoder& CanonicalEncoder::bytes(std::span<const std::uint8_t> b) {
  put_tagged(kBytes, b.data(), b.size());
  return *this;
}

CanonicalEncoder& CanonicalEncoder::list(std::uint64_t count) {
  out_.push_back(kList);
  put_u64(count);
  return *this;
}

CanonicalEncoder& CanonicalEncoder::str_list(std::span<const std::string> items) {
  list(items.size());
  for (const auto& s : items) str(s);
  return *this;
}

std::optional<CanonicalEncoder> CanonicalEncoder::adopt(std::span<const std::uint8_t> encoded) {
  constexpr std::size_t kHeader = 1 + 8;
  if (encoded.size() < kHeader || encoded[0] != kContext) return std::nullopt;
  std::uint64_t n = 0;
  for (std::size_t i = 1; i < kHeader; ++i) n = (n << 8) | encoded[i];
  if (n == 0 || n > encoded.size() - kHeader) return std::nullopt;
  CanonicalEncoder e;
  e.context_.assign(reinterpret_cast<const char*>(encoded.data() + kHeader), n);
  e.out_.assign(encoded.begin(), encoded.end());
  return e;
}

}  // namespace meshd::keys
