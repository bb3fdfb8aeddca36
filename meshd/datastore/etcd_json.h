// The codec of etcd 3.4's v3 JSON gateway (grpc-gateway over the v3 API):
// request bodies meshd sends and parsers of the answers it reads. Pure
// functions, no I/O. The parsers take untrusted bytes (anything on the
// network path, or a compromised member): they are bounded (kMaxAnswerBytes,
// nesting, counts), never crash, and fail with EINVAL and a sentence naming
// the field that was wrong.
//
// Shapes measured against etcd 3.4.23 (captures in
// tests/unit/datastore/captures/): keys and values are standard base64 with
// padding; int64 fields are JSON strings (numbers are accepted too); zero
// values, false booleans and empty lists are omitted (no `kvs` on an empty
// range, no `succeeded` on a failed txn, no `TTL` on an expired lease).
#pragma once

#include "common/result.h"
#include "meshd/datastore/etcd_types.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshd::datastore {

// Answers larger than this are refused before parsing: a range over 1000
// records of ~400 B is ~650 KB of JSON (issue 13), so this leaves room for
// clusters far larger than the gossip mode serves.
inline constexpr std::size_t kMaxAnswerBytes = 64u << 20;
// One watch stream message: a txn's events arrive in one message.
inline constexpr std::size_t kMaxWatchMessageBytes = 64u << 20;

// ---- request bodies (compact JSON, base64 keys and values) ----
std::string encode_range_request(const RangeRequest& r);
std::string encode_put_request(const std::string& key, const std::string& value, LeaseId lease);
// `range_end` "" deletes the single key.
std::string encode_delete_request(const std::string& key, const std::string& range_end);
std::string encode_txn_request(const Txn& t);
// "TTL" in upper case: the gateway silently ignores "ttl" and grants its
// minimum (measured: 2 s).
std::string encode_lease_grant_request(std::chrono::seconds ttl);
std::string encode_lease_keepalive_request(LeaseId id);
std::string encode_lease_revoke_request(LeaseId id);
std::string encode_compact_request(Revision rev);
std::string encode_authenticate_request(const std::string& name, const std::string& password);
// The first (and only) message meshd writes on a /v3/watch stream.
std::string encode_watch_create_request(const std::string& key, const std::string& range_end,
                                        Revision start_revision, bool prev_kv,
                                        bool progress_notify);

// ---- gateway errors ----
// The gateway's error body {"error":..,"message":..,"code":<gRPC code>} (also
// seen inside a watch stream as {"error":{...}} in other gateway versions).
struct GatewayError {
  int grpc_code = 0;     // google.golang.org/grpc/codes (14 Unavailable, 16 Unauthenticated...)
  std::string message;   // printable (control characters replaced), at most 300 bytes
};
// Nothing when `body` is not an error body.
std::optional<GatewayError> parse_error_body(std::string_view body);

// The errno meshd reports for a failed answer: EAGAIN for "no leader" and
// other unavailability (HTTP 503, gRPC 14), EACCES for authentication and
// permission (401/403, gRPC 7/16, "authentication failed"), ENOENT for a
// missing lease (gRPC 5), ETIMEDOUT for a gateway deadline (504, gRPC 4),
// ERANGE for a compacted or future revision (gRPC 11), EINVAL otherwise.
int errno_for_answer(int http_status, const std::optional<GatewayError>& e);
// True for the error etcd gives when a token expired or was never valid: the
// client authenticates again, once.
bool is_invalid_token(const std::optional<GatewayError>& e);
// True when etcd refused a write before proposing it ("no leader", "not
// capable", "unhealthy cluster", "too many requests"): it was not applied
// and may go to another endpoint. Every other failure of a sent write
// (notably "request timed out" and "leader changed", also gRPC 14) leaves
// the outcome unknown.
bool write_not_applied(const std::optional<GatewayError>& e);

// ---- answers ----
// Each parser reads a 200 answer's body. `what` is not part of the body: the
// callers prefix the endpoint and operation themselves.
Result<RangeResult> parse_range_response(std::string_view body);
// put, deleterange, compaction: the header's revision (the store's revision
// after the write).
Result<Revision> parse_header_revision(std::string_view body);
// deleterange: how many keys went.
struct DeleteResult {
  Revision revision = 0;
  std::int64_t deleted = 0;
};
Result<DeleteResult> parse_delete_response(std::string_view body);
Result<TxnResult> parse_txn_response(std::string_view body);
struct LeaseGrant {
  LeaseId id = 0;
  std::chrono::seconds ttl{0};
};
// ENOENT-free: a grant carrying an "error" string is EINVAL with it.
Result<LeaseGrant> parse_lease_grant_response(std::string_view body);
// /v3/lease/keepalive answers {"result":{...,"ID":..,"TTL":..}}; a lease
// that expired or never existed comes back without TTL: ENOENT.
Result<std::chrono::seconds> parse_lease_keepalive_response(std::string_view body);
// The token of /v3/auth/authenticate (printable ASCII, it becomes a header).
Result<std::string> parse_authenticate_response(std::string_view body);
// One newline-delimited message of a /v3/watch stream: {"result":{...}}, or
// {"error":...} (EINVAL/EACCES/... by errno_for_answer with status 200).
Result<WatchResponse> parse_watch_message(std::string_view line);

// Base64 as the gateway writes bytes (standard alphabet, '=' padding).
std::string base64_encode_bytes(std::string_view bytes);
// Strict: canonical padding, standard alphabet; false on anything else.
bool base64_decode_bytes(std::string_view text, std::string& out);

}  // namespace meshd::datastore
