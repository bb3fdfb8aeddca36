#include "store/database.h"

#include "store/cluster.h"
#include "store/datastore_state.h"
#include "store/events.h"
#include "store/ipam.h"
#include "store/local_node.h"
#include "store/records.h"
#include "store/tokens.h"
#include "store_test_util.h"

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace meshd::store {
namespace {

using test::TempDir;

std::string schema_dump(Database& db) {
  SQLite::Statement st(db.sql(), "SELECT type, name, sql FROM sqlite_master ORDER BY name");
  std::string out;
  while (st.executeStep())
    out += st.getColumn(0).getString() + " " + st.getColumn(1).getString() + ": " +
           st.getColumn(2).getString() + "\n";
  return out;
}

// Every file in the directory with a digest of its bytes: a refusal must not
// change, add or remove any of them.
std::string dir_snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    files[e.path().filename().string()] = test::read_file(e.path().string());
  std::string out;
  for (const auto& [name, bytes] : files)
    out += name + " (" + std::to_string(bytes.size()) + " bytes, hash " +
           std::to_string(std::hash<std::string>{}(bytes)) + ")\n";
  return out;
}

template <class F>
std::string refusal_message(F&& open, int expected_errno) {
  try {
    open();
  } catch (const ErrorException& e) {
    EXPECT_EQ(e.error().value(), expected_errno) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "open succeeded";
  return "";
}

TEST(StoreDatabase, FreshFileIsLatestOursAndMode0600) {
  TempDir dir;
  const auto path = dir.file("meshd.db");
  ::umask(022);
  {
    Database db(DatabaseOptions{.path = path});
    EXPECT_EQ(db.schema_version(), Database::latest_schema_version());
    EXPECT_GE(Database::latest_schema_version(), 2);
    EXPECT_EQ(db.sql().execAndGet("PRAGMA application_id").getInt(), kApplicationId);
    EXPECT_EQ(db.sql().execAndGet("PRAGMA journal_mode").getString(), "wal");
    EXPECT_EQ(db.sql().execAndGet("PRAGMA foreign_keys").getInt(), 1);
    EXPECT_EQ(db.sql().execAndGet("PRAGMA busy_timeout").getInt(), 10000);
    ASSERT_TRUE(LocalNodeRepo(db).set_name("n1"));
    // Secrets live here: the file and SQLite's side files are owner-only.
    EXPECT_EQ(test::file_mode(path), 0600u);
    EXPECT_EQ(test::file_mode(path + "-wal"), 0600u);
    EXPECT_EQ(test::file_mode(path + "-shm"), 0600u);
  }
  // Reopening keeps the data and does not migrate again.
  Database db(DatabaseOptions{.path = path});
  EXPECT_EQ(LocalNodeRepo(db).get()->name, "n1");
}

TEST(StoreDatabase, EveryMigrationPathReachesTheSameLatestSchema) {
  TempDir dir;
  Database fresh(DatabaseOptions{.path = dir.file("fresh.db")});
  const std::string expected = schema_dump(fresh);
  for (int v = 0; v <= Database::latest_schema_version(); ++v) {
    SCOPED_TRACE("from schema " + std::to_string(v));
    const auto path = dir.file("v" + std::to_string(v) + ".db");
    Database::create_at_version(path, v);
    {
      SQLite::Database raw(path);
      EXPECT_EQ(raw.execAndGet("PRAGMA user_version").getInt(), v);
      EXPECT_EQ(raw.execAndGet("PRAGMA application_id").getInt(), kApplicationId);
    }
    Database db(DatabaseOptions{.path = path});
    EXPECT_EQ(db.schema_version(), Database::latest_schema_version());
    EXPECT_EQ(schema_dump(db), expected);
  }
}

TEST(StoreDatabase, MigratingFromV1KeepsDataAndEnablesV2Features) {
  TempDir dir;
  const auto path = dir.file("v1.db");
  Database::create_at_version(path, 1);
  {
    // Rows as a v1 meshd wrote them (its repositories are gone, so plain SQL).
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("INSERT INTO cluster VALUES (1, 'c-1', '10.244.0.0/16', 24, 100)");
    raw.exec("INSERT INTO local_node (singleton, name, pod_cidr, pod_cidr_settled, mtu) "
             "VALUES (1, 'node-a', '10.244.3.0/24', 1, 1420)");
    raw.exec("INSERT INTO tokens (id, verifier, expires_at, usages_left, revoked, description, "
             "created_at) VALUES ('abc123', x'0102', 5000, 2, 0, 'first', 100)");
    raw.exec("INSERT INTO join_nonces VALUES ('abc123', x'aa', 150)");
    raw.exec("INSERT INTO ipam_leases VALUES ('net', 'c1', 'eth0', '10.244.3.2', 120)");
    raw.exec("INSERT INTO events (at, kind, node, message) VALUES (130, 'node-joined', 'b', 'hi')");
  }
  Database db(DatabaseOptions{.path = path});
  ASSERT_EQ(db.schema_version(), Database::latest_schema_version());

  auto cluster = ClusterRepo(db).get();
  ASSERT_TRUE(cluster && *cluster);
  EXPECT_EQ((*cluster)->id, "c-1");
  EXPECT_EQ((*cluster)->cidr.to_string(), "10.244.0.0/16");
  EXPECT_EQ((*cluster)->node_prefix_length, 24);

  auto local = LocalNodeRepo(db).get();
  ASSERT_TRUE(local);
  EXPECT_EQ(local->name, "node-a");
  EXPECT_EQ(local->pod_cidr->to_string(), "10.244.3.0/24");
  EXPECT_TRUE(local->pod_cidr_settled);
  EXPECT_EQ(local->mtu, 1420u);

  auto lease = Ipam(db).find(AttachmentKey{"net", "c1", "eth0"});
  ASSERT_TRUE(lease && *lease);
  EXPECT_EQ((*lease)->address.to_string(), "10.244.3.2");

  auto events = EventRepo(db).list(10);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].kind, "node-joined");

  // v2's column: an old token has no last use until it is consumed.
  TokenRepo tokens(db);
  auto tok = tokens.get("abc123");
  ASSERT_TRUE(tok && *tok);
  EXPECT_FALSE((*tok)->last_used_at);
  EXPECT_EQ((*tok)->usages_left, 1 + 1);
  // (v1's verifier here is two made-up bytes: a proof that accepts them.)
  auto accept = [](const Token& stored) { return stored.verifier == SecretBytes{0x01, 0x02}; };
  const std::vector<std::uint8_t> fresh{0xbb}, old_nonce{0xaa};
  auto used = tokens.consume("abc123", accept, fresh, 200);
  ASSERT_TRUE(used);
  ASSERT_TRUE(std::holds_alternative<Token>(*used));
  EXPECT_EQ((*tokens.get("abc123"))->last_used_at, 200);
  EXPECT_EQ((*tokens.get("abc123"))->usages_left, 1);
  // The old nonce is still remembered.
  auto replay = tokens.consume("abc123", accept, old_nonce, 210);
  ASSERT_TRUE(replay && std::holds_alternative<TokenRefused>(*replay));
  EXPECT_EQ(std::get<TokenRefused>(*replay).reason_for_operator_log(), TokenRefusal::replayed);
}

