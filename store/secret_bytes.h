// Byte buffers for secrets read from SQLite (token verifiers, the identity
// secret): a std::vector whose allocator wipes every block it frees
// (sodium_memzero), so neither the final buffer nor the ones left behind
// when the vector grows keep a copy of the secret in freed heap memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace meshd::store {

namespace detail {
// sodium_memzero, kept out of this header.
void wipe_bytes(void* p, std::size_t n) noexcept;
}  // namespace detail

// Wraps `Upstream` (std::allocator by default): memory is wiped before it
// is handed back. Tests plug in an upstream that keeps the memory readable.
template <class T, class Upstream = std::allocator<T>>
class WipingAllocator {
 public:
  using value_type = T;
  using is_always_equal = typename std::allocator_traits<Upstream>::is_always_equal;

  WipingAllocator() = default;
  explicit WipingAllocator(Upstream up) : up_(std::move(up)) {}

  T* allocate(std::size_t n) { return up_.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    detail::wipe_bytes(p, n * sizeof(T));
    up_.deallocate(p, n);
  }
  const Upstream& upstream() const { return up_; }

  friend bool operator==(const WipingAllocator& a, const WipingAllocator& b) {
    return a.up_ == b.up_;
  }

 private:
  [[no_unique_address]] Upstream up_;
};

using SecretBytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t>>;

}  // namespace meshd::store
