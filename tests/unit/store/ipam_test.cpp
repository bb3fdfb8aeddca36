#include "store/database.h"
#include "store/ipam.h"
#include "store_test_util.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/Database.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace meshd::store {
namespace {

IpAddress ip(const char* s) { return IpAddress::parse(s).value(); }
IpamPool pool(const char* subnet, std::vector<const char*> reserved = {}) {
  IpamPool p{IpPrefix::parse(subnet).value(), {}};
  for (const char* r : reserved) p.reserved.push_back(ip(r));
  return p;
}

struct LowestFreeCase {
  const char* name;
  IpamPool pool;
  std::vector<const char*> used;
  const char* expect;  // nullptr = exhausted
  std::uint64_t capacity;
};

TEST(IpamLowestFree, Table) {
  const std::vector<LowestFreeCase> cases = {
      {"empty /24 starts after the network address", pool("10.244.1.0/24"), {}, "10.244.1.1", 253 + 1},
      {"host bits in the subnet are ignored", pool("10.244.1.77/24"), {}, "10.244.1.1", 254},
      {"reserved gateway skipped", pool("10.244.1.0/24", {"10.244.1.1"}), {}, "10.244.1.2", 253},
      {"first gap is used", pool("10.244.1.0/24"), {"10.244.1.1", "10.244.1.2", "10.244.1.4"}, "10.244.1.3", 254},
      {"unsorted and duplicate used", pool("10.244.1.0/24"), {"10.244.1.2", "10.244.1.1", "10.244.1.2"}, "10.244.1.3", 254},
      {"used outside the pool ignored", pool("10.244.1.0/24"), {"10.244.2.1", "fd00::1", "10.244.1.0"}, "10.244.1.1", 254},
      {"/30 has two hosts", pool("192.168.0.4/30"), {"192.168.0.5"}, "192.168.0.6", 2},
      {"/30 never hands out broadcast", pool("192.168.0.4/30"), {"192.168.0.5", "192.168.0.6"}, nullptr, 2},
      {"/31 uses both addresses (RFC 3021)", pool("192.168.0.8/31"), {}, "192.168.0.8", 2},
      {"/31 second address", pool("192.168.0.8/31"), {"192.168.0.8"}, "192.168.0.9", 2},
      {"/31 exhausted", pool("192.168.0.8/31"), {"192.168.0.8", "192.168.0.9"}, nullptr, 2},
      {"/32 single address", pool("192.168.0.9/32"), {}, "192.168.0.9", 1},
      {"/31 reserved + used", pool("192.168.0.8/31", {"192.168.0.9"}), {"192.168.0.8"}, nullptr, 1},
      {"reserved at both ends", pool("10.0.0.0/24", {"10.0.0.1", "10.0.0.254"}), {}, "10.0.0.2", 252},
      {"v6 skips the subnet-router anycast", pool("fd00:10:244:1::/64"), {}, "fd00:10:244:1::1", UINT64_MAX},
      {"v6 gap", pool("fd00::/120", {"fd00::1"}), {"fd00::2", "fd00::3"}, "fd00::4", 254},
      {"v6 /120 keeps the all-ones address", pool("fd00::/120"), {}, "fd00::1", 255},
      {"v6 /127 (RFC 6164)", pool("fd00::/127"), {"fd00::"}, "fd00::1", 2},
      {"v6 /128", pool("fd00::5/128"), {"fd00::5"}, nullptr, 1},
      {"v6 pool ignores v4 leases", pool("fd00::/126"), {"0.0.0.1"}, "fd00::1", 3},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<IpAddress> used;
    for (const char* u : c.used) used.push_back(ip(u));
    auto got = lowest_free(c.pool, used);
    if (c.expect) {
      ASSERT_TRUE(got);
      EXPECT_EQ(got->to_string(), c.expect);
    } else {
      EXPECT_FALSE(got) << got->to_string();
    }
    EXPECT_EQ(pool_capacity(c.pool), c.capacity);
  }
}

struct NextFreeCase {
  const char* name;
  IpamPool pool;
  std::vector<const char*> used;
  const char* last;    // nullptr = no cursor
  const char* expect;  // nullptr = exhausted
};

TEST(IpamNextFree, Table) {
  const std::vector<NextFreeCase> cases = {
      {"no cursor: lowest free", pool("10.244.1.0/24", {"10.244.1.1"}), {}, nullptr, "10.244.1.2"},
      {"after the cursor", pool("10.244.1.0/24"), {"10.244.1.5"}, "10.244.1.5", "10.244.1.6"},
      {"a released address below the cursor waits", pool("10.244.1.0/24"), {}, "10.244.1.9", "10.244.1.10"},
      {"held addresses after the cursor skipped", pool("10.244.1.0/24"), {"10.244.1.6", "10.244.1.7"}, "10.244.1.5", "10.244.1.8"},
      {"wraps after the last host", pool("10.244.1.0/24", {"10.244.1.1"}), {}, "10.244.1.254", "10.244.1.2"},
      {"wraps past held addresses", pool("10.0.0.0/29"), {"10.0.0.5", "10.0.0.6", "10.0.0.1"}, "10.0.0.4", "10.0.0.2"},
      {"the cursor itself comes last", pool("10.0.0.0/30"), {"10.0.0.1"}, "10.0.0.2", "10.0.0.2"},
      {"exhausted", pool("10.0.0.0/30"), {"10.0.0.1", "10.0.0.2"}, "10.0.0.1", nullptr},
      {"cursor outside the pool (CIDR changed)", pool("10.244.2.0/24"), {}, "10.244.1.9", "10.244.2.1"},
      {"cursor of another family", pool("10.244.2.0/24"), {}, "fd00::9", "10.244.2.1"},
      {"reserved skipped after the cursor", pool("10.0.0.0/24", {"10.0.0.8"}), {}, "10.0.0.7", "10.0.0.9"},
      {"v6 wraps at the top of ::/0 without overflow",
       pool("::/0"), {}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::1"},
      {"v6 /127 after the first", pool("fd00::/127"), {}, "fd00::", "fd00::1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<IpAddress> used;
    for (const char* u : c.used) used.push_back(ip(u));
    std::optional<IpAddress> last;
    if (c.last) last = ip(c.last);
    auto got = next_free(c.pool, used, last);
    if (c.expect) {
      ASSERT_TRUE(got);
      EXPECT_EQ(got->to_string(), c.expect);
    } else {
      EXPECT_FALSE(got) << got->to_string();
    }
  }
}

TEST(IpamLowestFree, FullV4PoolIsExhaustedAtTheLastHost) {
  auto p = pool("10.244.1.0/24");
  std::vector<IpAddress> used;
  for (int i = 1; i <= 253; ++i) used.push_back(IpAddress::v4(10, 244, 1, i));
  EXPECT_EQ(lowest_free(p, used)->to_string(), "10.244.1.254");
  used.push_back(IpAddress::v4(10, 244, 1, 254));
  EXPECT_FALSE(lowest_free(p, used));
}

TEST(IpamLowestFree, WholeV6SpaceDoesNotWrap) {
  auto p = pool("::/0");
  EXPECT_EQ(lowest_free(p, {})->to_string(), "::1");
  EXPECT_EQ(pool_capacity(p), UINT64_MAX);
  auto top = pool("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
  EXPECT_FALSE(lowest_free(top, {ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
                                 ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}));
}

class IpamStore : public ::testing::Test {
 protected:
  test::TempDir dir_;
  Database db_{DatabaseOptions{.path = dir_.file("meshd.db")}};
  Ipam ipam_{db_};
};

AttachmentKey key(const std::string& c, const std::string& net = "meshd") {
  return AttachmentKey{net, c, "eth0"};
}

TEST_F(IpamStore, AllocateIsIdempotentPerAttachment) {
  auto p = pool("10.244.1.0/24", {"10.244.1.1"});
  auto a = ipam_.allocate(key("c1"), p, 100);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->address.to_string(), "10.244.1.2");
  EXPECT_EQ(a->created_at, 100);
  auto again = ipam_.allocate(key("c1"), p, 200);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->address, a->address);
  EXPECT_EQ(again->created_at, 100);  // the existing lease, not a new one

  auto b = ipam_.allocate(AttachmentKey{"meshd", "c1", "eth1"}, p, 100);
  EXPECT_EQ(b->address.to_string(), "10.244.1.3");  // another interface, another address
  auto other_net = ipam_.allocate(key("c1", "other"), p, 100);
  EXPECT_EQ(other_net->address.to_string(), "10.244.1.2");  // networks are separate pools
}

TEST_F(IpamStore, ReleaseFreesTheAddressAndIsIdempotent) {
  auto p = pool("10.244.1.0/24");
  ASSERT_TRUE(ipam_.allocate(key("c1"), p, 1));
  ASSERT_TRUE(ipam_.allocate(key("c2"), p, 1));
  ASSERT_TRUE(ipam_.release(key("c1")));
  ASSERT_TRUE(ipam_.release(key("c1")));  // DEL twice
  ASSERT_TRUE(ipam_.release(key("never")));
  EXPECT_FALSE(*ipam_.find(key("c1")));
  EXPECT_EQ((*ipam_.find(key("c2")))->address.to_string(), "10.244.1.2");
  // Not reused at once: the next address after the last one allocated.
  EXPECT_EQ(ipam_.allocate(key("c3"), p, 1)->address.to_string(), "10.244.1.3");
}

// A released address is handed out again only once every other free address
// has been: N create/delete cycles in a pool of N never repeat an address.
TEST_F(IpamStore, CreateDeleteCyclesNeverReuseAnAddressWhileFreeOnesRemain) {
  auto p = pool("10.244.1.0/27", {"10.244.1.1"});  // 29 addresses to hand out
  ASSERT_TRUE(ipam_.allocate(key("long-lived"), p, 1));  // 10.244.1.2 stays leased
  const std::uint64_t free_ones = pool_capacity(p) - 1;
  std::set<std::string> seen;
  for (std::uint64_t i = 0; i < free_ones; ++i) {
    auto l = ipam_.allocate(key("pod" + std::to_string(i)), p, 1);
    ASSERT_TRUE(l) << l.error().message;
    EXPECT_NE(l->address.to_string(), "10.244.1.2");
    EXPECT_TRUE(seen.insert(l->address.to_string()).second)
        << l->address.to_string() << " handed out again after " << i << " cycles";
    ASSERT_TRUE(ipam_.release(key("pod" + std::to_string(i))));
  }
  EXPECT_EQ(seen.size(), free_ones);
  // The pool is used up once: now the rotation wraps to the start.
  EXPECT_EQ(ipam_.allocate(key("next"), p, 1)->address.to_string(), "10.244.1.3");
}

TEST_F(IpamStore, RotationSkipsHeldAddressesAndIsPerNetwork) {
  auto p = pool("10.244.1.0/29", {"10.244.1.1"});  // .2 .. .6
  for (const char* c : {"a", "b", "c"}) ASSERT_TRUE(ipam_.allocate(key(c), p, 1));  // .2 .3 .4
  ASSERT_TRUE(ipam_.release(key("b")));
  EXPECT_EQ(ipam_.allocate(key("d"), p, 1)->address.to_string(), "10.244.1.5");
  EXPECT_EQ(ipam_.allocate(key("e"), p, 1)->address.to_string(), "10.244.1.6");
  EXPECT_EQ(ipam_.allocate(key("f"), p, 1)->address.to_string(), "10.244.1.3");  // wrapped
  EXPECT_FALSE(ipam_.allocate(key("g"), p, 1));  // full
  // Another network has its own cursor.
  EXPECT_EQ(ipam_.allocate(key("a", "other"), p, 1)->address.to_string(), "10.244.1.2");
}

TEST_F(IpamStore, ExhaustionIsEnospcNamingThePool) {
  auto p = pool("10.244.1.0/29", {"10.244.1.1"});  // 6 hosts, 1 reserved
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(ipam_.allocate(key("c" + std::to_string(i)), p, 1));
  auto full = ipam_.allocate(key("late"), p, 1);
  ASSERT_FALSE(full);
  EXPECT_TRUE(full.error().is(ENOSPC));
  EXPECT_NE(full.error().message.find("pool 10.244.1.0/29 is exhausted: 5 of 5 addresses leased"),
            std::string::npos)
      << full.error().message;
  EXPECT_FALSE(*ipam_.find(key("late")));
  // An existing attachment still gets its lease back from a full pool.
  EXPECT_TRUE(ipam_.allocate(key("c0"), p, 1));
}

TEST_F(IpamStore, ListAndGarbageCollect) {
  auto p = pool("10.244.1.0/24");
  for (const char* c : {"c3", "c1", "c2", "c4"}) ASSERT_TRUE(ipam_.allocate(key(c), p, 7));
  ASSERT_TRUE(ipam_.allocate(key("x", "other"), p, 7));
  auto all = ipam_.list("meshd");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].key.container_id, "c1");

