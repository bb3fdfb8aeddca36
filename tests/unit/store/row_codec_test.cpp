// Decoding the store's structured columns: what a hand-edited or corrupted
// file can hold is refused with a reason, never wrapped or guessed.
#include "store/row_codec.h"

#include "store/cluster.h"
#include "store/database.h"
#include "store/local_node.h"
#include "store/records.h"
#include "store_test_util.h"

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

namespace meshd::store {
namespace {

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
  db.sql().exec("INSERT INTO cluster (singleton, cluster_id, cidr, node_prefix_length, created_at) "
                "VALUES (1, 'c-1', '10.244.0.0/16', 280, 1)");
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

TEST(StoreRowCodec, KeysOfTheWrongLengthAreRefusedNotTrusted) {
  // Found by fuzz_store_planted_file: the schema's CHECK constraints hold for
  // rows meshd writes, but a planted file is read as it is. A 3-byte identity
  // secret was copied as if it had 64 (a heap overread).
  test::TempDir dir;
  const auto path = dir.file("meshd.db");
  { Database db(DatabaseOptions{.path = path}); }
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA ignore_check_constraints = ON");
    raw.exec("INSERT INTO local_node (singleton, wg_private_key, identity_secret) "
             "VALUES (1, x'010203', x'040506')");
    raw.exec("INSERT INTO signed_records VALUES (x'07', 0, 1, x'01', zeroblob(64))");
  }
  Database db(DatabaseOptions{.path = path});
  LocalNodeRepo local(db);
  auto id = local.identity_key();
  ASSERT_FALSE(id);
  EXPECT_TRUE(id.error().is(EINVAL));
  EXPECT_NE(id.error().message.find("stored identity secret in " + path + " has 3 bytes, expected 64"),
            std::string::npos)
      << id.error().message;
  EXPECT_FALSE(local.identity_secret());
  auto wg = local.wg_private_key();
  ASSERT_FALSE(wg);
  EXPECT_NE(wg.error().message.find("has 3 bytes, expected 32"), std::string::npos);
  auto rows = RecordRepo(db).load_all();
  ASSERT_FALSE(rows);
  EXPECT_TRUE(rows.error().is(EINVAL));
  EXPECT_NE(rows.error().message.find("identity of 1 bytes, expected 32"), std::string::npos)
      << rows.error().message;
}

// The schema's CHECKs keep meshd's own writes in shape; these rows were
// planted past them, each breaking one rule that load_all() checks again.
TEST(StoreRowCodec, SignedRowsThatBreakTheTableRulesAreRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {"x'01', 0, 1, x'01', zeroblob(64)", "identity of 1 bytes, expected 32"},
      {"zeroblob(32), 2, 1, x'01', zeroblob(64)", "tombstone flag 2, expected 0 or 1"},
      {"zeroblob(32), 0, 1, x'01', zeroblob(63)", "signature of 63 bytes, expected 64"},
      {"zeroblob(32), 0, 1, x'', zeroblob(64)", "body of 0 bytes, expected 1 to 4096"},
      {"zeroblob(32), 0, 1, zeroblob(4097), zeroblob(64)", "body of 4097 bytes"},
      {"zeroblob(32), 1, 5, x'01', zeroblob(64)", "a tombstone's version must be"},
      {"zeroblob(32), 0, -1, x'01', zeroblob(64)", "is reserved for tombstones"},
  };
  for (const auto& [values, message] : cases) {
    SCOPED_TRACE(values);
    test::TempDir dir;
    const auto path = dir.file("meshd.db");
    { Database db(DatabaseOptions{.path = path}); }
    {
      SQLite::Database raw(path, SQLite::OPEN_READWRITE);
      raw.exec("PRAGMA ignore_check_constraints = ON");
      raw.exec(std::string("INSERT INTO signed_records VALUES (") + values + ")");
    }
    Database db(DatabaseOptions{.path = path});
    auto rows = RecordRepo(db).load_all();
    ASSERT_FALSE(rows);
    EXPECT_TRUE(rows.error().is(EINVAL));
    EXPECT_NE(rows.error().message.find(message), std::string::npos) << rows.error().message;
  }
}

TEST(StoreRowCodec, AFounderOfTheWrongLengthIsRefused) {
  test::TempDir dir;
  const auto path = dir.file("meshd.db");
  { Database db(DatabaseOptions{.path = path}); }
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA ignore_check_constraints = ON");
    raw.exec("INSERT INTO cluster VALUES (1, 'c-1', '10.244.0.0/16', 24, 1, x'0102')");
  }
  Database db(DatabaseOptions{.path = path});
  auto c = ClusterRepo(db).get();
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error().is(EINVAL));
  EXPECT_NE(c.error().message.find("stored cluster founder in " + path + " has 2 bytes, expected 32"),
            std::string::npos)
      << c.error().message;
}

}  // namespace
}  // namespace meshd::store
