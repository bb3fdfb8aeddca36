// The request and response the API's handlers work with: plain values, so a
// handler is a function from one to the other and never touches a socket
// (the listener that turns bytes into a Request is a separate, thin edge).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace meshd::api {

struct Request {
  std::string method;  // "GET", "POST"... as sent (methods are case-sensitive, RFC 9110 9.1)
  std::string target;  // origin-form: the path and, optionally, "?query"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header named `name`, compared case-insensitively (RFC 9110
  // 5.1); empty when absent.
  std::string_view header(std::string_view name) const;
};

inline constexpr std::string_view kJsonContentType = "application/json";

struct Response {
  int status = 200;
  std::string content_type{kJsonContentType};  // empty for a response without body (204)
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type, e.g. Allow
  std::string body;

  std::string_view header(std::string_view name) const;
};

// An answer that is not ready yet (long polling): the server calls `poll`
// again every few hundred milliseconds, without blocking its loop, until it
// returns a response or `max_wait` has passed; then it calls poll(true),
// which must return one. Handlers that can answer at once return a Response.
struct Pending {
  std::function<std::optional<Response>(bool last)> poll;
  std::chrono::milliseconds max_wait{0};
};

using Reply = std::variant<Response, Pending>;

}  // namespace meshd::api
