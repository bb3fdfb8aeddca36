#include "common/ip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

namespace meshd {

namespace {

Result<unsigned> parse_uint(std::string_view text, unsigned max, std::string_view what,
                            std::string_view whole) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || p != text.data() + text.size() || v > max)
    return Error::invalid("invalid " + std::string(what) + " in \"" + std::string(whole) +
                          "\": expected a number from 0 to " + std::to_string(max));
  return v;
}

}  // namespace

Result<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string and rejects anything odd (spaces,
  // leading zeros in v4 octets on glibc are accepted as decimal, which is fine).
  if (text.empty() || text.size() > INET6_ADDRSTRLEN)
    return Error::invalid("invalid IP address \"" + std::string(text) +
                          "\": expected a.b.c.d or an IPv6 address");
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return Error::invalid("invalid IP address \"" + s + "\": expected a.b.c.d or an IPv6 address");
}

IpAddress IpAddress::v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  IpAddress r;
  r.family = AF_INET;
  r.bytes[0] = a;
  r.bytes[1] = b;
  r.bytes[2] = c;
  r.bytes[3] = d;
  return r;
}

IpAddress IpAddress::from_v4_u32(std::uint32_t v) {
  return v4(static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
            static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v));
}

bool IpAddress::is_v4() const { return family == AF_INET; }
bool IpAddress::is_v6() const { return family == AF_INET6; }

std::uint32_t IpAddress::v4_u32() const {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::string IpAddress::to_string() const {
  if (family == 0) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr)
    return Error::invalid("invalid IP prefix \"" + std::string(text) +
                          "\": expected address/length, e.g. 10.1.0.0/16");
  IpPrefix p{*addr, static_cast<std::uint8_t>(addr->is_v4() ? 32 : 128)};
  if (slash != std::string_view::npos) {
    auto len = parse_uint(text.substr(slash + 1), p.max_length(), "prefix length", text);
    if (!len) return len.error();
    p.length = static_cast<std::uint8_t>(*len);
  }
  return p;
}

IpPrefix IpPrefix::network() const {
  IpPrefix n = *this;
  const unsigned total = address.size() * 8;
  for (unsigned bit = length; bit < total; ++bit)
    n.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return n;
}

bool IpPrefix::contains(const IpAddress& a) const {
  if (a.family != address.family) return false;
  IpPrefix probe{a, length};
  return probe.network().address == network().address;
}

bool IpPrefix::contains(const IpPrefix& p) const {
  return p.address.family == address.family && p.length >= length && contains(p.address);
}

bool IpPrefix::overlaps(const IpPrefix& p) const { return contains(p) || p.contains(*this); }

std::string IpPrefix::to_string() const {
  return address.to_string() + "/" + std::to_string(length);
}

Result<Endpoint> Endpoint::parse(std::string_view text) {
  auto bad = [&] {
    return Error::invalid("invalid endpoint \"" + std::string(text) +
                          "\": expected a.b.c.d:port or [ipv6]:port");
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad();
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad();
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad();  // bare v6 needs brackets
  }
  auto addr = IpAddress::parse(host);
  if (!addr) return bad();
  auto p = parse_uint(port, 65535, "port", text);
  if (!p) return p.error();
  return Endpoint{*addr, static_cast<std::uint16_t>(*p)};
}

Result<Endpoint> Endpoint::from_sockaddr(const sockaddr* sa, std::size_t len) {
  Endpoint e;
  if (sa == nullptr || len < sizeof(sa_family_t)) return Error::invalid("empty socket address");
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in;
    std::memcpy(&in, sa, sizeof in);
    e.address.family = AF_INET;
    std::memcpy(e.address.bytes.data(), &in.sin_addr, 4);
    e.port = ntohs(in.sin_port);
    return e;
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6;
    std::memcpy(&in6, sa, sizeof in6);
    e.address.family = AF_INET6;
    std::memcpy(e.address.bytes.data(), &in6.sin6_addr, 16);
    e.port = ntohs(in6.sin6_port);
    return e;
  }
  return Error::invalid("socket address of family " + std::to_string(sa->sa_family) +
                        " and length " + std::to_string(len) + " is not IPv4 or IPv6");
}

std::size_t Endpoint::to_sockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof out);
  if (address.is_v4()) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    std::memcpy(&in.sin_addr, address.bytes.data(), 4);
    std::memcpy(&out, &in, sizeof in);
    return sizeof in;
  }
  if (address.is_v6()) {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    std::memcpy(&in6.sin6_addr, address.bytes.data(), 16);
    std::memcpy(&out, &in6, sizeof in6);
    return sizeof in6;
  }
  return 0;
}

std::string Endpoint::to_string() const {
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(port);
  return address.to_string() + ":" + std::to_string(port);
}

}  // namespace meshd
