// Fixed table and loser for the re-admission fuzz target and its seed
// generator: node 3 claims node 2's CIDR with a later admission, so a
// request by node 3 reaches the admission path.
#pragma once

#include "join_fuzz_fixture.h"
#include "meshd/controlplane/readmit.h"

namespace meshd::controlplane::fuzzing {

inline SignedRecord readmit_loser_record() {
  auto owner = fixed_key(3);
  NodeRecord r;
  r.cluster_id = "fuzz-cluster";
  r.name = "node-3";
  keys::KeyBytes wg{};
  wg.fill(0x43);
  r.wg_public_key = keys::PublicKey(wg);
  r.identity = owner.public_key();
  r.pod_cidr = IpPrefix::parse("10.244.2.0/24").value();  // node 2's
  r.version = 1;
  r.admission = admit(fixed_key(1), r.cluster_id, r.name, r.identity, r.pod_cidr, 5000);
  return sign_record(r, owner);
}

inline NodeTable readmit_table() {
  NodeTable t = fixed_table();
  t.merge(readmit_loser_record());
  return t;
}

}  // namespace meshd::controlplane::fuzzing
