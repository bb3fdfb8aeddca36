#include "cni/naming.h"

#include <cstdint>
#include <cstdio>

namespace meshd::cni {

namespace {

// FNV-1a 64: stable across builds and releases (std::hash is not), which
// matters because a newer plugin must find veths an older one created.
std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}
constexpr std::uint64_t kFnvBasis = 0xcbf29ce484222325ULL;

std::string hex(std::uint64_t v, int digits) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf + 16 - digits, digits);
}

}  // namespace

std::string host_veth_prefix(std::string_view network) {
  return "mc" + hex(fnv1a(kFnvBasis, network), 4);
}

std::string host_veth_name(std::string_view network, std::string_view container_id,
                           std::string_view ifname) {
  // '\0' separates the parts: ("ab","c") and ("a","bc") must differ.
  std::uint64_t h = fnv1a(kFnvBasis, container_id);
  h = fnv1a(h, std::string_view("\0", 1));
  h = fnv1a(h, ifname);
  return host_veth_prefix(network) + hex(h, 9);
}

}  // namespace meshd::cni
