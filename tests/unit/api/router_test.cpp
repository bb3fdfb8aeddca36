// The router alone, with handlers that echo what they were given.
#include "meshd/api/router.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <stdexcept>

namespace meshd::api {
namespace {

Response text(std::string body) {
  Response r;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

Router sample_router(RouterOptions opts = {}) {
  Router r(opts);
  r.add("GET", "/v1/things", [](const Request&, const PathParams&) { return text("list"); });
  r.add("POST", "/v1/things",
        [](const Request& q, const PathParams&) { return text("made " + q.body); });
  r.add("DELETE", "/v1/things/{id}",
        [](const Request&, const PathParams& p) { return text("gone " + p.at("id")); });
  r.add("GET", "/v1/boom", [](const Request&, const PathParams&) -> Response {
    throw std::runtime_error("secret-in-exception");
  });
  return r;
}

boost::json::object error_of(const Response& r) {
  EXPECT_EQ(r.content_type, "application/json");
  auto v = boost::json::parse(r.body);
  auto& o = v.as_object();
  EXPECT_TRUE(o.at("error").is_string());
  EXPECT_TRUE(o.at("message").is_string());
  EXPECT_EQ(o.size(), 2u);
  return o;
}

TEST(ApiRouter, DispatchesByMethodAndPathWithParameters) {
  Router r = sample_router();
  EXPECT_EQ(r.handle({"GET", "/v1/things", {}, ""}).body, "list");
  EXPECT_EQ(r.handle({"GET", "/v1/things?limit=3", {}, ""}).body, "list");
  EXPECT_EQ(r.handle({"POST", "/v1/things", {}, "{}"}).body, "made {}");
  EXPECT_EQ(r.handle({"DELETE", "/v1/things/abc123", {}, ""}).body, "gone abc123");
}

TEST(ApiRouter, UnknownPathIs404WithoutQuotingTheTarget) {
  Router r = sample_router();
  for (const char* target : {"/", "/v1", "/v1/thing", "/v1/things/", "/v1//things", "/v2/things",
                             "/v1/things/a/b", "/v1/abcdef.0123456789abcdef"}) {
    Response resp = r.handle({"GET", target, {}, ""});
    EXPECT_EQ(resp.status, 404) << target;
    EXPECT_EQ(error_of(resp).at("error"), "not_found") << target;
    EXPECT_EQ(resp.body.find("0123456789abcdef"), std::string::npos);
  }
}

TEST(ApiRouter, WrongMethodIs405WithAllow) {
  Router r = sample_router();
  Response resp = r.handle({"PUT", "/v1/things", {}, ""});
  EXPECT_EQ(resp.status, 405);
  EXPECT_EQ(error_of(resp).at("error"), "method_not_allowed");
  EXPECT_EQ(resp.header("allow"), "GET, POST");
  resp = r.handle({"GET", "/v1/things/x", {}, ""});
  EXPECT_EQ(resp.status, 405);
  EXPECT_EQ(resp.header("Allow"), "DELETE");
  // Methods are case-sensitive (RFC 9110 9.1).
  EXPECT_EQ(r.handle({"get", "/v1/things", {}, ""}).status, 405);
}

TEST(ApiRouter, OversizedBodyIs413BeforeAnyHandlerRuns) {
  Router r = sample_router({.max_body_bytes = 8});
  EXPECT_EQ(r.handle({"POST", "/v1/things", {}, "12345678"}).body, "made 12345678");
  Response resp = r.handle({"POST", "/v1/things", {}, "123456789"});
  EXPECT_EQ(resp.status, 413);
  EXPECT_EQ(error_of(resp).at("error"), "body_too_large");
  // Even on a route that does not exist: the limit guards the parser, not a handler.
  EXPECT_EQ(r.handle({"POST", "/nowhere", {}, "123456789"}).status, 413);
}

TEST(ApiRouter, NonJsonBodyIs415) {
  Router r = sample_router();
  Response resp = r.handle({"POST", "/v1/things", {{"Content-Type", "text/plain"}}, "{}"});
  EXPECT_EQ(resp.status, 415);
  EXPECT_EQ(error_of(resp).at("error"), "unsupported_media_type");
  EXPECT_EQ(
      r.handle({"POST", "/v1/things", {{"content-type", "Application/JSON; charset=utf-8"}}, "{}"})
          .status,
      200);
}

TEST(ApiRouter, TargetThatIsNotAPathIs400) {
  Router r = sample_router();
  for (const char* target : {"", "v1/things", "http://example.com/v1/things", "*", "?x"}) {
    Response resp = r.handle({"GET", target, {}, ""});
    EXPECT_EQ(resp.status, 400) << target;
    EXPECT_EQ(error_of(resp).at("error"), "bad_target");
  }
}

// Parameters are percent-decoded after the path is split: %2F is a slash in
// one parameter, not a separator; literal segments are compared as sent.
TEST(ApiRouter, ParametersArePercentDecodedOnePerSegment) {
  Router r = sample_router();
  EXPECT_EQ(r.handle({"DELETE", "/v1/things/a%2Fb%2bc%3D", {}, ""}).body, "gone a/b+c=");
  EXPECT_EQ(r.handle({"DELETE", "/v1/things/caf%C3%A9", {}, ""}).body, "gone caf\xc3\xa9");
  EXPECT_EQ(r.handle({"DELETE", "/v1/things/%25", {}, ""}).body, "gone %");
  EXPECT_EQ(r.handle({"GET", "/v1/th%69ngs", {}, ""}).status, 404);
  for (const char* target : {"/v1/things/%", "/v1/things/a%2", "/v1/things/%g0", "/v1/%zz/x"}) {
    Response resp = r.handle({"DELETE", target, {}, ""});
    EXPECT_EQ(resp.status, 400) << target;
    EXPECT_EQ(error_of(resp).at("error"), "bad_target") << target;
  }
  // A '%' in the query is the route's business, not the router's.
  EXPECT_EQ(r.handle({"GET", "/v1/things?x=%zz", {}, ""}).body, "list");
}

TEST(ApiRouter, HandlerExceptionIs500WithoutItsText) {
  Router r = sample_router();
  Response resp = r.handle({"GET", "/v1/boom", {}, ""});
  EXPECT_EQ(resp.status, 500);
  EXPECT_EQ(error_of(resp).at("error"), "internal");
  EXPECT_EQ(resp.body.find("secret-in-exception"), std::string::npos);
}

TEST(ApiRouter, RegisteringARouteTwiceIsRefused) {
  Router r = sample_router();
  EXPECT_THROW(r.add("GET", "/v1/things", {}), std::logic_error);
  EXPECT_THROW(r.add("GET", "v1/other", {}), std::logic_error);
}

}  // namespace
}  // namespace meshd::api
