// The canonical decoder behind every record and tombstone: the input is a
// signed body. Never crashes; a body that decodes as a record re-encodes to
// one that decodes to the same record.
#include "meshd/controlplane/node_record.h"

#include <cstdint>
#include <cstdlib>
#include <span>

using namespace meshd::controlplane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> body(data, size);
  meshd::keys::Signature sig{};
  if (auto r = decode_record(body, sig)) {
    auto e = encode_record(r->record);
    auto back = decode_record(e.data(), sig);
    if (!back || back->record != r->record) std::abort();
    (void)owner_signature_valid(*r);
  }
  if (auto t = decode_tombstone(body, sig)) {
    auto e = encode_tombstone(t->tombstone);
    auto back = decode_tombstone(e.data(), sig);
    if (!back || back->tombstone != t->tombstone) std::abort();
  }
  return 0;
}
