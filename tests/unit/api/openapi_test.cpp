// docs/openapi.json against the router: every route served is documented
// and every documented route is served, and the answers a fixture with fake
// sources gives (every status it can provoke) match the documented schemas.
// The schema checker covers the JSON Schema subset the document uses: $ref,
// type, nullable, enum, required, properties, additionalProperties: false,
// items.
#include "meshd/api/routes.h"
#include "meshd/api/wire.h"

#include "keys/token.h"
#include "store/database.h"
#include "store/events.h"
#include "store/tokens.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/api/fake_sources.h"

#include <SQLiteCpp/Database.h>
#include <boost/beast/http/error.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <functional>
#include <set>

namespace meshd::api {
namespace {

namespace json = boost::json;

json::value load_document() {
  std::string text = testing::read_file(std::string(MESHD_SOURCE_DIR) + "/docs/openapi.json");
  return json::parse(text);
}

class SchemaChecker {
 public:
  explicit SchemaChecker(const json::value& doc) : doc_(doc) {}

  // Every mismatch of `v` against `schema`, as "where: what".
  std::vector<std::string> check(const json::value& schema, const json::value& v) const {
    std::vector<std::string> errors;
    walk(schema, v, "$", errors);
    return errors;
  }

 private:
  const json::value& resolve(const json::value& schema) const {
    const json::object& o = schema.as_object();
    auto it = o.find("$ref");
    if (it == o.end()) return schema;
    std::string_view ref = it->value().as_string();
    constexpr std::string_view kPrefix = "#/components/schemas/";
    if (!ref.starts_with(kPrefix)) throw std::runtime_error("unsupported $ref " + std::string(ref));
    return resolve(doc_.at("components").at("schemas").at(ref.substr(kPrefix.size())));
  }

  static bool has_type(const json::value& v, std::string_view type) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "integer") return v.is_int64() || v.is_uint64();
    if (type == "number") return v.is_number();
    if (type == "boolean") return v.is_bool();
    throw std::runtime_error("unsupported type " + std::string(type));
  }

  void walk(const json::value& raw_schema, const json::value& v, const std::string& where,
            std::vector<std::string>& errors) const {
    const json::object& s = resolve(raw_schema).as_object();
    for (const auto& kv : s) {
      static const std::set<std::string, std::less<>> kKnown = {
          "type",    "nullable", "enum",    "required", "properties", "additionalProperties",
          "items",   "description", "minimum", "maximum", "maxLength", "pattern", "default"};
      if (!kKnown.contains(kv.key()))
        throw std::runtime_error("the checker does not know keyword " + std::string(kv.key()));
    }
    if (v.is_null()) {
      if (!(s.contains("nullable") && s.at("nullable").as_bool()))
        errors.push_back(where + ": null but not nullable");
      return;
    }
    if (s.contains("type") && !has_type(v, s.at("type").as_string())) {
      errors.push_back(where + ": not of type " + std::string(s.at("type").as_string()) + ": " +
                       json::serialize(v));
      return;
    }
    if (s.contains("enum")) {
      const json::array& allowed = s.at("enum").as_array();
      if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
        errors.push_back(where + ": " + json::serialize(v) + " not in the enum");
    }
    if (v.is_object()) {
      const json::object& o = v.as_object();
      json::object none;
      const json::object& props =
          s.contains("properties") ? s.at("properties").as_object() : none;
      if (s.contains("required"))
        for (const auto& r : s.at("required").as_array())
          if (!o.contains(r.as_string()))
            errors.push_back(where + ": missing required " + std::string(r.as_string()));
      const bool closed = s.contains("additionalProperties") &&
                          s.at("additionalProperties").is_bool() &&
                          !s.at("additionalProperties").as_bool();
      for (const auto& kv : o) {
        if (props.contains(kv.key()))
          walk(props.at(kv.key()), kv.value(), where + "." + std::string(kv.key()), errors);
        else if (closed)
          errors.push_back(where + ": undocumented member " + std::string(kv.key()));
      }
    }
    if (v.is_array() && s.contains("items")) {
      const json::array& a = v.as_array();
      for (std::size_t i = 0; i < a.size(); ++i)
        walk(s.at("items"), a[i], where + "[" + std::to_string(i) + "]", errors);
    }
  }

  const json::value& doc_;
};

