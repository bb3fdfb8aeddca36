#include "common/ifname.h"

#include <gtest/gtest.h>

#include <string>

namespace meshd {
namespace {

TEST(InterfaceName, AcceptsOrdinaryNames) {
  for (const char* n : {"wg0", "meshd0", "eth0.100", "veth_a-b", "A", "abcdefghijklmno"})
    EXPECT_TRUE(valid_interface_name(n)) << n;
}

TEST(InterfaceName, RefusesWhatTheKernelOrAnArgvWouldMisread) {
  const std::string sixteen(16, 'a');
  for (std::string n : {std::string(), sixteen, std::string("wg%d"), std::string("-wg"),
                        std::string("--version"), std::string("."), std::string(".."),
                        std::string("a/b"), std::string("a:b"), std::string("a b"),
                        std::string("a\tb"), std::string("a\0b", 3), std::string("wg\xc3\xa9"),
                        std::string("a*"), std::string("a\n")})
    EXPECT_FALSE(valid_interface_name(n)) << n;
}

TEST(InterfaceName, EveryByteOutsideTheSetIsRefused) {
  for (int c = 0; c < 256; ++c) {
    std::string n = "wg";
    n += static_cast<char>(c);
    bool in_set = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
    EXPECT_EQ(valid_interface_name(n), in_set) << c;
  }
}

TEST(InterfaceName, ErrorNamesTheFormAndEscapesBytes) {
  auto r = check_interface_name(std::string("w\x01g%d"), "config wireguard.interface");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EINVAL);
  EXPECT_NE(r.error().message.find("config wireguard.interface"), std::string::npos);
  EXPECT_NE(r.error().message.find("\\x01"), std::string::npos);
  EXPECT_NE(r.error().message.find("[A-Za-z0-9_.-]"), std::string::npos);
  EXPECT_TRUE(check_interface_name("wg0", "x"));
}

}  // namespace
}  // namespace meshd
