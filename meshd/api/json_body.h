// Strict reading of JSON request bodies: the body is one JSON object; every
// member must be one the route knows (a misspelt field is an error, not a
// silently ignored default), of the type it expects. Errors:
//   400 bad_json       not JSON, or nested deeper than kMaxJsonDepth
//   400 not_an_object  JSON, but not an object
//   400 unknown_field  a member the route does not take (named, unless the
//                      name could hold a token secret)
//   400 wrong_type     a member of another type than the route expects
//   400 invalid_value  the right type, outside the allowed values
#pragma once

#include "meshd/api/error.h"

#include <boost/json/object.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace meshd::api {

inline constexpr unsigned kMaxJsonDepth = 16;

// An empty body (or one of only whitespace) reads as {} so that a route
// whose fields all have defaults can be called without a body.
ApiResult<boost::json::object> parse_object_body(std::string_view body);

// Fails with unknown_field for the first member not in `allowed`.
ApiResult<void> only_fields(const boost::json::object& o,
                            std::initializer_list<std::string_view> allowed);

// A member that may be absent or null (both give nothing). Integers must be
// JSON integers (3.0 is wrong_type) that fit in int64.
ApiResult<std::optional<std::int64_t>> optional_int(const boost::json::object& o,
                                                    std::string_view name);
ApiResult<std::optional<std::string>> optional_string(const boost::json::object& o,
                                                      std::string_view name);

}  // namespace meshd::api
