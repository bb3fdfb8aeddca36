// Every route the API serves, request -> response, over a real token store in
// a temporary directory.
#include "meshd/api/routes.h"

#include "keys/token.h"
#include "store/database.h"
#include "store/events.h"
#include "store/tokens.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/api/fake_sources.h"

#include <SQLiteCpp/Database.h>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <vector>

namespace meshd::api {
namespace {

namespace json = boost::json;

using fakes::FakeCluster;
using fakes::FakeStatus;

NodeSnapshot node(std::string name, bool self = false) {
  NodeSnapshot n;
  n.name = std::move(name);
  n.identity = "MCowBQYDK2VwAyEAz4bXt2xwI1y5Bzq1Jb3oEXtKW4UXmKq9vO3iQ7Lk8wY=";
  n.public_key = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
  n.endpoints = {"192.0.2.7:51820"};
  n.pod_cidr = "10.244.7.0/24";
  n.version = 3;
  n.admitted_at_ms = 1'800'000'000'000;
  n.self = self;
  if (!self) n.stats = {.last_handshake_age_seconds = 12.5, .rx_bytes = 1000, .tx_bytes = 2000, .reachable = true};
  return n;
}

class ApiRoutes : public ::testing::Test {
 protected:
  ApiRoutes()
      : db_(store::DatabaseOptions{.path = dir_.file("meshd.db")}),
        repo_(db_),
        events_(db_),
        router_(make_router({.status = &status_,
                             .tokens = &repo_,
                             .cluster = &cluster_,
                             .events = &events_,
                             .now = [this] { return now_; }})) {}

  Response call(std::string method, std::string target, std::string body = "") {
    return router_.handle({std::move(method), std::move(target), {}, std::move(body)});
  }
  json::object json_of(const Response& r) {
    EXPECT_EQ(r.content_type, "application/json");
    return json::parse(r.body).as_object();
  }
  json::object created(std::string body) {
    Response r = call("POST", "/v1/tokens", std::move(body));
    EXPECT_EQ(r.status, 201) << r.body;
    return json_of(r);
  }
  void expect_error(const Response& r, int status, std::string_view code) {
    EXPECT_EQ(r.status, status) << r.body;
    json::object o = json_of(r);
    EXPECT_EQ(o.at("error").as_string(), code) << r.body;
    EXPECT_FALSE(o.at("message").as_string().empty());
  }

