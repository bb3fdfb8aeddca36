#include "meshd/api/json_body.h"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>

#include <limits>

namespace meshd::api {

namespace {

const char* type_name(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return "an integer";
    case boost::json::kind::double_:
      return "a number with a fraction or exponent";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "a value";
}

ApiError wrong_type(std::string_view name, const char* expected, const boost::json::value& v) {
  return ApiError::bad_request("wrong_type", "field \"" + std::string(name) + "\" must be " +
                                                 expected + ", not " + type_name(v));
}

// Whether an unknown key may be quoted back: a short name of [A-Za-z0-9_-]
// without a run of keys::kTokenSecretLength (16) characters of [a-z0-9], so a
// token or its secret pasted as a key is never echoed.
bool quotable_key(std::string_view key) {
  if (key.empty() || key.size() > 32) return false;
  std::size_t run = 0;
  for (char c : key) {
    bool lower_alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!lower_alnum && !(c >= 'A' && c <= 'Z') && c != '_' && c != '-') return false;
    run = lower_alnum ? run + 1 : 0;
    if (run >= 16) return false;
  }
  return true;
}

}  // namespace

ApiResult<boost::json::object> parse_object_body(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return boost::json::object{};
  boost::json::parse_options opts;
  opts.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  boost::json::value v;
  try {
    v = boost::json::parse(body, ec, {}, opts);
  } catch (const std::bad_alloc&) {
    ec = boost::json::error::exception;
  }
  // The parser's message names the problem without quoting the input.
  if (ec) return ApiError::bad_request("bad_json", "the body is not valid JSON: " + ec.message());
  if (!v.is_object())
    return ApiError::bad_request(
        "not_an_object", std::string("the body must be a JSON object, not ") + type_name(v));
  return std::move(v.as_object());
}

ApiResult<void> only_fields(const boost::json::object& o,
                            std::initializer_list<std::string_view> allowed) {
  for (const auto& member : o) {
    bool known = false;
    for (std::string_view a : allowed) known = known || member.key() == a;
    if (known) continue;
    std::string expected;
    for (std::string_view a : allowed) {
      if (!expected.empty()) expected += ", ";
      expected += a;
    }
    if (!quotable_key(member.key()))
      return ApiError::bad_request("unknown_field",
                                   "the body has an unknown field; this route takes: " + expected);
    return ApiError::bad_request("unknown_field", "unknown field \"" + std::string(member.key()) +
                                                      "\"; this route takes: " + expected);
  }
  return {};
}

ApiResult<std::optional<std::int64_t>> optional_int(const boost::json::object& o,
                                                    std::string_view name) {
  const boost::json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return std::optional<std::int64_t>{};
  if (v->is_int64()) return std::optional<std::int64_t>{v->as_int64()};
  if (v->is_uint64()) {
    // Only numbers above INT64_MAX are stored as uint64.
    return ApiError::bad_request("invalid_value",
                                 "field \"" + std::string(name) + "\" is too large");
  }
  return wrong_type(name, "an integer", *v);
}

ApiResult<std::optional<std::string>> optional_string(const boost::json::object& o,
                                                      std::string_view name) {
  const boost::json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return std::optional<std::string>{};
  if (v->is_string()) return std::optional<std::string>{std::string(v->as_string())};
  return wrong_type(name, "a string", *v);
}

}  // namespace meshd::api
