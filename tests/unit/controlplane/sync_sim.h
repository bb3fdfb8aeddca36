// The sync rules over a simulated transport, shared by the simulation tests
// (sync_sim_test.cpp) and the removal benchmark
// (tests/bench/controlplane/bench_removal_sim.cpp): in-process nodes, each a
// SyncEngine, messages carried as bytes through a queue that drops a share of
// them at random.
//
// A round is one anti-entropy period: every node ticks once (and sends the
// release probes it is told to), then messages are delivered hop by hop until
// none is in flight (network latency is far below the period). A hop is one
// message delivery step; "hops" is the latency-bound figure, when each hop
// costs one network round trip.
#pragma once

#include "cluster_fixture.h"
#include "meshd/controlplane/sync_engine.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace meshd::controlplane::testing {

struct Figures {
  int rounds = 0;
  int hops = 0;
  std::uint64_t bytes = 0;
  std::uint64_t messages = 0;
};

class Sim {
 public:
  // n nodes; the founder admits everyone. With `full_start`, every node
  // starts with every record (as after joins); otherwise each knows only the
  // founder's record and its own.
  // With `newcomer`, that node has just joined: only it and the founder (its
  // admitter) hold its record.
  Sim(std::size_t n, double loss, SyncOptions opts, bool full_start, std::uint64_t seed = 1,
      std::optional<std::size_t> newcomer = std::nullopt)
      : rng_(seed), loss_rng_(seed + 1), loss_(loss) {
    // Keys from the seed too: members are picked from the table in key order,
    // so random keys would make the figures differ from run to run.
    std::mt19937_64 key_rng(seed * 7919);
    for (std::size_t i = 0; i < n; ++i) {
      keys::KeyBytes s{};
      for (auto& b : s) b = static_cast<std::uint8_t>(key_rng());
      keys_.push_back(keys::IdentitySecretKey::from_seed(s));
    }
    params_ = params_for(keys_[0]);
    params_.cluster_cidr = IpPrefix::parse("10.0.0.0/8").value();
    NodeTable full(params_);
    NodeTable without_newcomer(params_);
    for (std::size_t i = 0; i < n; ++i) {
      records_.push_back(record_for(i, 1));
      if (!accepted(full.merge(records_[i])))
        throw std::logic_error("sim: record " + std::to_string(i) + " refused");
      if (i != newcomer) without_newcomer.merge(records_[i]);
    }
    for (std::size_t i = 0; i < n; ++i) {
      index_[keys_[i].public_key()] = i;
      NodeTable t(params_);
      if (full_start) {
        t = (newcomer && i != *newcomer && i != 0) ? without_newcomer : full;
      } else {
        t.merge(records_[0]);
        t.merge(records_[i]);
      }
      nodes_.emplace_back(keys_[i].public_key(), std::move(t), opts);
    }
  }

  static IpPrefix cidr_of(std::size_t i) {
    return {IpAddress::from_v4_u32((10u << 24) | static_cast<std::uint32_t>(i << 8)), 24};
  }

  SignedRecord record_for(std::size_t i, std::uint64_t version) {
    NodeRecord r = make_record(keys_[i], keys_[0], "node-" + std::to_string(i), cidr_of(i),
                               1000 + i, version);
    r.endpoints = {Endpoint{IpAddress::from_v4_u32(0xC0000000u + static_cast<std::uint32_t>(i)),
                            static_cast<std::uint16_t>(51820 + version)}};
    return sign_record(r, keys_[i]);
  }

  // Node `remover` removes node `victim`, as the daemon signs it.
  SignedTombstone tombstone_for(std::size_t victim, std::size_t remover, std::uint64_t removed_at) {
    return tombstone_of(keys_[victim].public_key(), keys_[remover], removed_at,
                        "node-" + std::to_string(victim), cidr_of(victim));
  }

  void publish(std::size_t i, const SignedRecord& r) { enqueue(i, nodes_[i].publish(r, rng_)); }
  void publish(std::size_t i, const SignedTombstone& t) { enqueue(i, nodes_[i].publish(t, rng_)); }