TEST(StoreDatabase, MigratingFromV4KeepsTheClusterWithAZeroFounderAndDropsTheUnsignedNodes) {
  TempDir dir;
  const auto path = dir.file("v4.db");
  Database::create_at_version(path, 4);
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("INSERT INTO cluster VALUES (1, 'c-4', '10.244.0.0/16', 24, 400)");
    raw.exec("INSERT INTO local_node (singleton, name, mtu) VALUES (1, 'node-a', 1380)");
    raw.exec("INSERT INTO nodes (name, wg_public_key, identity_public_key, version) "
             "VALUES ('b', zeroblob(32), zeroblob(32), 1)");
    raw.exec("INSERT INTO ipam_cursors VALUES ('net', '10.244.3.9')");
  }
  Database db(DatabaseOptions{.path = path});
  ASSERT_EQ(db.schema_version(), Database::latest_schema_version());

  auto cluster = ClusterRepo(db).get();
  ASSERT_TRUE(cluster && *cluster) << (cluster ? "" : cluster.error().message);
  EXPECT_EQ(**cluster, (ClusterInfo{"c-4", IpPrefix::parse("10.244.0.0/16").value(), 24, 400}));
  EXPECT_EQ((*cluster)->founder, (std::array<std::uint8_t, 32>{}));
  EXPECT_EQ(LocalNodeRepo(db).get()->mtu, 1380u);
  EXPECT_EQ(db.sql().execAndGet("SELECT last_address FROM ipam_cursors").getString(),
            "10.244.3.9");
  EXPECT_FALSE(db.sql().tableExists("nodes"));

  // The signed table starts empty and takes rows.
  RecordRepo records(db);
  ASSERT_TRUE(records.load_all() && records.load_all()->empty());
  SignedRow r;
  r.identity.fill(3);
  r.version = 1;
  r.body = {1, 2, 3};
  ASSERT_TRUE(records.put(std::vector{r}));
  EXPECT_EQ(records.load_all().value(), std::vector{r});
}

