// The join exchange's token store over the node's SQLite store: one
// store::TokenRepo::consume transaction per join (proof, checks, spending a
// use and remembering the nonce), its refusal mapped to the exchange's
// outcomes.
#pragma once

#include "meshd/controlplane/join_exchange.h"
#include "store/tokens.h"

namespace meshd::controlplane {

class StoreJoinTokens final : public JoinTokenStore {
 public:
  // `repo` must outlive this adapter.
  explicit StoreJoinTokens(store::TokenRepo& repo) : repo_(repo) {}

  Result<Outcome> consume(const std::string& token_id, const Proof& proof,
                          std::span<const std::uint8_t> nonce, std::int64_t now) override;

 private:
  store::TokenRepo& repo_;
};

}  // namespace meshd::controlplane
