// Byte buffers that may hold key material (a GET_DEVICE dump carries the
// device's private key and every peer's preshared key; an uncapped ack echoes
// a SET_DEVICE request). The allocator wipes every block before giving it
// back, so neither the final buffer nor the blocks a growing vector leaves
// behind keep a copy of a key in freed memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string.h>  // explicit_bzero (glibc)
#include <vector>

namespace meshd::nl {

template <class T, class Base = std::allocator<T>>
struct WipingAllocator : Base {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = WipingAllocator<U, typename std::allocator_traits<Base>::template rebind_alloc<U>>;
  };

  WipingAllocator() = default;
  template <class U, class B>
  WipingAllocator(const WipingAllocator<U, B>& o) noexcept : Base(static_cast<const B&>(o)) {}

  void deallocate(T* p, std::size_t n) {
    // explicit_bzero: a memset before free may be optimised away.
    explicit_bzero(p, n * sizeof(T));
    Base::deallocate(p, n);
  }

  template <class U, class B>
  bool operator==(const WipingAllocator<U, B>&) const noexcept {
    return true;
  }
};

using WipedBytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t>>;

}  // namespace meshd::nl
