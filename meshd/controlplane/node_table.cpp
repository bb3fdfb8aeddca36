#include "meshd/controlplane/node_table.h"

#include <sodium.h>

#include <algorithm>

namespace meshd::controlplane {

using keys::IdentityPublicKey;

std::string_view to_string(MergeOutcome o) {
  switch (o) {
    case MergeOutcome::kAccepted: return "accepted";
    case MergeOutcome::kAcceptedNameHeld: return "accepted_name_held";
    case MergeOutcome::kAcceptedCidrHeld: return "accepted_cidr_held";
    case MergeOutcome::kMalformed: return "malformed";
    case MergeOutcome::kWrongCluster: return "wrong_cluster";
    case MergeOutcome::kInvalidField: return "invalid_field";
    case MergeOutcome::kStale: return "stale";
    case MergeOutcome::kRemovedIdentity: return "removed_identity";
    case MergeOutcome::kBadSignature: return "bad_signature";
    case MergeOutcome::kUnknownSigner: return "unknown_signer";
    case MergeOutcome::kBadAdmission: return "bad_admission";
    case MergeOutcome::kCount: break;
  }
  return "unknown";
}

bool precedes(const NodeRecord& a, const NodeRecord& b) {
  if (a.admission.admitted_at != b.admission.admitted_at)
    return a.admission.admitted_at < b.admission.admitted_at;
  return a.identity < b.identity;
}

NodeTable::NodeTable(ClusterParams params) : params_(std::move(params)) {}

MergeOutcome NodeTable::tally(MergeOutcome o) {
  ++counters_[static_cast<std::size_t>(o)];
  return o;
}

void NodeTable::hash_toggle(const IdentityPublicKey& id, std::uint64_t version) {
  std::array<std::uint8_t, 40> in{};
  std::copy(id.bytes().begin(), id.bytes().end(), in.begin());
  for (int i = 0; i < 8; ++i) in[32 + i] = static_cast<std::uint8_t>(version >> (56 - 8 * i));
  TableHash h{};
  crypto_generichash(h.data(), h.size(), in.data(), in.size(), nullptr, 0);
  // XOR of per-entry hashes: independent of order and updated in O(1). It
  // only decides whether two members compare digests, so a collision costs
  // a missed round, not safety.
  for (std::size_t i = 0; i < h.size(); ++i) hash_[i] ^= h[i];
}

const SignedRecord* NodeTable::find(const IdentityPublicKey& id) const {
  auto it = records_.find(id);
  return it == records_.end() ? nullptr : it->second.get();
}

std::shared_ptr<const SignedRecord> NodeTable::find_shared(const IdentityPublicKey& id) const {
  auto it = records_.find(id);
  return it == records_.end() ? nullptr : it->second;
}

const SignedTombstone* NodeTable::tombstone(const IdentityPublicKey& id) const {
  auto it = tombstones_.find(id);
  return it == tombstones_.end() ? nullptr : it->second.get();
}

void NodeTable::erase_member(const IdentityPublicKey& id) {
  auto it = std::lower_bound(members_.begin(), members_.end(), id);
  if (it != members_.end() && *it == id) members_.erase(it);
}

std::vector<DigestEntry> NodeTable::digest() const {
  std::vector<DigestEntry> out;
  out.reserve(records_.size() + tombstones_.size());
  auto r = records_.begin();
  auto t = tombstones_.begin();
  // Both maps are in key order and never share a key: merge them.
  while (r != records_.end() || t != tombstones_.end()) {
    if (t == tombstones_.end() || (r != records_.end() && r->first < t->first)) {
      out.push_back({r->first, r->second->record.version});
      ++r;
    } else {
      out.push_back({t->first, kTombstoneVersion});
      ++t;
    }
  }
  return out;
}

MergeOutcome NodeTable::classify(const NodeRecord& r) const {
  auto held = [&](const auto& index, const auto& key) {
    auto [lo, hi] = index.equal_range(key);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == r.identity) continue;
      const SignedRecord* other = find(it->second);
      if (other && precedes(other->record, r)) return true;
    }
    return false;
  };
  if (held(by_name_, r.name)) return MergeOutcome::kAcceptedNameHeld;
  if (held(by_cidr_, r.pod_cidr)) return MergeOutcome::kAcceptedCidrHeld;
  return MergeOutcome::kAccepted;
}

bool NodeTable::in_effect(const NodeRecord& r) const {
  return classify(r) == MergeOutcome::kAccepted;
}

