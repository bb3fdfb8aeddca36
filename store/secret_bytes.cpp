#include "store/secret_bytes.h"

#include <sodium.h>

namespace meshd::store::detail {

void wipe_bytes(void* p, std::size_t n) noexcept {
  if (p != nullptr && n != 0) sodium_memzero(p, n);
}

}  // namespace meshd::store::detail
