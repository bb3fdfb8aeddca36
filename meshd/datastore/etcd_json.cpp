#include "meshd/datastore/etcd_json.h"

#include <boost/json.hpp>

#include <array>
#include <charconv>
#include <limits>

namespace meshd::datastore {

namespace json = boost::json;

std::string prefix_end(const std::string& prefix) {
  // etcd's clientv3.GetPrefixRangeEnd: drop trailing 0xff bytes, increment
  // the last other one; a prefix of only 0xff bytes (or none) has no end
  // above it, and "\0" tells etcd "every key >= key".
  std::string end = prefix;
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

// ---- base64 ----

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr auto kDecode = make_decode_table();

}  // namespace

std::string base64_encode_bytes(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    unsigned v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    unsigned v = b(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    unsigned v = (b(i) << 16) | (b(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool base64_decode_bytes(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 != 0) return false;
  if (text.empty()) return true;
  std::size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  out.reserve(text.size() / 4 * 3);
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; i += 4) {
    const bool last = i + 4 == n;
    std::int8_t c[4];
    for (int k = 0; k < 4; ++k) {
      const bool padded = last && k >= 4 - static_cast<int>(pad);
      c[k] = padded ? 0 : kDecode[static_cast<unsigned char>(text[i + k])];
      if (c[k] < 0) return out.clear(), false;  // '=' in the middle lands here too
    }
    unsigned v = (unsigned(c[0]) << 18) | (unsigned(c[1]) << 12) | (unsigned(c[2]) << 6) | unsigned(c[3]);
    out += static_cast<char>((v >> 16) & 0xff);
    if (last && pad == 2) {
      if (v & 0xffff) return out.clear(), false;  // non-zero unused bits: not canonical
      break;
    }
    out += static_cast<char>((v >> 8) & 0xff);
    if (last && pad == 1) {
      if (v & 0xff) return out.clear(), false;
      break;
    }
    out += static_cast<char>(v & 0xff);
  }
  return true;
}

// ---- request bodies ----

namespace {

std::string i64(std::int64_t v) { return std::to_string(v); }

std::string to_text(const json::object& o) { return json::serialize(o); }

json::object key_range(const std::string& key, const std::string& range_end) {
  json::object o;
  o["key"] = base64_encode_bytes(key);
  if (!range_end.empty()) o["range_end"] = base64_encode_bytes(range_end);
  return o;
}

const char* target_name(Compare::Target t) {
  switch (t) {
    case Compare::Target::kCreateRevision: return "CREATE";
    case Compare::Target::kModRevision: return "MOD";
    case Compare::Target::kVersion: return "VERSION";
    case Compare::Target::kValue: return "VALUE";
  }
  return "CREATE";
}

const char* result_name(Compare::Result r) {
  switch (r) {
    case Compare::Result::kEqual: return "EQUAL";
    case Compare::Result::kNotEqual: return "NOT_EQUAL";
    case Compare::Result::kGreater: return "GREATER";
    case Compare::Result::kLess: return "LESS";
  }
  return "EQUAL";
}

json::object encode_compare(const Compare& c) {
  json::object o;
  o["key"] = base64_encode_bytes(c.key);
  o["target"] = target_name(c.target);
  o["result"] = result_name(c.result);
  switch (c.target) {
    case Compare::Target::kCreateRevision: o["create_revision"] = i64(c.number); break;
    case Compare::Target::kModRevision: o["mod_revision"] = i64(c.number); break;
    case Compare::Target::kVersion: o["version"] = i64(c.number); break;
    case Compare::Target::kValue: o["value"] = base64_encode_bytes(c.value); break;
  }
  return o;
}

json::object encode_op(const RequestOp& op) {
  json::object o;
  switch (op.kind) {
    case RequestOp::Kind::kPut: {
      json::object put;
      put["key"] = base64_encode_bytes(op.key);
      put["value"] = base64_encode_bytes(op.value);
      if (op.lease != 0) put["lease"] = i64(op.lease);
      o["request_put"] = std::move(put);
      break;
    }
    case RequestOp::Kind::kRange: o["request_range"] = key_range(op.key, op.range_end); break;
    case RequestOp::Kind::kDelete:
      o["request_delete_range"] = key_range(op.key, op.range_end);
      break;
  }
  return o;
}

}  // namespace

std::string encode_range_request(const RangeRequest& r) {
  json::object o = key_range(r.key, r.range_end);
  if (r.revision != 0) o["revision"] = i64(r.revision);
  if (r.limit != 0) o["limit"] = i64(r.limit);
  if (r.keys_only) o["keys_only"] = true;
  return to_text(o);
}

std::string encode_put_request(const std::string& key, const std::string& value, LeaseId lease) {
  json::object o;
  o["key"] = base64_encode_bytes(key);
  o["value"] = base64_encode_bytes(value);
  if (lease != 0) o["lease"] = i64(lease);
  return to_text(o);
}

std::string encode_delete_request(const std::string& key, const std::string& range_end) {
  return to_text(key_range(key, range_end));
}

std::string encode_txn_request(const Txn& t) {
  json::object o;
  auto list = [](const auto& items, auto encode) {
    json::array a;
    a.reserve(items.size());
    for (const auto& i : items) a.push_back(encode(i));
    return a;
  };
  if (!t.compare.empty()) o["compare"] = list(t.compare, encode_compare);
  if (!t.success.empty()) o["success"] = list(t.success, encode_op);
  if (!t.failure.empty()) o["failure"] = list(t.failure, encode_op);
  return to_text(o);
}

std::string encode_lease_grant_request(std::chrono::seconds ttl) {
  json::object o;
  o["TTL"] = i64(ttl.count());
  return to_text(o);
}

std::string encode_lease_keepalive_request(LeaseId id) {
  json::object o;
  o["ID"] = i64(id);
  return to_text(o);
}

std::string encode_lease_revoke_request(LeaseId id) {
  json::object o;
  o["ID"] = i64(id);
  return to_text(o);
}

std::string encode_compact_request(Revision rev) {
  json::object o;
  o["revision"] = i64(rev);
  // Physical: the call returns once the old revisions are gone, so a test
  // that compacts and then watches from an old revision sees the cancel.
  o["physical"] = true;
  return to_text(o);
}

std::string encode_authenticate_request(const std::string& name, const std::string& password) {
  json::object o;
  o["name"] = name;
  o["password"] = password;
  return to_text(o);
}

std::string encode_watch_create_request(const std::string& key, const std::string& range_end,
                                        Revision start_revision, bool prev_kv,
                                        bool progress_notify) {
  json::object c = key_range(key, range_end);
  if (start_revision != 0) c["start_revision"] = i64(start_revision);
  if (prev_kv) c["prev_kv"] = true;
  if (progress_notify) c["progress_notify"] = true;
  json::object o;
  o["create_request"] = std::move(c);
  return to_text(o);
}

// ---- parsing ----

namespace {

// Printable ASCII only, at most `max` bytes: gateway text ends up in logs.
std::string printable(std::string_view s, std::size_t max = 300) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

Error bad(std::string what) { return Error::invalid("malformed etcd answer: " + std::move(what)); }

Result<json::value> parse_json(std::string_view body, std::size_t limit) {
  if (body.size() > limit)
    return bad("it is " + std::to_string(body.size()) + " bytes, over the limit of " +
               std::to_string(limit));
  boost::system::error_code ec;
  json::value v;
  try {
    json::parse_options opt;
    opt.max_depth = 32;  // the deepest answer (a txn's range kvs) is 6 levels
    v = json::parse(body, ec, {}, opt);
  } catch (const std::exception&) {  // bad_alloc on absurd input: refuse, do not crash
    return bad("not JSON within the memory allowed");
  }
  if (ec) return bad("not JSON (" + ec.message() + ")");
  return v;
}

Result<const json::object*> as_object(const json::value& v, std::string_view what) {
  if (!v.is_object()) return bad(std::string(what) + " is not a JSON object");
  return &v.as_object();
}

// An optional object member: nullptr when absent (or null).
Result<const json::object*> member_object(const json::object& o, std::string_view name,
                                          std::string_view where) {
  const json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return static_cast<const json::object*>(nullptr);
  if (!v->is_object()) return bad(std::string(where) + "." + std::string(name) + " is not an object");
  return &v->as_object();
}

Result<const json::array*> member_array(const json::object& o, std::string_view name,
                                        std::string_view where) {
  const json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return static_cast<const json::array*>(nullptr);
  if (!v->is_array()) return bad(std::string(where) + "." + std::string(name) + " is not a list");
  return &v->as_array();
}

// int64: a decimal string (how the gateway writes them) or a JSON integer;
// absent = 0 (the gateway omits zeros).
Result<std::int64_t> member_int(const json::object& o, std::string_view name,
                                std::string_view where) {
  const json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return std::int64_t{0};
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) {
    if (v->as_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return bad(std::string(where) + "." + std::string(name) + " is out of the int64 range");
    return static_cast<std::int64_t>(v->as_uint64());
  }
  if (v->is_string()) {
    const auto& s = v->as_string();
    std::int64_t out = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return out;
  }
  return bad(std::string(where) + "." + std::string(name) + " is not an int64");
}

Result<bool> member_bool(const json::object& o, std::string_view name, std::string_view where) {
  const json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return false;
  if (!v->is_bool()) return bad(std::string(where) + "." + std::string(name) + " is not a boolean");
  return v->as_bool();
}

Result<std::string> member_bytes(const json::object& o, std::string_view name,
                                 std::string_view where) {
  const json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return std::string();
  std::string out;
  if (!v->is_string() || !base64_decode_bytes(v->as_string(), out))
    return bad(std::string(where) + "." + std::string(name) + " is not base64");
  return out;
}

Result<std::string> member_text(const json::object& o, std::string_view name,
                                std::string_view where) {
  const json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return std::string();
  if (!v->is_string()) return bad(std::string(where) + "." + std::string(name) + " is not a string");
  return std::string(v->as_string());
}

#define MESHD_TRY(var, expr)            \
  auto var##_r = (expr);                \
  if (!var##_r) return var##_r.error(); \
  auto var = std::move(*var##_r)

Result<KeyValue> parse_kv(const json::value& v, std::string_view where) {
  MESHD_TRY(o, as_object(v, where));
  KeyValue kv;
  MESHD_TRY(key, member_bytes(*o, "key", where));
  MESHD_TRY(value, member_bytes(*o, "value", where));
  MESHD_TRY(create, member_int(*o, "create_revision", where));
  MESHD_TRY(mod, member_int(*o, "mod_revision", where));
  MESHD_TRY(version, member_int(*o, "version", where));
  MESHD_TRY(lease, member_int(*o, "lease", where));
  kv.key = std::move(key);
  kv.value = std::move(value);
  kv.create_revision = create;
  kv.mod_revision = mod;
  kv.version = version;
  kv.lease = lease;
  return kv;
}

// The header's revision; `required`: every unary answer has a header, a
// watch cancel may come without a revision.
Result<Revision> header_revision(const json::object& o, std::string_view where, bool required) {
  MESHD_TRY(header, member_object(o, "header", where));
  if (!header) {
    if (required) return bad(std::string(where) + " has no header");
    return Revision{0};
  }
  MESHD_TRY(rev, member_int(*header, "revision", std::string(where) + ".header"));
  if (rev < 0) return bad(std::string(where) + ".header.revision is negative");
  return rev;
}

Result<RangeResult> parse_range_object(const json::object& o, std::string_view where) {
  RangeResult r;
  MESHD_TRY(rev, header_revision(o, where, true));
  r.revision = rev;
  MESHD_TRY(kvs, member_array(o, "kvs", where));
  if (kvs) {
    r.kvs.reserve(kvs->size());
    const std::string kv_where = std::string(where) + ".kvs[]";
    for (const auto& item : *kvs) {
      MESHD_TRY(kv, parse_kv(item, kv_where));
      r.kvs.push_back(std::move(kv));
    }
  }
  MESHD_TRY(more, member_bool(o, "more", where));
  MESHD_TRY(count, member_int(o, "count", where));
  r.more = more;
  r.count = count;
  return r;
}

Result<const json::object*> top_object(const json::value& v) { return as_object(v, "the answer"); }

}  // namespace

std::optional<GatewayError> parse_error_body(std::string_view body) {
  if (body.size() > kMaxAnswerBytes) return std::nullopt;
  boost::system::error_code ec;
  json::value v;
  try {
    v = json::parse(body, ec);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  const json::value* err = o.if_contains("error");
  if (!err) return std::nullopt;
  const json::object* fields = &o;
  if (err->is_object()) fields = &err->as_object();  // {"error":{"grpc_code":..,"message":..}}
  else if (!err->is_string()) return std::nullopt;
  GatewayError e;
  for (const char* name : {"code", "grpc_code"}) {
    const json::value* c = fields->if_contains(name);
    if (c && c->is_int64() && c->as_int64() >= 0 && c->as_int64() <= 100) {
      e.grpc_code = static_cast<int>(c->as_int64());
      break;
    }
  }
  const json::value* msg = fields->if_contains("message");
  if (msg && msg->is_string() && !msg->as_string().empty()) e.message = printable(msg->as_string());
  else if (err->is_string()) e.message = printable(err->as_string());
  if (e.message.empty()) e.message = "(no message)";
  return e;
}

int errno_for_answer(int http_status, const std::optional<GatewayError>& e) {
  const int code = e ? e->grpc_code : -1;
  const std::string_view msg = e ? std::string_view(e->message) : std::string_view();
  if (msg.find("authentication failed") != std::string_view::npos ||
      msg.find("user name is empty") != std::string_view::npos)
    return EACCES;
  switch (code) {
    case 4: return ETIMEDOUT;       // DeadlineExceeded
    case 5: return ENOENT;          // NotFound: "requested lease not found"
    case 7: case 16: return EACCES; // PermissionDenied, Unauthenticated
    case 8: case 14: return EAGAIN; // ResourceExhausted ("too many requests"), Unavailable
    case 11: return ERANGE;         // OutOfRange: compacted or future revision
    default: break;
  }
  switch (http_status) {
    case 401: case 403: return EACCES;
    case 404: return code == -1 ? EINVAL : ENOENT;  // a path the gateway lacks: not etcd v3
    case 429: case 503: return EAGAIN;
    case 504: return ETIMEDOUT;
    default: return EINVAL;
  }
}

bool is_invalid_token(const std::optional<GatewayError>& e) {
  return e && e->message.find("invalid auth token") != std::string::npos;
}

bool write_not_applied(const std::optional<GatewayError>& e) {
  if (!e) return false;
  for (std::string_view m : {"etcdserver: no leader", "etcdserver: not capable",
                             "etcdserver: unhealthy cluster", "etcdserver: too many requests"})
    if (e->message == m) return true;
  return false;
}

Result<RangeResult> parse_range_response(std::string_view body) {
  MESHD_TRY(v, parse_json(body, kMaxAnswerBytes));
  MESHD_TRY(o, top_object(v));
  return parse_range_object(*o, "range");
}

Result<Revision> parse_header_revision(std::string_view body) {
  MESHD_TRY(v, parse_json(body, kMaxAnswerBytes));
  MESHD_TRY(o, top_object(v));
  return header_revision(*o, "the answer", true);
}

Result<DeleteResult> parse_delete_response(std::string_view body) {
  MESHD_TRY(v, parse_json(body, kMaxAnswerBytes));
  MESHD_TRY(o, top_object(v));
  DeleteResult d;
  MESHD_TRY(rev, header_revision(*o, "deleterange", true));
  MESHD_TRY(deleted, member_int(*o, "deleted", "deleterange"));
  if (deleted < 0) return bad("deleterange.deleted is negative");
  d.revision = rev;
  d.deleted = deleted;
  return d;
}

Result<TxnResult> parse_txn_response(std::string_view body) {
  MESHD_TRY(v, parse_json(body, kMaxAnswerBytes));
  MESHD_TRY(o, top_object(v));
  TxnResult t;
  MESHD_TRY(rev, header_revision(*o, "txn", true));
  MESHD_TRY(succeeded, member_bool(*o, "succeeded", "txn"));
  MESHD_TRY(responses, member_array(*o, "responses", "txn"));
  t.revision = rev;
  t.succeeded = succeeded;
  if (responses) {
    t.responses.reserve(responses->size());
    for (const auto& item : *responses) {
      MESHD_TRY(op, as_object(item, "txn.responses[]"));
      // Exactly one of the ResponseOp's oneof fields.
      if (op->size() != 1) return bad("txn.responses[] does not hold exactly one response");
      const auto& [name, inner] = *op->begin();
      if (name == "response_range") {
        MESHD_TRY(ro, as_object(inner, "txn.responses[].response_range"));
        // The inner header holds only the revision; the gateway writes it.
        MESHD_TRY(range, parse_range_object(*ro, "txn.responses[].response_range"));
        t.responses.push_back(std::move(range));
      } else if (name == "response_put" || name == "response_delete_range" ||
                 name == "response_txn") {
        if (!inner.is_object()) return bad("txn.responses[]." + std::string(name) + " is not an object");
        t.responses.emplace_back();
      } else {
        return bad("txn.responses[] holds an unknown response " + printable(name, 40));
      }
    }
  }
  return t;
}

Result<LeaseGrant> parse_lease_grant_response(std::string_view body) {
  MESHD_TRY(v, parse_json(body, kMaxAnswerBytes));
  MESHD_TRY(o, top_object(v));
  MESHD_TRY(error, member_text(*o, "error", "lease grant"));
  if (!error.empty()) return Error::invalid("etcd refused the lease: " + printable(error));
  MESHD_TRY(id, member_int(*o, "ID", "lease grant"));
  MESHD_TRY(ttl, member_int(*o, "TTL", "lease grant"));
  if (id == 0) return bad("lease grant has no ID");
  if (ttl <= 0) return bad("lease grant has no TTL");
  return LeaseGrant{id, std::chrono::seconds(ttl)};
}

Result<std::chrono::seconds> parse_lease_keepalive_response(std::string_view body) {
  MESHD_TRY(v, parse_json(body, kMaxAnswerBytes));
  MESHD_TRY(o, top_object(v));
  MESHD_TRY(result, member_object(*o, "result", "lease keepalive"));
  if (!result) return bad("lease keepalive has no result");
  MESHD_TRY(ttl, member_int(*result, "TTL", "lease keepalive.result"));
  if (ttl < 0) return bad("lease keepalive.result.TTL is negative");
  // etcd answers an unknown or expired lease with TTL 0 (omitted).
  if (ttl == 0) return fail(ENOENT, "the lease expired or does not exist");
  return std::chrono::seconds(ttl);
}

Result<std::string> parse_authenticate_response(std::string_view body) {
  MESHD_TRY(v, parse_json(body, kMaxAnswerBytes));
  MESHD_TRY(o, top_object(v));
  MESHD_TRY(token, member_text(*o, "token", "authenticate"));
  if (token.empty()) return bad("authenticate has no token");
  if (token.size() > 4096) return bad("authenticate.token is over 4 KiB");
  // It becomes a header: one word of printable ASCII (never quoted back).
  for (unsigned char c : token)
    if (c <= 0x20 || c >= 0x7f) return bad("authenticate.token holds characters a header cannot carry");
  return token;
}

Result<WatchResponse> parse_watch_message(std::string_view line) {
  MESHD_TRY(v, parse_json(line, kMaxWatchMessageBytes));
  MESHD_TRY(o, top_object(v));
  if (o->contains("error")) {
    auto e = parse_error_body(line);
    if (!e) return bad("watch message has a malformed error");
    return Error{{errno_for_answer(200, e), boost::system::generic_category()},
                 "etcd ended the watch: " + e->message};
  }
  MESHD_TRY(result, member_object(*o, "result", "watch message"));
  if (!result) return bad("watch message has neither result nor error");
  constexpr std::string_view where = "watch result";
  WatchResponse w;
  MESHD_TRY(rev, header_revision(*result, where, false));
  MESHD_TRY(created, member_bool(*result, "created", where));
  MESHD_TRY(canceled, member_bool(*result, "canceled", where));
  MESHD_TRY(compact, member_int(*result, "compact_revision", where));
  MESHD_TRY(reason, member_text(*result, "cancel_reason", where));
  MESHD_TRY(events, member_array(*result, "events", where));
  if (compact < 0) return bad("watch result.compact_revision is negative");
  w.revision = rev;
  w.created = created;
  w.canceled = canceled;
  w.compact_revision = compact;
  w.cancel_reason = printable(reason);
  if (events) {
    w.events.reserve(events->size());
    for (const auto& item : *events) {
      MESHD_TRY(eo, as_object(item, "watch result.events[]"));
      WatchEvent ev;
      MESHD_TRY(type, member_text(*eo, "type", "watch result.events[]"));
      if (type.empty() || type == "PUT") ev.type = WatchEvent::Type::kPut;
      else if (type == "DELETE") ev.type = WatchEvent::Type::kDelete;
      else return bad("watch result.events[].type " + printable(type, 40) + " is neither PUT nor DELETE");
      const json::value* kv = eo->if_contains("kv");
      if (!kv) return bad("watch result.events[] has no kv");
      MESHD_TRY(parsed, parse_kv(*kv, "watch result.events[].kv"));
      ev.kv = std::move(parsed);
      const json::value* prev = eo->if_contains("prev_kv");
      if (prev && !prev->is_null()) {
        MESHD_TRY(p, parse_kv(*prev, "watch result.events[].prev_kv"));
        ev.prev = std::move(p);
      }
      w.events.push_back(std::move(ev));
    }
  }
  return w;
}

}  // namespace meshd::datastore
