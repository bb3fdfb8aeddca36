#pragma once
#include "keys/wg_key.h"

namespace meshd::testing {
// Deterministic distinct public keys for tables of cases.
inline keys::PublicKey pk(std::uint8_t n) {
  keys::KeyBytes b{};
  b[0] = n;
  b[31] = 0x40;
  return keys::PublicKey(b);
}
}  // namespace meshd::testing
