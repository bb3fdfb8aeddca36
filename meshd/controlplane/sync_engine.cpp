#include "meshd/controlplane/sync_engine.h"

#include <algorithm>
#include <iterator>

namespace meshd::controlplane {

using keys::IdentityPublicKey;

namespace {

SignedBytes as_bytes(const SignedRecord& r) { return {r.body, r.signature}; }
SignedBytes as_bytes(const SignedTombstone& t) { return {t.body, t.signature}; }

}  // namespace

SyncEngine::SyncEngine(IdentityPublicKey self, NodeTable table, SyncOptions opts)
    : self_(self), table_(std::move(table)), opts_(opts) {
  // Tombstones restored with the table: held from the start, unreleased
  // until the members show them again.
  for (const auto& e : table_.digest())
    if (e.version == kTombstoneVersion) note_tombstone(e.identity, std::nullopt);
}

std::vector<IdentityPublicKey> SyncEngine::pick_peers(std::size_t k,
                                                      const IdentityPublicKey* exclude,
                                                      Rng& rng) const {
  const std::vector<IdentityPublicKey>& all = table_.members();
  auto eligible = [&](const IdentityPublicKey& id) {
    return id != self_ && !(exclude && id == *exclude);
  };
  std::vector<IdentityPublicKey> out;
  auto has = [&](const IdentityPublicKey& id) {
    return std::binary_search(all.begin(), all.end(), id);
  };
  std::size_t available = all.size() - (has(self_) ? 1 : 0) -
                          (exclude && *exclude != self_ && has(*exclude) ? 1 : 0);
  if (available <= k) {
    std::copy_if(all.begin(), all.end(), std::back_inserter(out), eligible);
    return out;
  }
  // k distinct members, uniformly, by rejection: k is a small fanout and at
  // least k + 1 members are eligible, so this ends quickly.
  std::uniform_int_distribution<std::size_t> d(0, all.size() - 1);
  while (out.size() < k) {
    const IdentityPublicKey& id = all[d(rng)];
    if (eligible(id) && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
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
  if (!accepted(merge_tombstone(t)) || !opts_.push) return out;
  push_to(out, pick_peers(opts_.push_fanout, nullptr, rng), MessageType::kPush, {}, {as_bytes(t)});
  return out;
}

std::vector<Outgoing> SyncEngine::relay(const SignedRecord& r, Rng& rng, MergeOutcome* outcome) {
  std::vector<Outgoing> out;
  MergeOutcome o = table_.merge(r);
  if (outcome) *outcome = o;
  if (!accepted(o) || !opts_.push) return out;
  push_to(out, pick_peers(opts_.push_fanout, &r.record.identity, rng), MessageType::kPush, {as_bytes(r)}, {});
  return out;
}

std::vector<Outgoing> SyncEngine::tick(Rng& rng) {
  std::vector<Outgoing> out;
  SyncMessage m;
  m.type = MessageType::kSummary;
  m.table_hash = table_.hash();
  auto bytes = encode_message(m);
  // meshd-next (see kProtocolVersion) also sends a message of a type this
  // version does not know, which a version 1 peer must ignore.
  std::vector<std::uint8_t> next;
  if constexpr (kWritesNextVersionFields) {
    SyncMessage n;
    n.type = static_cast<MessageType>(kNextVersionMessageType);
    next = encode_message(n);
  }
  for (const auto& p : pick_peers(opts_.anti_entropy_fanout, nullptr, rng)) {
    out.push_back({p, bytes});
    if (!next.empty()) out.push_back({p, next});
  }
  return out;
}

void SyncEngine::acknowledge(const IdentityPublicKey& member) {
  const SignedRecord* own = table_.find(self_);
  if (!own) return;
  std::pair<IpPrefix, std::uint64_t> now{own->record.pod_cidr, own->record.admission.admitted_at};
  if (acked_for_ != now) {  // a new allocation needs new acknowledgements
    acked_.clear();
    acked_for_ = now;
  }
  acked_.insert(member);
}

bool SyncEngine::settled() const {
  const SignedRecord* own = table_.find(self_);
  if (!own || !table_.in_effect(own->record)) return false;
  if (acked_for_ != std::pair{own->record.pod_cidr, own->record.admission.admitted_at})
    return table_.members().size() == 1;  // alone in the cluster: the founder
  for (const auto& id : table_.members())
    if (id != self_ && !acked_.contains(id)) return false;
  return true;
}

MergeOutcome SyncEngine::merge_tombstone(const SignedTombstone& t) {
  const IdentityPublicKey& id = t.tombstone.removed;
  std::optional<IpPrefix> held;
  if (const SignedRecord* r = table_.find(id)) held = r->record.pod_cidr;
  MergeOutcome o = table_.merge(t);
  if (accepted(o)) note_tombstone(id, held);
  return o;
}

void SyncEngine::note_new_tombstones() {
  if (tombstone_number_.size() == table_.tombstone_count()) return;
  for (const auto& e : table_.digest())
    if (e.version == kTombstoneVersion) note_tombstone(e.identity, std::nullopt);
}

void SyncEngine::note_tombstone(const IdentityPublicKey& removed,
                                std::optional<IpPrefix> record_cidr) {
  if (!tombstone_number_.emplace(removed, tombstone_order_.size()).second) return;
  tombstone_order_.push_back(removed);
  const SignedTombstone* t = table_.tombstone(removed);
  if (record_cidr && t && *record_cidr != t->tombstone.pod_cidr)
    removed_record_cidr_[removed] = *record_cidr;
  // The removed node is no member: what it showed no longer counts.
  tombstones_shown_.erase(removed);
  for (auto it = tombstone_holders_.begin(); it != tombstone_holders_.end();) {
    it->second.erase(removed);
    it = it->second.empty() ? tombstone_holders_.erase(it) : std::next(it);
  }
}

void SyncEngine::tombstones_held_by(const IdentityPublicKey& member) {
  if (member == self_) return;
  // The tombstones held now, and only those: one that arrives after this
  // Summary was not in the hash it matched.
  std::size_t& prefix = tombstones_shown_[member];
  std::size_t from = prefix;
  prefix = tombstone_order_.size();
  for (std::size_t n = from; n < prefix && !tombstone_holders_.empty(); ++n)
    if (auto it = tombstone_holders_.find(tombstone_order_[n]); it != tombstone_holders_.end()) {
      it->second.erase(member);  // covered by the prefix now
      if (it->second.empty()) tombstone_holders_.erase(it);
    }
}

void SyncEngine::tombstones_listed_by(const IdentityPublicKey& member,
                                      const std::vector<DigestEntry>& digest) {
  if (member == self_ || tombstone_order_.empty()) return;
  std::vector<IdentityPublicKey> listed;
  for (const auto& e : digest)
    if (e.version == kTombstoneVersion) listed.push_back(e.identity);
  if (listed.empty()) return;
  std::sort(listed.begin(), listed.end());
  auto lists = [&](const IdentityPublicKey& id) {
    return std::binary_search(listed.begin(), listed.end(), id);
  };
  std::size_t& prefix = tombstones_shown_[member];
  std::size_t from = prefix;
  while (prefix < tombstone_order_.size() && lists(tombstone_order_[prefix])) ++prefix;
  for (std::size_t n = from; n < tombstone_order_.size(); ++n) {
    const IdentityPublicKey& id = tombstone_order_[n];
    if (n >= prefix && lists(id)) {
      tombstone_holders_[id].insert(member);
    } else if (n < prefix) {
      if (auto it = tombstone_holders_.find(id); it != tombstone_holders_.end()) {
        it->second.erase(member);  // covered by the prefix now
        if (it->second.empty()) tombstone_holders_.erase(it);
      }
    }
  }
}

bool SyncEngine::shown(const IdentityPublicKey& member, std::size_t n,
                       const IdentityPublicKey& removed) const {
  if (auto it = tombstones_shown_.find(member); it != tombstones_shown_.end() && it->second > n)
    return true;
  auto it = tombstone_holders_.find(removed);
  return it != tombstone_holders_.end() && it->second.contains(member);
}

bool SyncEngine::released(const IdentityPublicKey& removed) const {
  auto number = tombstone_number_.find(removed);
  if (number == tombstone_number_.end() || !table_.tombstone(removed)) return false;
  // The removed node is no member (its record went with the tombstone), so
  // it never blocks; a member that joined since must show it too.
  for (const auto& id : table_.members())
    if (id != self_ && !shown(id, number->second, removed)) return false;
  return true;
}

std::vector<std::size_t> SyncEngine::unreleased() const {
  // Each member's prefix once; every tombstone below the lowest is released.
  std::vector<std::pair<const IdentityPublicKey*, std::size_t>> prefix;
  std::size_t low = tombstone_order_.size();
  for (const auto& id : table_.members()) {
    if (id == self_) continue;
    auto it = tombstones_shown_.find(id);
    std::size_t n = it == tombstones_shown_.end() ? 0 : it->second;
    prefix.emplace_back(&id, n);
    low = std::min(low, n);
  }
  std::vector<std::size_t> out;
  for (std::size_t n = low; n < tombstone_order_.size(); ++n) {
    auto holders = tombstone_holders_.find(tombstone_order_[n]);
    for (const auto& [id, p] : prefix)
      if (p <= n && (holders == tombstone_holders_.end() || !holders->second.contains(*id))) {
        out.push_back(n);
        break;
      }
  }
  return out;
}

std::vector<IpPrefix> SyncEngine::unreleased_cidrs() const {
  std::vector<IpPrefix> out;
  for (std::size_t n : unreleased()) {
    const IdentityPublicKey& id = tombstone_order_[n];
    if (const SignedTombstone* t = table_.tombstone(id); t && t->tombstone.pod_cidr != IpPrefix{})
      out.push_back(t->tombstone.pod_cidr);
    if (auto it = removed_record_cidr_.find(id); it != removed_record_cidr_.end())
      out.push_back(it->second);
  }
  return out;
}

bool SyncEngine::has_unreleased() const { return !unreleased().empty(); }

std::vector<Outgoing> SyncEngine::release_probe() const {
  std::vector<Outgoing> out;
  std::vector<std::size_t> open = unreleased();
  if (open.empty()) return out;
  SyncMessage m;
  m.type = MessageType::kSummary;
  m.table_hash = table_.hash();
  m.reply_wanted = true;  // equal tables answer with a Summary, others with a Digest
  auto bytes = encode_message(m);
  for (const auto& id : table_.members()) {
    if (id == self_) continue;
    for (std::size_t n : open)
      if (!shown(id, n, tombstone_order_[n])) {
        out.push_back({id, bytes});
        break;
      }
  }
  return out;
}

std::vector<Outgoing> SyncEngine::settle_probe() {
  std::vector<Outgoing> out;
  if (settled()) return out;
  SyncMessage m;
  m.type = MessageType::kSummary;
  m.table_hash = table_.hash();
  m.reply_wanted = true;
  auto bytes = encode_message(m);
  const SignedRecord* own = table_.find(self_);
  bool current = own && acked_for_ == std::pair{own->record.pod_cidr,
                                                own->record.admission.admitted_at};
  for (const auto& id : table_.members())
    if (id != self_ && !(current && acked_.contains(id))) out.push_back({id, bytes});
  return out;
}

SyncEngine::Merged SyncEngine::merge_all(const SyncMessage& m) {
  Merged got;
  // Tombstones first: a record of a removed identity in the same message is
  // then refused rather than briefly accepted.
  for (const auto& t : m.tombstones) {
    auto decoded = decode_tombstone(t.body, t.signature);
    // One that does not decode goes through the table, which counts it.
    MergeOutcome o = decoded ? merge_tombstone(*decoded)
                             : table_.merge_tombstone_bytes(t.body, t.signature);
    if (accepted(o)) got.new_tombstones.push_back(t);
  }
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
  // Walk both digests in identity order. A peer's digest arrives sorted when
  // it runs this code, but input is input: sort a copy, highest version first
  // within one identity, and read only the first entry of each.
  std::vector<DigestEntry> theirs = m.digest;
  if (!std::is_sorted(theirs.begin(), theirs.end()))
    std::sort(theirs.begin(), theirs.end());
  std::vector<DigestEntry> mine = table_.digest();
  std::vector<SignedBytes> records, tombstones;
  SyncMessage want;
  want.type = MessageType::kRequest;
  auto send = [&](const DigestEntry& e) {
    if (e.version == kTombstoneVersion)
      tombstones.push_back(as_bytes(*table_.tombstone(e.identity)));
    else
      records.push_back(as_bytes(*table_.find(e.identity)));
  };
  auto ask = [&](const IdentityPublicKey& id) {
    if (want.wanted.size() < kMaxWanted) want.wanted.push_back(id);
  };
  std::size_t i = 0, j = 0;
  while (i < mine.size() || j < theirs.size()) {
    if (j < theirs.size() && i < mine.size() && theirs[j].identity == mine[i].identity) {
      // The last entry of this identity in `theirs` has its highest version.
      while (j + 1 < theirs.size() && theirs[j + 1].identity == theirs[j].identity) ++j;
      if (mine[i].version > theirs[j].version) send(mine[i]);
      else if (mine[i].version < theirs[j].version) ask(mine[i].identity);
      ++i;
      ++j;
    } else if (j == theirs.size() || (i < mine.size() && mine[i].identity < theirs[j].identity)) {
      send(mine[i++]);
    } else {
      while (j + 1 < theirs.size() && theirs[j + 1].identity == theirs[j].identity) ++j;
      ask(theirs[j++].identity);
    }
  }
  // It holds our record and nothing we lack: it has acknowledged us.
  const SignedRecord* own = table_.find(self_);
  if (want.wanted.empty() && own &&
      std::binary_search(theirs.begin(), theirs.end(), DigestEntry{self_, own->record.version}))
    acknowledge(from);
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
      if (!m.table_hash) break;
      if (*m.table_hash != table_.hash()) {
        SyncMessage dg;
        dg.type = MessageType::kDigest;
        dg.digest = table_.digest();
        if (dg.digest.size() > kMaxDigestEntries) dg.digest.resize(kMaxDigestEntries);
        out.push_back({from, encode_message(dg)});
      } else {
        acknowledge(from);  // its table is ours, our own record included
        tombstones_held_by(from);  // and every tombstone we hold now
        if (m.reply_wanted) {
          SyncMessage s;
          s.type = MessageType::kSummary;
          s.table_hash = table_.hash();
          out.push_back({from, encode_message(s)});
        }
      }
      break;
    case MessageType::kDigest:
      tombstones_listed_by(from, m.digest);
      out = answer_digest(from, m);
      break;
    case MessageType::kRequest:
      out = answer_request(from, m);
      break;
  }
  return out;
}

}  // namespace meshd::controlplane
