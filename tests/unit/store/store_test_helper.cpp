// Helper for the multi-process store tests.
//
//   store_test_helper writer DB START
//     Forever: allocate a lease for container "w<i>" and append event "row <i>",
//     then print "<i> <address>\n" (unbuffered) once both have committed.
//     The test SIGKILLs it mid-stream.
//
//   store_test_helper allocate DB POOL NAME COUNT
//     Waits until fd 3 reaches EOF (the test's start gun), then opens DB and
//     allocates COUNT leases "<NAME>-<k>" from POOL in network "net", printing
//     "ok <key> <address>" or "err <errno> <message>" per attempt.
#include "store/database.h"
#include "store/events.h"
#include "store/ipam.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace meshd;
using namespace meshd::store;

namespace {

int writer(const std::string& path, long start) {
  Database db(DatabaseOptions{.path = path});
  Ipam ipam(db);
  EventRepo events(db);
  auto pool = IpamPool{*IpPrefix::parse("10.128.0.0/9"), {}};
  for (long i = start;; ++i) {
    auto lease = ipam.allocate(AttachmentKey{"crash", "w" + std::to_string(i), "eth0"}, pool, i);
    if (!lease) {
      std::fprintf(stderr, "%s\n", lease.error().message.c_str());
      return 1;
    }
    auto ev = events.append(i, "test", "writer", "row " + std::to_string(i));
    if (!ev) {
      std::fprintf(stderr, "%s\n", ev.error().message.c_str());
      return 1;
    }
    std::string line = std::to_string(i) + " " + lease->address.to_string() + "\n";
    if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
  }
}

int allocate(const std::string& path, const std::string& pool_text, const std::string& name,
             int count) {
  char c;
  while (::read(3, &c, 1) > 0) {
  }
  ::close(3);
  auto db = Database::open(DatabaseOptions{.path = path, .busy_timeout_ms = 60000});
  if (!db) {
    std::printf("err %d %s\n", db.error().value(), db.error().message.c_str());
    return 1;
  }
  Ipam ipam(**db);
  auto pool = IpamPool{*IpPrefix::parse(pool_text), {}};
  for (int k = 0; k < count; ++k) {
    std::string key = name + "-" + std::to_string(k);
    auto lease = ipam.allocate(AttachmentKey{"net", key, "eth0"}, pool, 1700000000);
    if (lease)
      std::printf("ok %s %s\n", key.c_str(), lease->address.to_string().c_str());
    else
      std::printf("err %d %s\n", lease.error().value(), lease.error().message.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "writer" && argc == 4) return writer(argv[2], std::atol(argv[3]));
    if (cmd == "allocate" && argc == 6)
      return allocate(argv[2], argv[3], argv[4], std::atoi(argv[5]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: store_test_helper writer DB START | allocate DB POOL NAME COUNT\n");
  return 2;
}
