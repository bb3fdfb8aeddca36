// Which database files the store trusts (owner, mode, links, directory), how
// every connection is hardened, and the "never migrate" open of the CNI plugin.
#include "store/database.h"

#include "store/local_node.h"
#include "store_test_util.h"

#include <SQLiteCpp/Database.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace meshd::store {
namespace {

using test::TempDir;

// The refusal's message, after checking its errno; fails the test if the
// open succeeded.
std::string refusal(const DatabaseOptions& opts, int expected_errno) {
  auto r = Database::open(opts);
  if (r) {
    ADD_FAILURE() << "open of " << opts.path << " succeeded";
    return "";
  }
  EXPECT_EQ(r.error().value(), expected_errno) << r.error().message;
  return r.error().message;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A meshd database at `path` with a row in it; closed again.
void make_db(const std::string& path) {
  Database db(DatabaseOptions{.path = path});
  ASSERT_TRUE(LocalNodeRepo(db).set_name("node-a"));
}

// -------------------------------------------------------------- ownership

TEST(StoreTrust, RefusesADatabaseReadableByOthersAndSaysHowToFixIt) {
  TempDir dir;
  const auto path = dir.file("meshd.db");
  make_db(path);
  for (mode_t mode : {0644, 0640, 0606, 0660}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    const auto bytes = test::read_file(path);
    auto msg = refusal({.path = path}, EPERM);
    EXPECT_TRUE(contains(msg, "is accessible by group or others")) << msg;
    EXPECT_TRUE(contains(msg, "run `chmod 600 " + path + "`")) << msg;
    EXPECT_TRUE(test::read_file(path) == bytes);
    EXPECT_EQ(test::file_mode(path), mode);  // refused, not silently "fixed"
    refusal({.path = path, .read_only = true}, EPERM);
    refusal({.path = path, .migrate = false}, EPERM);
  }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  Database db(DatabaseOptions{.path = path});
  EXPECT_EQ(LocalNodeRepo(db).get()->name, "node-a");
}

TEST(StoreTrust, RefusesADatabaseOwnedByAnotherUser) {
  TempDir dir;
  const auto path = dir.file("meshd.db");
  make_db(path);
  {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    // Needs CAP_CHOWN: the unit tests run as root here.
    ASSERT_EQ(::fchown(fd, 65534, 65534), 0) << "fchown needs root: " << std::strerror(errno);
    ::close(fd);
  }
  auto msg = refusal({.path = path}, EPERM);
  EXPECT_TRUE(contains(msg, "is owned by uid 65534, not by this process's uid " +
                                std::to_string(::geteuid())))
      << msg;
  EXPECT_TRUE(contains(msg, "run `chown " + std::to_string(::geteuid()) + " " + path + "`")) << msg;
  refusal({.path = path, .migrate = false}, EPERM);
}

TEST(StoreTrust, RefusesAWalOrShmThatIsNotPrivate) {
  TempDir dir;
  const auto path = dir.file("meshd.db");
  make_db(path);
  for (const char* suffix : {"-wal", "-shm"}) {
    SCOPED_TRACE(suffix);
    const auto side = path + suffix;
    // The file SQLite replays on open: planted readable, or by someone else.
    test::write_file(side, "");
    ASSERT_EQ(::chmod(side.c_str(), 0644), 0);
    auto msg = refusal({.path = path}, EPERM);
    EXPECT_TRUE(contains(msg, "database file " + side + " is accessible by group or others (mode 0644)"))
        << msg;
    EXPECT_TRUE(contains(msg, "run `chmod 600 " + side + "`")) << msg;

    ASSERT_EQ(::chmod(side.c_str(), 0600), 0);
    ASSERT_EQ(::chown(side.c_str(), 65534, 65534), 0);
    msg = refusal({.path = path}, EPERM);
    EXPECT_TRUE(contains(msg, side + " is owned by uid 65534")) << msg;
    ASSERT_EQ(::unlink(side.c_str()), 0);
  }
  make_db(path);  // private again: opens
}

// ----------------------------------------------------------------- links

TEST(StoreTrust, RefusesASymlinkedDatabaseAndSideFiles) {
  TempDir dir;
  const auto real = dir.file("real.db");
  make_db(real);
  const auto link = dir.file("link.db");
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  const auto bytes = test::read_file(real);
  auto msg = refusal({.path = link}, ELOOP);
  EXPECT_TRUE(contains(msg, "database " + link + " is a symbolic link")) << msg;
  refusal({.path = link, .migrate = false}, ELOOP);
  EXPECT_TRUE(test::read_file(real) == bytes);
  EXPECT_FALSE(std::filesystem::exists(link + "-wal"));

  // A dangling link is not followed to create a file where it points.
  const auto dangling = dir.file("dangling.db");
  ASSERT_EQ(::symlink(dir.file("elsewhere.db").c_str(), dangling.c_str()), 0);
  refusal({.path = dangling}, ELOOP);
  EXPECT_FALSE(std::filesystem::exists(dir.file("elsewhere.db")));

  // A -wal that is a link (to a file someone else controls) is not followed.
  const auto planted = dir.file("planted");
  test::write_file(planted, "");
  ASSERT_EQ(::chmod(planted.c_str(), 0600), 0);
  ASSERT_EQ(::symlink(planted.c_str(), (real + "-wal").c_str()), 0);
  msg = refusal({.path = real}, ELOOP);
  EXPECT_TRUE(contains(msg, real + "-wal is a symbolic link")) << msg;
}

TEST(StoreTrust, RefusesAPathThroughASymlinkedDirectory) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("state").c_str(), 0700), 0);
  make_db(dir.file("state/meshd.db"));
  ASSERT_EQ(::symlink(dir.file("state").c_str(), dir.file("alias").c_str()), 0);
  auto msg = refusal({.path = dir.file("alias/meshd.db")}, ELOOP);
  EXPECT_TRUE(contains(msg, "symbolic link")) << msg;
}

