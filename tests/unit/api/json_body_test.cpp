#include "meshd/api/json_body.h"

#include <gtest/gtest.h>

namespace meshd::api {
namespace {

TEST(ApiJsonBody, EmptyBodyIsAnEmptyObject) {
  for (const char* body : {"", "  \r\n\t"}) {
    auto o = parse_object_body(body);
    ASSERT_TRUE(o) << body;
    EXPECT_TRUE(o->empty());
  }
}

TEST(ApiJsonBody, BadJsonAndNonObjectsAreRefused) {
  for (const char* body :
       {"{", "{\"a\":}", "nul", "{\"a\":1}x", "{'a':1}", "{\"a\":1,}", "/* c */ {}"}) {
    auto o = parse_object_body(body);
    ASSERT_FALSE(o) << body;
    EXPECT_EQ(o.error().status, 400);
    EXPECT_EQ(o.error().code, "bad_json") << body;
  }
  for (const char* body : {"[]", "1", "\"s\"", "null", "true"}) {
    auto o = parse_object_body(body);
    ASSERT_FALSE(o) << body;
    EXPECT_EQ(o.error().code, "not_an_object") << body;
  }
}

TEST(ApiJsonBody, NestingBeyondTheLimitIsBadJson) {
  std::string deep =
      "{\"a\":" + std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']') + "}";
  auto o = parse_object_body(deep);
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error().code, "bad_json");
}

TEST(ApiJsonBody, UnknownFieldIsNamed) {
  auto o = parse_object_body(R"({"ttl_seconds": 5, "usses": 1})");
  ASSERT_TRUE(o);
  EXPECT_TRUE(only_fields(*o, {"ttl_seconds", "usses"}));
  auto r = only_fields(*o, {"ttl_seconds", "uses"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "unknown_field");
  EXPECT_NE(r.error().message.find("\"usses\""), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("ttl_seconds, uses"), std::string::npos);
}

TEST(ApiJsonBody, UnknownFieldThatCouldHoldASecretIsNotQuoted) {
  for (const char* key : {"abcdef.0123456789abcdef", "0123456789abcdef", "x\\u001b[2J",
                          "a-very-long-field-name-of-more-than-32-bytes"}) {
    auto o = parse_object_body(std::string("{\"") + key + "\": 1}");
    ASSERT_TRUE(o) << key;
    auto r = only_fields(*o, {"uses"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "unknown_field");
    EXPECT_EQ(r.error().message, "the body has an unknown field; this route takes: uses");
  }
}

TEST(ApiJsonBody, IntegersMustBeIntegersThatFit) {
  auto o = parse_object_body(
      R"({"i": -3, "n": null, "f": 3.0, "s": "3", "b": true, "big": 9223372036854775808})");
  ASSERT_TRUE(o);
  EXPECT_EQ(optional_int(*o, "i").value(), -3);
  EXPECT_EQ(optional_int(*o, "n").value(), std::nullopt);
  EXPECT_EQ(optional_int(*o, "absent").value(), std::nullopt);
  for (const char* f : {"f", "s", "b"}) {
    auto r = optional_int(*o, f);
    ASSERT_FALSE(r) << f;
    EXPECT_EQ(r.error().code, "wrong_type") << f;
  }
  auto big = optional_int(*o, "big");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, "invalid_value");
}

TEST(ApiJsonBody, StringsMustBeStrings) {
  auto o = parse_object_body(R"({"s": "x", "i": 1, "a": []})");
  ASSERT_TRUE(o);
  EXPECT_EQ(optional_string(*o, "s").value(), "x");
  EXPECT_EQ(optional_string(*o, "absent").value(), std::nullopt);
  EXPECT_EQ(optional_string(*o, "i").error().code, "wrong_type");
  EXPECT_EQ(optional_string(*o, "a").error().code, "wrong_type");
}

}  // namespace
}  // namespace meshd::api
