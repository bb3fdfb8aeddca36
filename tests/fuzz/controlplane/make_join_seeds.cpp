// Writes the seeds of fuzz_join_exchange:
//   build/bin/controlplane_join_fuzz_seeds tests/fuzz/controlplane/seeds/join
#include "join_fuzz_fixture.h"

#include <fstream>
#include <iostream>
#include <string>

using namespace meshd::controlplane;

namespace {

void write(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: controlplane_join_fuzz_seeds DIR\n";
    return 2;
  }
  std::string dir = argv[1];
  NodeTable table = fuzzing::fixed_table();
  auto member = fuzzing::fixed_key(1);
  auto token = fuzzing::join_token();
  JoinClaims claims = fuzzing::join_claims();

  auto req = make_join_request(token, claims, fuzzing::fixed_nonce(1));
  write(dir + "/request.bin", req);
  JoinClaims skewed = claims;
  skewed.timestamp = fuzzing::kJoinNowMs + kJoinWindowMs + 1;
  write(dir + "/request_skewed.bin", make_join_request(token, skewed, fuzzing::fixed_nonce(2)));
  JoinClaims held = claims;
  held.name = "node-2";  // held by member 2 in the fixed table
  write(dir + "/request_name_held.bin", make_join_request(token, held, fuzzing::fixed_nonce(3)));

  fuzzing::FixedTokenStore store;
  auto admitted = answer_join(req, fuzzing::kJoinNowMs, store, {member, table},
                              fuzzing::fixed_nonce(7));
  write(dir + "/reply_admitted.bin", admitted->reply);
  auto replayed = answer_join(req, fuzzing::kJoinNowMs, store, {member, table},
                              fuzzing::fixed_nonce(8));
  write(dir + "/reply_refused_replayed.bin", replayed->reply);
  write(dir + "/reply_uniform.bin", uniform_refusal());
  return 0;
}
