// Several processes against one database file: SIGKILL in the middle of
// writes, and many concurrent CNI-like allocators.
#include "store/database.h"
#include "store/events.h"
#include "store/ipam.h"
#include "store_test_util.h"

#include <SQLiteCpp/Database.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace meshd::store {
namespace {

using test::TempDir;

// Reads one line from fd (the child's pipe); false on EOF.
bool read_line(int fd, std::string& line) {
  line.clear();
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (c == '\n') return true;
    line += c;
  }
}

TEST(StoreProcesses, SigkillMidWriteLosesNothingCommitted) {
  TempDir dir;
  const auto path = dir.file("crash.db");
  { Database db(DatabaseOptions{.path = path}); }
  std::map<long, std::string> reported;  // row -> address, as the child reported after commit
  long next = 0;
  // Kill after a different number of commits each round, so the kill lands at
  // different points of the write path.
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = test::spawn_helper({"writer", path, std::to_string(next)}, fds[1]);
    ::close(fds[1]);
    const int kill_after = 15 + round * 17;
    std::string line;
    for (int i = 0; i < kill_after; ++i) {
      ASSERT_TRUE(read_line(fds[0], line)) << "writer stopped early";
      std::istringstream in(line);
      long row;
      std::string addr;
      in >> row >> addr;
      reported[row] = addr;
      next = row + 1;
    }
    ::kill(pid, SIGKILL);
    EXPECT_EQ(test::wait_exit(pid), 128 + SIGKILL);
    // Rows the child committed but had not reported yet are also fine; they
    // must not be lost or half-written either.
    while (read_line(fds[0], line)) {
      std::istringstream in(line);
      long row;
      std::string addr;
      in >> row >> addr;
      reported[row] = addr;
      next = row + 1;
    }
    ::close(fds[0]);

    Database db(DatabaseOptions{.path = path});
    EXPECT_EQ(db.sql().execAndGet("PRAGMA integrity_check").getString(), "ok");
    Ipam ipam(db);
    for (const auto& [row, addr] : reported) {
      auto lease = ipam.find(AttachmentKey{"crash", "w" + std::to_string(row), "eth0"});
      ASSERT_TRUE(lease);
      ASSERT_TRUE(*lease) << "lost committed row " << row;
      EXPECT_EQ((*lease)->address.to_string(), addr);
    }
    auto events = EventRepo(db).list(100000);
    ASSERT_TRUE(events);
    std::set<std::string> messages;
    for (const auto& e : *events) messages.insert(e.message);
    for (const auto& [row, addr] : reported)
      EXPECT_TRUE(messages.count("row " + std::to_string(row))) << "lost event " << row;

    // Leases may exist beyond the last report (killed between commit and
    // report); start the next round past them. The database takes more writes.
    next = std::max<long>(next, static_cast<long>(ipam.list("crash")->size()));
    auto more = ipam.allocate(AttachmentKey{"crash", "parent" + std::to_string(round), "eth0"},
                              IpamPool{IpPrefix::parse("10.128.0.0/9").value(), {}}, 1);
    ASSERT_TRUE(more) << more.error().message;
    for (const auto& [row, addr] : reported) EXPECT_NE(more->address.to_string(), addr);
  }
  EXPECT_GE(reported.size(), 15u + 32u + 49u + 66u);
}

struct AllocationRun {
  std::map<std::string, std::string> ok;  // container -> address
  std::vector<std::string> errors;
  int failed_processes = 0;
};

// Starts `procs` helpers that open `path` (creating it if missing) and
// allocate `each` addresses from `subnet`, all released at the same moment.
AllocationRun run_allocators(const TempDir& dir, const std::string& path, const char* subnet,
                             int procs, int each) {
  int gun[2];
  EXPECT_EQ(::pipe2(gun, O_CLOEXEC), 0);
  std::vector<pid_t> pids;
  std::vector<std::string> outs;
  for (int p = 0; p < procs; ++p) {
    outs.push_back(dir.file("out" + std::to_string(p)));
    int fd = ::open(outs.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pids.push_back(test::spawn_helper(
        {"allocate", path, subnet, "p" + std::to_string(p), std::to_string(each)}, fd, gun[0]));
    ::close(fd);
  }
  ::close(gun[0]);
  ::close(gun[1]);  // EOF on fd 3 of every child: go
  AllocationRun run;
  for (pid_t pid : pids)
    if (test::wait_exit(pid) != 0) ++run.failed_processes;
  for (const auto& out : outs) {
    std::istringstream in(test::read_file(out));
    std::string word, key, addr, line;
    while (std::getline(in, line)) {
      std::istringstream l(line);
      l >> word;
      if (word == "ok") {
        l >> key >> addr;
        run.ok[key] = addr;
      } else {
        run.errors.push_back(line);
      }
    }
  }
  return run;
}

TEST(StoreProcesses, FiftyConcurrentAllocatorsGetDistinctAddresses) {
  TempDir dir;
  const auto path = dir.file("ipam.db");  // not created yet: they race to create it too
  auto run = run_allocators(dir, path, "10.244.1.0/24", 50, 4);
  EXPECT_EQ(run.failed_processes, 0);
  EXPECT_TRUE(run.errors.empty()) << run.errors.front();
  ASSERT_EQ(run.ok.size(), 200u);
  std::set<std::string> addrs;
  for (const auto& [k, a] : run.ok) {
    EXPECT_TRUE(IpPrefix::parse("10.244.1.0/24")->contains(IpAddress::parse(a).value())) << a;
    addrs.insert(a);
  }
  EXPECT_EQ(addrs.size(), 200u);
  EXPECT_EQ(test::file_mode(path), 0600u);

  // What the processes reported is what the database holds.
  Database db(DatabaseOptions{.path = path});
  auto leases = Ipam(db).list("net");
  ASSERT_TRUE(leases);
  ASSERT_EQ(leases->size(), 200u);
  for (const auto& l : *leases) EXPECT_EQ(run.ok[l.key.container_id], l.address.to_string());
}

TEST(StoreProcesses, OverAskingFillsThePoolExactlyAndRefusesTheRestClearly) {
  TempDir dir;
  const auto path = dir.file("ipam.db");
  { Database db(DatabaseOptions{.path = path}); }
  auto run = run_allocators(dir, path, "10.244.1.0/24", 50, 6);  // 300 asks, 254 addresses
  EXPECT_EQ(run.failed_processes, 0);
  EXPECT_EQ(run.ok.size(), 254u);
  std::set<std::string> addrs;
  for (const auto& [k, a] : run.ok) addrs.insert(a);
  EXPECT_EQ(addrs.size(), 254u);
  ASSERT_EQ(run.errors.size(), 46u);
  for (const auto& e : run.errors)
    EXPECT_NE(e.find("err " + std::to_string(ENOSPC) +
                     " pool 10.244.1.0/24 is exhausted: 254 of 254 addresses leased"),
              std::string::npos)
        << e;
}

}  // namespace
}  // namespace meshd::store