// ------------------------------------------------------------- directory

TEST(StoreTrust, RefusesADirectoryOthersCanWriteTo) {
  TempDir dir;
  const auto shared = dir.file("shared");
  ASSERT_EQ(::mkdir(shared.c_str(), 0700), 0);
  const auto path = shared + "/meshd.db";
  make_db(path);
  for (mode_t mode : {0777, 01777, 0770, 0702}) {
    ASSERT_EQ(::chmod(shared.c_str(), mode), 0);
    auto msg = refusal({.path = path}, EPERM);
    EXPECT_TRUE(contains(msg, "directory " + shared + " of database " + path +
                                  " is writable by group or others"))
        << msg;
    EXPECT_TRUE(contains(msg, "run `chmod go-w " + shared + "`")) << msg;
    // Not even a new database is created there.
    refusal({.path = shared + "/new.db"}, EPERM);
    EXPECT_FALSE(std::filesystem::exists(shared + "/new.db"));
  }
  ASSERT_EQ(::chmod(shared.c_str(), 0755), 0);  // others may read and enter, not write
  Database db(DatabaseOptions{.path = path});

  ASSERT_EQ(::chown(shared.c_str(), 65534, 65534), 0);
  auto msg = refusal({.path = path}, EPERM);
  EXPECT_TRUE(contains(msg, "is owned by uid 65534, neither this process's uid")) << msg;
}

TEST(StoreTrust, CreatesAMissingDirectory0700AndTheFile0600) {
  TempDir dir;
  const auto path = dir.file("var/lib/meshd/meshd.db");
  const mode_t old = ::umask(0);  // the modes come from meshd, not from a lax umask
  {
    Database db(DatabaseOptions{.path = path});
    ASSERT_TRUE(LocalNodeRepo(db).set_name("n"));
    EXPECT_EQ(test::file_mode(path + "-wal"), 0600u);  // gone again after the last close
  }
  ::umask(old);
  EXPECT_EQ(test::file_mode(dir.file("var")), 0700u);
  EXPECT_EQ(test::file_mode(dir.file("var/lib/meshd")), 0700u);
  EXPECT_EQ(test::file_mode(path), 0600u);

  // A read-only or never-migrating open creates nothing.
  refusal({.path = dir.file("other/meshd.db"), .read_only = true}, ENOENT);
  refusal({.path = dir.file("other/meshd.db"), .migrate = false}, ENOENT);
  EXPECT_FALSE(std::filesystem::exists(dir.file("other")));
}

// ------------------------------------------------------------ hardening