  meshd::testing::TempDir dir_{"meshd-api"};
  store::Database db_;
  store::TokenRepo repo_;
  store::EventRepo events_;
  FakeStatus status_;
  FakeCluster cluster_;
  std::int64_t now_ = 1'800'000'000;
  Router router_;
};

TEST_F(ApiRoutes, HealthzAnswersWhetherReadyOrNot) {
  for (bool ready : {false, true}) {
    status_.is_ready = ready;
    Response r = call("GET", "/v1/healthz");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json_of(r).at("status"), "ok");
  }
}

TEST_F(ApiRoutes, ReadyzIs503UntilAReconcileSucceeded) {
  expect_error(call("GET", "/v1/readyz"), 503, "not_ready");
  status_.is_ready = true;
  Response r = call("GET", "/v1/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json_of(r).at("ready"), true);
}

TEST_F(ApiRoutes, StatusIsTheSnapshot) {
  Response before = call("GET", "/v1/status");
  ASSERT_EQ(before.status, 200);
  json::object o = json_of(before);
  EXPECT_TRUE(o.at("pod_cidr").is_null());
  EXPECT_TRUE(o.at("last_reconcile").is_null());
  EXPECT_EQ(o.at("pod_cidr_settled"), false);

  status_.snapshot = StatusSnapshot{
      .backend = "userspace",
      .interface = "meshd0",
      .mtu = 1420,
      .public_key = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
      .pod_cidr = "10.244.1.0/24",
      .pod_cidr_settled = true,
      .peer_count = 3,
      .reconcile = {.last_at_ms = 1'800'000'000'123,
                    .last_duration_seconds = 0.25,
                    .last_error = "add route 10.244.2.0/24 dev meshd0: No such device",
                    .passes = 10,
                    .failures = 2}};
  o = json_of(call("GET", "/v1/status"));
  EXPECT_EQ(o.at("backend"), "userspace");
  EXPECT_EQ(o.at("interface"), "meshd0");
  EXPECT_EQ(o.at("mtu"), 1420);
  EXPECT_EQ(o.at("public_key"), "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
  EXPECT_EQ(o.at("pod_cidr"), "10.244.1.0/24");
  EXPECT_EQ(o.at("pod_cidr_settled"), true);
  EXPECT_EQ(o.at("peers").to_number<int>(), 3);
  const json::object& last = o.at("last_reconcile").as_object();
  EXPECT_EQ(last.at("at_ms"), 1'800'000'000'123);
  EXPECT_EQ(last.at("duration_seconds"), 0.25);
  EXPECT_EQ(last.at("error"), "add route 10.244.2.0/24 dev meshd0: No such device");
  EXPECT_EQ(o.at("reconciles").to_number<int>(), 10);
  EXPECT_EQ(o.at("reconcile_errors").to_number<int>(), 2);
}

TEST_F(ApiRoutes, CreatedTokenWorksAndDefaultsToADayAndUnlimitedUses) {
  json::object o = created("");
  std::string token(o.at("token").as_string());
  auto parsed = keys::Token::parse(token);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->id(), o.at("id").as_string());
  EXPECT_EQ(o.at("expires_at"), now_ + 24 * 3600);
  EXPECT_TRUE(o.at("uses_left").is_null());
  EXPECT_EQ(o.at("created_at"), now_);

  // The stored verifier accepts the returned token: it is the real one.
  std::vector<std::uint8_t> nonce(16, 7);
  auto used = repo_.consume(*parsed, nonce, now_);
  ASSERT_TRUE(used);
  EXPECT_TRUE(std::holds_alternative<store::Token>(*used));
}

TEST_F(ApiRoutes, CreateTakesTtlUsesAndDescription) {
  Response r =
      call("POST", "/v1/tokens", R"({"ttl_seconds": 600, "uses": 2, "description": "rack 4"})");
  ASSERT_EQ(r.status, 201) << r.body;
  json::object o = json_of(r);
  EXPECT_EQ(o.at("expires_at"), now_ + 600);
  EXPECT_EQ(o.at("uses_left"), 2);
  EXPECT_EQ(o.at("description"), "rack 4");
  EXPECT_EQ(r.header("Location"), "/v1/tokens/" + std::string(o.at("id").as_string()));
  auto row = repo_.get(std::string(o.at("id").as_string()));
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->expires_at, now_ + 600);
  EXPECT_EQ((*row)->usages_left, 2);
  EXPECT_EQ((*row)->description, "rack 4");

  o = created(R"({"ttl_seconds": 0, "uses": null})");
  EXPECT_TRUE(o.at("expires_at").is_null());
}

TEST_F(ApiRoutes, CreateRefusesBadBodiesAndStoresNothing) {
  struct Case {
    const char* body;
    const char* code;
  } cases[] = {
      {"{", "bad_json"},
      {"[1]", "not_an_object"},
      {R"({"ttl": 60})", "unknown_field"},
      {R"({"ttl_seconds": "60"})", "wrong_type"},
      {R"({"ttl_seconds": 60.5})", "wrong_type"},
      {R"({"uses": true})", "wrong_type"},
      {R"({"description": 5})", "wrong_type"},
      {R"({"ttl_seconds": -1})", "invalid_value"},
      {R"({"ttl_seconds": 31536001})", "invalid_value"},
      {R"({"ttl_seconds": 18446744073709551615})", "invalid_value"},
      {R"({"uses": 0})", "invalid_value"},
      {R"({"description": "a\u001b[2Jb"})", "invalid_value"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    expect_error(call("POST", "/v1/tokens", c.body), 400, c.code);
  }
  expect_error(call("POST", "/v1/tokens", R"({"description": ")" + std::string(257, 'x') + "\"}"),
               400, "invalid_value");
  expect_error(call("POST", "/v1/tokens", std::string(16 * 1024 + 1, ' ')), 413, "body_too_large");
  EXPECT_TRUE(repo_.list()->empty());
}

TEST_F(ApiRoutes, ListShowsStateAndNeverASecretOrVerifier) {
  json::object a = created(R"({"description": "first", "uses": 1})");
  json::object b = created(R"({"ttl_seconds": 60})");
  json::object c = created("{}");
  ASSERT_EQ(call("DELETE", "/v1/tokens/" + std::string(c.at("id").as_string())).status, 204);
  std::vector<std::uint8_t> nonce(16, 1);
  ASSERT_TRUE(
      repo_.consume(keys::Token::parse(a.at("token").as_string()).value(), nonce, now_ + 5));
  now_ += 61;

  Response r = call("GET", "/v1/tokens");
  ASSERT_EQ(r.status, 200);
  json::object page = json_of(r);
  const json::array& list = page.at("tokens").as_array();
  ASSERT_EQ(list.size(), 3u);
  std::map<std::string, json::object> by_id;
  for (const auto& t : list) by_id[std::string(t.at("id").as_string())] = t.as_object();
  const json::object& la = by_id.at(std::string(a.at("id").as_string()));
  EXPECT_EQ(la.at("state"), "exhausted");
  EXPECT_EQ(la.at("uses_left"), 0);
  EXPECT_EQ(la.at("last_used_at"), now_ - 61 + 5);
  EXPECT_EQ(la.at("description"), "first");
  EXPECT_EQ(by_id.at(std::string(b.at("id").as_string())).at("state"), "expired");
  EXPECT_EQ(by_id.at(std::string(c.at("id").as_string())).at("state"), "revoked");
  for (const auto& t : list) {
    std::set<std::string> keys;
    for (const auto& m : t.as_object()) keys.insert(std::string(m.key()));
    EXPECT_EQ(keys, (std::set<std::string>{"id", "description", "state", "created_at", "expires_at",
                                           "uses_left", "last_used_at"}));
  }
}

TEST_F(ApiRoutes, RevokeMakesTheTokenUnusableAndIsIdempotent) {
  json::object o = created("{}");
  std::string id(o.at("id").as_string());
  Response r = call("DELETE", "/v1/tokens/" + id);
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_TRUE(r.content_type.empty());
  EXPECT_EQ(call("DELETE", "/v1/tokens/" + id).status, 204);
  std::vector<std::uint8_t> nonce(16, 2);
  auto used = repo_.consume(keys::Token::parse(o.at("token").as_string()).value(), nonce, now_);
  ASSERT_TRUE(used);
  EXPECT_TRUE(std::holds_alternative<store::TokenRefused>(*used));
}

TEST_F(ApiRoutes, RevokeOfUnknownOrMalformedId) {
  expect_error(call("DELETE", "/v1/tokens/zzzzzz"), 404, "token_not_found");
  for (const char* id : {"abc", "ABCDEF", "abcdefg", "abc%2F1"}) {
    SCOPED_TRACE(id);
    expect_error(call("DELETE", std::string("/v1/tokens/") + id), 400, "invalid_value");
  }
}

// What the handlers answer when SQLite fails under them (here: the tables are
// gone): a 500 naming the operation, never the new token.
TEST_F(ApiRoutes, StoreFailureIs500StoreError) {
  db_.sql().exec("DROP TABLE join_nonces; DROP TABLE tokens");
  Response r = call("POST", "/v1/tokens", "{}");
  expect_error(r, 500, "store_error");
  EXPECT_NE(r.body.find("store the new token"), std::string::npos) << r.body;
  expect_error(call("GET", "/v1/tokens"), 500, "store_error");
  expect_error(call("DELETE", "/v1/tokens/abcdef"), 500, "store_error");
}

TEST_F(ApiRoutes, ListIsInCreationOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i, ++now_) ids.emplace_back(created("{}").at("id").as_string());
  json::object page = json_of(call("GET", "/v1/tokens"));
  std::vector<std::string> listed;
  for (const auto& t : page.at("tokens").as_array()) listed.emplace_back(t.at("id").as_string());
  EXPECT_EQ(listed, ids);
}

TEST_F(ApiRoutes, WrongMethodsOnTheRoutes) {
  Response r = call("PUT", "/v1/tokens");
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r.header("Allow"), "GET, POST");
  r = call("POST", "/v1/status");
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r.header("Allow"), "GET");
  EXPECT_EQ(call("GET", "/v1/tokens/abcdef").header("Allow"), "DELETE");
  EXPECT_EQ(call("PUT", "/v1/nodes/beta").header("Allow"), "DELETE, GET");
  EXPECT_EQ(call("GET", "/v1/key/rotate").header("Allow"), "POST");
  expect_error(call("GET", "/status"), 404, "not_found");
}

