// What meshctl makes of the API's answers (docs/api.md): pure parsers from a
// response body to a view, and pure formatters from a view to the text a
// person reads. Any bytes give either a view or an error, never a crash; a
// field that is missing or of another JSON type shows as "-" instead of
// failing the whole answer, so a newer daemon with extra or changed fields
// still prints. What reaches the terminal is printable: control characters
// from the daemon (terminal escapes included) are shown as \xNN.
#pragma once

#include "common/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshd::meshctl {

// ---- Small formatters (shared by every view) ----

// A duration as the tables show it: "12s", "3m", "2h", "5d" (floored to the
// unit); "-" for a negative or non-finite value.
std::string format_age(double seconds);
// Bytes in IEC units: "300 B", "1.4 KiB", "1.4 MiB", ... "TiB".
std::string format_bytes(std::uint64_t bytes);
// Unix seconds as UTC "2026-12-01 05:18:04Z".
std::string format_utc(std::int64_t unix_seconds);
// "in 3h" for a time after `now`, "12s ago" for one before (unix seconds).
std::string format_relative(std::int64_t at, std::int64_t now);
// Control characters and DEL as \xNN, everything else as it is.
std::string printable(std::string_view s);
// A key's short id, as `key rotate` and `node` show it: its first 8
// characters of base64 (48 bits: enough to tell two keys of one node apart).
std::string short_key(std::string_view base64);
// `--ttl`: "86400", "90s", "30m", "24h", "7d". EINVAL with the expected form.
Result<std::int64_t> parse_duration_seconds(std::string_view text);

// Columns padded to the widest cell (counted in UTF-8 code points), two
// spaces apart, the last column unpadded. Cells are made printable.
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);

// ---- GET /v1/status ----

struct StatusView {
  std::optional<std::string> backend, backend_reason, interface, public_key, pod_cidr, cluster_id;
  std::optional<std::int64_t> mtu, peers, peers_reachable, routes, reconciles, reconcile_errors;
  std::optional<bool> pod_cidr_settled;
  std::optional<bool> in_sync_field;  // "in_sync" as meshd sent it
  std::vector<std::string> errors;    // string entries of "errors"
  std::vector<std::pair<std::string, std::string>> rejected;  // "rejected_peers": peer, reason
  bool reconciled = false;  // a pass has run ("last_reconcile" is an object)
  std::optional<std::int64_t> last_reconcile_at_ms;
  std::optional<double> last_reconcile_duration_seconds;
  std::optional<std::string> last_reconcile_error;
  std::optional<std::int64_t> cni_leases_in_use, cni_leases_free;  // "cni_leases" (null: no pool)
  // "cluster" (null in static mode): the table hash, and this node's own
  // removal ("removed" is an object) with who, when (unix ms) and why.
  std::optional<std::string> table_hash;
  bool removed = false;
  std::optional<std::string> removed_by, removal_reason;
  std::optional<std::int64_t> removed_at_ms;

  // What `meshctl status` exits 0 for: meshd's "in_sync" when it sends a
  // boolean; otherwise a pass has run and it succeeded.
  bool in_sync() const {
    return in_sync_field ? *in_sync_field : reconciled && !last_reconcile_error;
  }
};

// EINVAL, naming the problem (not JSON, not an object); never throws.
Result<StatusView> parse_status(std::string_view json);
// One "label:  value" line per item; `now_ms` (unix ms) for "12s ago". A
// removed node starts with its removal: by whom, when, why.
std::string format_status(const StatusView& s, std::int64_t now_ms);

// ---- GET /v1/nodes, GET /v1/nodes/{name} ----