TEST(StoreDatabase, MigratingFromV5KeepsTheLocalNodeAndItsKeysWithNoRotationPending) {
  TempDir dir;
  const auto path = dir.file("v5.db");
  Database::create_at_version(path, 5);
  keys::KeyBytes next{};
  next.fill(0x42);
  const std::string identity_hex(128, 'c');  // 64 bytes of 0xcc
  {
    // Rows as a v5 meshd wrote them.
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("INSERT INTO cluster VALUES (1, 'c-5', '10.244.0.0/16', 24, 500, zeroblob(32))");
    raw.exec("INSERT INTO local_node (singleton, name, pod_cidr, pod_cidr_settled, mtu, "
             "wg_private_key, identity_secret) VALUES (1, 'node-a', '10.244.7.0/24', 1, 1420, "
             "x'21" + std::string(62, '2') + "', x'" + identity_hex + "')");
    raw.exec("INSERT INTO signed_records VALUES (zeroblob(32), 0, 9, x'010203', zeroblob(64))");
  }
  Database db(DatabaseOptions{.path = path});
  ASSERT_EQ(db.schema_version(), Database::latest_schema_version());

  LocalNodeRepo local(db);
  auto n = local.get();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->name, "node-a");
  EXPECT_EQ(n->pod_cidr->to_string(), "10.244.7.0/24");
  EXPECT_TRUE(n->pod_cidr_settled);
  EXPECT_EQ(n->mtu, 1420u);
  keys::KeyBytes stored{};  // 0x21, then 31 bytes of 0x22
  stored.fill(0x22);
  stored[0] = 0x21;
  EXPECT_TRUE(**local.wg_private_key() == keys::PrivateKey(stored));
  EXPECT_EQ((*local.identity_secret())->size(), kIdentitySecretLength);
  EXPECT_EQ(RecordRepo(db).load_all()->size(), 1u);

  // v6's columns: nothing pending after the upgrade; a rotation stores,
  // reads back and commits.
  auto pending = local.pending_wg_key();
  ASSERT_TRUE(pending) << pending.error().message;
  EXPECT_FALSE(*pending);
  ASSERT_TRUE(local.set_pending_wg_key(keys::PrivateKey(next), 7000));
  EXPECT_EQ((*local.pending_wg_key())->switch_at_ms, 7000u);
  ASSERT_TRUE(local.commit_pending_wg_key());
  EXPECT_TRUE(**local.wg_private_key() == keys::PrivateKey(next));
  EXPECT_FALSE(*local.pending_wg_key());
}

TEST(StoreDatabase, MigratingFromV6KeepsARotationInFlightAndStartsWithNoDatastoreRevision) {
  TempDir dir;
  const auto path = dir.file("v6.db");
  Database::create_at_version(path, 6);
  {
    // Rows as a v6 meshd wrote them, a key rotation pending among them.
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("INSERT INTO cluster VALUES (1, 'c-6', '10.244.0.0/16', 24, 600, zeroblob(32))");
    raw.exec("INSERT INTO local_node (singleton, name, pod_cidr, pod_cidr_settled, mtu, "
             "wg_private_key, pending_wg_key, pending_switch_at) VALUES (1, 'node-a', "
             "'10.244.7.0/24', 1, 1420, x'" + std::string(64, '3') + "', x'" +
             std::string(64, '4') + "', 9000)");
    raw.exec("INSERT INTO signed_records VALUES (zeroblob(32), 0, 9, x'010203', zeroblob(64))");
    raw.exec("INSERT INTO ipam_leases (network, container_id, ifname, address, created_at) "
             "VALUES ('net', 'c1', 'eth0', '10.244.7.2', 120)");
    raw.exec("INSERT INTO events (at, kind, node, message) VALUES (130, 'node-joined', 'b', 'hi')");
  }
  Database db(DatabaseOptions{.path = path});
  ASSERT_EQ(db.schema_version(), Database::latest_schema_version());

  EXPECT_EQ((*ClusterRepo(db).get())->id, "c-6");
  LocalNodeRepo local(db);
  EXPECT_EQ(local.get()->name, "node-a");
  EXPECT_EQ(local.get()->mtu, 1420u);
  auto pending = local.pending_wg_key();
  ASSERT_TRUE(pending && *pending) << (pending ? "nothing pending" : pending.error().message);
  EXPECT_EQ((*pending)->switch_at_ms, 9000u);
  keys::KeyBytes next{};
  next.fill(0x44);
  EXPECT_TRUE((*pending)->key == keys::PrivateKey(next));
  EXPECT_EQ(RecordRepo(db).load_all()->size(), 1u);
  auto lease = Ipam(db).find(AttachmentKey{"net", "c1", "eth0"});
  ASSERT_TRUE(lease && *lease);
  EXPECT_EQ((*lease)->address.to_string(), "10.244.7.2");
  EXPECT_EQ(EventRepo(db).list(10)->size(), 1u);

  // v7's table: no revision for any scope after the upgrade (the node
  // lists etcd once); one is stored, read back and cleared.
  DatastoreStateRepo state(db);
  const std::string scope = "etcd:/meshd/c-6";
  auto none = state.revision(scope);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);
  ASSERT_TRUE(state.set_revision(scope, 77));
  EXPECT_EQ(*state.revision(scope), std::optional<std::int64_t>(77));
  ASSERT_TRUE(state.clear(scope));
  EXPECT_FALSE(*state.revision(scope));
}

