// Writes the seeds of fuzz_readmit:
//   build/bin/controlplane_readmit_fuzz_seeds tests/fuzz/controlplane/seeds/readmit
#include "readmit_fuzz_fixture.h"

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
    std::cerr << "usage: controlplane_readmit_fuzz_seeds DIR\n";
    return 2;
  }
  std::string dir = argv[1];
  NodeTable table = fuzzing::readmit_table();
  auto member = fuzzing::fixed_key(1);
  auto loser = fuzzing::fixed_key(3);
  const std::uint64_t now = fuzzing::kJoinNowMs;

  auto req = make_readmit_request(loser, "fuzz-cluster", "node-3", now, fuzzing::fixed_nonce(1));
  write(dir + "/request.bin", req);
  write(dir + "/request_in_effect.bin",
        make_readmit_request(fuzzing::fixed_key(2), "fuzz-cluster", "node-2", now, fuzzing::fixed_nonce(2)));
  write(dir + "/request_skewed.bin", make_readmit_request(loser, "fuzz-cluster", "node-3",
                                                          now + kJoinWindowMs + 1, fuzzing::fixed_nonce(3)));
  ReadmitNonces nonces;
  auto a = answer_readmit(req, now, ReadmitMemberContext{member, table}, nonces);
  write(dir + "/reply_admitted.bin", a.reply);
  write(dir + "/reply_refused_replayed.bin",
        answer_readmit(req, now, ReadmitMemberContext{member, table}, nonces).reply);
  return 0;
}