TEST_F(ApiRoutes, MetricsAreServedAsPrometheusText) {
  Response r = call("GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("\nmeshd_ready 0\n"), std::string::npos) << r.body;
  status_.is_ready = true;
  EXPECT_NE(call("GET", "/metrics").body.find("\nmeshd_ready 1\n"), std::string::npos);
}

// The secret leaves meshd in exactly one place: the body of the POST that
// made it. Every other answer, error or not, is searched for it.
TEST_F(ApiRoutes, TokenSecretAppearsOnlyInTheCreateResponse) {
  json::object o = created(R"({"uses": 1, "description": "leak check"})");
  std::string token(o.at("token").as_string());
  std::string id(o.at("id").as_string());
  std::string secret = token.substr(token.find('.') + 1);
  ASSERT_EQ(secret.size(), keys::kTokenSecretLength);

  std::vector<Response> others = {
      call("GET", "/v1/tokens"),
      call("GET", "/v1/status"),
      call("GET", "/metrics"),
      call("GET", "/v1/readyz"),
      call("DELETE", "/v1/tokens/" + token),  // the whole token pasted as the id
      call("DELETE", "/v1/tokens/" + secret),
      call("GET", "/v1/tokens/" + token),
      call("GET", "/v1/" + token),
      call("GET", "/v1/tokens?token=" + token),
      call("GET", "/v1/nodes/" + token),
      call("GET", "/v1/events?" + token),
      call("GET", "/v1/events?since=" + token),
      call("POST", "/v1/tokens", R"({")" + token + R"(": 1})"),
      call("POST", "/v1/tokens", R"({"description": ")" + token + "\x01\"}"),
      call("POST", "/v1/tokens", R"({"ttl_seconds": ")" + token + "\"}"),
      call("POST", "/v1/tokens", "{\"x\": " + token + "}"),
      call("DELETE", "/v1/tokens/" + id),
      call("GET", "/v1/tokens"),
  };
  for (const Response& r : others) {
    SCOPED_TRACE(r.body);
    EXPECT_EQ(r.body.find(secret), std::string::npos);
    for (const auto& [k, v] : r.headers) EXPECT_EQ(v.find(secret), std::string::npos);
  }
}

