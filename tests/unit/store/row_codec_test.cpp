// Decoding the store's structured columns: what a hand-edited or corrupted
// file can hold is refused with a reason, never wrapped or guessed.
#include "store/row_codec.h"

#include "store/cluster.h"
#include "store/database.h"
#include "store/local_node.h"
#include "store_test_util.h"

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

namespace meshd::store {
namespace {

TEST(StoreRowCodec, EndpointsRoundTripAndRefuseJunk) {
  const std::vector<Endpoint> eps{Endpoint::parse("192.0.2.1:51820").value(),
                                  Endpoint::parse("[2001:db8::1]:443").value()};
  const std::string text = codec::encode_endpoints(eps);
  EXPECT_EQ(text, "192.0.2.1:51820 [2001:db8::1]:443");
  EXPECT_EQ(codec::decode_endpoints(text).value(), eps);
  EXPECT_EQ(codec::decode_endpoints("  192.0.2.1:51820\t[2001:db8::1]:443\n").value(), eps);
  EXPECT_TRUE(codec::decode_endpoints("").value().empty());
  for (const char* bad : {"192.0.2.1", "host:51820", "192.0.2.1:51820 x", "[::1]:70000"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(codec::decode_endpoints(bad));
  }
  EXPECT_FALSE(codec::decode_endpoints(std::string_view("192.0.2.1:5\0" "1820", 12)));
}

TEST(StoreRowCodec, NodePrefixLengthAndMtuMustBeInRange) {
  const IpPrefix v4 = IpPrefix::parse("10.244.0.0/16").value();
  EXPECT_EQ(codec::decode_node_prefix_length(24, v4).value(), 24);
  EXPECT_EQ(codec::decode_node_prefix_length(16, v4).value(), 16);
  for (std::int64_t bad : std::initializer_list<std::int64_t>{15, 33, 280, -1, std::int64_t{1} << 40}) {
    auto r = codec::decode_node_prefix_length(bad, v4);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("does not fit in 10.244.0.0/16 (expected 16 to 32)"),
              std::string::npos);
  }
  EXPECT_EQ(codec::decode_node_prefix_length(64, IpPrefix::parse("fd00::/48").value()).value(), 64);

  EXPECT_EQ(codec::decode_mtu(0).value(), 0u);
  EXPECT_EQ(codec::decode_mtu(1420).value(), 1420u);
  EXPECT_FALSE(codec::decode_mtu(-1));
  EXPECT_FALSE(codec::decode_mtu(65536));
}

TEST(StoreRowCodec, RepositoriesRefuseOutOfRangeRowsInsteadOfWrappingThem) {
  test::TempDir dir;
  const auto path = dir.file("meshd.db");
  Database db(DatabaseOptions{.path = path});
  // 280 once read back as 24 (280 mod 256), -1 as an MTU of 4294967295.
  db.sql().exec("INSERT INTO cluster VALUES (1, 'c-1', '10.244.0.0/16', 280, 1)");
  db.sql().exec("INSERT INTO local_node (singleton, name, mtu) VALUES (1, 'n', -1)");
  auto c = ClusterRepo(db).get();
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error().is(EINVAL));
  EXPECT_NE(c.error().message.find("node prefix length 280 does not fit"), std::string::npos)
      << c.error().message;
  auto n = LocalNodeRepo(db).get();
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("MTU -1 is out of range"), std::string::npos)
      << n.error().message;
  EXPECT_TRUE(LocalNodeRepo(db).set_mtu(65536).error().is(EINVAL));
  ASSERT_TRUE(LocalNodeRepo(db).set_mtu(1420));
  EXPECT_EQ(LocalNodeRepo(db).get()->mtu, 1420u);
}

}  // namespace
}  // namespace meshd::store