TEST(StoreTrust, EveryConnectionIsDefensiveAndDistrustsTheSchema) {
  TempDir dir;
  const auto path = dir.file("meshd.db");
  make_db(path);
  for (const DatabaseOptions& opts :
       {DatabaseOptions{.path = path}, DatabaseOptions{.path = path, .read_only = true},
        DatabaseOptions{.path = path, .migrate = false}, DatabaseOptions{.path = ":memory:"}}) {
    SCOPED_TRACE(opts.path + (opts.read_only ? " read-only" : "") +
                 (opts.migrate ? "" : " no-migrate"));
    Database db(opts);
    int defensive = -1;
    ASSERT_EQ(sqlite3_db_config(db.sql().getHandle(), SQLITE_DBCONFIG_DEFENSIVE, -1, &defensive),
              SQLITE_OK);
    EXPECT_EQ(defensive, 1);
    EXPECT_EQ(db.sql().execAndGet("PRAGMA trusted_schema").getInt(), 0);
    // What defensive mode is for: the schema cannot be edited in place.
    if (!opts.read_only) {
      db.sql().exec("PRAGMA writable_schema = ON");
      EXPECT_THROW(db.sql().exec("UPDATE sqlite_master SET sql = 'x' WHERE name = 'events'"),
                   SQLite::Exception);
    }
  }
}

// ------------------------------------------------------------- damaged

TEST(StoreDamaged, RefusesANegativeSchemaVersionInsteadOfIndexingMigrationsWithIt) {
  // Found by fuzz_store_planted_file: user_version 0xf3000000 read as a
  // negative int passed the "newer" check and indexed the migration list.
  TempDir dir;
  const auto path = dir.file("meshd.db");
  make_db(path);
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA user_version = -218103808");
  }
  const auto bytes = test::read_file(path);
  for (bool migrate : {true, false}) {
    auto msg = refusal({.path = path, .migrate = migrate}, EINVAL);
    EXPECT_TRUE(contains(msg, "schema version -218103808 is negative")) << msg;
  }
  EXPECT_TRUE(test::read_file(path) == bytes);
}

// --------------------------------------------------------- never migrate

TEST(StoreNeverMigrate, AMissingFileIsNotCreated) {
  TempDir dir;
  const auto path = dir.file("meshd.db");
  auto msg = refusal({.path = path, .migrate = false}, ENOENT);
  EXPECT_EQ(msg, "open database " + path +
                     " (meshd creates it when it starts): No such file or directory");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  // An empty file (meshd about to create it, or a touch) has no schema yet.
  test::write_file(path, "");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  msg = refusal({.path = path, .migrate = false}, ENOENT);
  EXPECT_TRUE(contains(msg, "no meshd schema in it yet (meshd creates it when it starts)")) << msg;
  EXPECT_EQ(std::filesystem::file_size(path), 0u);
}

TEST(StoreNeverMigrate, RefusesAnOlderOrNewerSchemaNamingBoth) {
  TempDir dir;
  const int latest = Database::latest_schema_version();
  for (int v = 1; v < latest; ++v) {
    const auto path = dir.file("v" + std::to_string(v) + ".db");
    Database::create_at_version(path, v);
    const auto bytes = test::read_file(path);
    auto msg = refusal({.path = path, .migrate = false}, ENOTSUP);
    EXPECT_EQ(msg, path + " has schema " + std::to_string(v) +
                       " but this program knows only schema " + std::to_string(latest) +
                       " and never migrates: restart meshd to migrate, or use the matching "
                       "meshd-cni");
    EXPECT_TRUE(test::read_file(path) == bytes) << "file bytes changed";
    Database reopened(DatabaseOptions{.path = path});
    EXPECT_EQ(reopened.schema_version(), latest);  // a default open still migrates
  }

  const auto newer = dir.file("newer.db");
  make_db(newer);
  {
    SQLite::Database raw(newer, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA user_version = " + std::to_string(latest + 1));
  }
  auto msg = refusal({.path = newer, .migrate = false}, ENOTSUP);
  EXPECT_TRUE(contains(msg, newer + " has schema " + std::to_string(latest + 1) +
                                " but this program knows only schema " + std::to_string(latest)))
      << msg;
  EXPECT_TRUE(contains(msg, "restart meshd to migrate, or use the matching meshd-cni")) << msg;
}

TEST(StoreNeverMigrate, OpensTheCurrentSchemaForReadingAndWriting) {
  TempDir dir;
  const auto path = dir.file("meshd.db");
  make_db(path);
  Database db(DatabaseOptions{.path = path, .migrate = false});
  EXPECT_EQ(db.schema_version(), Database::latest_schema_version());
  EXPECT_EQ(LocalNodeRepo(db).get()->name, "node-a");
  ASSERT_TRUE(LocalNodeRepo(db).set_mtu(1380));
  EXPECT_EQ(LocalNodeRepo(db).get()->mtu, 1380u);
}

}  // namespace
}  // namespace meshd::store
