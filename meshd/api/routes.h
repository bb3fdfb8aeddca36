// The routes the API serves today (docs/api.md):
//   GET    /v1/healthz        liveness: answers while the process runs
//   GET    /v1/readyz         200 once a reconcile pass has succeeded, else 503
//   GET    /v1/status         this node's status snapshot
//   POST   /v1/tokens         create a bootstrap token; its secret is in this response only
//   GET    /v1/tokens         list tokens (never a secret nor a verifier)
//   DELETE /v1/tokens/{id}    revoke a token
//   GET    /metrics           Prometheus text
#pragma once

#include "meshd/api/router.h"
#include "meshd/api/status_source.h"

#include <cstdint>
#include <functional>

namespace meshd::store {
class TokenRepo;
}

namespace meshd::api {

inline constexpr std::int64_t kDefaultTokenTtlSeconds = 24 * 60 * 60;
inline constexpr std::int64_t kMaxTokenTtlSeconds = 365LL * 24 * 60 * 60;
inline constexpr std::size_t kMaxTokenDescriptionBytes = 256;

struct ApiOptions {
  const StatusSource* status = nullptr;  // required
  store::TokenRepo* tokens = nullptr;    // required
  std::function<std::int64_t()> now;     // unix seconds; the system clock when empty
  RouterOptions router;
};

// The Router with every route above; `opts`' pointees must outlive it.
Router make_router(ApiOptions opts);

}  // namespace meshd::api
