#include "store/datastore_state.h"

#include "store/database.h"
#include "store_test_util.h"

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

#include <limits>

namespace meshd::store {
namespace {

class StoreDatastoreState : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::string path_ = dir_.file("meshd.db");
  Database db_{DatabaseOptions{.path = path_}};
  DatastoreStateRepo repo_{db_};

  // Runs `sql` on a second connection with the CHECKs off, as someone
  // editing the file would.
  void plant(const std::string& sql) {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE);
    raw.exec("PRAGMA ignore_check_constraints = ON");
    raw.exec(sql);
  }
};

const std::string kScope = "etcd:/meshd/c0ffee";

TEST_F(StoreDatastoreState, NothingIsStoredUntilSetAndASetRevisionReadsBack) {
  auto none = repo_.revision(kScope);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);
  ASSERT_TRUE(repo_.set_revision(kScope, 42));
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(42));
  ASSERT_TRUE(repo_.set_revision(kScope, 43));
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(43));
}

TEST_F(StoreDatastoreState, ARevisionSurvivesReopen) {
  ASSERT_TRUE(repo_.set_revision(kScope, 1234567));
  Database again(DatabaseOptions{.path = path_});
  EXPECT_EQ(*DatastoreStateRepo(again).revision(kScope), std::optional<std::int64_t>(1234567));
}

TEST_F(StoreDatastoreState, ScopesAreIndependent) {
  const std::string other_prefix = "etcd:/other/c0ffee";
  const std::string other_cluster = "etcd:/meshd/beef";
  ASSERT_TRUE(repo_.set_revision(kScope, 10));
  ASSERT_TRUE(repo_.set_revision(other_prefix, 20));
  EXPECT_FALSE(*repo_.revision(other_cluster));
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(10));
  EXPECT_EQ(*repo_.revision(other_prefix), std::optional<std::int64_t>(20));
  ASSERT_TRUE(repo_.clear(kScope));
  EXPECT_FALSE(*repo_.revision(kScope));
  EXPECT_EQ(*repo_.revision(other_prefix), std::optional<std::int64_t>(20));
  // Scopes are exact text: no prefix matching, case matters.
  EXPECT_FALSE(*repo_.revision("etcd:/other/"));
  EXPECT_FALSE(*repo_.revision("ETCD:/other/c0ffee"));
}

TEST_F(StoreDatastoreState, ClearForgetsAndIsIdempotent) {
  ASSERT_TRUE(repo_.clear(kScope));  // nothing stored: fine
  ASSERT_TRUE(repo_.set_revision(kScope, 7));
  ASSERT_TRUE(repo_.clear(kScope));
  EXPECT_FALSE(*repo_.revision(kScope));
  ASSERT_TRUE(repo_.clear(kScope));
  // A cleared scope takes a new revision, lower ones included.
  ASSERT_TRUE(repo_.set_revision(kScope, 3));
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(3));
}

// etcd restored from a backup starts its revisions again: the caller, not
// the store, decides that a lower revision is right.
TEST_F(StoreDatastoreState, ALowerRevisionReplacesAHigherOne) {
  ASSERT_TRUE(repo_.set_revision(kScope, 900));
  ASSERT_TRUE(repo_.set_revision(kScope, 5));
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(5));
}

TEST_F(StoreDatastoreState, RevisionsFromOneToInt64MaxRoundTrip) {
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  for (std::int64_t rev : {std::int64_t{1}, std::int64_t{1} << 31, std::int64_t{1} << 32, kMax}) {
    SCOPED_TRACE(rev);
    ASSERT_TRUE(repo_.set_revision(kScope, rev));
    EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(rev));
  }
}

TEST_F(StoreDatastoreState, ARevisionBelowOneIsRefusedAndChangesNothing) {
  ASSERT_TRUE(repo_.set_revision(kScope, 50));
  for (std::int64_t rev : {std::int64_t{0}, std::int64_t{-1}, std::numeric_limits<std::int64_t>::min()}) {
    SCOPED_TRACE(rev);
    auto r = repo_.set_revision(kScope, rev);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(EINVAL));
    EXPECT_EQ(r.error().message,
              "store the datastore revision of etcd:/meshd/c0ffee: revision " + std::to_string(rev) +
                  " is not a revision; expected 1 or more (0 would resume the watch from the "
                  "newest revision and skip the events in between)");
  }
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(50));
}

