#include "meshd/api/router.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace meshd::api {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::string_view find_header(const std::vector<std::pair<std::string, std::string>>& headers,
                             std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t pos = 1;  // after the leading '/'
  while (pos <= path.size()) {
    std::size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    out.emplace_back(path.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A path segment with its percent-escapes decoded (RFC 3986 2.1), after the
// path was split at '/': "%2F" in a segment is a slash inside one parameter
// (a base64 identity), not a separator. Nothing for a '%' not followed by two
// hex digits.
std::optional<std::string> percent_decode(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    int hi = hex_digit(segment[i + 1]), lo = hex_digit(segment[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Whether `segments` (of a request) match `pattern`; fills `params` if so.
bool match(const std::vector<std::string>& pattern, const std::vector<std::string>& segments,
           PathParams& params) {
  if (pattern.size() != segments.size()) return false;
  PathParams found;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (is_param(pattern[i])) {
      if (segments[i].empty()) return false;
      // dispatch() has refused malformed escapes before matching.
      found.emplace(pattern[i].substr(1, pattern[i].size() - 2),
                    percent_decode(segments[i]).value_or(segments[i]));
    } else if (pattern[i] != segments[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

// The media type of a Content-Type value, without parameters (RFC 9110 8.3.1).
std::string_view media_type(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  return t;
}

}  // namespace

std::string_view Request::header(std::string_view name) const { return find_header(headers, name); }
std::string_view Response::header(std::string_view name) const {
  return find_header(headers, name);
}

Response error_response(const ApiError& e) {
  Response r;
  r.status = e.status;
  r.body = boost::json::serialize(boost::json::value{{"error", e.code}, {"message", e.message}});
  return r;
}

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

void Router::add(std::string method, std::string pattern, Handler handler) {
  add_deferring(std::move(method), std::move(pattern),
                [h = std::move(handler)](const Request& req, const PathParams& p) -> Reply {
                  return h(req, p);
                });
}

void Router::add_deferring(std::string method, std::string pattern, DeferringHandler handler) {
  if (pattern.empty() || pattern.front() != '/')
    throw std::logic_error("route pattern must start with '/': " + pattern);
  for (const Route& r : routes_)
    if (r.method == method && r.pattern == pattern)
      throw std::logic_error("route registered twice: " + method + " " + pattern);
  std::vector<std::string> segments = split_path(pattern);
  routes_.push_back(
      Route{std::move(method), std::move(pattern), std::move(segments), std::move(handler)});
}

namespace {
Response internal_error() {
  // Its text may quote anything the handler held, so it is not sent.
  return error_response({500, "internal", "the request failed inside meshd"});
}
}  // namespace

Response Router::handle(const Request& req) const {
  Reply r = dispatch(req);
  if (auto* done = std::get_if<Response>(&r)) return std::move(*done);
  return *poll(std::get<Pending>(r), true);
}

std::optional<Response> Router::poll(const Pending& p, bool last) {
  try {
    std::optional<Response> r = p.poll ? p.poll(last) : std::nullopt;
    if (!r && last) return internal_error();
    return r;
  } catch (const ApiErrorException& e) {
    return error_response(e.error());
  } catch (const std::exception&) {
    return internal_error();
  }
}

std::vector<RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  for (const Route& r : routes_) out.push_back({r.method, r.pattern});
  return out;
}

Reply Router::dispatch(const Request& req) const {
  if (req.body.size() > opts_.max_body_bytes)
    return error_response({413, "body_too_large",
                           "the body is " + std::to_string(req.body.size()) +
                               " bytes; the limit is " + std::to_string(opts_.max_body_bytes)});
  std::string_view path = target_path(req.target);
  if (path.empty() || path.front() != '/')
    return error_response(
        ApiError::bad_request("bad_target", "the request target must be a path starting with '/'"));

  // The target is never quoted back: someone may have pasted a token into it.
  const std::vector<std::string> segments = split_path(path);
  for (const std::string& seg : segments)
    if (!percent_decode(seg))
      return error_response(ApiError::bad_request(
          "bad_target", "the request target has a '%' not followed by two hex digits"));
  std::vector<std::string> allowed;
  for (const Route& r : routes_) {
    PathParams params;
    if (!match(r.segments, segments, params)) continue;
    if (r.method != req.method) {
      allowed.push_back(r.method);
      continue;
    }
    if (!req.body.empty()) {
      std::string_view ct = media_type(req.header("Content-Type"));
      if (!ct.empty() && !iequals(ct, kJsonContentType))
        return error_response({415, "unsupported_media_type", "the body must be application/json"});
    }
    try {
      return r.handler(req, params);
    } catch (const ApiErrorException& e) {
      return error_response(e.error());
    } catch (const std::exception&) {
      return internal_error();
    }
  }
  if (allowed.empty())
    return error_response({404, "not_found", "no such route; docs/api.md lists the routes"});
  std::sort(allowed.begin(), allowed.end());
  allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
  std::string allow;
  for (const std::string& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
  Response r = error_response({405, "method_not_allowed", "this route takes " + allow + " only"});
  r.headers.emplace_back("Allow", allow);
  return r;
}

}  // namespace meshd::api