  auto released = ipam_.release_all_except("meshd", {key("c2"), key("c4"), key("unknown")});
  ASSERT_TRUE(released);
  std::set<std::string> gone;
  for (const auto& l : *released) gone.insert(l.key.container_id);
  EXPECT_EQ(gone, (std::set<std::string>{"c1", "c3"}));
  EXPECT_EQ(ipam_.list("meshd")->size(), 2u);
  EXPECT_EQ(ipam_.list("other")->size(), 1u);  // GC of one network leaves others alone
  EXPECT_TRUE(ipam_.release_all_except("meshd", {})->size() == 2u);
  EXPECT_TRUE(ipam_.list("meshd")->empty());
}

TEST_F(IpamStore, RejectsIncompleteKeys) {
  auto r = ipam_.allocate(AttachmentKey{"meshd", "", "eth0"}, pool("10.0.0.0/24"), 1);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(EINVAL));
}

TEST_F(IpamStore, V6PoolAllocatesInOrder) {
  auto p = pool("fd00:10:244:1::/64", {"fd00:10:244:1::1"});
  EXPECT_EQ(ipam_.allocate(key("a"), p, 1)->address.to_string(), "fd00:10:244:1::2");
  EXPECT_EQ(ipam_.allocate(key("b"), p, 1)->address.to_string(), "fd00:10:244:1::3");
}