TEST_F(ApiRoutes, StatusHasReachablePeersAndCniLeases) {
  json::object o = json_of(call("GET", "/v1/status"));
  EXPECT_EQ(o.at("peers_reachable"), 0);
  EXPECT_TRUE(o.at("cni_leases").is_null());
  status_.snapshot.peers_reachable = 2;
  status_.snapshot.cni_leases_in_use = 5;
  status_.snapshot.cni_leases_free = 248;
  o = json_of(call("GET", "/v1/status"));
  EXPECT_EQ(o.at("peers_reachable"), 2);
  EXPECT_EQ(o.at("cni_leases"), (json::value{{"in_use", 5}, {"free", 248}}));
}

TEST_F(ApiRoutes, CreateAnswersTheJoinTargetAndTheJoinersConfigLines) {
  json::object o = created("{}");
  EXPECT_EQ(o.at("join_target"), "192.0.2.1:51821");
  EXPECT_EQ(o.at("config"),
            "[join]\ntarget = \"192.0.2.1:51821\"\ntoken_file = \"/etc/meshd/join-token\"\n");
  // The secret is in "token" only, not in the config lines.
  std::string token(o.at("token").as_string());
  EXPECT_EQ(o.at("config").as_string().find(token.substr(token.find('.') + 1)), std::string::npos);

  cluster_.snapshot->join_target.clear();  // not known yet
  o = created("{}");
  EXPECT_TRUE(o.at("join_target").is_null());
  EXPECT_EQ(o.at("config"), "[join]\ntoken_file = \"/etc/meshd/join-token\"\n");
}

TEST_F(ApiRoutes, StaticModeIssuesNoTokensButListsAndRevokes) {
  json::object made = created("{}");
  cluster_.snapshot.reset();
  expect_error(call("POST", "/v1/tokens", "{}"), 409, "not_a_cluster");
  Router no_source = make_router({.status = &status_, .tokens = &repo_});
  Response r = no_source.handle({"POST", "/v1/tokens", {}, "{}"});
  expect_error(r, 409, "not_a_cluster");
  EXPECT_EQ(repo_.list()->size(), 1u);
  EXPECT_EQ(no_source.handle({"GET", "/v1/tokens", {}, ""}).status, 200);
  EXPECT_EQ(
      no_source.handle({"DELETE", "/v1/tokens/" + std::string(made.at("id").as_string()), {}, ""})
          .status,
      204);
}