TEST_F(StoreDatastoreState, AMalformedScopeIsRefusedByLengthNeverQuoted) {
  const std::string too_long(kMaxDatastoreScopeBytes + 1, 's');
  const std::string longest(kMaxDatastoreScopeBytes, 's');
  ASSERT_TRUE(repo_.set_revision(longest, 1));
  EXPECT_EQ(*repo_.revision(longest), std::optional<std::int64_t>(1));
  ASSERT_TRUE(repo_.set_revision("!~", 2));  // the printable range's ends
  for (const std::string& scope :
       {std::string(), too_long, std::string("etcd:/meshd/\nforged"), std::string("etcd: /meshd/"),
        std::string("etcd:/m\xc3\xa9shd/"), std::string("etcd:\0/", 7)}) {
    SCOPED_TRACE(scope.size());
    const std::string form = " bytes; expected 1 to 512 printable ASCII characters without spaces, "
                             "like \"etcd:/meshd/<cluster id>\"";
    const std::string size = std::to_string(scope.size());
    auto set = repo_.set_revision(scope, 9);
    ASSERT_FALSE(set);
    EXPECT_TRUE(set.error().is(EINVAL));
    EXPECT_EQ(set.error().message, "store the datastore revision: the datastore scope has " + size + form);
    auto get = repo_.revision(scope);
    ASSERT_FALSE(get);
    EXPECT_EQ(get.error().message, "read the datastore revision: the datastore scope has " + size + form);
    auto clear = repo_.clear(scope);
    ASSERT_FALSE(clear);
    EXPECT_EQ(clear.error().message, "clear the datastore revision: the datastore scope has " + size + form);
  }
  // Nothing was written for any of them.
  SQLite::Database raw(path_, SQLite::OPEN_READONLY);
  EXPECT_EQ(raw.execAndGet("SELECT count(*) FROM datastore_state").getInt(), 2);
}

// The schema's CHECK and STRICT bind meshd's writes, not a file someone
// edited: a stored value that is no revision fails the read, naming the column.
TEST_F(StoreDatastoreState, APlantedRowThatIsNoRevisionIsRefusedNamingTheColumn) {
  ASSERT_TRUE(repo_.set_revision(kScope, 5));
  for (const char* value : {"0", "-3"}) {
    SCOPED_TRACE(value);
    plant(std::string("UPDATE datastore_state SET revision = ") + value);
    auto r = repo_.revision(kScope);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(EINVAL));
    EXPECT_EQ(r.error().message, "stored datastore_state.revision of etcd:/meshd/c0ffee in " + path_ +
                                     " is not a revision (expected an integer >= 1)");
  }
  // A table without STRICT, as a planted file may define it, holds text.
  plant("DROP TABLE datastore_state; CREATE TABLE datastore_state (scope TEXT PRIMARY KEY, revision)");
  plant("INSERT INTO datastore_state VALUES ('" + kScope + "', '12x')");
  auto text = repo_.revision(kScope);
  ASSERT_FALSE(text);
  EXPECT_TRUE(text.error().is(EINVAL));
  EXPECT_NE(text.error().message.find("datastore_state.revision"), std::string::npos);
  plant("UPDATE datastore_state SET revision = 2.5");
  EXPECT_FALSE(repo_.revision(kScope));
  plant("UPDATE datastore_state SET revision = NULL");
  EXPECT_FALSE(repo_.revision(kScope));
  // The repair is a write: it replaces the planted value.
  ASSERT_TRUE(repo_.set_revision(kScope, 6));
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(6));
}

TEST_F(StoreDatastoreState, TwoConnectionsSeeEachOthersWrites) {
  Database other(DatabaseOptions{.path = path_});
  DatastoreStateRepo repo2(other);
  ASSERT_TRUE(repo_.set_revision(kScope, 100));
  EXPECT_EQ(*repo2.revision(kScope), std::optional<std::int64_t>(100));
  ASSERT_TRUE(repo2.set_revision(kScope, 101));
  EXPECT_EQ(*repo_.revision(kScope), std::optional<std::int64_t>(101));
}

}  // namespace
}  // namespace meshd::store
