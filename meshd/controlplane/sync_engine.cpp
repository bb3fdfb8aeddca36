#include "meshd/controlplane/sync_engine.h"

#include <algorithm>
#include <map>

namespace meshd::controlplane {

using keys::IdentityPublicKey;

namespace {

SignedBytes as_bytes(const SignedRecord& r) { return {r.body, r.signature}; }
SignedBytes as_bytes(const SignedTombstone& t) { return {t.body, t.signature}; }

}  // namespace

SyncEngine::SyncEngine(IdentityPublicKey self, NodeTable table, SyncOptions opts)
    : self_(self), table_(std::move(table)), opts_(opts) {}

std::vector<IdentityPublicKey> SyncEngine::pick_peers(std::size_t k,
                                                      const IdentityPublicKey* exclude,
                                                      Rng& rng) const {
  std::vector<IdentityPublicKey> peers = table_.members();
  std::erase_if(peers, [&](const auto& id) { return id == self_ || (exclude && id == *exclude); });
  k = std::min(k, peers.size());
  // Partial Fisher-Yates: k distinct members, uniformly.
  for (std::size_t i = 0; i < k; ++i) {
    std::uniform_int_distribution<std::size_t> d(i, peers.size() - 1);
    std::swap(peers[i], peers[d(rng)]);
  }
  peers.resize(k);
  return peers;
}

void SyncEngine::push_to(std::vector<Outgoing>& out, const std::vector<IdentityPublicKey>& peers,
                         MessageType type, const std::vector<SignedBytes>& records,
                         const std::vector<SignedBytes>& tombstones) const {
  if (records.empty() && tombstones.empty()) return;
  for (const auto& m : split_signed(type, records, tombstones)) {
    auto bytes = encode_message(m);
    for (const auto& p : peers) out.push_back({p, bytes});
  }
}

std::vector<Outgoing> SyncEngine::publish(const SignedRecord& r, Rng& rng) {
  std::vector<Outgoing> out;
  if (!accepted(table_.merge(r)) || !opts_.push) return out;
  push_to(out, pick_peers(opts_.push_fanout, nullptr, rng), MessageType::kPush, {as_bytes(r)}, {});
  return out;
}

std::vector<Outgoing> SyncEngine::publish(const SignedTombstone& t, Rng& rng) {
  std::vector<Outgoing> out;
  if (!accepted(table_.merge(t)) || !opts_.push) return out;
  push_to(out, pick_peers(opts_.push_fanout, nullptr, rng), MessageType::kPush, {}, {as_bytes(t)});
  return out;
}

std::vector<Outgoing> SyncEngine::tick(Rng& rng) {
  std::vector<Outgoing> out;
  SyncMessage m;
  m.type = MessageType::kSummary;
  m.table_hash = table_.hash();
  auto bytes = encode_message(m);
  for (const auto& p : pick_peers(opts_.anti_entropy_fanout, nullptr, rng))
    out.push_back({p, bytes});
  return out;
}

SyncEngine::Merged SyncEngine::merge_all(const SyncMessage& m) {
  Merged got;
  // Tombstones first: a record of a removed identity in the same message is
  // then refused rather than briefly accepted.
  for (const auto& t : m.tombstones)
    if (accepted(table_.merge_tombstone_bytes(t.body, t.signature)))
      got.new_tombstones.push_back(t);
  // A record may come before the record of the member that admitted it:
  // retry those while a pass makes progress.
  std::vector<const SignedBytes*> pending;
  for (const auto& r : m.records) pending.push_back(&r);
  bool progress = true;
  while (!pending.empty() && progress) {
    progress = false;
    std::vector<const SignedBytes*> retry;
    for (const SignedBytes* r : pending) {
      MergeOutcome o = table_.merge_record_bytes(r->body, r->signature);
      if (accepted(o)) {
        got.new_records.push_back(*r);
        progress = true;
      } else if (o == MergeOutcome::kUnknownSigner) {
        retry.push_back(r);
      }
    }
    pending.swap(retry);
  }
  return got;
}

std::vector<Outgoing> SyncEngine::answer_digest(const IdentityPublicKey& from,
                                                const SyncMessage& m) {
  std::map<IdentityPublicKey, std::uint64_t> theirs;
  for (const auto& e : m.digest) theirs[e.identity] = std::max(theirs[e.identity], e.version);
  std::vector<SignedBytes> records, tombstones;
  for (const auto& e : table_.digest()) {
    auto it = theirs.find(e.identity);
    if (it != theirs.end() && it->second >= e.version) continue;
    if (e.version == kTombstoneVersion)
      tombstones.push_back(as_bytes(*table_.tombstone(e.identity)));
    else
      records.push_back(as_bytes(*table_.find(e.identity)));
  }
  SyncMessage want;
  want.type = MessageType::kRequest;
  for (const auto& [id, version] : theirs) {
    if (want.wanted.size() >= kMaxWanted) break;
    if (table_.tombstone(id)) continue;  // nothing outranks a tombstone
    const SignedRecord* mine = table_.find(id);
    if (!mine || mine->record.version < version) want.wanted.push_back(id);
  }
  std::vector<Outgoing> out;
  push_to(out, {from}, MessageType::kRecords, records, tombstones);
  if (!want.wanted.empty()) out.push_back({from, encode_message(want)});
  return out;
}

std::vector<Outgoing> SyncEngine::answer_request(const IdentityPublicKey& from,
                                                 const SyncMessage& m) {
  std::vector<SignedBytes> records, tombstones;
  for (const auto& id : m.wanted) {
    if (const SignedTombstone* t = table_.tombstone(id))
      tombstones.push_back(as_bytes(*t));
    else if (const SignedRecord* r = table_.find(id))
      records.push_back(as_bytes(*r));
  }
  std::vector<Outgoing> out;
  push_to(out, {from}, MessageType::kRecords, records, tombstones);
  return out;
}

std::vector<Outgoing> SyncEngine::receive(const IdentityPublicKey& from,
                                          std::span<const std::uint8_t> bytes, Rng& rng) {
  ++counters_.messages_in;
  auto d = decode_message(bytes);
  if (!d) {
    ++counters_.malformed_in;
    return {};
  }
  if (d->unknown_type) {
    ++counters_.unknown_type_in;
    return {};
  }
  const SyncMessage& m = d->message;
  std::vector<Outgoing> out;
  switch (m.type) {
    case MessageType::kPush: {
      Merged got = merge_all(m);
      if (opts_.push)
        push_to(out, pick_peers(opts_.push_fanout, &from, rng), MessageType::kPush,
                got.new_records, got.new_tombstones);
      break;
    }
    case MessageType::kRecords:
      merge_all(m);
      break;
    case MessageType::kSummary:
      if (m.table_hash && *m.table_hash != table_.hash()) {
        SyncMessage dg;
        dg.type = MessageType::kDigest;
        dg.digest = table_.digest();
        if (dg.digest.size() > kMaxDigestEntries) dg.digest.resize(kMaxDigestEntries);
        out.push_back({from, encode_message(dg)});
      }
      break;
    case MessageType::kDigest:
      out = answer_digest(from, m);
      break;
    case MessageType::kRequest:
      out = answer_request(from, m);
      break;
  }
  return out;
}

}  // namespace meshd::controlplane