TEST_F(ApiRoutes, NodesListsEveryRecordByNameWithItsStats) {
  NodeSnapshot lost = node("beta");
  lost.in_effect = false;
  lost.version = 1;
  NodeSnapshot never = node("gamma");
  never.stats = {};
  cluster_.records = {never, lost, node("alpha", true), node("beta")};
  json::object o = json_of(call("GET", "/v1/nodes"));
  const json::array& list = o.at("nodes").as_array();
  ASSERT_EQ(list.size(), 4u);
  std::vector<std::string> names;
  for (const auto& n : list) names.emplace_back(n.at("name").as_string());
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "beta", "beta", "gamma"}));
  EXPECT_EQ(list[1].at("in_effect"), true) << "the record in effect comes first";
  EXPECT_EQ(list[2].at("in_effect"), false);
  EXPECT_EQ(list[0].at("self"), true);
  const json::object& beta = list[1].as_object();
  EXPECT_EQ(beta.at("identity").as_string(), node("x").identity);
  EXPECT_EQ(beta.at("public_key").as_string(), node("x").public_key);
  EXPECT_EQ(beta.at("endpoints"), (json::array{"192.0.2.7:51820"}));
  EXPECT_EQ(beta.at("pod_cidr"), "10.244.7.0/24");
  EXPECT_EQ(beta.at("version"), 3);
  EXPECT_EQ(beta.at("admitted_at_ms"), 1'800'000'000'000);
  EXPECT_EQ(beta.at("stats"), (json::value{{"last_handshake_age_seconds", 12.5},
                                           {"rx_bytes", 1000},
                                           {"tx_bytes", 2000},
                                           {"reachable", true}}));
  EXPECT_TRUE(list[3].at("stats").at("last_handshake_age_seconds").is_null());
  EXPECT_EQ(list[3].at("stats").at("reachable"), false);
}

TEST_F(ApiRoutes, OneNodeByNameOr404) {
  NodeSnapshot lost = node("beta");
  lost.in_effect = false;
  lost.version = 1;
  cluster_.records = {lost, node("beta"), node("alpha", true)};
  json::object o = json_of(call("GET", "/v1/nodes/beta"));
  EXPECT_EQ(o.at("name"), "beta");
  EXPECT_EQ(o.at("in_effect"), true);
  EXPECT_EQ(o.at("version"), 3);
  Response missing = call("GET", "/v1/nodes/delta-secret");
  expect_error(missing, 404, "node_not_found");
  EXPECT_EQ(missing.body.find("delta-secret"), std::string::npos);
}

// The lifecycle's fields, only where they say something: a live node
// without a rotation reads as before.
TEST_F(ApiRoutes, NodesCarryLivenessRotationAndRemoval) {
  NodeSnapshot beta = node("beta");
  beta.liveness = "silent";
  beta.last_seen_age_seconds = 95.5;
  beta.pending_public_key = "bmV3IGtleQ==";
  beta.switch_at_ms = 1'800'000'005'000;
  NodeSnapshot plain = node("gamma");
  NodeSnapshot gone = node("delta");
  gone.liveness = "removed";
  gone.removed = true;
  gone.removed_by = "alpha";
  gone.removed_at_ms = 1'800'000'001'000;
  gone.removal_reason = "decommissioned";
  gone.released = false;
  NodeSnapshot gone_silently = node("eps");
  gone_silently.liveness = "removed";
  gone_silently.removed = true;
  gone_silently.removed_by = "aWRlbnRpdHk=";
  gone_silently.removed_at_ms = 1'800'000'002'000;
  gone_silently.released = true;
  cluster_.records = {beta, plain, gone, gone_silently};
  json::array list = json_of(call("GET", "/v1/nodes")).at("nodes").as_array();
  ASSERT_EQ(list.size(), 4u);
  const json::object& b = list[0].as_object();
  EXPECT_EQ(b.at("name"), "beta");
  EXPECT_EQ(b.at("liveness"), "silent");
  EXPECT_EQ(b.at("last_seen_age_seconds"), 95.5);
  EXPECT_EQ(b.at("pending_public_key"), "bmV3IGtleQ==");
  EXPECT_EQ(b.at("switch_at_ms"), 1'800'000'005'000);
  EXPECT_FALSE(b.contains("removed"));
  const json::object& d = list[1].as_object();
  EXPECT_EQ(d.at("name"), "delta");
  EXPECT_EQ(d.at("liveness"), "removed");
  EXPECT_EQ(d.at("removed"), (json::value{{"by", "alpha"},
                                          {"at_ms", 1'800'000'001'000},
                                          {"reason", "decommissioned"},
                                          {"released", false}}));
  EXPECT_EQ(list[2].at("removed"),
            (json::value{{"by", "aWRlbnRpdHk="}, {"at_ms", 1'800'000'002'000}, {"released", true}}))
      << "no reason given: none shown";
  const json::object& g = list[3].as_object();
  for (const char* absent :
       {"liveness", "last_seen_age_seconds", "pending_public_key", "switch_at_ms", "removed"})
    EXPECT_FALSE(g.contains(absent)) << absent;
}

