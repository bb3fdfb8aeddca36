#include "meshd/controlplane/token_store_adapter.h"

#include <variant>

namespace meshd::controlplane {

Result<JoinTokenStore::Outcome> StoreJoinTokens::consume(const std::string& token_id,
                                                         const Proof& proof,
                                                         std::span<const std::uint8_t> nonce,
                                                         std::int64_t now) {
  // For an unknown id the repo runs the proof on a stand-in verifier, which
  // is what the exchange requires of its store.
  auto r = repo_.consume(
      token_id, [&](const store::Token& stored) { return proof(stored.verifier); }, nonce, now);
  if (!r) return r.error();
  if (std::holds_alternative<store::Token>(*r)) return Outcome::kAccepted;
  auto reason = std::get<store::TokenRefused>(*r).reason_for_operator_log();
  if (!reason) return Outcome::kUnproven;
  switch (*reason) {
    case store::TokenRefusal::revoked: return Outcome::kRevoked;
    case store::TokenRefusal::expired: return Outcome::kExpired;
    case store::TokenRefusal::exhausted: return Outcome::kUsedUp;
    case store::TokenRefusal::replayed: return Outcome::kReplayed;
  }
  return Outcome::kUnproven;
}

}  // namespace meshd::controlplane
