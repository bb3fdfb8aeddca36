#include "keys/base64.h"

#include <sodium.h>

namespace meshd::keys {

namespace {

// All ones if lo <= c <= hi, else zero, without branching on c (c is 0..255,
// so both differences fit and only their sign bits matter).
inline int in_range(int c, int lo, int hi) { return ((lo - 1 - c) & (c - (hi + 1))) >> 8; }

// The 6-bit value of a base64 character, or -1.
inline int char_value(unsigned char uc) {
  const int c = uc;
  return -1 + (in_range(c, 'A', 'Z') & (c - 'A' + 1)) + (in_range(c, 'a', 'z') & (c - 'a' + 27)) +
         (in_range(c, '0', '9') & (c - '0' + 53)) + (in_range(c, '+', '+') & 63) +
         (in_range(c, '/', '/') & 64);
}

}  // namespace

std::string base64_encode(std::span<const std::uint8_t> in) {
  // libsodium's encoder is correct and constant time; only its decoder is lax.
  std::string out(base64_length(in.size()) + 1, '\0');
  sodium_bin2base64(out.data(), out.size(), in.data(), in.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();
  return out;
}

bool base64_decode_exact(std::string_view text, std::span<std::uint8_t> out) {
  const std::size_t n = out.size();
  const std::size_t pads = (3 - n % 3) % 3;
  if (text.size() != base64_length(n)) return false;
  // Where the padding goes is public (it depends on the length only).
  for (std::size_t i = text.size() - pads; i < text.size(); ++i)
    if (text[i] != '=') return false;

  int bad = 0;  // negative once any character is outside the alphabet
  std::uint32_t acc = 0;
  unsigned bits = 0;
  std::size_t o = 0;
  const std::size_t data_chars = text.size() - pads;
  for (std::size_t i = 0; i < data_chars; ++i) {
    const int v = char_value(static_cast<unsigned char>(text[i]));
    bad |= v;
    acc = (acc << 6) | static_cast<std::uint32_t>(v & 63);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = static_cast<std::uint8_t>(acc >> bits);
    }
  }
  // Unused low bits of the last character must be zero: else two texts would
  // decode to the same key (wg rejects them too).
  const std::uint32_t leftover = acc & ((1u << bits) - 1);
  if (bad < 0 || leftover != 0 || o != n) {
    sodium_memzero(out.data(), out.size());
    return false;
  }
  return true;
}

}  // namespace meshd::keys