// A reinstalled host comes back under its old name with a new identity: the
// live record is the one a name means, the tombstone listed after it.
TEST_F(ApiRoutes, ALiveNodeComesBeforeTheRemovedOneOfItsName) {
  NodeSnapshot old = node("beta");
  old.identity = "b2xkIGlkZW50aXR5";
  old.liveness = "removed";
  old.removed = true;
  old.removed_by = "alpha";
  NodeSnapshot fresh = node("beta");
  fresh.liveness = "alive";
  cluster_.records = {old, fresh};
  json::array list = json_of(call("GET", "/v1/nodes")).at("nodes").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].at("liveness"), "alive");
  EXPECT_EQ(list[1].at("liveness"), "removed");
  EXPECT_EQ(json_of(call("GET", "/v1/nodes/beta")).at("liveness"), "alive");
  // Only the tombstone left: it is what the name shows.
  cluster_.records = {old};
  EXPECT_EQ(json_of(call("GET", "/v1/nodes/beta")).at("liveness"), "removed");
}

TEST_F(ApiRoutes, RemoveANodeAnswersWhatWasRemoved) {
  Response r = call("DELETE", "/v1/nodes/beta");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_of(r), (json::object{{"removed", json::object{{"name", "beta"},
                                                               {"identity", "aWRlbnRpdHk="},
                                                               {"pod_cidr", "10.244.2.0/24"},
                                                               {"removed_at_ms", 1'800'000'000'000}}}}));
  EXPECT_EQ(cluster_.removals_asked, (std::vector<std::string>{"beta"}));
}

// A base64 identity holds '/', '+' and '=': percent-encoded in the path, it
// reaches the control plane decoded, as one parameter.
TEST_F(ApiRoutes, RemoveByIdentityDecodesThePathSegment) {
  EXPECT_EQ(call("DELETE", "/v1/nodes/ab%2Fc%2Bd%3D").status, 200);
  EXPECT_EQ(cluster_.removals_asked, (std::vector<std::string>{"ab/c+d="}));
  for (const char* bad : {"/v1/nodes/ab%2", "/v1/nodes/ab%zz", "/v1/nodes/%"}) {
    Response r = call("DELETE", bad);
    expect_error(r, 400, "bad_target");
    EXPECT_EQ(r.body.find("ab"), std::string::npos) << "the target is not quoted";
  }
  EXPECT_EQ(cluster_.removals_asked.size(), 1u);
}

TEST_F(ApiRoutes, RemoveErrorsByCause) {
  cluster_.removal = fail(ENOENT, "remove node omega-secret");
  Response r = call("DELETE", "/v1/nodes/omega-secret");
  expect_error(r, 404, "node_not_found");
  EXPECT_EQ(r.body.find("omega-secret"), std::string::npos) << "a path segment is never quoted";
  cluster_.removal = fail(EALREADY, "remove node beta");
  expect_error(call("DELETE", "/v1/nodes/beta"), 409, "already_removed");
  cluster_.removal = fail(EAGAIN, "remove node beta");
  r = call("DELETE", "/v1/nodes/beta");
  expect_error(r, 503, "not_a_member");
  EXPECT_NE(r.body.find("not a member of the cluster yet"), std::string::npos) << r.body;
  cluster_.snapshot->removed = true;
  r = call("DELETE", "/v1/nodes/beta");
  expect_error(r, 503, "not_a_member");
  EXPECT_NE(r.body.find("was removed from the cluster"), std::string::npos) << r.body;
  cluster_.removal = fail(ENOTCONN, "etcd: no leader at beta-secret");
  r = call("DELETE", "/v1/nodes/beta");
  expect_error(r, 503, "datastore_unavailable");
  EXPECT_EQ(r.body.find("beta-secret"), std::string::npos) << r.body;
  cluster_.removal = fail(EIO, "remove node beta-secret");
  r = call("DELETE", "/v1/nodes/beta-secret");
  expect_error(r, 500, "internal");
  EXPECT_EQ(r.body.find("beta-secret"), std::string::npos) << "the control plane's text is not sent";
}

