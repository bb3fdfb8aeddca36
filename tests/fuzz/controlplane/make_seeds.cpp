// Writes the seeds of the control-plane fuzz targets:
//   build/bin/controlplane_fuzz_seeds tests/fuzz/controlplane/seeds
#include "fuzz_fixture.h"
#include "meshd/controlplane/sync_channel.h"
#include "meshd/controlplane/sync_message.h"

#include <fstream>
#include <iostream>
#include <string>

using namespace meshd::controlplane;

namespace {

void write(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

SignedBytes as_bytes(const SignedRecord& r) { return {r.body, r.signature}; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: controlplane_fuzz_seeds DIR\n";
    return 2;
  }
  std::string dir = argv[1];
  NodeTable table = fuzzing::fixed_table();
  SignedRecord r3 = fuzzing::fixed_record(3, 1);
  SignedRecord r2v2 = fuzzing::fixed_record(2, 2);
  // Member 1 removes node 3, naming what node 3 held; and a removal of a
  // node the remover held no record of (name, CIDR and reason empty).
  Tombstone removal{"fuzz-cluster", fuzzing::fixed_key(3).public_key(),
                    fuzzing::fixed_key(1).public_key(), 5000};
  Tombstone bare = removal;
  removal.name = r3.record.name;
  removal.pod_cidr = r3.record.pod_cidr;
  removal.reason = "removed by the operator";
  SignedTombstone tomb = sign_tombstone(removal, fuzzing::fixed_key(1));
  SignedTombstone tomb_bare = sign_tombstone(bare, fuzzing::fixed_key(1));

  SyncMessage push;
  push.type = MessageType::kPush;
  push.records = {as_bytes(r3), as_bytes(r2v2)};
  write(dir + "/message/push.bin", encode_message(push));

  SyncMessage summary;
  summary.type = MessageType::kSummary;
  summary.table_hash = TableHash{};
  write(dir + "/message/summary.bin", encode_message(summary));
  summary.reply_wanted = true;
  summary.table_hash = table.hash();
  write(dir + "/message/summary_reply_wanted.bin", encode_message(summary));

  SyncMessage digest;
  digest.type = MessageType::kDigest;
  digest.digest = table.digest();
  digest.digest.push_back({fuzzing::fixed_key(3).public_key(), kTombstoneVersion});
  write(dir + "/message/digest.bin", encode_message(digest));

  SyncMessage request;
  request.type = MessageType::kRequest;
  request.wanted = {fuzzing::fixed_key(1).public_key(), fuzzing::fixed_key(2).public_key()};
  write(dir + "/message/request.bin", encode_message(request));

  SyncMessage records;
  records.type = MessageType::kRecords;
  records.records = {as_bytes(r3)};
  records.tombstones = {{tomb.body, tomb.signature}};
  write(dir + "/message/records_tombstone.bin", encode_message(records));

  // The next protocol version: an unknown field in the frame.
  auto next = encode_message(push);
  next[5] = 2;
  next.insert(next.end(), {99, 0, 0, 0, 1, 0});
  std::size_t body = next.size() - kFrameHeaderBytes;
  for (int i = 0; i < 4; ++i) next[8 + i] = static_cast<std::uint8_t>(body >> (24 - 8 * i));
  write(dir + "/message/push_v2_extra_field.bin", next);

  write(dir + "/record/record.bin", r3.body);
  write(dir + "/record/tombstone.bin", tomb.body);
  write(dir + "/record/tombstone_bare.bin", tomb_bare.body);
  NodeRecord pending = r3.record;
  meshd::keys::KeyBytes k{};
  k.fill(0x77);
  pending.pending_key = PendingKey{meshd::keys::PublicKey(k), 9000};
  write(dir + "/record/record_pending_key.bin", encode_record(pending).data());

  // Sync envelopes from member 1 to member 2, inside the target's window.
  const auto from = fuzzing::fixed_key(1);
  const auto to = fuzzing::fixed_key(2).public_key();
  write(dir + "/envelope/push.bin",
        seal_envelope(from, to, fuzzing::kEnvelopeNowMs - 1000, encode_message(push)));
  write(dir + "/envelope/empty.bin", seal_envelope(from, to, fuzzing::kEnvelopeNowMs, {}));
  return 0;
}
