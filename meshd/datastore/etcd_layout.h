// Where meshd keeps a cluster in etcd, what the values hold, and the pure
// rules on top: keys, value codecs, the CIDR allocation transaction and
// applying etcd's contents to a NodeTable. No I/O, no clock: the etcd client
// (etcd_client.h) moves the bytes, the daemon decides when.
//
// Layout, under a configurable prefix P (default "/meshd/", ending in '/')
// and the cluster id C; I is an identity key as 64 lowercase hex characters:
//
//   P C /params           the cluster's parameters (the founder writes them once)
//   P C /records/ I       a node's signed record: body || 64-byte signature
//   P C /tombstones/ I    a signed tombstone: body || 64-byte signature
//   P C /subnets/ A-L     a CIDR claim ("10.244.3.0-24", "fd00:1::-64")
//   P C /alive/ I         liveness on a lease: unix ms as decimal text
//
// etcd is an untrusted transport: anyone holding etcd credentials can write
// any key. So nothing read from it is believed on its own: records and
// tombstones go through NodeTable::merge exactly as in the default mode, a
// value under another identity's key is refused (a record copied to another
// node's key must not stand in for that node), and a subnet claim must carry
// a valid admission. Every parser here takes untrusted bytes: anything
// malformed is "unknown" or an error, never a crash.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "keys/identity.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/node_table.h"
#include "meshd/datastore/etcd_types.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::datastore {

inline constexpr std::string_view kDefaultKeyPrefix = "/meshd/";
inline constexpr std::string_view kParamsContext = "meshd/etcd-params/v1";
inline constexpr std::string_view kSubnetClaimContext = "meshd/etcd-subnet-claim/v1";
// A record or tombstone value: the signed body (at most kMaxRecordBytes)
// followed by its signature.
inline constexpr std::size_t kMaxSignedValueBytes =
    controlplane::kMaxRecordBytes + keys::kSignatureLength;

// ---- Keys -------------------------------------------------------------------

enum class KeyFamily : std::uint8_t { kUnknown, kParams, kRecord, kTombstone, kSubnet, kAlive };
std::string_view to_string(KeyFamily f);

// An identity key as 64 lowercase hex characters, and back (nothing for any
// other text: upper case, wrong length, non-hex).
std::string identity_hex(const keys::IdentityPublicKey& id);
std::optional<keys::IdentityPublicKey> parse_identity_hex(std::string_view text);

// A CIDR as a key segment: "10.244.3.0-24", "fd00:1::-64" (':' kept, '/'
// replaced so the segment stays one). Parsing accepts only the exact form
// subnet_segment() writes for a network prefix: one spelling per CIDR, so two
// writers can never claim the same CIDR under two keys.
std::string subnet_segment(const IpPrefix& cidr);
std::optional<IpPrefix> parse_subnet_segment(std::string_view text);

// The keys. `prefix` is used as given (the config ensures the trailing '/').
std::string cluster_prefix(std::string_view prefix, std::string_view cluster);  // "P C /"
std::string params_key(std::string_view prefix, std::string_view cluster);
std::string record_key(std::string_view prefix, std::string_view cluster,
                       const keys::IdentityPublicKey& id);
std::string tombstone_key(std::string_view prefix, std::string_view cluster,
                          const keys::IdentityPublicKey& id);
std::string subnet_key(std::string_view prefix, std::string_view cluster, const IpPrefix& cidr);
std::string alive_key(std::string_view prefix, std::string_view cluster,
                      const keys::IdentityPublicKey& id);
// The prefix every key of one family starts with ("P C /records/"), for a
// range or a watch (range_end = prefix_end(family_prefix(...))). kParams gives
// the params key itself; kUnknown gives cluster_prefix().
std::string family_prefix(std::string_view prefix, std::string_view cluster, KeyFamily f);

struct ParsedKey {
  KeyFamily family = KeyFamily::kUnknown;
  keys::IdentityPublicKey identity;  // records, tombstones, alive
  IpPrefix cidr;                     // subnets

