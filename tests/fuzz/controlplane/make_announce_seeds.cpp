// Writes the seeds of fuzz_announce:
//   build/bin/controlplane_announce_fuzz_seeds tests/fuzz/controlplane/seeds/announce
#include "announce_fuzz_fixture.h"

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
    std::cerr << "usage: controlplane_announce_fuzz_seeds DIR\n";
    return 2;
  }
  std::string dir = argv[1];
  auto newer = make_announce_request("fuzz-cluster", fuzzing::fixed_record(1, 7));
  write(dir + "/request_newer.bin", newer);
  write(dir + "/request_stale.bin", make_announce_request("fuzz-cluster", fuzzing::fixed_record(1, 1)));
  write(dir + "/request_unknown.bin", make_announce_request("fuzz-cluster", fuzzing::fixed_record(3, 7)));
  write(dir + "/request_other_cluster.bin", make_announce_request("other", fuzzing::fixed_record(1, 7)));
  SyncEngine engine = fuzzing::announce_engine();
  Rng rng(1);
  write(dir + "/reply_merged.bin", answer_announce(newer, engine, rng).reply);
  write(dir + "/reply_stale.bin", answer_announce(newer, engine, rng).reply);
  auto t = sign_tombstone(Tombstone{"fuzz-cluster", fuzzing::fixed_key(3).public_key(),
                                    fuzzing::fixed_key(1).public_key(), 9000, "node-3",
                                    meshd::IpPrefix::parse("10.244.3.0/24").value(), "removed"},
                          fuzzing::fixed_key(1));
  write(dir + "/reply_removed.bin", make_announce_reply(AnnounceReply{AnnounceStatus::kRemoved, {}, t}));
  return 0;
}