std::vector<std::shared_ptr<const SignedRecord>> NodeTable::view() const {
  std::vector<std::shared_ptr<const SignedRecord>> out;
  for (const auto& [_, rec] : records_)
    if (in_effect(rec->record)) out.push_back(rec);
  return out;
}

namespace {

// A signer (admitter, remover) vouches for what it signed at `when` if it is
// the founder, holds a record, or was removed only after `when`: a node
// admitted by a member that was removed later stays a member.
bool signer_known(const ClusterParams& p, const IdentityPublicKey& signer, std::uint64_t when,
                  const SignedRecord* signer_record, const SignedTombstone* signer_tombstone) {
  if (signer_tombstone) return signer_tombstone->tombstone.removed_at > when;
  return signer == p.founder || signer_record != nullptr;
}

}  // namespace

MergeOutcome NodeTable::check(const SignedRecord& s) const {
  const NodeRecord& r = s.record;
  if (r.cluster_id != params_.cluster_id) return MergeOutcome::kWrongCluster;
  if (tombstones_.contains(r.identity)) return MergeOutcome::kRemovedIdentity;
  if (const SignedRecord* held = find(r.identity); held && held->record.version >= r.version)
    return MergeOutcome::kStale;

  bool fields_ok = valid_node_name(r.name) && r.version != 0 && r.version != kTombstoneVersion &&
                   r.protocol_version != 0 && !r.wg_public_key.is_zero() &&
                   r.pod_cidr.length == params_.node_prefix_length &&
                   r.pod_cidr.address.family == params_.cluster_cidr.address.family &&
                   params_.cluster_cidr.contains(r.pod_cidr) && r.endpoints.size() <= kMaxEndpoints;
  if (r.pending_key)
    fields_ok = fields_ok && !r.pending_key->wg_public_key.is_zero() &&
                r.pending_key->wg_public_key != r.wg_public_key;
  if (!fields_ok) return MergeOutcome::kInvalidField;

  if (!owner_signature_valid(s)) return MergeOutcome::kBadSignature;

  const IdentityPublicKey& admitter = r.admission.admitter;
  // Only the founder admits itself; everyone else is admitted by a member.
  bool self = admitter == r.identity;
  if ((self && admitter != params_.founder) ||
      (!self && !signer_known(params_, admitter, r.admission.admitted_at, find(admitter),
                              tombstone(admitter))))
    return MergeOutcome::kUnknownSigner;
  if (!admission_signature_valid(r)) return MergeOutcome::kBadAdmission;
  return MergeOutcome::kAccepted;
}

void NodeTable::erase_claims(const NodeRecord& r) {
  auto erase_one = [&](auto& index, const auto& key) {
    auto [lo, hi] = index.equal_range(key);
    for (auto it = lo; it != hi; ++it)
      if (it->second == r.identity) {
        index.erase(it);
        return;
      }
  };
  erase_one(by_name_, r.name);
  erase_one(by_cidr_, r.pod_cidr);
}

MergeOutcome NodeTable::merge(const SignedRecord& s) {
  MergeOutcome o = check(s);
  if (o != MergeOutcome::kAccepted) return tally(o);
  const NodeRecord& r = s.record;
  auto& slot = records_[r.identity];
  if (slot) {
    const NodeRecord& old = slot->record;
    erase_claims(old);
    hash_toggle(r.identity, old.version);
  } else {
    members_.insert(std::lower_bound(members_.begin(), members_.end(), r.identity), r.identity);
  }
  slot = std::make_shared<const SignedRecord>(s);
  by_name_.emplace(r.name, r.identity);
  by_cidr_.emplace(r.pod_cidr, r.identity);
  hash_toggle(r.identity, r.version);
  return tally(classify(r));
}

