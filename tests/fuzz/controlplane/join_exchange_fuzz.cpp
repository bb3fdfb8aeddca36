// Every frame the join listener parses (a request, answered by the member
// side) and every frame a joiner parses (the member's reply). Neither crashes
// or reads out of bounds; an unproven request gets exactly the uniform
// refusal; an admission the member grants opens on the joiner's side and
// verifies; a reply the joiner takes as an admission carries a valid one.
#include "join_fuzz_fixture.h"

#include <cstdlib>
#include <variant>

using namespace meshd::controlplane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const NodeTable table = fuzzing::fixed_table();
  static const auto member = fuzzing::fixed_key(1);
  static const auto token = fuzzing::join_token();
  static const auto claims = fuzzing::join_claims();
  std::span<const std::uint8_t> in(data, size);

  // As a request, at the member.
  fuzzing::FixedTokenStore store;
  auto a = answer_join(in, fuzzing::kJoinNowMs, store, {member, table}, fuzzing::fixed_nonce(7));
  if (!a || a->reply.size() > kMaxJoinReplyBytes) std::abort();
  if (a->unproven && a->reply != uniform_refusal()) std::abort();
  if (a->admitted) {
    auto req = decode_join_request(in);
    if (!req) std::abort();
    auto o = open_join_reply(a->reply, token, *a->admitted, req->nonce);
    if (!o || !std::holds_alternative<JoinAdmitted>(*o)) std::abort();
  }

  // As a reply, at the joiner.
  auto o = open_join_reply(in, token, claims, fuzzing::fixed_nonce(1));
  if (o && std::holds_alternative<JoinAdmitted>(*o)) {
    const auto& ad = std::get<JoinAdmitted>(*o);
    NodeRecord probe;
    probe.cluster_id = ad.cluster.cluster_id;
    probe.name = claims.name;
    probe.identity = claims.identity;
    probe.pod_cidr = ad.pod_cidr;
    probe.admission = ad.admission;
    if (!admission_signature_valid(probe) || !ad.cluster.cluster_cidr.contains(ad.pod_cidr))
      std::abort();
  }
  return 0;
}
