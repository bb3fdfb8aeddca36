#include "meshd/api/wire.h"

#include "meshd/api/error.h"

#include <boost/beast/http/error.hpp>

#include <stdexcept>

namespace meshd::api {

namespace http = boost::beast::http;

void apply_limits(RequestParser& parser, std::size_t max_header_bytes,
                  std::size_t max_body_bytes) {
  parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  parser.body_limit(max_body_bytes);
}

Response parse_error_response(const boost::system::error_code& ec, std::size_t max_header_bytes,
                              std::size_t max_body_bytes) {
  if (ec == http::error::header_limit)
    // RFC 6585 5.
    return error_response({431, "header_too_large",
                           "the request line and headers exceed " +
                               std::to_string(max_header_bytes) + " bytes"});
  if (ec == http::error::body_limit)
    return error_response({413, "body_too_large",
                           "the body exceeds the limit of " + std::to_string(max_body_bytes) +
                               " bytes"});
  return error_response(ApiError::bad_request(
      "bad_request", "the request is not valid HTTP/1.1 (" + ec.message() + ")"));
}

Request to_request(const WireRequest& wire) {
  Request r;
  r.method = std::string(wire.method_string());
  r.target = std::string(wire.target());
  for (const auto& field : wire)
    r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  r.body = wire.body();
  return r;
}

WireResponse to_wire(const Response& r, unsigned version, bool keep_alive) {
  WireResponse out{static_cast<http::status>(r.status), version};
  out.set(http::field::server, "meshd");
  if (!r.content_type.empty()) out.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) out.insert(name, value);
  // "Cache-Control: no-store": answers may hold a token secret (RFC 9111 5.2.2.5).
  out.set(http::field::cache_control, "no-store");
  out.body() = r.body;
  out.keep_alive(keep_alive);
  try {
    out.prepare_payload();
  } catch (const std::invalid_argument&) {
    // A body on a status that has none (204, 304): a bug of ours, and the
    // loop must not die of it.
    return to_wire(error_response({500, "internal", "the request failed inside meshd"}), version,
                   false);
  }
  return out;
}

}  // namespace meshd::api
