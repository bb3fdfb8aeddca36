// Every re-admission frame the join listener parses (a request, answered by
// the member side) and every one a node parses (the member's reply). Neither
// crashes or reads out of bounds; an admission the member grants is for a
// CIDR no record claims, and opens and verifies on the node's side; a reply
// the node takes as an admission carries a valid one inside the cluster.
#include "readmit_fuzz_fixture.h"

#include <cstdlib>
#include <variant>

using namespace meshd::controlplane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const NodeTable table = fuzzing::readmit_table();
  static const auto member = fuzzing::fixed_key(1);
  static const auto loser = fuzzing::fixed_key(3).public_key();
  std::span<const std::uint8_t> in(data, size);

  // As a request, at the member.
  ReadmitNonces nonces;
  auto a = answer_readmit(in, fuzzing::kJoinNowMs, ReadmitMemberContext{member, table}, nonces);
  if (a.reply.empty() || a.reply.size() > kMaxJoinRequestBytes) std::abort();
  if (a.admission) {
    if (!a.request || !a.pod_cidr || a.refusal) std::abort();
    for (const auto& id : table.members())
      if (table.find(id)->record.pod_cidr.overlaps(*a.pod_cidr)) std::abort();
    auto o = open_readmit_reply(a.reply, table.params(), a.request->name, a.request->identity,
                                a.request->nonce);
    if (!o || !std::holds_alternative<Readmitted>(*o)) std::abort();
  }

  // As a reply, at the node.
  auto o = open_readmit_reply(in, table.params(), "node-3", loser, fuzzing::fixed_nonce(1));
  if (o && std::holds_alternative<Readmitted>(*o)) {
    const auto& r = std::get<Readmitted>(*o);
    NodeRecord probe;
    probe.cluster_id = table.params().cluster_id;
    probe.name = "node-3";
    probe.identity = loser;
    probe.pod_cidr = r.pod_cidr;
    probe.admission = r.admission;
    if (!admission_signature_valid(probe) || !table.params().cluster_cidr.contains(r.pod_cidr))
      std::abort();
  }
  return 0;
}
