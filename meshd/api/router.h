// Method + path -> handler. Paths are matched segment by segment; a segment
// written "{name}" in a route matches any one non-empty segment and is handed
// to the handler as a parameter, percent-decoded ("%2F" is a '/' inside the
// parameter). The router answers, before any handler runs:
//   413 body_too_large      a body longer than RouterOptions::max_body_bytes
//   400 bad_target          a target that is not origin-form ("/..."), or
//                           with a '%' not followed by two hex digits
//   404 not_found           no route has this path
//   405 method_not_allowed  routes have this path but not this method (with
//                           Allow listing theirs, RFC 9110 15.5.6)
//   415 unsupported_media_type  a body whose Content-Type is not application/json
// and turns an exception escaping a handler into 500 internal, without its text.
#pragma once

#include "meshd/api/error.h"
#include "meshd/api/http.h"

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace meshd::api {

using PathParams = std::map<std::string, std::string, std::less<>>;
using Handler = std::function<Response(const Request&, const PathParams&)>;
// A handler that may defer its answer (http.h's Pending).
using DeferringHandler = std::function<Reply(const Request&, const PathParams&)>;

struct RouteInfo {
  std::string method;
  std::string pattern;  // as registered, e.g. "/v1/tokens/{id}"
};

struct RouterOptions {
  std::size_t max_body_bytes = 16 * 1024;  // every body the API takes is a few hundred bytes
};

class Router {
 public:
  explicit Router(RouterOptions opts = {}) : opts_(opts) {}

  // `pattern` starts with "/", e.g. "/v1/tokens/{id}". Registering the same
  // method and pattern twice is a broken invariant (throws std::logic_error).
  void add(std::string method, std::string pattern, Handler handler);
  void add_deferring(std::string method, std::string pattern, DeferringHandler handler);

  // The answer, or a Pending the caller keeps polling (the server does).
  Reply dispatch(const Request& req) const;
  // The answer now: a Pending is polled once as its last call (no waiting).
  Response handle(const Request& req) const;
  // One call of a Pending's poll, with an escaping exception turned into 500
  // internal as for handlers; with `last` a missing answer is a 500 too.
  static std::optional<Response> poll(const Pending& p, bool last);

  // Every registered route, in registration order.
  std::vector<RouteInfo> routes() const;

  const RouterOptions& options() const { return opts_; }

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    DeferringHandler handler;
  };
  RouterOptions opts_;
  std::vector<Route> routes_;
};

// The path of an origin-form target: everything before '?' (RFC 9112 3.2.1).
std::string_view target_path(std::string_view target);

}  // namespace meshd::api
