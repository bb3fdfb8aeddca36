// The sync rules, as a pure state machine: messages in, messages out. No
// sockets, no clock, no logging; randomness comes from the caller's
// generator, so a seeded run is reproducible (the 1000-node simulation in the
// unit tests drives it exactly as the daemon will).
//
//   - Push on change: a node that publishes a new record (or tombstone) sends
//     it at once to `push_fanout` random members; each member that accepts it
//     as new forwards it once, the same way (rumour spreading: a change
//     reaches most nodes in about log_fanout(N) hops).
//   - Anti-entropy, every period (tick): to `anti_entropy_fanout` random
//     members, a Summary with this node's table hash. A member whose hash
//     differs answers with its Digest; the initiator then sends what the
//     member lacks (Records) and asks for what it lacks itself (Request).
//     This repairs whatever pushes lost.
//   - Settling: a node serves pods from its CIDR only once it is settled: its
//     own record is in effect, and every member in its table has
//     acknowledged it without conflict. A member acknowledges when its table
//     equals this node's (equal Summary hashes), or when its Digest lists
//     this node's record and holds nothing this node lacks. Any record that
//     could take the CIDR away (an earlier admission of the same CIDR) is in
//     its admitter's table before the admitter acknowledges, so this node
//     sees it first. settle_probe() asks the members that have not
//     acknowledged yet.
//   - Release: a tombstone's CIDR is reserved until every member has shown
//     this node that it holds the tombstone, the same two ways (released()
//     below); release_probe() asks the members that have not.
//
// Who may speak sync (members only, over a channel authenticated with their
// identity keys) is the transport's job: `from` is trusted to be the member
// the channel authenticated.
#pragma once

#include "meshd/controlplane/node_table.h"
#include "meshd/controlplane/sync_message.h"

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <vector>

namespace meshd::controlplane {

using Rng = std::mt19937_64;

struct SyncOptions {
  std::size_t push_fanout = 3;
  std::size_t anti_entropy_fanout = 2;  // reaches 1000 nodes in <= 10 rounds even if every push is lost
  bool push = true;  // false: anti-entropy alone (to measure it)
};

struct Outgoing {
  keys::IdentityPublicKey to;
  std::vector<std::uint8_t> bytes;
};

struct SyncCounters {
  std::uint64_t messages_in = 0;
  std::uint64_t malformed_in = 0;     // dropped whole: did not decode
  std::uint64_t unknown_type_in = 0;  // a newer version's message type: ignored
};

class SyncEngine {
 public:
  SyncEngine(keys::IdentityPublicKey self, NodeTable table, SyncOptions opts = {});

  // This node's own change (signed by the caller, who holds the key): merged
  // here, then pushed. Nothing is sent if the table refuses it.
  std::vector<Outgoing> publish(const SignedRecord& r, Rng& rng);
  std::vector<Outgoing> publish(const SignedTombstone& t, Rng& rng);
  // A member's record that came from outside sync (the underlay
  // announcement, announce.h): merged by the same rules as a pushed one
  // and, when new, pushed on to the fanout, its owner left out (the owner
  // sent it, and the mesh may not reach it yet).
  std::vector<Outgoing> relay(const SignedRecord& r, Rng& rng, MergeOutcome* outcome = nullptr);
  // One anti-entropy period.
  std::vector<Outgoing> tick(Rng& rng);
  // A Summary that asks for an answer, to every member that has not
  // acknowledged this node's current allocation.
  std::vector<Outgoing> settle_probe();
  bool settled() const;

  // Tombstone release (docs/protocol.md, "Removal"): a removed node's CIDR
  // may be handed out again only once every member in this node's table has
  // shown this node that it holds the tombstone: a Summary whose hash equals
  // this node's (taken while this node held the tombstone) or a Digest that
  // lists it. (Its name is free at once: see admission_check().) Knowledge
  // is local and in memory: after a restart the tombstones are unreleased
  // until the members show it again.
  bool released(const keys::IdentityPublicKey& removed) const;
  // The CIDRs of tombstones not released yet (and a CIDR the removed record
  // held here when the tombstone named another): an admitting member skips
  // them.
  std::vector<IpPrefix> unreleased_cidrs() const;
  bool has_unreleased() const;
  // A Summary asking for an answer (reply_wanted), to every member that has
  // not yet shown it holds every tombstone this node holds unreleased.
  std::vector<Outgoing> release_probe() const;
  // A message from the member `from`.
  std::vector<Outgoing> receive(const keys::IdentityPublicKey& from,
                                std::span<const std::uint8_t> bytes, Rng& rng);

