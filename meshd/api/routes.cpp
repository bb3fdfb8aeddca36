#include "meshd/api/routes.h"

#include "keys/token.h"
#include "meshd/api/json_body.h"
#include "meshd/api/metrics.h"
#include "store/events.h"
#include "store/tokens.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <map>
#include <tuple>
#include <charconv>
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

// A removal as status and node answers show it: who, when (unix ms), why
// (left out when none was given).
json::object removal_json(const std::string& by, std::int64_t at_ms, const std::string& reason) {
  json::object o{{"by", by}, {"at_ms", at_ms}};
  if (!reason.empty()) o["reason"] = reason;
  return o;
}

// The control plane's part of the status; null in static mode.
json::value cluster_json(const std::optional<ClusterSnapshot>& c) {
  if (!c) return nullptr;
  json::object o{{"id", c->cluster_id},
                 {"cidr", c->cidr},
                 {"node_prefix_length", c->node_prefix_length},
                 {"join_target", c->join_target.empty() ? json::value(nullptr)
                                                        : json::value(c->join_target)},
                 {"settled", c->settled}};
  if (!c->table_hash.empty()) o["table_hash"] = c->table_hash;
  if (c->removed) o["removed"] = removal_json(c->removed_by, c->removed_at_ms, c->removal_reason);
  return o;
}

json::value status_json(const StatusSnapshot& s, const std::optional<ClusterSnapshot>& cluster) {
  const ReconcileSnapshot& r = s.reconcile;
  json::array errors, rejected;
  for (const std::string& e : s.errors) errors.emplace_back(e);
  for (const auto& [peer, reason] : s.rejected_peers)
    rejected.emplace_back(json::object{{"peer", peer}, {"reason", reason}});
  return json::object{
      {"backend", s.backend},
      {"backend_reason", s.backend_reason},
      {"cluster_id", optional_value(s.cluster_id)},
      {"in_sync", s.in_sync},
      {"routes", s.route_count},
      {"errors", std::move(errors)},
      {"rejected_peers", std::move(rejected)},
      {"interface", s.interface},
      {"mtu", s.mtu},
      {"public_key", s.public_key},
      {"pod_cidr", optional_value(s.pod_cidr)},
      {"pod_cidr_settled", s.pod_cidr.has_value() && s.pod_cidr_settled},
      {"peers", s.peer_count},
      {"peers_reachable", s.peers_reachable},
      {"cni_leases",
       s.cni_leases_in_use && s.cni_leases_free
           ? json::value(json::object{{"in_use", *s.cni_leases_in_use},
                                      {"free", *s.cni_leases_free}})
           : json::value(nullptr)},
      {"last_reconcile",
       r.last_at_ms ? json::value(json::object{{"at_ms", *r.last_at_ms},
                                               {"duration_seconds", r.last_duration_seconds},
                                               {"error", optional_value(r.last_error)}})
                    : json::value(nullptr)},
      {"reconciles", r.passes},
      {"reconcile_errors", r.failures},
      {"cluster", cluster_json(cluster)},
  };
}

json::value node_json(const NodeSnapshot& n) {
  json::array endpoints;
  for (const std::string& e : n.endpoints) endpoints.emplace_back(e);
  const PeerStats& st = n.stats;
  json::object o{
      {"name", n.name},
      {"identity", n.identity},
      {"public_key", n.public_key},
      {"endpoints", std::move(endpoints)},
      {"pod_cidr", n.pod_cidr},
      {"version", n.version},
      {"admitted_at_ms", n.admitted_at_ms},
      {"self", n.self},
      {"in_effect", n.in_effect},
      {"stats",
       json::object{{"last_handshake_age_seconds", st.last_handshake_age_seconds
                                                       ? json::value(*st.last_handshake_age_seconds)
                                                       : json::value(nullptr)},
                    {"rx_bytes", st.rx_bytes},
                    {"tx_bytes", st.tx_bytes},
                    {"reachable", st.reachable}}},
  };
  // The lifecycle's fields only where they say something, so that a table
  // of live nodes reads as before.
  if (!n.liveness.empty()) o["liveness"] = n.liveness;
  if (n.last_seen_age_seconds) o["last_seen_age_seconds"] = *n.last_seen_age_seconds;
  if (n.pending_public_key) {
    o["pending_public_key"] = *n.pending_public_key;
    o["switch_at_ms"] = n.switch_at_ms;
  }
  if (n.removed) {
    json::object removal = removal_json(n.removed_by, n.removed_at_ms, n.removal_reason);
    removal["released"] = n.released;
    o["removed"] = std::move(removal);
  }
  return o;
}