TEST(StoreDatabase, RefusesADatabaseFromANewerMeshdAndLeavesItUntouched) {
  TempDir dir;
  const auto path = dir.file("newer.db");
  const int newer = Database::latest_schema_version() + 1;
  { Database db(DatabaseOptions{.path = path}); }
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA user_version = " + std::to_string(newer));
  }
  const auto before = dir_snapshot(dir.file(""));
  const auto bytes = test::read_file(path);

  auto msg = refusal_message([&] { Database db(DatabaseOptions{.path = path}); }, ENOTSUP);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("created by a newer meshd: schema " + std::to_string(newer) +
                     ", this meshd knows up to " +
                     std::to_string(Database::latest_schema_version()) +
                     "; upgrade meshd or restore a backup"),
            std::string::npos)
      << msg;
  EXPECT_TRUE(test::read_file(path) == bytes) << "file bytes changed";
  EXPECT_EQ(dir_snapshot(dir.file("")), before);

  // The Result form says the same, and read-only opening refuses too.
  auto r = Database::open(DatabaseOptions{.path = path});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ENOTSUP));
  refusal_message([&] { Database db(DatabaseOptions{.path = path, .read_only = true}); }, ENOTSUP);
  EXPECT_TRUE(test::read_file(path) == bytes) << "file bytes changed";
}

TEST(StoreDatabase, SeesANewerSchemaThatIsStillOnlyInTheWal) {
  TempDir dir;
  const auto path = dir.file("wal-newer.db");
  { Database db(DatabaseOptions{.path = path}); }
  // A newer meshd still running (or killed): its change sits in the -wal,
  // the main file's header still says the old version.
  SQLite::Database raw(path, SQLite::OPEN_READWRITE);
  raw.exec("PRAGMA wal_autocheckpoint = 0");
  raw.exec("PRAGMA user_version = 42");
  ASSERT_GT(std::filesystem::file_size(path + "-wal"), 0u);
  const auto bytes = test::read_file(path);
  auto msg = refusal_message([&] { Database db(DatabaseOptions{.path = path}); }, ENOTSUP);
  EXPECT_NE(msg.find("created by a newer meshd: schema 42"), std::string::npos) << msg;
  EXPECT_TRUE(test::read_file(path) == bytes) << "file bytes changed";
}

TEST(StoreDatabase, RefusesANewerDatabaseInRollbackModeWithoutSwitchingItToWal) {
  TempDir dir;
  const auto path = dir.file("newer-delete.db");
  Database::create_at_version(path, 1);
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA journal_mode = DELETE");
    raw.exec("PRAGMA user_version = 99");
  }
  const auto bytes = test::read_file(path);
  ASSERT_EQ(bytes[18], 1);  // header: legacy (rollback) write version
  auto msg = refusal_message([&] { Database db(DatabaseOptions{.path = path}); }, ENOTSUP);
  EXPECT_NE(msg.find("schema 99"), std::string::npos) << msg;
  EXPECT_TRUE(test::read_file(path) == bytes) << "file bytes changed";
}

