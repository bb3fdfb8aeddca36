// Between Beast's HTTP messages and the API's plain Request/Response: the
// server's parser settings and the answers to requests that cannot be parsed.
// Shared by the server and the request-path fuzz target so that both run the
// same code.
#pragma once

#include "meshd/api/http.h"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>

namespace meshd::api {

using WireRequest = boost::beast::http::request<boost::beast::http::string_body>;
using WireResponse = boost::beast::http::response<boost::beast::http::string_body>;
using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// A header over max_header_bytes fails with http::error::header_limit, a body
// over max_body_bytes (declared or sent) with http::error::body_limit.
void apply_limits(RequestParser& parser, std::size_t max_header_bytes,
                  std::size_t max_body_bytes);

// The answer to a request that failed to parse with `ec`: 431 header_too_large,
// 413 body_too_large or 400 bad_request. Never quotes the request.
Response parse_error_response(const boost::system::error_code& ec, std::size_t max_header_bytes,
                              std::size_t max_body_bytes);

Request to_request(const WireRequest& wire);

// `version` and `keep_alive` are the request's (HTTP/1.0 answers as 1.0).
WireResponse to_wire(const Response& r, unsigned version, bool keep_alive);

}  // namespace meshd::api
