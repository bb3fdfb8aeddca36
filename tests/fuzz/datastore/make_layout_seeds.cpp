// Writes the seeds of fuzz_etcd_layout:
//   build/bin/datastore_layout_fuzz_seeds tests/fuzz/datastore/seeds/layout
// Values that verify against the fixed table of fuzz_fixture.h (node 3's
// record, admitted by the founder; a tombstone of node 2 by the founder),
// and keys of every family, alone and as "key\nvalue" puts.
#include "meshd/datastore/etcd_layout.h"
#include "tests/fuzz/controlplane/fuzz_fixture.h"

#include <fstream>
#include <iostream>
#include <string>

using namespace meshd;
using namespace meshd::datastore;
using namespace meshd::controlplane;

namespace {

constexpr std::string_view P = "/meshd/";
constexpr std::string_view C = "fuzz-cluster";

void write(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: datastore_layout_fuzz_seeds DIR\n";
    return 2;
  }
  std::string dir = argv[1];
  auto id2 = fuzzing::fixed_key(2).public_key();
  auto id3 = fuzzing::fixed_key(3).public_key();
  SignedRecord r3 = fuzzing::fixed_record(3, 1);
  Tombstone removal{"fuzz-cluster", id2, fuzzing::fixed_key(1).public_key(), 5000};
  removal.name = "node-2";
  removal.pod_cidr = IpPrefix::parse("10.244.2.0/24").value();
  removal.reason = "removed by the operator";
  SignedTombstone tomb = sign_tombstone(removal, fuzzing::fixed_key(1));
  IpPrefix cidr3 = r3.record.pod_cidr;

  // Values alone (applied under node 3's record and tombstone keys).
  write(dir + "/record_value.bin", record_value(r3));
  write(dir + "/tombstone_value.bin", tombstone_value(tomb));
  write(dir + "/params.bin", encode_params(fuzzing::fixed_params()));
  write(dir + "/claim.bin", encode_claim(claim_of(r3.record)));
  write(dir + "/alive.txt", alive_value(1'800'000'000'000));
  // Keys alone.
  write(dir + "/key_params.txt", params_key(P, C));
  write(dir + "/key_record.txt", record_key(P, C, id3));
  write(dir + "/key_subnet_v4.txt", subnet_key(P, C, cidr3));
  write(dir + "/key_subnet_v6.txt", subnet_key(P, C, IpPrefix::parse("fd00:1::/64").value()));
  write(dir + "/key_alive.txt", alive_key(P, C, id3));
  // Puts: key, '\n', value.
  write(dir + "/put_record.bin", record_key(P, C, id3) + "\n" + record_value(r3));
  write(dir + "/put_tombstone.bin", tombstone_key(P, C, id2) + "\n" + tombstone_value(tomb));
  // A record under another identity's key: refused.
  write(dir + "/put_record_wrong_key.bin", record_key(P, C, id2) + "\n" + record_value(r3));
  write(dir + "/put_claim.bin",
        subnet_key(P, C, cidr3) + "\n" + encode_claim(claim_of(r3.record)));
  return 0;
}
