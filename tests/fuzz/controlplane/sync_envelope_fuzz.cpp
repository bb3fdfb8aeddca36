// Every envelope the sync channel's receiver reads from a member's address:
// opening never crashes or reads out of bounds; the size the header
// announces is the size of what opens; and what opens is exactly what the
// expected sender seals again (Ed25519 signatures are deterministic), so no
// envelope other than the sender's own bytes is ever accepted.
#include "fuzz_fixture.h"
#include "meshd/controlplane/sync_channel.h"
#include "meshd/controlplane/sync_message.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>

using namespace meshd::controlplane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto sender = fuzzing::fixed_key(1);
  static const auto self = fuzzing::fixed_key(2).public_key();
  std::span<const std::uint8_t> in(data, size);

  auto announced = envelope_size(in);
  auto e = open_envelope(in, sender.public_key(), self, fuzzing::kEnvelopeNowMs,
                         fuzzing::kEnvelopeWindowMs);
  if (!e) return 0;
  if (!announced || *announced != size) std::abort();
  if (e->sender != sender.public_key() || e->payload.size() > kMaxMessageBytes) std::abort();
  auto again = seal_envelope(sender, self, e->timestamp, e->payload);
  if (!std::equal(again.begin(), again.end(), in.begin(), in.end())) std::abort();
  return 0;
}
