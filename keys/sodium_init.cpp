#include "keys/sodium_init.h"

#include <sodium.h>

#include <stdexcept>

namespace meshd::keys {

void ensure_sodium() {
  // Thread-safe: a function-local static is initialised exactly once, and
  // sodium_init() itself is idempotent (returns 1 when already done).
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium initialisation failed: no usable random source");
}

}  // namespace meshd::keys