  void settle_probe(std::size_t i) {
    enqueue(i, nodes_[i].settle_probe());
    deliver();
  }

  // Node i sends its release probe with every round's tick, as the daemon
  // does while it holds an unreleased tombstone; to at most `limit` of the
  // members it asks, chosen at random, when the daemon bounds a probe.
  void probe_release_each_round(std::size_t i, std::size_t limit = SIZE_MAX) {
    release_probers_[i] = limit;
  }

  // Node i leaves the network: every message to or from it is dropped (a
  // removed node tears its mesh down; the transport refuses a non-member).
  void silence(std::size_t i) { silenced_.insert(i); }

  // One anti-entropy period, delivered to quiescence.
  void round() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) enqueue(i, nodes_[i].tick(rng_));
    for (const auto& [i, limit] : release_probers_) {
      std::vector<Outgoing> probe = nodes_[i].release_probe();
      if (probe.size() > limit) {
        std::shuffle(probe.begin(), probe.end(), rng_);
        probe.resize(limit);
      }
      enqueue(i, std::move(probe));
    }
    deliver();
    ++figures_.rounds;
  }

  void deliver() {
    while (!queue_.empty()) {
      std::deque<std::pair<std::size_t, Outgoing>> now;
      now.swap(queue_);
      ++figures_.hops;
      for (auto& [from, msg] : now) {
        if (std::uniform_real_distribution<double>(0, 1)(loss_rng_) < loss_) continue;
        std::size_t to = index_.at(msg.to);
        if (cut_ && cut_(from, to)) continue;
        if (silenced_.contains(from) || silenced_.contains(to)) continue;
        enqueue(to, nodes_[to].receive(keys_[from].public_key(), msg.bytes, rng_));
      }
      if (on_hop_) on_hop_(figures_.hops);
    }
  }

  // Nodes (silenced ones not counted) holding `id` at `version` or above;
  // kTombstoneVersion: holding its tombstone.
  std::size_t count_with(const keys::IdentityPublicKey& id, std::uint64_t version) const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (silenced_.contains(i)) continue;
      const NodeTable& t = nodes_[i].table();
      const SignedRecord* r = t.find(id);
      if (version == kTombstoneVersion ? t.tombstone(id) != nullptr
                                       : (r && r->record.version >= version))
        ++n;
    }
    return n;
  }

  // Every node that is not silenced holds the same table.
  bool converged() const {
    const TableHash* first = nullptr;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (silenced_.contains(i)) continue;
      if (!first) first = &nodes_[i].table().hash();
      if (nodes_[i].table().hash() != *first) return false;
    }
    return true;
  }

  std::size_t size() const { return nodes_.size(); }
  std::size_t live() const { return nodes_.size() - silenced_.size(); }
  const SyncEngine& node(std::size_t i) const { return nodes_[i]; }
  const keys::IdentitySecretKey& key(std::size_t i) const { return keys_[i]; }
  Figures& figures() { return figures_; }
  void on_hop(std::function<void(int)> f) { on_hop_ = std::move(f); }
  // Messages from -> to are dropped while cut(from, to) is true.
  void partition(std::function<bool(std::size_t, std::size_t)> cut) { cut_ = std::move(cut); }

 private:
  void enqueue(std::size_t from, std::vector<Outgoing> out) {
    for (auto& m : out) {
      figures_.bytes += m.bytes.size();
      ++figures_.messages;
      queue_.emplace_back(from, std::move(m));
    }
  }

  Rng rng_;
  std::mt19937_64 loss_rng_;
  double loss_;
  ClusterParams params_;
  std::vector<keys::IdentitySecretKey> keys_;
  std::vector<SignedRecord> records_;
  std::vector<SyncEngine> nodes_;
  std::map<keys::IdentityPublicKey, std::size_t> index_;
  std::deque<std::pair<std::size_t, Outgoing>> queue_;
  Figures figures_;
  std::function<void(int)> on_hop_;
  std::function<bool(std::size_t, std::size_t)> cut_;
  std::map<std::size_t, std::size_t> release_probers_;  // node -> members per probe
  std::set<std::size_t> silenced_;
};

}  // namespace meshd::controlplane::testing
