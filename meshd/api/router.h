// Method + path -> handler. Paths are matched segment by segment; a segment
// written "{name}" in a route matches any one non-empty segment and is handed
// to the handler as a parameter. The router answers, before any handler runs:
//   413 body_too_large      a body longer than RouterOptions::max_body_bytes
//   400 bad_target          a target that is not origin-form ("/...")
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

struct RouterOptions {
  std::size_t max_body_bytes = 16 * 1024;  // every body the API takes is a few hundred bytes
};

class Router {
 public:
  explicit Router(RouterOptions opts = {}) : opts_(opts) {}

  // `pattern` starts with "/", e.g. "/v1/tokens/{id}". Registering the same
  // method and pattern twice is a broken invariant (throws std::logic_error).
  void add(std::string method, std::string pattern, Handler handler);

  Response handle(const Request& req) const;

  const RouterOptions& options() const { return opts_; }

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  RouterOptions opts_;
  std::vector<Route> routes_;
};

// The path of an origin-form target: everything before '?' (RFC 9112 3.2.1).
std::string_view target_path(std::string_view target);

}  // namespace meshd::api
