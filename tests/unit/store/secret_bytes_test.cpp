// Secrets read from SQLite land in buffers that wipe themselves when freed.
#include "store/secret_bytes.h"

#include "store/local_node.h"
#include "store/tokens.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>

namespace meshd::store {
namespace {

// An upstream allocator that hands out one caller-owned buffer and never
// really frees it, so the test can look at what deallocation left behind.
struct Arena {
  using value_type = std::uint8_t;
  std::uint8_t* buf = nullptr;
  std::size_t size = 0;
  std::uint8_t* allocate(std::size_t n) {
    if (n > size) throw std::bad_alloc();
    return buf;
  }
  void deallocate(std::uint8_t*, std::size_t) noexcept {}
  bool operator==(const Arena&) const = default;
};

TEST(StoreSecretBytes, FreedMemoryIsWiped) {
  std::array<std::uint8_t, 64> arena{};
  {
    using Bytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t, Arena>>;
    Bytes secret(WipingAllocator<std::uint8_t, Arena>(Arena{arena.data(), arena.size()}));
    secret.assign(48, 0xa5);
    ASSERT_EQ(secret.data(), arena.data());
    ASSERT_TRUE(std::all_of(arena.begin(), arena.begin() + 48, [](auto b) { return b == 0xa5; }));
  }
  EXPECT_TRUE(std::all_of(arena.begin(), arena.end(), [](auto b) { return b == 0; }))
      << "the freed buffer still holds the secret";
}

// The store's secret-bearing values use the wiping buffer, so no caller has
// to remember to wipe them.
static_assert(std::is_same_v<decltype(Token::verifier), SecretBytes>);
static_assert(std::is_same_v<decltype(std::declval<LocalNodeRepo&>().identity_secret()),
                             Result<std::optional<SecretBytes>>>);

}  // namespace
}  // namespace meshd::store
