// Pod address leases, keyed by (network, container id, interface name), as
// the CNI spec keys attachments. Allocation and release are each one
// BEGIN IMMEDIATE transaction, so any number of concurrent CNI processes get
// distinct addresses. Allocation rotates through the pool: each network
// remembers the address it allocated last, and the next one is the first free
// address after it (wrapping), so a released address is reused as late as the
// pool allows.
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
  // The host-side interface the attachment was given (CNI: the host veth);
  // empty for leases written before schema 3, and by allocate().
  std::string host_interface;
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

// Pure: the first address of the pool after `last` (the one allocated last)
// not in `used`, wrapping to the start of the pool; `last` itself comes
// last. Without `last`, or with one outside the pool (the CIDR changed), the
// lowest free address. Nothing when the pool is exhausted.
std::optional<IpAddress> next_free(const IpamPool& pool, const std::vector<IpAddress>& used,
                                   const std::optional<IpAddress>& last);

// Pure: how many addresses the pool can hand out (saturating at 2^64-1 for
// huge IPv6 pools). Used in the "exhausted" message.
std::uint64_t pool_capacity(const IpamPool& pool);

// One acquisition of an attachment's lease (CNI ADD).
struct LeaseRequest {
  AttachmentKey key;
  IpamPool pool;
  std::string host_interface;  // recorded with a new lease (and on an old one without)
  // Identifies this acquisition, non-zero (e.g. random): the lease remembers
  // the last claimant, and release_if_claimed() only releases the caller's own.
  std::int64_t claimant = 0;
  std::int64_t now = 0;  // created_at of a new lease, unix seconds
};

struct Acquired {
  Lease lease;
  // Decided inside the allocation's transaction: true when no lease existed
  // and this call inserted it, false when it returned an existing one.
  bool created = false;
};

class Ipam {
 public:
  explicit Ipam(Database& db) : db_(db) {}

  // Returns the existing lease for `key` if there is one (CNI ADD retried),
  // else allocates the next free address after the network's last one
  // (next_free). Errors: ENOSPC with a message
  // naming the pool when it is exhausted.
  Result<Lease> allocate(const AttachmentKey& key, const IpamPool& pool);
  // The same with the lease's created_at given by the caller (tests, and
  // callers that already hold a clock reading); the overload above reads the
  // system clock once.
  Result<Lease> allocate(const AttachmentKey& key, const IpamPool& pool, std::int64_t now);
  // The existing lease of `req.key` (now claimed by req.claimant), else the
  // next free address (next_free), in one BEGIN IMMEDIATE transaction. Errors as allocate().
  Result<Acquired> acquire(const LeaseRequest& req);
  // Undo of an acquire() that created the lease: releases it only while its
  // last claimant is still `claimant`. A concurrent acquisition of the same
  // attachment that found this lease has claimed it since and may be using
  // the address, so it stays. Returns whether a lease was released.
  Result<bool> release_if_claimed(const AttachmentKey& key, std::int64_t claimant);
  // Missing lease = success (DEL is idempotent).
  Result<void> release(const AttachmentKey& key);
  Result<std::optional<Lease>> find(const AttachmentKey& key);
  Result<std::vector<Lease>> list(const std::string& network);
  // GC: releases every lease of `network` whose key is not in `keep`;
  // returns the released leases (with their host interfaces).
  Result<std::vector<Lease>> release_all_except(const std::string& network,
                                                const std::vector<AttachmentKey>& keep);

 private:
  Database& db_;
};

}  // namespace meshd::store
