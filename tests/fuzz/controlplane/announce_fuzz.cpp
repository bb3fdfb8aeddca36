// Every underlay announcement frame the join listener parses (a request,
// answered by the member side) and every one a node parses (the member's
// reply). Neither crashes or reads out of bounds; the reply always fits the
// join listener's bound and decodes with the status the member gave; a
// record the member merges is newer than what it held, signed by its owner,
// and never pushed back to its owner.
#include "announce_fuzz_fixture.h"

#include "meshd/controlplane/join_exchange.h"

#include <cstdlib>

using namespace meshd::controlplane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);

  // As a request, at the member (a fresh table each time: a merge changes it).
  SyncEngine engine = fuzzing::announce_engine();
  Rng rng(1);
  auto a = answer_announce(in, engine, rng);
  if (a.reply.empty() || a.reply.size() > kMaxJoinRequestBytes) std::abort();
  auto back = decode_announce_reply(a.reply);
  if (!back || back->status != a.status) std::abort();
  if (a.status == AnnounceStatus::kMerged) {
    if (!a.request || !accepted(a.outcome) || !owner_signature_valid(a.request->record)) std::abort();
    const auto& id = a.request->record.record.identity;
    const auto* now = engine.table().find(id);
    if (!now || now->record.version != a.request->record.record.version) std::abort();
    for (const auto& o : a.out)
      if (o.to == id) std::abort();
  } else if (!a.out.empty()) {
    std::abort();
  }

  // As a reply, at the node.
  auto r = decode_announce_reply(in);
  if (r) {
    if (r->status == AnnounceStatus::kStale && !r->held_version) std::abort();
    auto again = decode_announce_reply(make_announce_reply(*r));
    if (!again || again->status != r->status || again->held_version != r->held_version) std::abort();
  }
  return 0;
}