LeaseRequest request(const std::string& c, std::int64_t claimant, const char* veth = "mcveth") {
  return LeaseRequest{.key = key(c), .pool = pool("10.244.1.0/24", {"10.244.1.1"}),
                      .host_interface = veth, .claimant = claimant, .now = 5};
}

TEST_F(IpamStore, AcquireSaysWhetherItCreatedTheLease) {
  auto first = ipam_.acquire(request("c1", 11));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->lease.address.to_string(), "10.244.1.2");
  EXPECT_EQ(first->lease.host_interface, "mcveth");
  auto second = ipam_.acquire(request("c1", 22));
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->lease.address, first->lease.address);
}

TEST_F(IpamStore, AnUndoneAcquireLeavesALeaseAnotherAcquireHasClaimed) {
  // ADD 11 creates the lease; a concurrent ADD 22 of the same attachment
  // finds it and goes on using the address; then ADD 11 fails and undoes.
  ASSERT_TRUE(ipam_.acquire(request("c1", 11))->created);
  ASSERT_FALSE(ipam_.acquire(request("c1", 22))->created);
  auto undo = ipam_.release_if_claimed(key("c1"), 11);
  ASSERT_TRUE(undo) << undo.error().message;
  EXPECT_FALSE(*undo);
  auto kept = ipam_.find(key("c1"));
  ASSERT_TRUE(kept && *kept) << "the other ADD's lease was released";
  EXPECT_EQ((*kept)->address.to_string(), "10.244.1.2");
  // Without a concurrent claim, the undo releases it.
  ASSERT_TRUE(ipam_.acquire(request("c2", 33))->created);
  EXPECT_TRUE(*ipam_.release_if_claimed(key("c2"), 33));
  EXPECT_FALSE(*ipam_.find(key("c2")));
  EXPECT_FALSE(ipam_.release_if_claimed(key("c1"), 0));  // 0 is nobody's claim
}