TEST(StoreDatabase, RefusesAnotherApplicationsSqliteDatabaseAndLeavesItUntouched) {
  TempDir dir;
  struct Case {
    const char* name;
    int app_id;
    const char* expect;
    bool wal;
  };
  for (const Case& c : {Case{"foreign.db", 0x12345678, "(application_id 0x12345678", false},
                        Case{"plain.db", 0, "(application_id 0x00000000", false},
                        Case{"plain-wal.db", 0, "(application_id 0x00000000", true}}) {
    SCOPED_TRACE(c.name);
    const auto path = dir.file(c.name);
    {
      SQLite::Database raw(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      if (c.wal) raw.exec("PRAGMA journal_mode = WAL");
      raw.exec("PRAGMA application_id = " + std::to_string(c.app_id));
      raw.exec("CREATE TABLE photos (id INTEGER PRIMARY KEY, title TEXT)");
      raw.exec("INSERT INTO photos (title) VALUES ('holiday')");
    }
    const auto before = dir_snapshot(dir.file(""));
    const auto bytes = test::read_file(path);
    auto msg = refusal_message([&] { Database db(DatabaseOptions{.path = path}); }, EINVAL);
    EXPECT_NE(msg.find(path + " is not a meshd database " + c.expect), std::string::npos) << msg;
    EXPECT_TRUE(test::read_file(path) == bytes) << "file bytes changed";
    EXPECT_EQ(dir_snapshot(dir.file("")), before);
  }
}

TEST(StoreDatabase, RefusesAFileThatIsNotSqliteAndLeavesItUntouched) {
  TempDir dir;
  for (const std::string& content :
       {std::string("short"), std::string(4096, 'x'),
        std::string("[meshd]\nname = \"node-a\"\n") + std::string(200, '#')}) {
    const auto path = dir.file("config.toml");
    test::write_file(path, content);
    auto msg = refusal_message([&] { Database db(DatabaseOptions{.path = path}); }, EINVAL);
    EXPECT_NE(msg.find(path + " is not a meshd database (not an SQLite 3 file)"),
              std::string::npos)
        << msg;
    EXPECT_EQ(test::read_file(path), content);
    EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
  }
}

TEST(StoreDatabase, AdoptsAnEmptyFileAndAnEmptySqliteDatabase) {
  TempDir dir;
  const auto empty = dir.file("empty.db");
  test::write_file(empty, "");
  ASSERT_EQ(::chmod(empty.c_str(), 0600), 0);  // a private file, as meshd trusts only those
  {
    Database db(DatabaseOptions{.path = empty});
    EXPECT_EQ(db.schema_version(), Database::latest_schema_version());
  }
  const auto blank = dir.file("blank.db");
  {
    SQLite::Database raw(blank, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("CREATE TABLE t (x); DROP TABLE t");
  }
  ASSERT_EQ(::chmod(blank.c_str(), 0600), 0);
  ASSERT_GT(std::filesystem::file_size(blank), 0u);
  Database db(DatabaseOptions{.path = blank});
  EXPECT_EQ(db.schema_version(), Database::latest_schema_version());
  EXPECT_EQ(db.sql().execAndGet("PRAGMA application_id").getInt(), kApplicationId);
}

TEST(StoreDatabase, ReadOnlyOpenNeedsAnExistingCurrentDatabase) {
  TempDir dir;
  auto missing = Database::open(DatabaseOptions{.path = dir.file("missing.db"), .read_only = true});
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(ENOENT));
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing.db")));

  const auto old = dir.file("old.db");
  Database::create_at_version(old, 1);
  auto msg = refusal_message([&] { Database db(DatabaseOptions{.path = old, .read_only = true}); },
                             ENOTSUP);
  EXPECT_NE(msg.find("open it read-write once"), std::string::npos) << msg;

  const auto current = dir.file("current.db");
  { ASSERT_TRUE(LocalNodeRepo(*Database::open({.path = current}).value()).set_mtu(1380)); }
  Database ro(DatabaseOptions{.path = current, .read_only = true});
  EXPECT_EQ(LocalNodeRepo(ro).get()->mtu, 1380u);
  auto w = LocalNodeRepo(ro).set_mtu(1400);
  ASSERT_FALSE(w);
  EXPECT_TRUE(w.error().is(EROFS)) << w.error().message;
}

TEST(StoreDatabase, InMemoryDatabaseIsMigrated) {
  Database db(DatabaseOptions{.path = ":memory:"});
  EXPECT_EQ(db.schema_version(), Database::latest_schema_version());
  EXPECT_TRUE(EventRepo(db).append(1, "k", "", "m"));
}

TEST(StoreDatabase, CreateAtVersionRejectsUnknownVersions) {
  TempDir dir;
  EXPECT_THROW(Database::create_at_version(dir.file("x.db"), Database::latest_schema_version() + 1),
               ErrorException);
  EXPECT_THROW(Database::create_at_version(dir.file("y.db"), -1), ErrorException);
}

}  // namespace
}  // namespace meshd::store
