// The routes the API serves today (docs/api.md, docs/openapi.json):
//   GET    /v1/healthz        liveness: answers while the process runs
//   GET    /v1/readyz         200 once a reconcile pass has succeeded, else 503
//   GET    /v1/status         this node's status snapshot
//   GET    /v1/nodes          every node record this node holds
//   GET    /v1/nodes/{name}   one of them (the live one when a removed one shares its name)
//   DELETE /v1/nodes/{name}   remove a node (by name or identity) from the cluster
//   POST   /v1/key/rotate     start a rotation of this node's WireGuard key
//                             (both cluster mode only: 409 not_a_cluster in static mode)
//   POST   /v1/tokens         create a bootstrap token; its secret is in this response only
//                             (cluster mode only: 409 not_a_cluster in static mode)
//   GET    /v1/tokens         list tokens (never a secret nor a verifier)
//   DELETE /v1/tokens/{id}    revoke a token
//   GET    /v1/events         events after a cursor, long-polled with wait=S
//   GET    /metrics           Prometheus text
#pragma once

#include "meshd/api/router.h"
#include "meshd/api/sources.h"
#include "meshd/api/status_source.h"

#include <cstdint>
#include <functional>
#include <string_view>

namespace meshd::store {
class EventRepo;
class TokenRepo;
}

namespace meshd::api {

inline constexpr std::int64_t kDefaultTokenTtlSeconds = 24 * 60 * 60;
inline constexpr std::int64_t kMaxTokenTtlSeconds = 365LL * 24 * 60 * 60;
inline constexpr std::size_t kMaxTokenDescriptionBytes = 256;
inline constexpr std::int64_t kMaxEventWaitSeconds = 60;
inline constexpr std::int64_t kDefaultEventLimit = 100;
inline constexpr std::int64_t kMaxEventLimit = 1000;
// Where the config lines of POST /v1/tokens tell a joiner to keep the token.
inline constexpr std::string_view kJoinTokenPath = "/etc/meshd/join-token";

struct ApiOptions {
  const StatusSource* status = nullptr;  // required
  store::TokenRepo* tokens = nullptr;    // required
  // null: static mode (no nodes, no tokens issued, nothing to remove or rotate)
  ClusterSource* cluster = nullptr;
  store::EventRepo* events = nullptr;      // null: no events (GET /v1/events answers none)
  std::function<std::int64_t()> now;     // unix seconds; the system clock when empty
  RouterOptions router;
};

// The Router with every route above; `opts`' pointees must outlive it.
Router make_router(ApiOptions opts);

}  // namespace meshd::api
