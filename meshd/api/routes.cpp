#include "meshd/api/routes.h"

#include "keys/token.h"
#include "meshd/api/json_body.h"
#include "meshd/api/metrics.h"
#include "store/tokens.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cerrno>
#include <chrono>
#include <memory>
#include <stdexcept>

namespace meshd::api {

namespace {

namespace json = boost::json;

Response json_response(int status, const json::value& v) {
  Response r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

json::value optional_value(const std::optional<std::int64_t>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::value optional_value(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

ApiError store_failed(std::string_view what, const Error& e) {
  return {500, "store_error", std::string(what) + ": " + e.message};
}

// Whether `id` has the form of a token id; only then may it be quoted back.
bool valid_token_id(std::string_view id) {
  if (id.size() != keys::kTokenIdLength) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

std::string_view token_state(const store::Token& t, std::int64_t now) {
  if (t.revoked) return "revoked";
  if (t.expires_at && *t.expires_at <= now) return "expired";  // as TokenRepo::consume decides
  if (t.usages_left && *t.usages_left <= 0) return "exhausted";
  return "active";
}

json::value status_json(const StatusSnapshot& s) {
  const ReconcileSnapshot& r = s.reconcile;
  return json::object{
      {"backend", s.backend},
      {"interface", s.interface},
      {"mtu", s.mtu},
      {"public_key", s.public_key},
      {"pod_cidr", optional_value(s.pod_cidr)},
      {"pod_cidr_settled", s.pod_cidr.has_value() && s.pod_cidr_settled},
      {"peers", s.peer_count},
      {"last_reconcile",
       r.last_at_ms ? json::value(json::object{{"at_ms", *r.last_at_ms},
                                               {"duration_seconds", r.last_duration_seconds},
                                               {"error", optional_value(r.last_error)}})
                    : json::value(nullptr)},
      {"reconciles", r.passes},
      {"reconcile_errors", r.failures},
  };
}

class Api {
 public:
  explicit Api(ApiOptions opts) : opts_(std::move(opts)) {
    if (!opts_.status || !opts_.tokens)
      throw std::logic_error("make_router needs a status source and a token repository");
    if (!opts_.now)
      opts_.now = [] {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
      };
  }

  Response healthz() const { return json_response(200, json::object{{"status", "ok"}}); }

  Response readyz() const {
    if (opts_.status->ready()) return json_response(200, json::object{{"ready", true}});
    return error_response({503, "not_ready", "no reconcile pass has succeeded yet"});
  }

  Response status() const { return json_response(200, status_json(opts_.status->status())); }

  Response metrics() const {
    Response r;
    r.content_type = std::string(kPrometheusContentType);
    r.body = render_metrics(opts_.status->status(), opts_.status->ready());
    return r;
  }

  // Body (every field optional): {"ttl_seconds": int (default 24 h; 0 = never
  // expires), "uses": int >= 1 or null (unlimited), "description": string}.
  ApiResult<Response> create_token(const Request& req) const {
    auto body = parse_object_body(req.body);
    if (!body) return body.error();
    if (auto r = only_fields(*body, {"ttl_seconds", "uses", "description"}); !r) return r.error();
    auto ttl = optional_int(*body, "ttl_seconds");
    if (!ttl) return ttl.error();
    auto uses = optional_int(*body, "uses");
    if (!uses) return uses.error();
    auto description = optional_string(*body, "description");
    if (!description) return description.error();

    std::int64_t ttl_seconds = ttl->value_or(kDefaultTokenTtlSeconds);
    if (ttl_seconds < 0 || ttl_seconds > kMaxTokenTtlSeconds)
      return ApiError::bad_request("invalid_value",
                                   "field \"ttl_seconds\" must be 0 (never expires) to " +
                                       std::to_string(kMaxTokenTtlSeconds) + " (a year)");
    if (*uses && **uses < 1)
      return ApiError::bad_request("invalid_value",
                                   "field \"uses\" must be at least 1, or null for unlimited");
    std::string text = description->value_or("");
    if (text.size() > kMaxTokenDescriptionBytes)
      return ApiError::bad_request("invalid_value", "field \"description\" is longer than " +
                                                        std::to_string(kMaxTokenDescriptionBytes) +
                                                        " bytes");
    for (unsigned char c : text)
      if (c < 0x20 || c == 0x7f)
        return ApiError::bad_request("invalid_value",
                                     "field \"description\" must not hold control characters");

    const std::int64_t now = opts_.now();
    // 36^6 ids: a collision is rare but possible; a fresh token resolves it.
    for (int attempt = 0; attempt < 8; ++attempt) {
      keys::Token token = keys::Token::generate();
      store::Token row = store::stored_form(token);
      row.expires_at = ttl_seconds == 0 ? std::nullopt : std::optional(now + ttl_seconds);
      row.usages_left = *uses;
      row.description = text;
      row.created_at = now;
      auto created = opts_.tokens->create(row);
      if (!created && created.error().is(EEXIST)) continue;
      if (!created) return store_failed("store the new token", created.error());
      Response r = json_response(
          201, json::object{{"id", row.id},
                            {"token", token.reveal()},  // the only time the secret leaves meshd
                            {"description", row.description},
                            {"created_at", row.created_at},
                            {"expires_at", optional_value(row.expires_at)},
                            {"uses_left", optional_value(row.usages_left)}});
      r.headers.emplace_back("Location", "/v1/tokens/" + row.id);
      return r;
    }
    return ApiError{500, "store_error", "could not find a free token id; try again"};
  }

  ApiResult<Response> list_tokens() const {
    auto all = opts_.tokens->list();
    if (!all) return store_failed("list tokens", all.error());
    const std::int64_t now = opts_.now();
    json::array out;
    for (const store::Token& t : *all)
      out.push_back(json::object{{"id", t.id},
                                 {"description", t.description},
                                 {"state", token_state(t, now)},
                                 {"created_at", t.created_at},
                                 {"expires_at", optional_value(t.expires_at)},
                                 {"uses_left", optional_value(t.usages_left)},
                                 {"last_used_at", optional_value(t.last_used_at)}});
    return json_response(200, json::object{{"tokens", std::move(out)}});
  }

  ApiResult<Response> revoke_token(const std::string& id) const {
    if (!valid_token_id(id))
      // Not quoted: a malformed id may be a whole "id.secret" pasted by mistake.
      return ApiError::bad_request("invalid_value", "a token id is 6 characters of [a-z0-9]");
    auto r = opts_.tokens->revoke(id);
    if (!r && r.error().is(ENOENT))
      return ApiError{404, "token_not_found", "no token with id " + id};
    if (!r) return store_failed("revoke token " + id, r.error());
    Response ok;
    ok.status = 204;
    ok.content_type.clear();
    return ok;
  }

 private:
  ApiOptions opts_;
};

Response answer(ApiResult<Response> r) { return r ? std::move(*r) : error_response(r.error()); }

}  // namespace

Router make_router(ApiOptions opts) {
  Router router(opts.router);
  auto api = std::make_shared<const Api>(std::move(opts));
  router.add("GET", "/v1/healthz",
             [api](const Request&, const PathParams&) { return api->healthz(); });
  router.add("GET", "/v1/readyz",
             [api](const Request&, const PathParams&) { return api->readyz(); });
  router.add("GET", "/v1/status",
             [api](const Request&, const PathParams&) { return api->status(); });
  router.add("GET", "/metrics",
             [api](const Request&, const PathParams&) { return api->metrics(); });
  router.add("POST", "/v1/tokens", [api](const Request& req, const PathParams&) {
    return answer(api->create_token(req));
  });
  router.add("GET", "/v1/tokens",
             [api](const Request&, const PathParams&) { return answer(api->list_tokens()); });
  router.add("DELETE", "/v1/tokens/{id}", [api](const Request&, const PathParams& p) {
    return answer(api->revoke_token(p.at("id")));
  });
  return router;
}

}  // namespace meshd::api
