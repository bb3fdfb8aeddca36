// Builds signed records for tests: a founder, members admitted by it or by
// each other, all in one cluster.
#pragma once

#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/node_table.h"

#include <cstdint>
#include <string>

namespace meshd::controlplane::testing {

inline ClusterParams params_for(const keys::IdentitySecretKey& founder) {
  return ClusterParams{"c0ffee", IpPrefix::parse("10.244.0.0/16").value(), 24,
                       founder.public_key()};
}

inline IpPrefix nth_cidr(std::uint32_t n) {
  return IpPrefix{IpAddress::from_v4_u32((10u << 24) | (244u << 16) | ((n & 0xffu) << 8)), 24};
}

// A record for `owner`, admitted by `admitter` at `admitted_at`, signed by the owner.
inline NodeRecord make_record(const keys::IdentitySecretKey& owner,
                              const keys::IdentitySecretKey& admitter, std::string name,
                              IpPrefix cidr, std::uint64_t admitted_at, std::uint64_t version = 1) {
  NodeRecord r;
  r.cluster_id = "c0ffee";
  r.name = std::move(name);
  r.wg_public_key = keys::PrivateKey::generate().public_key();
  r.identity = owner.public_key();
  r.endpoints = {Endpoint::parse("192.0.2.1:51820").value()};
  r.pod_cidr = cidr;
  r.version = version;
  r.admission = admit(admitter, r.cluster_id, r.name, r.identity, r.pod_cidr, admitted_at);
  return r;
}

inline SignedRecord signed_record(const keys::IdentitySecretKey& owner,
                                  const keys::IdentitySecretKey& admitter, std::string name,
                                  IpPrefix cidr, std::uint64_t admitted_at,
                                  std::uint64_t version = 1) {
  return sign_record(make_record(owner, admitter, std::move(name), cidr, admitted_at, version),
                     owner);
}

inline SignedTombstone tombstone_of(const keys::IdentityPublicKey& removed,
                                    const keys::IdentitySecretKey& remover,
                                    std::uint64_t removed_at) {
  return sign_tombstone(Tombstone{"c0ffee", removed, remover.public_key(), removed_at}, remover);
}

// A removal as a member issues it: with what the removed node held.
inline SignedTombstone tombstone_of(const keys::IdentityPublicKey& removed,
                                    const keys::IdentitySecretKey& remover,
                                    std::uint64_t removed_at, std::string name, IpPrefix cidr,
                                    std::string reason = "removed by the operator",
                                    std::string cluster_id = "c0ffee") {
  Tombstone t{std::move(cluster_id), removed, remover.public_key(), removed_at};
  t.name = std::move(name);
  t.pod_cidr = cidr;
  t.reason = std::move(reason);
  return sign_tombstone(t, remover);
}

}  // namespace meshd::controlplane::testing
