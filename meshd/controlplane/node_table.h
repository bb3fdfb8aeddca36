// The node table: every record and tombstone this node accepted, and the pure
// rules that decide what it accepts (validation and merge).
//
// Merging is order-independent: two nodes that have seen the same records and
// tombstones, in any order and with any duplicates, hold the same table and
// compute the same view. That is what lets gossip converge.
//
//   - A record is checked cheapest first: cluster, tombstone, version, fields,
//     the owner's signature, then the admission (the admitter must be the
//     founder, a member in the table, or a member removed after it admitted).
//   - Claims on a name or a pod CIDR do not make a record invalid: two nodes
//     admitted at once through different members may both hold a claim. The
//     record is kept (so its owner learns it lost) and the view decides by
//     precedence: earlier admission, then the smaller identity key. A record is
//     in effect only if no record of higher precedence claims its name or its
//     CIDR, so two records in effect never share either.
//   - A tombstone removes the identity's record for good: any later record of
//     that identity is refused. Its name, CIDR and reason are checked like a
//     record's fields (each may be empty); when the CIDR may be handed out
//     again is the sync engine's rule (SyncEngine::released()).
#pragma once

#include "common/ip.h"
#include "meshd/controlplane/node_record.h"

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::controlplane {

// What became of one record or tombstone offered to the table.
enum class MergeOutcome : std::uint8_t {
  kAccepted,           // stored and in effect
  kAcceptedNameHeld,   // stored, but a record of higher precedence holds its name
  kAcceptedCidrHeld,   // stored, but a record of higher precedence holds its pod CIDR
  kMalformed,          // does not decode
  kWrongCluster,       // another cluster's id
  kInvalidField,       // name, CIDR, key or version outside what the cluster allows
  kStale,              // older or equal version than the one held (or a known tombstone)
  kRemovedIdentity,    // the identity has a tombstone
  kBadSignature,       // not signed by its owner (record) or its remover (tombstone)
  kUnknownSigner,      // admitter or remover is not a member this node knows
  kBadAdmission,       // the admission signature does not cover this allocation
  kCount,
};

std::string_view to_string(MergeOutcome o);
inline bool accepted(MergeOutcome o) {
  return o == MergeOutcome::kAccepted || o == MergeOutcome::kAcceptedNameHeld ||
         o == MergeOutcome::kAcceptedCidrHeld;
}

using OutcomeCounters = std::array<std::uint64_t, static_cast<std::size_t>(MergeOutcome::kCount)>;

// Fixed when the cluster is founded.
struct ClusterParams {
  std::string cluster_id;
  IpPrefix cluster_cidr;                // e.g. 10.244.0.0/16
  std::uint8_t node_prefix_length = 0;  // e.g. 24
  keys::IdentityPublicKey founder;      // admits itself; the root of trust
};

struct DigestEntry {
  keys::IdentityPublicKey identity;
  std::uint64_t version = 0;  // kTombstoneVersion for a tombstone

  auto operator<=>(const DigestEntry&) const = default;
};

using TableHash = std::array<std::uint8_t, 32>;

class NodeTable {
 public:
  explicit NodeTable(ClusterParams params);

  MergeOutcome merge(const SignedRecord& r);
  MergeOutcome merge(const SignedTombstone& t);
  // Decodes, then merges; kMalformed if it does not decode.
  MergeOutcome merge_record_bytes(std::span<const std::uint8_t> body, const keys::Signature& sig);
  MergeOutcome merge_tombstone_bytes(std::span<const std::uint8_t> body,
                                     const keys::Signature& sig);

  const SignedRecord* find(const keys::IdentityPublicKey& id) const;
  std::shared_ptr<const SignedRecord> find_shared(const keys::IdentityPublicKey& id) const;
  const SignedTombstone* tombstone(const keys::IdentityPublicKey& id) const;
  // Identities with a record (not tombstoned), in key order.
  const std::vector<keys::IdentityPublicKey>& members() const { return members_; }
  std::size_t record_count() const { return records_.size(); }
  std::size_t tombstone_count() const { return tombstones_.size(); }

  // (identity, version) of every record and tombstone, in key order.
  std::vector<DigestEntry> digest() const;
  // An order-independent hash of digest(): equal tables, equal hashes.
  const TableHash& hash() const { return hash_; }

  // The records in effect (see above), in key order.
  std::vector<std::shared_ptr<const SignedRecord>> view() const;
  bool in_effect(const NodeRecord& r) const;

  const OutcomeCounters& counters() const { return counters_; }
  std::uint64_t count(MergeOutcome o) const { return counters_[static_cast<std::size_t>(o)]; }
  const ClusterParams& params() const { return params_; }

 private:
  MergeOutcome check(const SignedRecord& r) const;
  MergeOutcome classify(const NodeRecord& r) const;
  MergeOutcome tally(MergeOutcome o);
  void erase_claims(const NodeRecord& r);
  void erase_member(const keys::IdentityPublicKey& id);
  void hash_toggle(const keys::IdentityPublicKey& id, std::uint64_t version);

  ClusterParams params_;
  std::map<keys::IdentityPublicKey, std::shared_ptr<const SignedRecord>> records_;
  std::map<keys::IdentityPublicKey, std::shared_ptr<const SignedTombstone>> tombstones_;
  std::vector<keys::IdentityPublicKey> members_;  // the keys of records_, kept for sampling
  // Claims, for the precedence rule: who names itself what, who holds which CIDR.
  std::multimap<std::string, keys::IdentityPublicKey> by_name_;
  std::multimap<IpPrefix, keys::IdentityPublicKey> by_cidr_;
  TableHash hash_{};
  OutcomeCounters counters_{};
};

// Precedence of a claim: true if `a` wins over `b` (earlier admission, then
// the smaller identity key).
bool precedes(const NodeRecord& a, const NodeRecord& b);

// The allocation rule of an admitting member: the lowest prefix of the
// cluster's node length inside the cluster CIDR that no record in the table
// claims (records in effect or not: a losing claim is not reused until its
// owner is re-admitted or removed). Nothing when the cluster CIDR is full.
// A removed node's CIDR is free here as soon as its tombstone is in the
// table: the table cannot know whether every member holds the tombstone
// yet, so the admitting member passes SyncEngine::unreleased_cidrs() in
// `reserved` (docs/protocol.md, "Removal").
std::optional<IpPrefix> lowest_free_cidr(const NodeTable& table);
// The same, also skipping `reserved`: CIDRs a member handed out in a join
// reply whose node's record has not arrived yet, and the CIDRs of tombstones
// not released yet.
std::optional<IpPrefix> lowest_free_cidr(const NodeTable& table, std::span<const IpPrefix> reserved);

// What an admitting member checks before it admits `name` for `identity`:
// kAccepted, kRemovedIdentity, kInvalidField (bad name) or kAcceptedNameHeld
// (another live identity holds the name). A removed node's name is free at
// once, released or not: a node that still holds the removed record sees the
// newcomer's as kAcceptedNameHeld until the tombstone reaches it, which only
// delays routing to the newcomer there, never routes to the wrong node (the
// CIDRs differ until the tombstone is released).
MergeOutcome admission_check(const NodeTable& table, std::string_view name,
                             const keys::IdentityPublicKey& identity);

}  // namespace meshd::controlplane