// The checker itself: it must catch what it claims to.
TEST(ApiOpenApi, SchemaCheckerCatchesMismatches) {
  json::value doc = json::parse(R"({"components": {"schemas": {
      "T": {"type": "object", "required": ["a"], "additionalProperties": false,
            "properties": {"a": {"type": "integer"}, "b": {"type": "string", "nullable": true},
                           "c": {"type": "array", "items": {"type": "string", "enum": ["x"]}}}}}}})");
  SchemaChecker c(doc);
  json::value t = json::parse(R"({"$ref": "#/components/schemas/T"})");
  EXPECT_TRUE(c.check(t, json::parse(R"({"a": 1, "b": null, "c": ["x"]})")).empty());
  EXPECT_EQ(c.check(t, json::parse(R"({"b": "s"})")).size(), 1u);         // required
  EXPECT_EQ(c.check(t, json::parse(R"({"a": 1.5})")).size(), 1u);         // type
  EXPECT_EQ(c.check(t, json::parse(R"({"a": null})")).size(), 1u);        // nullable
  EXPECT_EQ(c.check(t, json::parse(R"({"a": 1, "d": 1})")).size(), 1u);   // additionalProperties
  EXPECT_EQ(c.check(t, json::parse(R"({"a": 1, "c": ["y", 2]})")).size(), 2u);  // items, enum
  EXPECT_EQ(c.check(t, json::parse("[]")).size(), 1u);
}

using fakes::FakeCluster;
using fakes::FakeStatus;

// Three nodes: this one, a reachable peer, and one whose claim lost.
std::vector<NodeSnapshot> three_nodes() {
  NodeSnapshot self{.name = "alpha", .identity = "aWQ=", .public_key = "cGs=",
                    .endpoints = {"192.0.2.1:51820"}, .pod_cidr = "10.244.1.0/24",
                    .version = 2, .admitted_at_ms = 1'800'000'000'000, .self = true};
  NodeSnapshot beta = self;
  beta.name = "beta";
  beta.self = false;
  beta.stats = {.last_handshake_age_seconds = 4.5, .rx_bytes = 10, .tx_bytes = 20, .reachable = true};
  beta.liveness = "alive";
  beta.last_seen_age_seconds = 2.5;
  beta.pending_public_key = "bmV3";
  beta.switch_at_ms = 1'800'000'005'000;
  NodeSnapshot gamma = beta;
  gamma.name = "gamma";
  gamma.in_effect = false;
  gamma.stats = {};
  gamma.liveness = "silent";
  gamma.pending_public_key.reset();
  // A removed node's tombstone: name and CIDR as they were.
  NodeSnapshot delta{.name = "delta", .identity = "ZGVsdGE=", .pod_cidr = "10.244.4.0/24"};
  delta.liveness = "removed";
  delta.removed = true;
  delta.removed_by = "alpha";
  delta.removed_at_ms = 1'800'000'001'000;
  delta.removal_reason = "decommissioned";
  delta.released = true;
  return {self, beta, gamma, delta};
}

struct Case {
  std::string method, pattern, target, body;
  int status;
  std::function<void()> before = {};
};