  auto operator<=>(const ParsedKey&) const = default;
};
// Which key of cluster `cluster` this is. kUnknown for anything else: another
// prefix or cluster, an unknown family, a malformed identity or CIDR, a
// trailing segment.
ParsedKey parse_key(std::string_view prefix, std::string_view cluster, std::string_view key);

// ---- Values -----------------------------------------------------------------

// A record or tombstone value: the exact signed bytes and the signature.
struct SignedValue {
  std::vector<std::uint8_t> body;
  keys::Signature signature{};

  auto operator<=>(const SignedValue&) const = default;
};
std::string encode_signed_value(std::span<const std::uint8_t> body, const keys::Signature& sig);
std::string record_value(const controlplane::SignedRecord& r);
std::string tombstone_value(const controlplane::SignedTombstone& t);
// Splits a value into body and signature; an error for a value shorter than a
// signature or longer than kMaxSignedValueBytes. Nothing is verified here.
Result<SignedValue> decode_signed_value(std::string_view value);

// The cluster's parameters: a canonical encoding (context kParamsContext:
// cluster id, cluster CIDR as text, node prefix length, founder key).
std::string encode_params(const controlplane::ClusterParams& p);
// Checks what a cluster needs: a cluster id of 1-64 bytes, a network prefix
// as cluster CIDR, a node prefix length inside it (longer than the cluster's,
// at most the address length), a non-zero founder. Fields a newer version
// appends are skipped.
Result<controlplane::ClusterParams> decode_params(std::string_view value);
bool same_params(const controlplane::ClusterParams& a, const controlplane::ClusterParams& b);

// A subnet claim: who holds the CIDR of its key, and the admission that
// allocated it (the same admission the node's record carries).
struct SubnetClaim {
  keys::IdentityPublicKey identity;
  std::string name;
  controlplane::Admission admission;

  auto operator<=>(const SubnetClaim&) const = default;
};
SubnetClaim claim_of(const controlplane::NodeRecord& r);
// Canonical encoding, context kSubnetClaimContext: identity, name, admission
// (a list of 3: admitter, admitted_at, signature).
std::string encode_claim(const SubnetClaim& c);
Result<SubnetClaim> decode_claim(std::string_view value);
// True if `claim` is a valid allocation of `cidr` in the cluster: a node
// name, a CIDR of the cluster's per-node length inside its CIDR, a
// self-admission only by the founder, and an admission signature over this
// cluster, name, identity, CIDR and time. Whether the admitter was a member
// is the NodeTable's to judge (its record carries the same admission): a
// claim counts for routing only together with a valid record.
bool claim_valid(const controlplane::ClusterParams& params, const SubnetClaim& claim,
                 const IpPrefix& cidr);

// Liveness values: unix ms as decimal text; nothing for anything else.
std::string alive_value(std::uint64_t unix_ms);
std::optional<std::uint64_t> parse_alive_value(std::string_view value);

// ---- Allocation -------------------------------------------------------------
//
// The caller's loop (the admitting member):
//   1. range the subnets family; if reuse() names a CIDR for the joiner, use
//      it (a retried join gets the CIDR its first attempt claimed);
//   2. else next_candidate(table, claimed_cidrs(listing), reserved) and send
//      claim_txn(); on success the CIDR is the joiner's;
//   3. on a failed compare (someone claimed it first: the failure branch's
//      range shows who) re-list and go to 1;
//   4. after a timeout (ETIMEDOUT) the txn may still have been applied:
//      re-read the subnet key before anything else; if it holds this claim,
//      it succeeded; never send the same txn blindly again.
// A subnet is freed only by an explicit removal (release_txn), never by a
// lease: a node that is down keeps its CIDR.

// Compare create_revision(subnet key) == 0; success: put the claim (no
// lease); failure: range the subnet key.
Txn claim_txn(std::string_view prefix, const controlplane::ClusterParams& params,
              const IpPrefix& cidr, const SubnetClaim& claim);
