// Every sync message a member's listener parses, then hands to the sync
// rules: decoding never crashes or reads out of bounds; what decodes
// re-encodes to a message that decodes the same; and the engine, fed the
// message, keeps only records and tombstones whose signatures verify.
#include "fuzz_fixture.h"
#include "meshd/controlplane/sync_engine.h"
#include "meshd/controlplane/sync_message.h"

#include <cstdint>
#include <cstdlib>
#include <span>

using namespace meshd::controlplane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const NodeTable base = fuzzing::fixed_table();
  static const auto self = fuzzing::fixed_key(2).public_key();
  static const auto from = fuzzing::fixed_key(1).public_key();
  std::span<const std::uint8_t> in(data, size);

  auto d = decode_message(in);
  if (d && !d->unknown_type) {
    const SyncMessage& m = d->message;
    auto again = decode_message(encode_message(m));
    if (!again || again->unknown_type) std::abort();
    const SyncMessage& n = again->message;
    if (n.type != m.type || n.protocol_version != m.protocol_version || n.records != m.records ||
        n.tombstones != m.tombstones || n.table_hash != m.table_hash || n.digest != m.digest ||
        n.wanted != m.wanted || n.reply_wanted != m.reply_wanted)
      std::abort();
  }

  SyncEngine engine(self, base);
  Rng rng(1);
  auto out = engine.receive(from, in, rng);
  for (const auto& o : out)
    if (o.bytes.size() > kMaxMessageBytes || !decode_message(o.bytes)) std::abort();
  const NodeTable& t = engine.table();
  for (const auto& id : t.members()) {
    const SignedRecord* r = t.find(id);
    if (!owner_signature_valid(*r) || !admission_signature_valid(r->record)) std::abort();
  }
  return 0;
}
