// The etcd gateway codec against answers captured from a real etcd 3.4.23
// (captures/, see captures/README.md for how they were made), and the
// request bodies it writes.
#include "meshd/datastore/etcd_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace meshd::datastore {
namespace {

using namespace std::chrono_literals;

std::string capture(const std::string& name) {
  std::ifstream in(std::string(MESHD_SOURCE_DIR) + "/tests/unit/datastore/captures/" + name,
                   std::ios::binary);
  if (!in) throw std::runtime_error("missing capture " + name);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

boost::json::object obj(const std::string& body) { return boost::json::parse(body).as_object(); }

TEST(EtcdBase64, RoundTripsEveryLengthAndIsStrict) {
  std::string bytes;
  for (int n = 0; n < 70; ++n) {
    std::string out;
    ASSERT_TRUE(base64_decode_bytes(base64_encode_bytes(bytes), out)) << n;
    EXPECT_EQ(out, bytes);
    bytes += static_cast<char>(n * 37 + 200);
  }
  EXPECT_EQ(base64_encode_bytes("/meshd/"), "L21lc2hkLw==");
  std::string out;
  EXPECT_FALSE(base64_decode_bytes("L21lc2hkLw=", out));   // length
  EXPECT_FALSE(base64_decode_bytes("L21lc2hkLx==", out));  // unused bits set
  EXPECT_FALSE(base64_decode_bytes("L2=lc2hkLw==", out));  // '=' inside
  EXPECT_FALSE(base64_decode_bytes("L21lc2hk-w==", out));  // URL alphabet
  EXPECT_FALSE(base64_decode_bytes("L21lc2hkL===", out));
  EXPECT_TRUE(out.empty());
}

TEST(EtcdPrefixEnd, IncrementsTheLastByteBelow0xff) {
  EXPECT_EQ(prefix_end("/meshd/"), "/meshd0");
  EXPECT_EQ(prefix_end(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff", 1)), std::string(1, '\0'));
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(EtcdJsonRequests, EncodeBase64KeysAndInt64AsStrings) {
  auto r = obj(encode_range_request({"/meshd/", "/meshd0", 7, 100, true}));
  EXPECT_EQ(r["key"], "L21lc2hkLw==");
  EXPECT_EQ(r["range_end"], "L21lc2hkMA==");
  EXPECT_EQ(r["revision"], "7");
  EXPECT_EQ(r["limit"], "100");
  EXPECT_EQ(r["keys_only"], true);
  // Zero values are left out, as etcd itself writes them.
  EXPECT_EQ(obj(encode_range_request({"k"})).size(), 1u);

  auto p = obj(encode_put_request("k", std::string("\0\xff", 2), 42));
  EXPECT_EQ(p["value"], "AP8=");
  EXPECT_EQ(p["lease"], "42");
  EXPECT_FALSE(obj(encode_put_request("k", "", 0)).contains("lease"));

  // Upper-case TTL: etcd ignores "ttl" and grants its 2 s minimum (captured:
  // lease_grant_lowercase_ttl.json).
  EXPECT_EQ(obj(encode_lease_grant_request(30s))["TTL"], "30");
  EXPECT_EQ(obj(encode_lease_keepalive_request(-5))["ID"], "-5");
  EXPECT_EQ(obj(encode_compact_request(9))["revision"], "9");

  auto w = obj(encode_watch_create_request("/p/", "/p0", 12, true, true));
  auto& c = w["create_request"].as_object();
  EXPECT_EQ(c["start_revision"], "12");
  EXPECT_EQ(c["prev_kv"], true);
  EXPECT_EQ(c["progress_notify"], true);
  EXPECT_FALSE(obj(encode_watch_create_request("k", "", 0, false, false))["create_request"]
                   .as_object()
                   .contains("start_revision"));
}

TEST(EtcdJsonRequests, EncodeTxnAsTheGatewayReadsIt) {
  Txn t;
  t.compare.push_back({"/s/a", Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, ""});
  t.compare.push_back({"/s/b", Compare::Target::kValue, Compare::Result::kNotEqual, 0, "v"});
  t.compare.push_back({"/s/c", Compare::Target::kModRevision, Compare::Result::kLess, 5, ""});
  t.compare.push_back({"/s/d", Compare::Target::kVersion, Compare::Result::kGreater, 2, ""});
  t.success.push_back({RequestOp::Kind::kPut, "/s/a", "x", 3, ""});
  t.failure.push_back({RequestOp::Kind::kRange, "/s/", "", 0, "/s0"});
  t.failure.push_back({RequestOp::Kind::kDelete, "/s/z", "", 0, ""});
  auto o = obj(encode_txn_request(t));
  auto& cmp = o["compare"].as_array();
  ASSERT_EQ(cmp.size(), 4u);
  EXPECT_EQ(cmp[0].as_object().at("target"), "CREATE");
  EXPECT_EQ(cmp[0].as_object().at("result"), "EQUAL");
  EXPECT_EQ(cmp[0].as_object().at("create_revision"), "0");
  EXPECT_EQ(cmp[1].as_object().at("target"), "VALUE");
  EXPECT_EQ(cmp[1].as_object().at("result"), "NOT_EQUAL");
  EXPECT_EQ(cmp[1].as_object().at("value"), "dg==");
  EXPECT_EQ(cmp[2].as_object().at("mod_revision"), "5");
  EXPECT_EQ(cmp[2].as_object().at("result"), "LESS");
  EXPECT_EQ(cmp[3].as_object().at("version"), "2");
  auto& put = o["success"].as_array()[0].as_object().at("request_put").as_object();
  EXPECT_EQ(put.at("lease"), "3");
  auto& fail = o["failure"].as_array();
  EXPECT_EQ(fail[0].as_object().at("request_range").as_object().at("range_end"), "L3Mw");
  EXPECT_TRUE(fail[1].as_object().contains("request_delete_range"));
  EXPECT_EQ(encode_txn_request({}), "{}");
}

TEST(EtcdJsonCaptured, EmptyRangeHasNoKvs) {
  auto r = parse_range_response(capture("range_empty.json"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->revision, 1);
  EXPECT_TRUE(r->kvs.empty());
  EXPECT_EQ(r->count, 0);
  EXPECT_FALSE(r->more);
}

TEST(EtcdJsonCaptured, RangeWithKvsLeasesAndMore) {
  auto r = parse_range_response(capture("range_kvs.json"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->revision, 5);
  ASSERT_EQ(r->kvs.size(), 3u);
  EXPECT_EQ(r->count, 3);
  EXPECT_EQ(r->kvs[0].key, "/meshd/c1/alive/aa");
  EXPECT_EQ(r->kvs[0].value, "1764590000000");
  EXPECT_EQ(r->kvs[0].lease, 7668682598237699849);
  EXPECT_EQ(r->kvs[2], (KeyValue{"/meshd/c1/records/aa", "rec aa 2", 3, 4, 2, 0}));

  auto more = parse_range_response(capture("range_limit_more.json"));
  ASSERT_TRUE(more);
  EXPECT_TRUE(more->more);
  EXPECT_EQ(more->kvs.size(), 1u);
  EXPECT_EQ(more->count, 3);

  auto keys = parse_range_response(capture("range_keys_only.json"));
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->kvs.size(), 3u);
  EXPECT_EQ(keys->kvs[1].key, "/meshd/c1/params");
  EXPECT_TRUE(keys->kvs[1].value.empty());

  auto count = parse_range_response(capture("range_count_only.json"));
  ASSERT_TRUE(count);
  EXPECT_TRUE(count->kvs.empty());
  EXPECT_EQ(count->count, 3);
}

TEST(EtcdJsonCaptured, PutDeleteAndCompactRevisions) {
  EXPECT_EQ(parse_header_revision(capture("put_first.json")).value(), 2);
  EXPECT_EQ(parse_header_revision(capture("put_prev_kv.json")).value(), 4);
  EXPECT_EQ(parse_header_revision(capture("put_with_lease.json")).value(), 5);
  EXPECT_EQ(parse_header_revision(capture("compact.json")).value(), 8);
  auto one = parse_delete_response(capture("delete_one.json"));
  ASSERT_TRUE(one);
  EXPECT_EQ(one->revision, 7);
  EXPECT_EQ(one->deleted, 1);
  auto none = parse_delete_response(capture("delete_none.json"));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->deleted, 0);
  EXPECT_EQ(parse_delete_response(capture("delete_prefix_prev_kv.json")).value().deleted, 1);
}

TEST(EtcdJsonCaptured, SucceededTxnWithPuts) {
  auto t = parse_txn_response(capture("txn_succeeded_puts.json"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_TRUE(t->succeeded);
  EXPECT_EQ(t->revision, 6);
  ASSERT_EQ(t->responses.size(), 2u);
  EXPECT_TRUE(t->responses[0].kvs.empty());
}

TEST(EtcdJsonCaptured, FailedTxnHasNoSucceededAndItsRanges) {
  auto t = parse_txn_response(capture("txn_failed_ranges.json"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_FALSE(t->succeeded);
  ASSERT_EQ(t->responses.size(), 2u);
  ASSERT_EQ(t->responses[0].kvs.size(), 1u);
  EXPECT_EQ(t->responses[0].kvs[0].key, "/meshd/c1/subnets/10.244.1.0-24");
  EXPECT_EQ(t->responses[0].kvs[0].value, "claim-bb");
  EXPECT_EQ(t->responses[0].revision, 6);
  ASSERT_EQ(t->responses[1].kvs.size(), 2u);
  EXPECT_EQ(t->responses[1].count, 2);
}

TEST(EtcdJsonCaptured, TxnWithRangeDeleteAndEmptyRange) {
  auto t = parse_txn_response(capture("txn_success_range_delete.json"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_TRUE(t->succeeded);
  ASSERT_EQ(t->responses.size(), 3u);
  EXPECT_EQ(t->responses[0].kvs.size(), 1u);
  EXPECT_TRUE(t->responses[1].kvs.empty());
  EXPECT_TRUE(t->responses[2].kvs.empty());
  auto empty = parse_txn_response(capture("txn_empty.json"));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->succeeded);
  EXPECT_TRUE(empty->responses.empty());
}

TEST(EtcdJsonCaptured, LeaseGrantAndKeepalive) {
  auto g = parse_lease_grant_response(capture("lease_grant.json"));
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->id, 7668682598237699849);
  EXPECT_EQ(g->ttl, 30s);
  // What "ttl" in lower case gets: etcd's minimum, not the 30 asked for.
  EXPECT_EQ(parse_lease_grant_response(capture("lease_grant_lowercase_ttl.json")).value().ttl, 2s);

  auto k = parse_lease_keepalive_response(capture("lease_keepalive.json"));
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ(*k, 30s);
  auto gone = parse_lease_keepalive_response(capture("lease_keepalive_unknown.json"));
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().is(ENOENT)) << gone.error().message;
}

TEST(EtcdJsonCaptured, AuthenticateToken) {
  auto t = parse_authenticate_response(capture("auth_authenticate.json"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(*t, "cWoANOAdTNUeqLmX.35");
  EXPECT_FALSE(parse_authenticate_response(R"({"header":{},"token":"a b"})"));
  EXPECT_FALSE(parse_authenticate_response(R"({"header":{}})"));
}

TEST(EtcdJsonCaptured, ErrorBodiesMapToErrno) {
  struct Case {
    const char* file;
    int status;
    int grpc;
    int err;
  };
  const Case cases[] = {
      {"error_malformed_json.json", 400, 3, EINVAL},
      {"error_bad_base64.json", 400, 3, EINVAL},
      {"error_compact_future.json", 400, 11, ERANGE},
      {"error_range_compacted.json", 400, 11, ERANGE},
      {"error_txn_duplicate_key.json", 400, 3, EINVAL},
      {"error_put_unknown_lease.json", 404, 5, ENOENT},
      {"error_empty_key.json", 400, 3, EINVAL},
      {"auth_authenticate_disabled.json", 412, 9, EINVAL},
      {"error_auth_wrong_password.json", 400, 3, EACCES},
      {"error_auth_no_token.json", 400, 3, EACCES},
      {"error_auth_invalid_token.json", 401, 16, EACCES},
      {"error_auth_permission_denied.json", 403, 7, EACCES},
  };
  for (const auto& c : cases) {
    auto e = parse_error_body(capture(c.file));
    ASSERT_TRUE(e) << c.file;
    EXPECT_EQ(e->grpc_code, c.grpc) << c.file;
    EXPECT_FALSE(e->message.empty()) << c.file;
    EXPECT_EQ(errno_for_answer(c.status, e), c.err) << c.file << ": " << e->message;
  }
  EXPECT_TRUE(is_invalid_token(parse_error_body(capture("error_auth_invalid_token.json"))));
  EXPECT_FALSE(is_invalid_token(parse_error_body(capture("error_auth_permission_denied.json"))));
  // The gateway's plain-text 404 for a path it lacks is no error body.
  EXPECT_FALSE(parse_error_body(capture("error_not_found_path.json")));
  EXPECT_EQ(errno_for_answer(404, std::nullopt), EINVAL);
  EXPECT_FALSE(parse_error_body(capture("range_kvs.json")));
}

TEST(EtcdJsonErrors, NoLeaderIsAgainAndOnlyRefusalsAreNotApplied) {
  // The shape of a 503 without a leader (etcd's ErrGRPCNoLeader, code 14).
  auto no_leader = parse_error_body(
      R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})");
  ASSERT_TRUE(no_leader);
  EXPECT_EQ(errno_for_answer(503, no_leader), EAGAIN);
  EXPECT_TRUE(write_not_applied(no_leader));
  // Also Unavailable, but the proposal may be applied later.
  auto timed_out = parse_error_body(
      R"({"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14})");
  EXPECT_EQ(errno_for_answer(503, timed_out), EAGAIN);
  EXPECT_FALSE(write_not_applied(timed_out));
  EXPECT_FALSE(write_not_applied(std::nullopt));
  EXPECT_EQ(errno_for_answer(504, std::nullopt), ETIMEDOUT);
  EXPECT_EQ(errno_for_answer(503, std::nullopt), EAGAIN);
  // The nested form of newer gateways, and a message made printable.
  auto nested = parse_error_body(R"({"error":{"grpc_code":16,"message":"bad\u0007token"}})");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->grpc_code, 16);
  EXPECT_EQ(nested->message, "bad?token");
}

TEST(EtcdJsonCaptured, WatchStreamCreatedEventsPrevKvAndProgress) {
  auto msgs = lines(capture("watch_stream.ndjson"));
  ASSERT_EQ(msgs.size(), 7u);
  std::vector<WatchResponse> w;
  for (const auto& m : msgs) {
    auto r = parse_watch_message(m);
    ASSERT_TRUE(r) << r.error().message << " in " << m;
    w.push_back(*r);
  }
  EXPECT_TRUE(w[0].created);
  EXPECT_EQ(w[0].revision, 8);
  EXPECT_FALSE(w[0].progress_notify());

  ASSERT_EQ(w[1].events.size(), 1u);  // a create: no prev_kv
  EXPECT_EQ(w[1].events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(w[1].events[0].kv.key, "/meshd/c1/records/cc");
  EXPECT_EQ(w[1].events[0].kv.create_revision, 9);
  EXPECT_FALSE(w[1].events[0].prev);

  ASSERT_EQ(w[2].events.size(), 1u);  // an update with its previous value
  ASSERT_TRUE(w[2].events[0].prev);
  EXPECT_EQ(w[2].events[0].prev->value, "rec-cc");
  EXPECT_EQ(w[2].events[0].kv.value, "rec-cc-2");
  EXPECT_EQ(w[2].revision, 10);

  ASSERT_EQ(w[3].events.size(), 1u);  // a delete: key and mod_revision, prev_kv
  EXPECT_EQ(w[3].events[0].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(w[3].events[0].kv.mod_revision, 11);
  EXPECT_TRUE(w[3].events[0].kv.value.empty());
  ASSERT_TRUE(w[3].events[0].prev);
  EXPECT_EQ(w[3].events[0].prev->value, "rec-cc-2");

  EXPECT_EQ(w[4].events.size(), 2u);  // one txn, one message, same revision
  EXPECT_EQ(w[4].events[1].kv.mod_revision, 12);

  EXPECT_TRUE(w[5].progress_notify());
  EXPECT_EQ(w[5].revision, 12);
  EXPECT_TRUE(w[6].progress_notify());

  // How far a watcher has applied: the created message's header is etcd's
  // revision, not the watcher's; events count by their own revisions.
  EXPECT_EQ(w[0].applied_through(), 0);
  EXPECT_EQ(w[1].applied_through(), 9);
  EXPECT_EQ(w[3].applied_through(), 11);
  EXPECT_EQ(w[4].applied_through(), 12);
  EXPECT_EQ(w[5].applied_through(), 12);
}

TEST(EtcdWatchRevision, AHeaderAheadOfTheEventsIsNotApplied) {
  // A watch catching up from revision 5 while etcd is at 40: the header
  // says 40 but the watcher has seen up to 7.
  WatchResponse r;
  r.revision = 40;
  r.events.resize(2);
  r.events[0].kv.mod_revision = 6;
  r.events[1].type = WatchEvent::Type::kDelete;
  r.events[1].kv.mod_revision = 7;
  EXPECT_EQ(r.applied_through(), 7);
  WatchResponse created;
  created.created = true;
  created.revision = 40;
  EXPECT_EQ(created.applied_through(), 0);
  WatchResponse canceled;
  canceled.canceled = true;
  canceled.revision = 40;
  EXPECT_EQ(canceled.applied_through(), 0);
}

TEST(EtcdJsonCaptured, WatchFromACompactedRevisionIsCanceled) {
  auto msgs = lines(capture("watch_compacted.ndjson"));
  ASSERT_EQ(msgs.size(), 2u);
  auto created = parse_watch_message(msgs[0]);
  ASSERT_TRUE(created);
  EXPECT_TRUE(created->created);
  auto cancel = parse_watch_message(msgs[1]);
  ASSERT_TRUE(cancel) << cancel.error().message;
  EXPECT_TRUE(cancel->canceled);
  EXPECT_EQ(cancel->compact_revision, 4);
  EXPECT_EQ(cancel->revision, 0);  // this message's header has no revision
  EXPECT_FALSE(cancel->progress_notify());
}

TEST(EtcdJsonCaptured, WatchRefusalsAndErrors) {
  auto denied = parse_watch_message(lines(capture("watch_invalid_token.ndjson")).at(0));
  ASSERT_TRUE(denied) << denied.error().message;
  EXPECT_TRUE(denied->created);
  EXPECT_TRUE(denied->canceled);
  EXPECT_NE(denied->cancel_reason.find("invalid auth token"), std::string::npos);

  auto bad = parse_watch_message(lines(capture("watch_malformed_request.ndjson")).at(0));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("unexpected EOF"), std::string::npos);
}

TEST(EtcdJsonMalformed, FailWithTheFieldNamed) {
  auto expect_bad = [](const Result<RangeResult>& r, const std::string& words) {
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(EINVAL));
    EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
  };
  expect_bad(parse_range_response("not json"), "not JSON");
  expect_bad(parse_range_response("[]"), "not a JSON object");
  expect_bad(parse_range_response("{}"), "no header");
  expect_bad(parse_range_response(R"({"header":{"revision":"x"}})"), "header.revision");
  expect_bad(parse_range_response(R"({"header":{"revision":"-1"}})"), "negative");
  expect_bad(parse_range_response(R"({"header":{},"kvs":{}})"), "range.kvs");
  expect_bad(parse_range_response(R"({"header":{},"kvs":[{"key":"!"}]})"), "key is not base64");
  expect_bad(parse_range_response(R"({"header":{},"kvs":[{"version":1.5}]})"), "version");
  expect_bad(parse_range_response(R"({"header":{},"count":"18446744073709551615"})"), "count");
  expect_bad(parse_range_response(R"({"header":{},"more":"yes"})"), "more");
  expect_bad(parse_range_response(std::string(200, '[') + std::string(200, ']')), "not JSON");
  // Numbers where the gateway writes strings are accepted.
  auto numbers = parse_range_response(R"({"header":{"revision":12},"count":1,"kvs":[{"key":"YQ==","mod_revision":3}]})");
  ASSERT_TRUE(numbers);
  EXPECT_EQ(numbers->revision, 12);
  EXPECT_EQ(numbers->kvs.at(0).mod_revision, 3);

  EXPECT_FALSE(parse_txn_response(R"({"header":{},"responses":[{}]})"));
  EXPECT_FALSE(parse_txn_response(R"({"header":{},"responses":[{"response_other":{}}]})"));
  EXPECT_FALSE(parse_watch_message(R"({"result":{"events":[{"type":"EXPIRE","kv":{}}]}})"));
  EXPECT_FALSE(parse_watch_message(R"({"result":{"events":[{"type":"PUT"}]}})"));
  EXPECT_FALSE(parse_watch_message(R"({"other":1})"));
  EXPECT_FALSE(parse_lease_grant_response(R"({"header":{},"ID":"1","error":"lease exists"})"));
  EXPECT_FALSE(parse_lease_keepalive_response(R"({"result":{"TTL":"-3"}})"));
}

TEST(EtcdJsonMalformed, OversizedAnswersAreRefusedBeforeParsing) {
  std::string big(kMaxAnswerBytes + 1, ' ');
  auto r = parse_range_response(big);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("over the limit"), std::string::npos);
}

}  // namespace
}  // namespace meshd::datastore
