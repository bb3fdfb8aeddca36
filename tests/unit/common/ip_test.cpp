#include "common/ip.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace meshd {
namespace {

TEST(IpAddress, ParsesAndPrintsBothFamilies) {
  auto v4 = IpAddress::parse("10.1.2.3");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->to_string(), "10.1.2.3");
  EXPECT_EQ(v4->v4_u32(), 0x0a010203u);
  EXPECT_EQ(IpAddress::from_v4_u32(0x0a010203u), *v4);

  auto v6 = IpAddress::parse("fd00::1");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->is_v6());
  EXPECT_EQ(v6->to_string(), "fd00::1");
}

TEST(IpAddress, RejectsGarbageWithTheExpectedForm) {
  for (const char* bad : {"", "10.1.2", "10.1.2.256", "hello", " 10.1.2.3", "fd00::1::2"}) {
    auto r = IpAddress::parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("expected"), std::string::npos);
  }
}

TEST(IpPrefix, ParsesNormalisesAndCompares) {
  auto p = IpPrefix::parse("10.244.1.7/24");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->length, 24);
  EXPECT_EQ(p->network().to_string(), "10.244.1.0/24");
  EXPECT_TRUE(p->contains(*IpAddress::parse("10.244.1.200")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("10.244.2.1")));
  EXPECT_TRUE(IpPrefix::parse("10.244.0.0/16")->contains(*p));
  EXPECT_TRUE(p->overlaps(*IpPrefix::parse("10.0.0.0/8")));
  EXPECT_FALSE(p->overlaps(*IpPrefix::parse("10.245.0.0/16")));
  EXPECT_EQ(IpPrefix::parse("10.0.0.1")->length, 32);
  EXPECT_EQ(IpPrefix::parse("fd00::/8")->network().to_string(), "fd00::/8");
  EXPECT_EQ(IpPrefix::parse("fd12:3456::1/33")->network().to_string(), "fd12:3456::/33");
}

TEST(IpPrefix, RejectsBadLengths) {
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "fd00::/129", "/24", "10.0.0.0/2x"})
    EXPECT_FALSE(IpPrefix::parse(bad)) << bad;
}

TEST(Endpoint, ParsesV4AndBracketedV6) {
  auto e = Endpoint::parse("192.0.2.1:51820");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->port, 51820);
  EXPECT_EQ(e->to_string(), "192.0.2.1:51820");
  auto e6 = Endpoint::parse("[2001:db8::1]:443");
  ASSERT_TRUE(e6);
  EXPECT_EQ(e6->to_string(), "[2001:db8::1]:443");
  for (const char* bad : {"192.0.2.1", "192.0.2.1:", "192.0.2.1:65536", "2001:db8::1:443",
                          "[2001:db8::1]443", "host:80", "[::1]"})
    EXPECT_FALSE(Endpoint::parse(bad)) << bad;
}

TEST(Endpoint, RoundTripsThroughSockaddr) {
  for (const char* text : {"192.0.2.1:51820", "[2001:db8::1]:1"}) {
    auto e = *Endpoint::parse(text);
    sockaddr_storage ss;
    auto len = e.to_sockaddr(ss);
    auto back = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, e);
  }
  sockaddr sa{};
  sa.sa_family = AF_UNIX;
  EXPECT_FALSE(Endpoint::from_sockaddr(&sa, sizeof sa));
}

}  // namespace
}  // namespace meshd