TEST_F(ApiRoutes, RotateTheKeyTakesNoBodyOrAnEmptyObject) {
  for (const char* body : {"", "{}", " { } "}) {
    Response r = call("POST", "/v1/key/rotate", body);
    ASSERT_EQ(r.status, 202) << body << r.body;
    EXPECT_EQ(json_of(r), (json::object{{"previous_public_key", "b2xkIGtleQ=="},
                                        {"public_key", "bmV3IGtleQ=="},
                                        {"switch_at_ms", 1'800'000'005'000}}));
  }
  EXPECT_EQ(cluster_.rotations_asked, 3);
  // Anything else is refused, and nothing starts.
  expect_error(call("POST", "/v1/key/rotate", R"({"at": 5})"), 400, "unknown_field");
  Response pasted = call("POST", "/v1/key/rotate", R"({"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=": 1})");
  expect_error(pasted, 400, "unknown_field");
  EXPECT_EQ(pasted.body.find("HIgo9x"), std::string::npos) << "a field name is not quoted";
  expect_error(call("POST", "/v1/key/rotate", "[]"), 400, "not_an_object");
  expect_error(call("POST", "/v1/key/rotate", "{"), 400, "bad_json");
  expect_error(call("POST", "/v1/key/rotate", "null"), 400, "not_an_object");
  EXPECT_EQ(cluster_.rotations_asked, 3);
}

TEST_F(ApiRoutes, RotateErrorsByCause) {
  cluster_.rotation = fail(EBUSY, "rotate the key");
  expect_error(call("POST", "/v1/key/rotate"), 409, "rotation_in_progress");
  cluster_.rotation = fail(EAGAIN, "rotate the key");
  expect_error(call("POST", "/v1/key/rotate"), 503, "not_a_member");
  cluster_.rotation = fail(EIO, "rotate the key");
  expect_error(call("POST", "/v1/key/rotate"), 500, "internal");
}

TEST_F(ApiRoutes, RemoveAndRotateInStaticModeAreNotACluster) {
  cluster_.snapshot.reset();
  expect_error(call("DELETE", "/v1/nodes/beta"), 409, "not_a_cluster");
  expect_error(call("POST", "/v1/key/rotate"), 409, "not_a_cluster");
  Router no_source = make_router({.status = &status_, .tokens = &repo_});
  expect_error(no_source.handle({"DELETE", "/v1/nodes/beta", {}, ""}), 409, "not_a_cluster");
  expect_error(no_source.handle({"POST", "/v1/key/rotate", {}, ""}), 409, "not_a_cluster");
  EXPECT_TRUE(cluster_.removals_asked.empty());
  EXPECT_EQ(cluster_.rotations_asked, 0);
}

TEST_F(ApiRoutes, StatusCarriesTheClusterItsTableHashAndThisNodesRemoval) {
  cluster_.snapshot->table_hash = "9f86d081884c7d65";
  json::object o = json_of(call("GET", "/v1/status"));
  EXPECT_EQ(o.at("cluster"), (json::value{{"id", "c0ffee"},
                                          {"cidr", "10.244.0.0/16"},
                                          {"node_prefix_length", 24},
                                          {"join_target", "192.0.2.1:51821"},
                                          {"settled", true},
                                          {"table_hash", "9f86d081884c7d65"}}));
  cluster_.snapshot->removed = true;
  cluster_.snapshot->removed_by = "beta";
  cluster_.snapshot->removed_at_ms = 1'800'000'001'000;
  cluster_.snapshot->removal_reason = "decommissioned";
  o = json_of(call("GET", "/v1/status"));
  EXPECT_EQ(o.at("cluster").at("removed"),
            (json::value{{"by", "beta"}, {"at_ms", 1'800'000'001'000}, {"reason", "decommissioned"}}));
  cluster_.snapshot->removal_reason.clear();
  cluster_.snapshot->join_target.clear();
  cluster_.snapshot->table_hash.clear();
  o = json_of(call("GET", "/v1/status"));
  EXPECT_FALSE(o.at("cluster").at("removed").as_object().contains("reason"));
  EXPECT_TRUE(o.at("cluster").at("join_target").is_null());
  EXPECT_FALSE(o.at("cluster").as_object().contains("table_hash"));
  cluster_.snapshot.reset();
  EXPECT_TRUE(json_of(call("GET", "/v1/status")).at("cluster").is_null());
  Router no_source = make_router({.status = &status_, .tokens = &repo_});
  EXPECT_TRUE(json_of(no_source.handle({"GET", "/v1/status", {}, ""})).at("cluster").is_null());
}