// Deletes the claim only if it still holds `expected_value` (the claim of the
// removed node), so a removal never frees a CIDR someone else claimed since.
Txn release_txn(std::string_view prefix, std::string_view cluster, const IpPrefix& cidr,
                std::string expected_value);

struct ClaimedSubnet {
  IpPrefix cidr;
  SubnetClaim claim;
  Revision mod_revision = 0;
};
// The valid claims (claim_valid) in a range of the subnets family, in key
// order; other keys and invalid values are skipped.
std::vector<ClaimedSubnet> valid_claims(std::string_view prefix,
                                        const controlplane::ClusterParams& params,
                                        const RangeResult& subnets);
// Every CIDR with a subnet key in the range, valid claim or not: the
// allocator must skip them all, because claim_txn fails on any existing key
// (a garbage value would otherwise be picked again forever).
std::vector<IpPrefix> claimed_cidrs(std::string_view prefix, std::string_view cluster,
                                    const RangeResult& subnets);
// The CIDR `identity` already holds by a valid claim (the lowest if several).
std::optional<IpPrefix> reuse(std::string_view prefix, const controlplane::ClusterParams& params,
                              const RangeResult& subnets, const keys::IdentityPublicKey& identity);
// The lowest free CIDR of the table's cluster that no record, claimed subnet
// or reserved CIDR (e.g. SyncEngine::unreleased_cidrs()) holds.
std::optional<IpPrefix> next_candidate(const controlplane::NodeTable& table,
                                       std::span<const IpPrefix> claimed,
                                       std::span<const IpPrefix> reserved);

// ---- Applying etcd to a NodeTable -------------------------------------------

enum class Disposition : std::uint8_t {
  kIgnored,    // not a record or tombstone of this cluster, or a delete
  kMerged,     // the table took it (MergeOutcome accepted*)
  kUnchanged,  // the table already held it or something newer (stale, removed identity)
  kRefused,    // tampered or invalid: see outcome / key_mismatch
};
std::string_view to_string(Disposition d);

struct Applied {
  KeyFamily family = KeyFamily::kUnknown;
  Disposition disposition = Disposition::kIgnored;
  // What NodeTable::merge said; kMalformed when the value did not decode;
  // nothing when ignored or when the key did not match.
  std::optional<controlplane::MergeOutcome> outcome;
  // The value is another identity's record or tombstone than its key names.
  bool key_mismatch = false;
};

// One watch event. A delete changes nothing: a record leaves the table only
// by a tombstone, never because a key vanished from etcd.
Applied apply(controlplane::NodeTable& table, const WatchEvent& event, std::string_view prefix,
              std::string_view cluster);

struct ApplyReport {
  std::size_t merged = 0, unchanged = 0, refused = 0, ignored = 0;
  std::size_t key_mismatch = 0;  // of the refused
  controlplane::OutcomeCounters outcomes{};  // per merge outcome, of the records and tombstones
  // apply_listing of a complete listing (more == false) only: members of the
  // table whose record key in etcd does not hold the table's bytes (absent,
  // an older version, tampered). Their owner (or any member: the bytes are
  // self-verifying) may write the table's copy back.
  std::vector<keys::IdentityPublicKey> behind;

  void add(const Applied& a);
};

// A batch of events (one watch message): as apply() one by one in revision
// order, except that a record or tombstone whose signer is not known yet
// waits until the rest of the batch is applied and is retried while that
// makes progress (then refused as unknown_signer, counted once), so the
// table depends neither on the order nor on the revisions within the batch.
ApplyReport apply_events(controlplane::NodeTable& table, std::span<const WatchEvent> events,
                         std::string_view prefix, std::string_view cluster);
// A re-list (after a compaction, at start, on the periodic resync): every
// record and tombstone in it, applied as one batch. Idempotent: a second
// application changes nothing. Since the table never drops a record except
// for a tombstone, entries the table holds and the listing lacks stay (see
// ApplyReport::behind).
ApplyReport apply_listing(controlplane::NodeTable& table, const RangeResult& listing,
                          std::string_view prefix, std::string_view cluster);

}  // namespace meshd::datastore
