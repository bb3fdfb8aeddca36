// Fixed keys and a small table for the control-plane fuzz targets and their
// seed generator: the seeds carry records that verify against this table, so
// mutations start from inputs that reach the accept path.
#pragma once

#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/node_table.h"

#include <cstdint>

namespace meshd::controlplane::fuzzing {

inline keys::IdentitySecretKey fixed_key(std::uint8_t n) {
  keys::KeyBytes seed{};
  seed.fill(n);
  return keys::IdentitySecretKey::from_seed(seed);
}

inline ClusterParams fixed_params() {
  return ClusterParams{"fuzz-cluster", IpPrefix::parse("10.244.0.0/16").value(), 24,
                       fixed_key(1).public_key()};
}

inline SignedRecord fixed_record(std::uint8_t n, std::uint64_t version) {
  auto owner = fixed_key(n);
  auto founder = fixed_key(1);
  NodeRecord r;
  r.cluster_id = "fuzz-cluster";
  r.name = "node-" + std::to_string(n);
  keys::KeyBytes wg{};
  wg.fill(static_cast<std::uint8_t>(0x40 + n));
  r.wg_public_key = keys::PublicKey(wg);
  r.identity = owner.public_key();
  r.endpoints = {Endpoint::parse("192.0.2." + std::to_string(n) + ":51820").value()};
  r.pod_cidr = IpPrefix::parse("10.244." + std::to_string(n) + ".0/24").value();
  r.version = version;
  r.admission = admit(founder, r.cluster_id, r.name, r.identity, r.pod_cidr, 1000 + n);
  return sign_record(r, owner);
}

// The founder (1) and member 2.
inline NodeTable fixed_table() {
  NodeTable t(fixed_params());
  t.merge(fixed_record(1, 1));
  t.merge(fixed_record(2, 1));
  return t;
}

// The sync envelope target's receiver: member 2 at this clock, expecting
// envelopes from member 1.
inline constexpr std::uint64_t kEnvelopeNowMs = 1'800'000'000'000;
inline constexpr std::uint64_t kEnvelopeWindowMs = 120'000;

}  // namespace meshd::controlplane::fuzzing