TEST_F(ApiRoutes, NodesInStaticModeAreAnEmptyTable) {
  Router no_source = make_router({.status = &status_, .tokens = &repo_});
  Response r = no_source.handle({"GET", "/v1/nodes", {}, ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"nodes":[]})");
  EXPECT_EQ(no_source.handle({"GET", "/v1/nodes/alpha", {}, ""}).status, 404);
}

TEST_F(ApiRoutes, EventsAfterACursorInPagesOfLimit) {
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(events_.append(now_ + i, "node-joined", "n" + std::to_string(i), "joined"));
  json::object o = json_of(call("GET", "/v1/events"));
  ASSERT_EQ(o.at("events").as_array().size(), 5u);
  EXPECT_EQ(o.at("events").as_array()[0],
            (json::value{{"id", 1}, {"at", now_ + 1}, {"kind", "node-joined"}, {"node", "n1"},
                         {"message", "joined"}}));
  EXPECT_EQ(o.at("next"), 5);
  o = json_of(call("GET", "/v1/events?since=2&limit=2"));
  ASSERT_EQ(o.at("events").as_array().size(), 2u);
  EXPECT_EQ(o.at("events").as_array()[0].at("id"), 3);
  EXPECT_EQ(o.at("next"), 4);
  o = json_of(call("GET", "/v1/events?since=5"));
  EXPECT_TRUE(o.at("events").as_array().empty());
  EXPECT_EQ(o.at("next"), 5) << "with nothing newer the cursor stays";
}

TEST_F(ApiRoutes, EventsRefuseBadQueries) {
  for (const char* q : {"since=-1", "since=x", "limit=0", "limit=1001", "wait=61", "wait=1.5",
                        "since=1&since=2", "since="}) {
    SCOPED_TRACE(q);
    expect_error(call("GET", std::string("/v1/events?") + q), 400, "invalid_value");
  }
  expect_error(call("GET", "/v1/events?follow=1"), 400, "unknown_parameter");
}

TEST_F(ApiRoutes, EventsWithWaitArePendingUntilAnEventArrives) {
  Reply first = router_.dispatch({"GET", "/v1/events?since=0&wait=30", {}, ""});
  ASSERT_TRUE(std::holds_alternative<Pending>(first));
  const Pending& p = std::get<Pending>(first);
  EXPECT_EQ(p.max_wait, std::chrono::seconds(30));
  EXPECT_FALSE(Router::poll(p, false)) << "nothing yet";
  ASSERT_TRUE(events_.append(now_, "node-removed", "n9", "removed by an operator"));
  auto r = Router::poll(p, false);
  ASSERT_TRUE(r);
  json::object o = json_of(*r);
  ASSERT_EQ(o.at("events").as_array().size(), 1u);
  EXPECT_EQ(o.at("next"), 1);

  // The wait over with nothing newer: an empty page with the cursor unchanged.
  Reply later = router_.dispatch({"GET", "/v1/events?since=1&wait=1", {}, ""});
  ASSERT_TRUE(std::holds_alternative<Pending>(later));
  auto last = Router::poll(std::get<Pending>(later), true);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->body, R"({"events":[],"next":1})");
  // Something already there: answered at once.
  EXPECT_TRUE(std::holds_alternative<Response>(
      router_.dispatch({"GET", "/v1/events?since=0&wait=30", {}, ""})));
}

TEST_F(ApiRoutes, WithoutAnEventStoreEventsAreEmptyAndNeverHeld) {
  Router no_store = make_router({.status = &status_, .tokens = &repo_});
  Reply r = no_store.dispatch({"GET", "/v1/events?since=4&wait=30", {}, ""});
  ASSERT_TRUE(std::holds_alternative<Response>(r));
  EXPECT_EQ(std::get<Response>(r).body, R"({"events":[],"next":4})");
}

TEST_F(ApiRoutes, EventsStoreFailureIs500) {
  db_.sql().exec("DROP TABLE events");
  expect_error(call("GET", "/v1/events"), 500, "store_error");
}

}  // namespace
}  // namespace meshd::api