class ApiOpenApiFixture : public ::testing::Test {
 protected:
  ApiOpenApiFixture()
      : db_(store::DatabaseOptions{.path = dir_.file("meshd.db")}),
        tokens_(db_),
        events_(db_),
        router_(make_router({.status = &status_,
                             .tokens = &tokens_,
                             .cluster = &cluster_,
                             .events = &events_,
                             .now = [] { return std::int64_t{1'800'000'000}; }})),
        doc_(load_document()),
        checker_(doc_) {
    cluster_.records = three_nodes();
  }

  const json::object& operation(const std::string& pattern, const std::string& method) {
    std::string lower = method;
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    return doc_.at("paths").at(pattern).at(lower).as_object();
  }

  // Checks one answer against the document; records the (route, status) seen.
  void check(const Case& c, const Response& r) {
    SCOPED_TRACE(c.method + " " + c.target + " -> " + std::to_string(r.status) + " " + r.body);
    EXPECT_EQ(r.status, c.status);
    const json::object& responses = operation(c.pattern, c.method).at("responses").as_object();
    const std::string status = std::to_string(r.status);
    ASSERT_TRUE(responses.contains(status)) << "status not documented";
    seen_.insert(c.pattern + " " + c.method + " " + status);
    const json::object& documented = responses.at(status).as_object();
    if (!documented.contains("content")) {
      EXPECT_TRUE(r.body.empty());
      return;
    }
    const json::object& content = documented.at("content").as_object();
    ASSERT_TRUE(content.contains(r.content_type)) << "content type " << r.content_type;
    const json::value& schema = content.at(r.content_type).at("schema");
    json::value body = r.content_type == kJsonContentType ? json::parse(r.body) : json::value(r.body);
    for (const std::string& e : checker_.check(schema, body)) ADD_FAILURE() << e;
  }

  testing::TempDir dir_{"meshd-openapi"};
  store::Database db_;
  store::TokenRepo tokens_;
  store::EventRepo events_;
  FakeStatus status_;
  FakeCluster cluster_;
  Router router_;
  json::value doc_;
  SchemaChecker checker_;
  std::set<std::string> seen_;
};

TEST_F(ApiOpenApiFixture, EveryRouteIsDocumentedAndEveryDocumentedRouteServed) {
  std::set<std::string> served, documented;
  for (const RouteInfo& r : router_.routes()) {
    std::string m = r.method;
    for (char& c : m) c = char(std::tolower(static_cast<unsigned char>(c)));
    served.insert(m + " " + r.pattern);
  }
  for (const auto& path : doc_.at("paths").as_object())
    for (const auto& op : path.value().as_object())
      documented.insert(std::string(op.key()) + " " + std::string(path.key()));
  EXPECT_EQ(served, documented);
  EXPECT_EQ(served.size(), 12u);
}

TEST_F(ApiOpenApiFixture, AnswersMatchTheirSchemas) {
  std::string token_id;
  std::vector<Case> cases = {
      {"GET", "/v1/healthz", "/v1/healthz", "", 200},
      {"GET", "/v1/readyz", "/v1/readyz", "", 503},
      {"GET", "/v1/readyz", "/v1/readyz", "", 200, [this] { status_.is_ready = true; }},
      {"GET", "/v1/status", "/v1/status", "", 200,  // before a pod CIDR and a pass: the nulls
       [this] { status_.snapshot.backend = "userspace"; }},
      {"GET", "/v1/status", "/v1/status", "", 200,
       [this] {
         status_.snapshot = StatusSnapshot{.backend = "kernel",
                                           .interface = "meshd0",
                                           .mtu = 1420,
                                           .public_key = "cGs=",
                                           .pod_cidr = "10.244.1.0/24",
                                           .pod_cidr_settled = true,
                                           .peer_count = 2,
                                           .peers_reachable = 1,
                                           .cni_leases_in_use = 3,
                                           .cni_leases_free = 250,
                                           .reconcile = {.last_at_ms = 1, .last_error = "x"}};
       }},
      {"GET", "/v1/status", "/v1/status", "", 200,  // this node removed, the table hash
       [this] {
         cluster_.snapshot->table_hash = "9f86d081884c7d65";
         cluster_.snapshot->removed = true;
         cluster_.snapshot->removed_by = "beta";
         cluster_.snapshot->removed_at_ms = 1'800'000'001'000;
         cluster_.snapshot->removal_reason = "decommissioned";
       }},
      {"GET", "/v1/nodes", "/v1/nodes", "", 200},
      {"GET", "/v1/nodes/{name}", "/v1/nodes/beta", "", 200},
      {"GET", "/v1/nodes/{name}", "/v1/nodes/alpha", "", 200},
      {"GET", "/v1/nodes/{name}", "/v1/nodes/delta", "", 200},
      {"GET", "/v1/nodes/{name}", "/v1/nodes/omega", "", 404},
      {"DELETE", "/v1/nodes/{name}", "/v1/nodes/beta", "", 200},
      {"DELETE", "/v1/nodes/{name}", "/v1/nodes/omega", "", 404,
       [this] { cluster_.removal = fail(ENOENT, "remove node omega"); }},
      {"DELETE", "/v1/nodes/{name}", "/v1/nodes/delta", "", 409,
       [this] { cluster_.removal = fail(EALREADY, "remove node delta"); }},
      {"DELETE", "/v1/nodes/{name}", "/v1/nodes/beta", "", 503,
       [this] { cluster_.removal = fail(EAGAIN, "remove node beta"); }},
      {"DELETE", "/v1/nodes/{name}", "/v1/nodes/beta", "", 500,
       [this] { cluster_.removal = fail(EIO, "remove node beta"); }},
      {"DELETE", "/v1/nodes/{name}", "/v1/nodes/b%zz", "", 400},
      {"POST", "/v1/key/rotate", "/v1/key/rotate", "", 202},
      {"POST", "/v1/key/rotate", "/v1/key/rotate", "{}", 202},
      {"POST", "/v1/key/rotate", "/v1/key/rotate", R"({"at": 1})", 400},
      {"POST", "/v1/key/rotate", "/v1/key/rotate", std::string(20000, ' '), 413},
      {"POST", "/v1/key/rotate", "/v1/key/rotate", "", 409,
       [this] { cluster_.rotation = fail(EBUSY, "rotate the key"); }},
      {"POST", "/v1/key/rotate", "/v1/key/rotate", "", 503,
       [this] { cluster_.rotation = fail(EAGAIN, "rotate the key"); }},
      {"POST", "/v1/key/rotate", "/v1/key/rotate", "", 500,
       [this] { cluster_.rotation = fail(EIO, "rotate the key"); }},
      {"POST", "/v1/tokens", "/v1/tokens", R"({"uses": 1, "description": "rack 4"})", 201},
      {"POST", "/v1/tokens", "/v1/tokens", R"({"ttl": 1})", 400},
      {"POST", "/v1/tokens", "/v1/tokens", std::string(20000, ' '), 413},
      {"GET", "/v1/tokens", "/v1/tokens", "", 200},
      {"DELETE", "/v1/tokens/{id}", "/v1/tokens/zzzzzz", "", 404},
      {"DELETE", "/v1/tokens/{id}", "/v1/tokens/BAD", "", 400},
      {"GET", "/v1/events", "/v1/events", "", 200,
       [this] { ASSERT_TRUE(events_.append(1'800'000'000, "node-joined", "beta", "joined")); }},
      {"GET", "/v1/events", "/v1/events?since=1&wait=1", "", 200},  // held, then empty
      {"GET", "/v1/events", "/v1/events?wait=99", "", 400},
      {"GET", "/metrics", "/metrics", "", 200},
  };
  for (const Case& c : cases) {
    if (c.before) c.before();
    check(c, router_.handle({c.method, c.target, {}, c.body}));
  }
  // A body of another media type.
  Case wrong_type{"POST", "/v1/tokens", "/v1/tokens", "{}", 415};
  check(wrong_type, router_.handle({"POST", "/v1/tokens", {{"Content-Type", "text/plain"}}, "{}"}));
  // Revoking one that exists.
  auto list = tokens_.list();
  ASSERT_TRUE(list && !list->empty());
  Case revoke{"DELETE", "/v1/tokens/{id}", "/v1/tokens/" + list->front().id, "", 204};
  check(revoke, router_.handle({"DELETE", revoke.target, {}, ""}));
  Case rotate_wrong_type{"POST", "/v1/key/rotate", "/v1/key/rotate", "{}", 415};
  check(rotate_wrong_type,
        router_.handle({"POST", "/v1/key/rotate", {{"Content-Type", "text/plain"}}, "{}"}));
  // Static mode.
  cluster_.snapshot.reset();
  Case not_a_cluster{"POST", "/v1/tokens", "/v1/tokens", "{}", 409};
  check(not_a_cluster, router_.handle({"POST", "/v1/tokens", {}, "{}"}));
  check({"GET", "/v1/status", "/v1/status", "", 200}, router_.handle({"GET", "/v1/status", {}, ""}));
  for (Case c : {Case{"DELETE", "/v1/nodes/{name}", "/v1/nodes/beta", "", 409},
                 Case{"POST", "/v1/key/rotate", "/v1/key/rotate", "", 409}})
    check(c, router_.handle({c.method, c.target, {}, c.body}));
  // The store failing.
  db_.sql().exec("DROP TABLE join_nonces; DROP TABLE tokens; DROP TABLE events");
  for (Case c : {Case{"GET", "/v1/tokens", "/v1/tokens", "", 500},
                 Case{"DELETE", "/v1/tokens/{id}", "/v1/tokens/abcdef", "", 500},
                 Case{"GET", "/v1/events", "/v1/events", "", 500}})
    check(c, router_.handle({c.method, c.target, {}, c.body}));
  cluster_.snapshot = ClusterSnapshot{};
  check({"POST", "/v1/tokens", "/v1/tokens", "{}", 500}, router_.handle({"POST", "/v1/tokens", {}, "{}"}));

  // The listener's own answers (400, 431 on every route; 401 on TCP) are Error too.
  namespace http = boost::beast::http;
  for (auto ec : {http::error::bad_target, http::error::header_limit})
    for (const std::string& e :
         checker_.check(json::parse(R"({"$ref": "#/components/schemas/Error"})"),
                        json::parse(parse_error_response(ec, 8192, 16384).body)))
      ADD_FAILURE() << e;

  // Every documented success and every documented route-specific error was
  // provoked (the listener's 400/401/431, shared by all, are checked above).
  for (const auto& path : doc_.at("paths").as_object())
    for (const auto& op : path.value().as_object())
      for (const auto& resp : op.value().at("responses").as_object()) {
        const std::string status(resp.key());
        std::string method(op.key());
        for (char& c : method) c = char(std::toupper(static_cast<unsigned char>(c)));
        const std::string route = method + " " + std::string(path.key());
        if (status == "401" || status == "431") continue;
        if (status == "400" && route != "POST /v1/tokens" && route != "DELETE /v1/tokens/{id}" &&
            route != "GET /v1/events" && route != "DELETE /v1/nodes/{name}" &&
            route != "POST /v1/key/rotate")
          continue;
        EXPECT_TRUE(seen_.contains(std::string(path.key()) + " " + method + " " + status))
            << method << " " << path.key() << " " << status << " was never checked";
      }
}

}  // namespace
}  // namespace meshd::api