// A TOML basic string (TOML 1.0 "Basic strings"): quotes, backslashes and
// control characters escaped.
std::string toml_string(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The query of an origin-form target as name -> value. Strict, like bodies:
// a parameter a route does not take is an error; values are not
// percent-decoded (every parameter taken is a decimal integer).
ApiResult<std::map<std::string, std::string, std::less<>>> query_params(
    std::string_view target, std::initializer_list<std::string_view> allowed) {
  std::map<std::string, std::string, std::less<>> out;
  std::size_t q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    std::size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      // Not quoted: a query may hold anything, a pasted token too.
      return ApiError::bad_request("unknown_parameter",
                                   "a query parameter this route does not take; it takes " + list);
    }
    if (out.contains(name))
      return ApiError::bad_request("invalid_value",
                                   "query parameter \"" + std::string(name) + "\" given twice");
    out.emplace(std::string(name), std::string(value));
  }
  return out;
}

// A query parameter that must be a decimal integer in [lo, hi]; `fallback`
// when absent.
ApiResult<std::int64_t> int_param(const std::map<std::string, std::string, std::less<>>& params,
                                  std::string_view name, std::int64_t fallback, std::int64_t lo,
                                  std::int64_t hi) {
  auto it = params.find(name);
  if (it == params.end()) return {boost::system::in_place_value, fallback};
  const std::string& v = it->second;
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi)
    return ApiError::bad_request("invalid_value", "query parameter \"" + std::string(name) +
                                                      "\" must be an integer from " +
                                                      std::to_string(lo) + " to " +
                                                      std::to_string(hi));
  return {boost::system::in_place_value, n};
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

  Response status() const {
    std::optional<ClusterSnapshot> cluster;
    if (opts_.cluster) cluster = opts_.cluster->cluster();
    return json_response(200, status_json(opts_.status->status(), cluster));
  }

  Response metrics() const {
    Response r;
    r.content_type = std::string(kPrometheusContentType);
    std::optional<ClusterMetrics> cluster;
    if (opts_.cluster)
      cluster = ClusterMetrics{opts_.cluster->nodes(), opts_.cluster->counters()};
    r.body = render_metrics(opts_.status->status(), opts_.status->ready(), cluster);
    return r;
  }

  std::vector<NodeSnapshot> sorted_nodes() const {
    std::vector<NodeSnapshot> nodes;
    if (opts_.cluster) nodes = opts_.cluster->nodes();
    // By name; of one name, the live record in effect first, then one that
    // lost its claim, then tombstones (a reinstalled host keeps its name).
    std::stable_sort(nodes.begin(), nodes.end(), [](const NodeSnapshot& a, const NodeSnapshot& b) {
      return std::tie(a.name, a.removed, b.in_effect) < std::tie(b.name, b.removed, a.in_effect);
    });
    return nodes;
  }

  Response list_nodes() const {
    json::array out;
    for (const NodeSnapshot& n : sorted_nodes()) out.push_back(node_json(n));
    return json_response(200, json::object{{"nodes", std::move(out)}});
  }

  ApiResult<Response> one_node(const std::string& name) const {
    // The live record in effect if there is one (sorted first), else the
    // first held: a removed node's tombstone only when no live one has the name.
    for (const NodeSnapshot& n : sorted_nodes())
      if (n.name == name) return json_response(200, node_json(n));
    // Not quoted: a path segment may be a token pasted by mistake.
    return ApiError{404, "node_not_found", "this node holds no record of a node by that name"};
  }

  // Long polling: with wait=S and nothing after `since`, a Pending that asks
  // the store again each time the server polls (every ~200 ms), so nothing
  // blocks the loop and the daemon needs no hook.
  ApiResult<Reply> events(const Request& req) const {
    auto params = query_params(req.target, {"since", "limit", "wait"});
    if (!params) return params.error();
    auto since = int_param(*params, "since", 0, 0, std::numeric_limits<std::int64_t>::max());
    if (!since) return since.error();
    auto limit = int_param(*params, "limit", kDefaultEventLimit, 1, kMaxEventLimit);
    if (!limit) return limit.error();
    auto wait = int_param(*params, "wait", 0, 0, kMaxEventWaitSeconds);
    if (!wait) return wait.error();

    auto page = [this, since = *since, limit = *limit]() -> ApiResult<json::object> {
      json::array out;
      std::int64_t next = since;
      if (opts_.events) {
        auto listed = opts_.events->list(static_cast<std::size_t>(limit), since);
        if (!listed) return store_failed("list events", listed.error());
        for (const store::Event& e : *listed) {
          out.push_back(json::object{{"id", e.id},
                                     {"at", e.at},
                                     {"kind", e.kind},
                                     {"node", e.node},
                                     {"message", e.message}});
          next = std::max(next, e.id);
        }
      }
      return json::object{{"events", std::move(out)}, {"next", next}};
    };
    auto first = page();
    if (!first) return first.error();
    if (*wait == 0 || !first->at("events").as_array().empty() || !opts_.events)
      return Reply{json_response(200, *first)};
    return Reply{Pending{
        .poll = [page](bool last) -> std::optional<Response> {
          auto p = page();
          if (!p) return error_response(p.error());
          if (p->at("events").as_array().empty() && !last) return std::nullopt;
          return json_response(200, *p);
        },
        .max_wait = std::chrono::seconds(*wait)}};
  }

  // The cluster this node is in; 409 not_a_cluster in static mode, where
  // there is nothing to remove nodes from nor announce a key to.
  ApiResult<ClusterSnapshot> cluster_or_409(std::string_view what) const {
    std::optional<ClusterSnapshot> cluster;
    if (opts_.cluster) cluster = opts_.cluster->cluster();
    if (!cluster)
      return ApiError{409, "not_a_cluster",
                      "this node runs in static mode (no [cluster] or [join] in its config): " +
                          std::string(what)};
    return std::move(*cluster);
  }

  // EAGAIN from the control plane: 503 with the reason this node gives.
  ApiError not_a_member(std::string_view action) const {
    std::optional<ClusterSnapshot> c = opts_.cluster->cluster();
    std::string why = c && c->removed ? "this node was removed from the cluster"
                                      : "this node is not a member of the cluster yet (still joining)";
    return ApiError{503, "not_a_member", why + ", so it cannot " + std::string(action)};
  }

  ApiResult<Response> remove_node(const std::string& name_or_identity) const {
    auto cluster = cluster_or_409("there is no cluster to remove a node from");
    if (!cluster) return cluster.error();
    auto r = opts_.cluster->remove_node(name_or_identity);
    // The name is never quoted back: a path segment may be a token pasted by
    // mistake; the control plane's own message may quote it, so it is not sent.
    if (!r && r.error().is(ENOENT))
      return ApiError{404, "node_not_found",
                      "this node holds no record of a node by that name or identity"};
    if (!r && r.error().is(EALREADY))
      return ApiError{409, "already_removed", "that node has already been removed"};
    if (!r && r.error().is(EAGAIN)) return not_a_member("remove nodes");
    if (!r && r.error().is(ENOTCONN))
      return ApiError{503, "datastore_unavailable",
                      "this node could not record the removal in its datastore (etcd is unreachable); retry "
                      "once etcd is reachable (a removal that did reach etcd then answers already_removed)"};
    if (!r)
      return ApiError{500, "internal",
                      "removing the node failed inside meshd: " + r.error().code.message()};
    return json_response(200, json::object{{"removed", json::object{
                                                           {"name", r->name},
                                                           {"identity", r->identity},
                                                           {"pod_cidr", r->pod_cidr},
                                                           {"removed_at_ms", r->removed_at_ms},
                                                       }}});
  }

  // No body, or an empty JSON object: the route takes no options, and
  // anything else is refused rather than ignored (a schedule or a key sent
  // here would silently not be applied).
  ApiResult<Response> rotate_key(const Request& req) const {
    auto cluster = cluster_or_409("its key is the one in its config, and there is no cluster to "
                                  "announce a new one to");
    if (!cluster) return cluster.error();
    auto body = parse_object_body(req.body);
    if (!body) return body.error();
    if (!body->empty())
      // Not quoted: a field name may hold anything, a pasted key too.
      return ApiError::bad_request("unknown_field",
                                   "POST /v1/key/rotate takes no fields: send no body, or {}");
    auto r = opts_.cluster->rotate_key();
    if (!r && r.error().is(EBUSY))
      return ApiError{409, "rotation_in_progress",
                      "a key rotation is already in progress; a new one can start after its "
                      "switch (GET /v1/nodes shows this node's pending_public_key and "
                      "switch_at_ms)"};
    if (!r && r.error().is(EAGAIN)) return not_a_member("rotate its key");
    if (!r)
      return ApiError{500, "internal",
                      "the key rotation failed inside meshd: " + r.error().code.message()};
    return json_response(202, json::object{{"previous_public_key", r->previous_public_key},
                                           {"public_key", r->public_key},
                                           {"switch_at_ms", r->switch_at_ms}});
  }

  // Body (every field optional): {"ttl_seconds": int (default 24 h; 0 = never
  // expires), "uses": int >= 1 or null (unlimited), "description": string}.
  ApiResult<Response> create_token(const Request& req) const {
    std::optional<ClusterSnapshot> cluster;
    if (opts_.cluster) cluster = opts_.cluster->cluster();
    // A bootstrap token admits a node into a cluster; a static node has none
    // to admit it into, and a token that can never work would mislead.
    if (!cluster)
      return ApiError{409, "not_a_cluster",
                      "this node runs in static mode (no [cluster] or [join] in its config): "
                      "there is no cluster to join, so no bootstrap tokens are issued"};
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
      json::value join_target = cluster->join_target.empty()
                                    ? json::value(nullptr)
                                    : json::value(cluster->join_target);
      // What a joiner puts in its config; the token goes in the file, never
      // in these lines.
      std::string config = "[join]\n";
      if (!cluster->join_target.empty())
        config += "target = " + toml_string(cluster->join_target) + "\n";
      config += "token_file = " + toml_string(kJoinTokenPath) + "\n";
      Response r = json_response(
          201, json::object{{"id", row.id},
                            {"token", token.reveal()},  // the only time the secret leaves meshd
                            {"description", row.description},
                            {"created_at", row.created_at},
                            {"expires_at", optional_value(row.expires_at)},
                            {"uses_left", optional_value(row.usages_left)},
                            {"join_target", std::move(join_target)},
                            {"config", std::move(config)}});
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
  router.add("GET", "/v1/nodes",
             [api](const Request&, const PathParams&) { return api->list_nodes(); });
  router.add("GET", "/v1/nodes/{name}", [api](const Request&, const PathParams& p) {
    return answer(api->one_node(p.at("name")));
  });
  router.add("DELETE", "/v1/nodes/{name}", [api](const Request&, const PathParams& p) {
    return answer(api->remove_node(p.at("name")));
  });
  router.add("POST", "/v1/key/rotate", [api](const Request& req, const PathParams&) {
    return answer(api->rotate_key(req));
  });
  router.add("POST", "/v1/tokens", [api](const Request& req, const PathParams&) {
    return answer(api->create_token(req));
  });
  router.add("GET", "/v1/tokens",
             [api](const Request&, const PathParams&) { return answer(api->list_tokens()); });
  router.add("DELETE", "/v1/tokens/{id}", [api](const Request&, const PathParams& p) {
    return answer(api->revoke_token(p.at("id")));
  });
  router.add_deferring("GET", "/v1/events", [api](const Request& req, const PathParams&) -> Reply {
    auto r = api->events(req);
    if (!r) return error_response(r.error());
    return std::move(*r);
  });
  return router;
}

}  // namespace meshd::api