MergeOutcome NodeTable::merge(const SignedTombstone& s) {
  const Tombstone& t = s.tombstone;
  if (t.cluster_id != params_.cluster_id) return tally(MergeOutcome::kWrongCluster);
  if (tombstones_.contains(t.removed)) return tally(MergeOutcome::kStale);
  // The name and CIDR the removed node held (its CIDR stays reserved until
  // the tombstone is released): checked as a record's are, but either may
  // be empty (the remover held no record of the node).
  bool cidr_ok = t.pod_cidr == IpPrefix{} ||
                 (t.pod_cidr.length == params_.node_prefix_length &&
                  t.pod_cidr.address.family == params_.cluster_cidr.address.family &&
                  params_.cluster_cidr.contains(t.pod_cidr));
  if (t.removed_at == 0 || (!t.name.empty() && !valid_node_name(t.name)) || !cidr_ok ||
      t.reason.size() > kMaxReasonLength)
    return tally(MergeOutcome::kInvalidField);
  if (!signer_known(params_, t.removed_by, t.removed_at, find(t.removed_by),
                    tombstone(t.removed_by)))
    return tally(MergeOutcome::kUnknownSigner);
  if (!tombstone_signature_valid(s)) return tally(MergeOutcome::kBadSignature);

  if (auto it = records_.find(t.removed); it != records_.end()) {
    hash_toggle(t.removed, it->second->record.version);
    erase_claims(it->second->record);
    erase_member(t.removed);
    records_.erase(it);
  }
  // A record admitted by the removed member after its removal would be
  // refused if it arrived now; drop it so the order of arrival does not
  // matter.
  for (auto it = records_.begin(); it != records_.end();) {
    const NodeRecord& r = it->second->record;
    if (r.admission.admitter == t.removed && r.identity != t.removed &&
        r.admission.admitted_at >= t.removed_at) {
      hash_toggle(r.identity, r.version);
      erase_claims(r);
      erase_member(r.identity);
      it = records_.erase(it);
    } else {
      ++it;
    }
  }
  tombstones_.emplace(t.removed, std::make_shared<const SignedTombstone>(s));
  hash_toggle(t.removed, kTombstoneVersion);
  return tally(MergeOutcome::kAccepted);
}

MergeOutcome NodeTable::merge_record_bytes(std::span<const std::uint8_t> body,
                                           const keys::Signature& sig) {
  auto r = decode_record(body, sig);
  if (!r) return tally(MergeOutcome::kMalformed);
  return merge(*r);
}

MergeOutcome NodeTable::merge_tombstone_bytes(std::span<const std::uint8_t> body,
                                              const keys::Signature& sig) {
  auto t = decode_tombstone(body, sig);
  if (!t) return tally(MergeOutcome::kMalformed);
  return merge(*t);
}

namespace {

// `p` advanced by one block of its own length (carry across bytes); false on
// overflow past the end of the address space.
bool next_block(IpPrefix& p) {
  int bit = p.length - 1;  // the last bit of the prefix
  for (int byte = bit / 8; byte >= 0; --byte) {
    int add = byte == bit / 8 ? (1 << (7 - bit % 8)) : 1;
    int v = p.address.bytes[byte] + add;
    p.address.bytes[byte] = static_cast<std::uint8_t>(v & 0xff);
    if (v <= 0xff) return true;
  }
  return false;
}

}  // namespace

std::optional<IpPrefix> lowest_free_cidr(const NodeTable& table) {
  return lowest_free_cidr(table, {});
}

std::optional<IpPrefix> lowest_free_cidr(const NodeTable& table, std::span<const IpPrefix> reserved) {
  const ClusterParams& p = table.params();
  if (p.node_prefix_length < p.cluster_cidr.length || p.node_prefix_length == 0 ||
      p.node_prefix_length > p.cluster_cidr.max_length())
    return std::nullopt;
  std::vector<IpPrefix> taken;
  for (const auto& id : table.members()) taken.push_back(table.find(id)->record.pod_cidr);
  for (const IpPrefix& r : reserved) taken.push_back(r.network());
  std::sort(taken.begin(), taken.end());
  IpPrefix c{p.cluster_cidr.network().address, p.node_prefix_length};
  // The lowest free block is among the first taken.size() + 1 candidates.
  for (std::size_t i = 0; i <= taken.size(); ++i) {
    if (!p.cluster_cidr.contains(c)) return std::nullopt;
    if (!std::binary_search(taken.begin(), taken.end(), c)) return c;
    if (!next_block(c)) return std::nullopt;
  }
  return std::nullopt;
}

MergeOutcome admission_check(const NodeTable& table, std::string_view name,
                             const IdentityPublicKey& identity) {
  if (!valid_node_name(name)) return MergeOutcome::kInvalidField;
  if (table.tombstone(identity)) return MergeOutcome::kRemovedIdentity;
  for (const auto& id : table.members())
    if (id != identity && table.find(id)->record.name == name)
      return MergeOutcome::kAcceptedNameHeld;
  return MergeOutcome::kAccepted;
}

}  // namespace meshd::controlplane