  const NodeTable& table() const { return table_; }
  // Datastore mode (docs/datastore.md): records and tombstones that come from
  // the datastore rather than from members. `f(NodeTable&)` merges them (the
  // pure rules of meshd/datastore/etcd_layout.h); the engine then takes note
  // of the tombstones it added, as if they had arrived by sync.
  template <class F>
  auto apply_external(F&& f) {
    auto result = f(table_);
    note_new_tombstones();
    return result;
  }
  const SyncCounters& counters() const { return counters_; }
  const keys::IdentityPublicKey& self() const { return self_; }

 private:
  struct Merged {
    std::vector<SignedBytes> new_records;
    std::vector<SignedBytes> new_tombstones;
  };
  Merged merge_all(const SyncMessage& m);
  std::vector<keys::IdentityPublicKey> pick_peers(std::size_t k,
                                                  const keys::IdentityPublicKey* exclude,
                                                  Rng& rng) const;
  void push_to(std::vector<Outgoing>& out, const std::vector<keys::IdentityPublicKey>& peers,
               MessageType type, const std::vector<SignedBytes>& records,
               const std::vector<SignedBytes>& tombstones) const;
  std::vector<Outgoing> answer_digest(const keys::IdentityPublicKey& from, const SyncMessage& m);
  std::vector<Outgoing> answer_request(const keys::IdentityPublicKey& from, const SyncMessage& m);

  void acknowledge(const keys::IdentityPublicKey& member);
  // `member` showed it holds every tombstone this node holds (equal hash),
  // or the tombstones its digest lists.
  void tombstones_held_by(const keys::IdentityPublicKey& member);
  void tombstones_listed_by(const keys::IdentityPublicKey& member,
                            const std::vector<DigestEntry>& digest);
  // Merges a tombstone into the table and, if accepted, numbers it.
  MergeOutcome merge_tombstone(const SignedTombstone& t);
  void note_tombstone(const keys::IdentityPublicKey& removed,
                      std::optional<IpPrefix> record_cidr);
  void note_new_tombstones();
  // Whether `member` showed it holds the tombstone numbered `n`, keyed `removed`.
  bool shown(const keys::IdentityPublicKey& member, std::size_t n,
             const keys::IdentityPublicKey& removed) const;
  // Numbers of the tombstones not released, ascending.
  std::vector<std::size_t> unreleased() const;

  keys::IdentityPublicKey self_;
  NodeTable table_;
  // Members that acknowledged the allocation (pod CIDR, admission time) below.
  std::set<keys::IdentityPublicKey> acked_;
  std::optional<std::pair<IpPrefix, std::uint64_t>> acked_for_;
  // The tombstones in the order this node took them up (restored ones
  // first, in key order). Tombstones never leave the table, so what this
  // node held at any moment is a prefix of this list, and "showed it holds
  // all of them" is one number per member, not a set per tombstone: a
  // cluster that removed thousands of nodes over its life does not keep
  // members x tombstones entries.
  std::vector<keys::IdentityPublicKey> tombstone_order_;
  std::map<keys::IdentityPublicKey, std::size_t> tombstone_number_;
  // Per member: it showed it holds the first N tombstones of the list.
  std::map<keys::IdentityPublicKey, std::size_t> tombstones_shown_;
  // Per tombstoned identity: the members that showed they hold it beyond
  // their prefix above (a digest that lists a later tombstone but lacks an
  // earlier one; rare).
  std::map<keys::IdentityPublicKey, std::set<keys::IdentityPublicKey>> tombstone_holders_;
  // A CIDR the removed node's record held in this table when its tombstone
  // arrived, where the tombstone names another or none (the remover lagged
  // behind a re-admission): reserved as well while unreleased.
  std::map<keys::IdentityPublicKey, IpPrefix> removed_record_cidr_;
  SyncOptions opts_;
  SyncCounters counters_;
};

}  // namespace meshd::controlplane
