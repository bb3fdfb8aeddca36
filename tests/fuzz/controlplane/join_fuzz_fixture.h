// Fixed token, joiner and member for the join-exchange fuzz target and its
// seed generator: the seeds are sealed under this token, so mutations start
// from inputs that open and reach the admission path.
#pragma once

#include "fuzz_fixture.h"
#include "meshd/controlplane/join_exchange.h"

#include <set>

namespace meshd::controlplane::fuzzing {

inline constexpr std::uint64_t kJoinNowMs = 1'800'000'000'000;

inline keys::Token join_token() { return keys::Token::parse("fuzzid.0123456789abcdef").value(); }

inline JoinNonce fixed_nonce(std::uint8_t n) {
  JoinNonce out{};
  out.fill(n);
  return out;
}

inline JoinClaims join_claims() {
  keys::KeyBytes wg{};
  wg.fill(0x55);
  return JoinClaims{"joiner", keys::PublicKey(wg), fixed_key(9).public_key(),
                    {Endpoint::parse("192.0.2.9:51820").value()}, kJoinNowMs};
}

// The one token, unlimited; nonces remembered per instance. Deterministic:
// an unknown id is proven against a fixed stand-in.
class FixedTokenStore final : public JoinTokenStore {
 public:
  Result<Outcome> consume(const std::string& id, const Proof& proof,
                          std::span<const std::uint8_t> nonce, std::int64_t) override {
    keys::TokenVerifier v{};
    bool known = id == join_token().id();
    if (known) v = keys::token_verifier(keys::derive_token_key(join_token()));
    if (!proof(v) || !known) return Outcome::kUnproven;
    if (!nonces_.insert(std::vector<std::uint8_t>(nonce.begin(), nonce.end())).second)
      return Outcome::kReplayed;
    return Outcome::kAccepted;
  }

 private:
  std::set<std::vector<std::uint8_t>> nonces_;
};

}  // namespace meshd::controlplane::fuzzing