TEST_F(IpamStore, ConcurrentAcquiresOfOneAttachmentCreateExactlyOneLease) {
  constexpr int kThreads = 16;
  const auto path = dir_.file("meshd.db");
  std::vector<std::thread> threads;
  std::vector<Result<Acquired>> got(kThreads, Error::invalid("not run"));
  std::atomic<bool> go{false};
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      Database db(DatabaseOptions{.path = path});  // one connection each, as processes have
      while (!go) std::this_thread::yield();
      got[i] = Ipam(db).acquire(request("same", 100 + i));
    });
  go = true;
  for (auto& t : threads) t.join();
  int created = 0;
  std::set<std::string> addresses;
  for (const auto& g : got) {
    ASSERT_TRUE(g) << g.error().message;
    created += g->created;
    addresses.insert(g->lease.address.to_string());
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(addresses, (std::set<std::string>{"10.244.1.2"}));
  EXPECT_EQ(ipam_.list("meshd")->size(), 1u);
}

TEST_F(IpamStore, GarbageCollectionReturnsEachLeasesHostInterface) {
  ASSERT_TRUE(ipam_.acquire(request("c1", 1, "mcaaaa000000001")));
  ASSERT_TRUE(ipam_.acquire(request("c2", 2, "mcaaaa000000002")));
  auto released = ipam_.release_all_except("meshd", {key("c2")});
  ASSERT_TRUE(released);
  ASSERT_EQ(released->size(), 1u);
  EXPECT_EQ((*released)[0].host_interface, "mcaaaa000000001");
}

TEST(IpamMigration, ALeaseFromSchema2ReadsBackAndLearnsItsInterfaceOnTheNextAcquire) {
  test::TempDir dir;
  const auto path = dir.file("v2.db");
  Database::create_at_version(path, 2);
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("INSERT INTO ipam_leases VALUES ('meshd', 'old', 'eth0', '10.244.1.7', 120)");
  }
  Database db(DatabaseOptions{.path = path});
  ASSERT_EQ(db.schema_version(), Database::latest_schema_version());
  Ipam ipam(db);
  auto lease = ipam.find(key("old"));
  ASSERT_TRUE(lease && *lease);
  EXPECT_EQ((*lease)->address.to_string(), "10.244.1.7");
  EXPECT_EQ((*lease)->host_interface, "");
  // Its claimant is 0 (nobody's): no ADD's undo can release it.
  EXPECT_FALSE(*ipam.release_if_claimed(key("old"), 9));
  auto again = ipam.acquire(request("old", 9, "mcveth"));
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->lease.address.to_string(), "10.244.1.7");
  EXPECT_EQ((*ipam.find(key("old")))->host_interface, "mcveth");
}

}  // namespace
}  // namespace meshd::store