struct NodeView {
  std::string name;  // "-" when missing
  std::optional<std::string> identity, public_key, pod_cidr;
  std::vector<std::string> endpoints;
  std::optional<std::int64_t> version, admitted_at_ms;
  bool self = false;
  bool in_effect = true;
  std::optional<double> last_handshake_age_seconds;  // nothing: never (or unknown)
  std::optional<std::uint64_t> rx_bytes, tx_bytes;
  bool reachable = false;
  std::optional<std::string> liveness;  // "self", "alive", "silent", "prunable", "removed"
  std::optional<double> last_seen_age_seconds;
  std::optional<std::string> pending_public_key;  // a key rotation in progress
  std::optional<std::int64_t> switch_at_ms;
  bool removed = false;  // a tombstone ("removed" is an object)
  std::optional<std::string> removed_by, removal_reason;
  std::optional<std::int64_t> removed_at_ms;
  std::optional<bool> released;

  // Silent or prunable: nothing heard from it for the configured time.
  bool quiet() const { return liveness == "silent" || liveness == "prunable"; }
};

// {"nodes": [...]}: EINVAL when not an object with a "nodes" array; entries
// that are not objects are skipped.
Result<std::vector<NodeView>> parse_nodes(std::string_view json);
// One node object.
Result<NodeView> parse_node(std::string_view json);
// NAME, ENDPOINTS, POD CIDR, HANDSHAKE, RX, TX, LIVENESS, LAST SEEN, STATE;
// removed nodes last (in the order given), their STATE saying who removed
// them and when.
std::string format_nodes(const std::vector<NodeView>& nodes);
std::string format_node(const NodeView& n);
// STATE column: "removed", "self", "not in effect", "reachable", "unreachable".
std::string node_state(const NodeView& n);

// ---- DELETE /v1/nodes/{name} ----

struct RemovalView {
  std::optional<std::string> name, identity, pod_cidr;
  std::optional<std::int64_t> removed_at_ms;
};

// {"removed": {...}}: EINVAL when not an object with a "removed" object.
Result<RemovalView> parse_removal(std::string_view json);
// "node NAME removed at TIME: identity ID, pod CIDR CIDR"
std::string format_removal(const RemovalView& r);

// ---- POST /v1/key/rotate ----

struct RotationView {
  std::optional<std::string> previous_public_key, public_key;
  std::optional<std::int64_t> switch_at_ms;
};

Result<RotationView> parse_rotation(std::string_view json);
// "rotation:   OLD -> NEW" (short key ids) and "switch at:  TIME (in 5s)"; `now_ms` unix ms.
std::string format_rotation(const RotationView& r, std::int64_t now_ms);

// ---- Tokens ----

struct TokenView {
  std::string id;  // "-" when missing
  std::optional<std::string> description, state;
  std::optional<std::int64_t> created_at, expires_at, uses_left, last_used_at;
};

struct CreatedTokenView {
  TokenView token;
  std::optional<std::string> secret;       // "token": id.secret, printed once
  std::optional<std::string> join_target;  // null in static mode
  std::vector<std::string> config_lines;   // "config": a string or an array of lines
};

Result<std::vector<TokenView>> parse_tokens(std::string_view json);  // {"tokens": [...]}
Result<CreatedTokenView> parse_created_token(std::string_view json);
// ID, STATE, EXPIRES, USES LEFT, LAST USED, DESCRIPTION; times relative to `now` (unix s).
std::string format_tokens(const std::vector<TokenView>& tokens, std::int64_t now);
std::string format_created_token(const CreatedTokenView& t, std::int64_t now);

// ---- GET /v1/events ----

struct EventView {
  std::optional<std::int64_t> id, at;  // at: unix seconds
  std::optional<std::string> kind, node, message;
};

struct EventsPage {
  std::vector<EventView> events;
  std::optional<std::int64_t> next;  // the cursor for the next request
};

Result<EventsPage> parse_events(std::string_view json);
// One line per event: "#ID  TIME  KIND  NODE  MESSAGE" (not aligned, so
// that `events -f` prints each event as it comes).
std::string format_events(const EventsPage& page);

}  // namespace meshd::meshctl
