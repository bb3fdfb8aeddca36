// IP addresses, prefixes and UDP endpoints as plain values: parsed from and
// printed to the forms operators type (10.1.0.0/16, [fd00::1]:51820), with no
// dependency on Asio so that every library can use them cheaply.
#pragma once

#include "common/result.h"

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

struct sockaddr;
struct sockaddr_storage;

namespace meshd {

struct IpAddress {
  int family = 0;                    // AF_INET or AF_INET6; 0 = unset
  std::array<std::uint8_t, 16> bytes{};  // v4 uses the first 4

  static Result<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d);
  static IpAddress from_v4_u32(std::uint32_t host_order);

  bool is_v4() const;
  bool is_v6() const;
  bool empty() const { return family == 0; }
  std::size_t size() const { return is_v4() ? 4 : 16; }  // bytes in use
  std::uint32_t v4_u32() const;  // host order; v4 only
  std::string to_string() const;

  auto operator<=>(const IpAddress&) const = default;
};

struct IpPrefix {
  IpAddress address;
  std::uint8_t length = 0;

  // Accepts "a.b.c.d/n", "x::y/n"; a bare address is a host prefix (/32, /128).
  // Host bits may be set (an interface address "10.1.0.5/24" is a valid prefix).
  static Result<IpPrefix> parse(std::string_view text);

  std::uint8_t max_length() const { return address.is_v4() ? 32 : 128; }
  IpPrefix network() const;  // host bits cleared
  bool contains(const IpAddress& a) const;
  bool contains(const IpPrefix& p) const;
  bool overlaps(const IpPrefix& p) const;
  std::string to_string() const;

  auto operator<=>(const IpPrefix&) const = default;
};

struct Endpoint {
  IpAddress address;
  std::uint16_t port = 0;

  // "1.2.3.4:51820" or "[fd00::1]:51820". No host names: meshd never resolves.
  static Result<Endpoint> parse(std::string_view text);

  // To and from the kernel's sockaddr_in / sockaddr_in6.
  static Result<Endpoint> from_sockaddr(const sockaddr* sa, std::size_t len);
  std::size_t to_sockaddr(sockaddr_storage& out) const;  // returns the length used

  bool empty() const { return address.empty(); }
  std::string to_string() const;

  auto operator<=>(const Endpoint&) const = default;
};

}  // namespace meshd
