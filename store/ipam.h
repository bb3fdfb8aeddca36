// Pod address leases, keyed by (network, container id, interface name), as
// the CNI spec keys attachments. Allocation and release are each one
// BEGIN IMMEDIATE transaction, so any number of concurrent CNI processes get
// distinct addresses.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meshd::store {

class Database;

struct AttachmentKey {
  std::string network;       // CNI network name
  std::string container_id;  // CNI_CONTAINERID
  std::string ifname;        // CNI_IFNAME
  auto operator<=>(const AttachmentKey&) const = default;
};

struct Lease {
  AttachmentKey key;
  IpAddress address;
  std::int64_t created_at = 0;  // unix seconds
};

// The addresses a pool may hand out: every host address of `subnet` except
// the network and broadcast addresses (IPv4) and those in `reserved` (e.g. the
// node's gateway address).
struct IpamPool {
  IpPrefix subnet;
  std::vector<IpAddress> reserved;
};

// Pure: the lowest address of the pool not in `used` (sorted or not), or
// nothing when the pool is exhausted.
std::optional<IpAddress> lowest_free(const IpamPool& pool, const std::vector<IpAddress>& used);

// Pure: how many addresses the pool can hand out (saturating at 2^64-1 for
// huge IPv6 pools). Used in the "exhausted" message.
std::uint64_t pool_capacity(const IpamPool& pool);

class Ipam {
 public:
  explicit Ipam(Database& db) : db_(db) {}

  // Returns the existing lease for `key` if there is one (CNI ADD retried),
  // else allocates the lowest free address. Errors: ENOSPC with a message
  // naming the pool when it is exhausted.
  Result<Lease> allocate(const AttachmentKey& key, const IpamPool& pool);
  // The same with the lease's created_at given by the caller (tests, and
  // callers that already hold a clock reading); the overload above reads the
  // system clock once.
  Result<Lease> allocate(const AttachmentKey& key, const IpamPool& pool, std::int64_t now);
  // Missing lease = success (DEL is idempotent).
  Result<void> release(const AttachmentKey& key);
  Result<std::optional<Lease>> find(const AttachmentKey& key);
  Result<std::vector<Lease>> list(const std::string& network);
  // GC: releases every lease of `network` whose key is not in `keep`;
  // returns the released leases.
  Result<std::vector<Lease>> release_all_except(const std::string& network,
                                                const std::vector<AttachmentKey>& keep);

 private:
  Database& db_;
};

}  // namespace meshd::store
