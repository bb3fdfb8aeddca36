// Strict standard base64 (RFC 4648 section 4, with '=' padding) for
// fixed-size secrets and signatures. Exists because libsodium 1.0.18's
// sodium_base642bin accepts bytes 0x80-0xff as if they were base64
// characters, so a key text that `wg` rejects would pass; keys must be
// accepted exactly when wireguard-tools accepts them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace meshd::keys {

// Length of the padded encoding of n bytes.
constexpr std::size_t base64_length(std::size_t n) { return (n + 2) / 3 * 4; }

std::string base64_encode(std::span<const std::uint8_t> in);

// Decodes `text` into exactly out.size() bytes. True only for the canonical
// encoding: exact length, standard alphabet, exactly the required '='
// padding, and zero unused bits in the last character (so each byte string
// has one text form). Runs in time independent of the characters' values.
// On failure `out` is zeroed.
bool base64_decode_exact(std::string_view text, std::span<std::uint8_t> out);

}  // namespace meshd::keys
