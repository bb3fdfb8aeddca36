#include "meshd/meshctl/views.h"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace meshd::meshctl {

namespace json = boost::json;

namespace {

constexpr const char* kNone = "-";

// ---- JSON access that never throws: a missing field or another type is nothing ----

Result<json::value> parse_json(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v;
  try {
    v = json::parse(text, ec, {}, opts);
  } catch (const std::exception& e) {  // e.g. allocation failure on absurd input
    return Error::invalid("meshd's answer to " + std::string(what) + " is not JSON: " + e.what());
  }
  if (ec)
    return Error::invalid("meshd's answer to " + std::string(what) + " is not JSON: " + ec.message());
  if (!v.is_object())
    return Error::invalid("meshd's answer to " + std::string(what) + " is not a JSON object");
  return v;
}

std::optional<std::string> get_string(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

std::optional<std::int64_t> get_int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(
                                              std::numeric_limits<std::int64_t>::max()))
    return static_cast<std::int64_t>(v->as_uint64());
  return std::nullopt;
}

std::optional<std::uint64_t> get_uint(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint64_t>(v->as_int64());
  return std::nullopt;
}

std::optional<double> get_double(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return std::nullopt;
}

std::optional<bool> get_bool(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_bool()) return std::nullopt;
  return v->as_bool();
}

const json::object* get_object(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_object() ? &v->as_object() : nullptr;
}

std::string or_none(const std::optional<std::string>& s) { return s ? *s : kNone; }
std::string or_none(const std::optional<std::int64_t>& n) {
  return n ? std::to_string(*n) : kNone;
}
std::string yes_no(bool b) { return b ? "yes" : "no"; }

// "label:      value\n" with the value made printable; labels padded to 12.
void line(std::string& out, std::string_view label, std::string_view value) {
  std::string l(label);
  l += ':';
  if (l.size() < 12) l.resize(12, ' ');
  else l += ' ';
  out += l;
  out += printable(value);
  out += '\n';
}

std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;  // count UTF-8 lead bytes, not continuation bytes
  return n;
}

std::string format_seconds(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g s", s);
  return buf;
}

NodeView node_from(const json::object& o) {
  NodeView n;
  n.name = or_none(get_string(o, "name"));
  n.identity = get_string(o, "identity");
  n.public_key = get_string(o, "public_key");
  n.pod_cidr = get_string(o, "pod_cidr");
  if (const json::value* eps = o.if_contains("endpoints"); eps && eps->is_array())
    for (const json::value& e : eps->as_array())
      if (e.is_string()) n.endpoints.emplace_back(e.as_string());
  n.version = get_int(o, "version");
  n.admitted_at_ms = get_int(o, "admitted_at_ms");
  n.self = get_bool(o, "self").value_or(false);
  n.in_effect = get_bool(o, "in_effect").value_or(true);
  if (const json::object* st = get_object(o, "stats")) {
    n.last_handshake_age_seconds = get_double(*st, "last_handshake_age_seconds");
    n.rx_bytes = get_uint(*st, "rx_bytes");
    n.tx_bytes = get_uint(*st, "tx_bytes");
    n.reachable = get_bool(*st, "reachable").value_or(false);
  }
  n.liveness = get_string(o, "liveness");
  n.last_seen_age_seconds = get_double(o, "last_seen_age_seconds");
  n.pending_public_key = get_string(o, "pending_public_key");
  n.switch_at_ms = get_int(o, "switch_at_ms");
  if (const json::object* r = get_object(o, "removed")) {
    n.removed = true;
    n.removed_by = get_string(*r, "by");
    n.removed_at_ms = get_int(*r, "at_ms");
    n.removal_reason = get_string(*r, "reason");
    n.released = get_bool(*r, "released");
  }
  // A tombstone from a daemon that marks it only by its liveness.
  if (n.liveness == "removed") n.removed = true;
  return n;
}

// "by alpha at 2026-12-01 05:18:04Z": who removed a node and when, as far
// as the answer says.
std::string removal_summary(const std::optional<std::string>& by,
                            const std::optional<std::int64_t>& at_ms) {
  std::string out;
  if (by && !by->empty()) out += "by " + *by;
  if (at_ms) out += (out.empty() ? "at " : " at ") + format_utc(*at_ms / 1000);
  return out;
}

TokenView token_from(const json::object& o) {
  TokenView t;
  t.id = or_none(get_string(o, "id"));
  t.description = get_string(o, "description");
  t.state = get_string(o, "state");
  t.created_at = get_int(o, "created_at");
  t.expires_at = get_int(o, "expires_at");
  t.uses_left = get_int(o, "uses_left");
  t.last_used_at = get_int(o, "last_used_at");
  return t;
}

std::string joined(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

}  // namespace

// ---- Small formatters ----

std::string format_age(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return kNone;
  if (seconds < 60) return std::to_string(static_cast<long long>(seconds)) + "s";
  if (seconds < 3600) return std::to_string(static_cast<long long>(seconds / 60)) + "m";
  if (seconds < 86400) return std::to_string(static_cast<long long>(seconds / 3600)) + "h";
  if (seconds < 1e15) return std::to_string(static_cast<long long>(seconds / 86400)) + "d";
  return kNone;
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024;
  std::size_t u = 0;
  // Switch units before rounding would print "1024.0".
  while (v >= 1023.95 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string format_utc(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (!::gmtime_r(&t, &tm)) return kNone;
  char buf[64];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm) == 0) return kNone;
  return buf;
}

std::string format_relative(std::int64_t at, std::int64_t now) {
  // Differences are taken in double: any two int64 values stay finite.
  double d = static_cast<double>(at) - static_cast<double>(now);
  if (d >= 0) return d < 1 ? "now" : "in " + format_age(d);
  return format_age(-d) + " ago";
}

std::string short_key(std::string_view base64) {
  return std::string(base64.substr(0, 8));
}

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Result<std::int64_t> parse_duration_seconds(std::string_view text) {
  auto bad = [&] {
    return Error::invalid("not a duration: expected SECONDS or a number with s, m, h or d (\"24h\")");
  };
  if (text.empty()) return bad();
  std::int64_t unit = 1;
  switch (text.back()) {
    case 's': unit = 1; text.remove_suffix(1); break;
    case 'm': unit = 60; text.remove_suffix(1); break;
    case 'h': unit = 3600; text.remove_suffix(1); break;
    case 'd': unit = 86400; text.remove_suffix(1); break;
    default: break;
  }
  if (text.empty()) return bad();
  for (char c : text)
    if (c < '0' || c > '9') return bad();
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) return bad();
  if (n > std::numeric_limits<std::int64_t>::max() / unit)
    return Error::invalid("duration too long");
  return n * unit;
}

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size() + 1);
  cells.push_back(header);
  for (const auto& r : rows) cells.push_back(r);
  std::vector<std::size_t> width(header.size(), 0);
  for (auto& r : cells) {
    r.resize(header.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      r[i] = printable(r[i]);
      width[i] = std::max(width[i], display_width(r[i]));
    }
  }
  std::string out;
  for (const auto& r : cells) {
    std::string l;
    for (std::size_t i = 0; i < r.size(); ++i) {
      l += r[i];
      if (i + 1 < r.size()) l.append(width[i] - display_width(r[i]) + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l;
    out += '\n';
  }
  return out;
}

// ---- Status ----

Result<StatusView> parse_status(std::string_view text) {
  auto v = parse_json(text, "GET /v1/status");
  if (!v) return v.error();
  const json::object& o = v->as_object();
  StatusView s;
  s.backend = get_string(o, "backend");
  s.backend_reason = get_string(o, "backend_reason");
  s.interface = get_string(o, "interface");
  s.public_key = get_string(o, "public_key");
  s.pod_cidr = get_string(o, "pod_cidr");
  s.cluster_id = get_string(o, "cluster_id");
  s.mtu = get_int(o, "mtu");
  s.peers = get_int(o, "peers");
  s.peers_reachable = get_int(o, "peers_reachable");
  s.routes = get_int(o, "routes");
  s.reconciles = get_int(o, "reconciles");
  s.reconcile_errors = get_int(o, "reconcile_errors");
  s.pod_cidr_settled = get_bool(o, "pod_cidr_settled");
  s.in_sync_field = get_bool(o, "in_sync");
  if (const json::value* errs = o.if_contains("errors"); errs && errs->is_array())
    for (const json::value& e : errs->as_array())
      if (e.is_string()) s.errors.emplace_back(e.as_string());
  if (const json::value* rej = o.if_contains("rejected_peers"); rej && rej->is_array())
    for (const json::value& r : rej->as_array()) {
      if (!r.is_object()) continue;
      s.rejected.emplace_back(or_none(get_string(r.as_object(), "peer")),
                              or_none(get_string(r.as_object(), "reason")));
    }
  if (const json::object* r = get_object(o, "last_reconcile")) {
    s.reconciled = true;
    s.last_reconcile_at_ms = get_int(*r, "at_ms");
    s.last_reconcile_duration_seconds = get_double(*r, "duration_seconds");
    // Any error that is not null counts as a failure, even one of another type.
    if (const json::value* e = r->if_contains("error"); e && !e->is_null())
      s.last_reconcile_error = e->is_string() ? std::string(e->as_string()) : json::serialize(*e);
  }
  if (const json::object* l = get_object(o, "cni_leases")) {
    s.cni_leases_in_use = get_int(*l, "in_use");
    s.cni_leases_free = get_int(*l, "free");
  }
  if (const json::object* c = get_object(o, "cluster")) {
    s.table_hash = get_string(*c, "table_hash");
    if (const json::object* r = get_object(*c, "removed")) {
      s.removed = true;
      s.removed_by = get_string(*r, "by");
      s.removed_at_ms = get_int(*r, "at_ms");
      s.removal_reason = get_string(*r, "reason");
    }
  }
  return s;
}

std::string format_status(const StatusView& s, std::int64_t now_ms) {
  std::string out;
  // First, so that it is not missed: the rest describes a torn-down mesh.
  if (s.removed) {
    std::string what = "this node was removed from the cluster";
    if (s.removed_by && !s.removed_by->empty()) what += " by " + *s.removed_by;
    if (s.removed_at_ms)
      what += " at " + format_utc(*s.removed_at_ms / 1000) + " (" +
              format_relative(*s.removed_at_ms / 1000, now_ms / 1000) + ")";
    line(out, "removed", what);
    line(out, "reason", s.removal_reason && !s.removal_reason->empty() ? *s.removal_reason
                                                                        : std::string("none given"));
  }
  line(out, "interface", or_none(s.interface));
  line(out, "backend", or_none(s.backend) + (s.backend_reason ? " (" + *s.backend_reason + ")" : ""));
  line(out, "public key", or_none(s.public_key));
  line(out, "mtu", or_none(s.mtu));
  std::string cidr = or_none(s.pod_cidr);
  if (s.pod_cidr && s.pod_cidr_settled) cidr += *s.pod_cidr_settled ? " (settled)" : " (not settled)";
  line(out, "pod cidr", cidr);
  std::string peers = or_none(s.peers);
  if (s.peers_reachable) peers += " (" + std::to_string(*s.peers_reachable) + " reachable)";
  line(out, "peers", peers);
  line(out, "routes", or_none(s.routes));
  line(out, "in sync", yes_no(s.in_sync()));
  if (!s.reconciled) {
    line(out, "last pass", "none yet");
  } else {
    std::string last = s.last_reconcile_at_ms
                           ? format_relative(*s.last_reconcile_at_ms / 1000, now_ms / 1000)
                           : std::string(kNone);
    if (s.last_reconcile_duration_seconds)
      last += ", took " + format_seconds(*s.last_reconcile_duration_seconds);
    last += s.last_reconcile_error ? ", failed" : ", succeeded";
    line(out, "last pass", last);
  }
  std::string passes = or_none(s.reconciles);
  if (s.reconcile_errors) passes += " (" + std::to_string(*s.reconcile_errors) + " failed)";
  line(out, "passes", passes);
  if (s.cni_leases_in_use || s.cni_leases_free)
    line(out, "cni leases", or_none(s.cni_leases_in_use) + " in use, " + or_none(s.cni_leases_free) + " free");
  line(out, "cluster", s.cluster_id ? *s.cluster_id : std::string("none (static peers, or not joined yet)"));
  if (s.table_hash) line(out, "table hash", *s.table_hash);
  bool last_error_listed = false;
  for (const std::string& e : s.errors) {
    line(out, "error", e);
    last_error_listed |= s.last_reconcile_error && e == *s.last_reconcile_error;
  }
  if (s.last_reconcile_error && !last_error_listed) line(out, "error", *s.last_reconcile_error);
  for (const auto& [peer, reason] : s.rejected) line(out, "rejected", peer + ": " + reason);
  return out;
}

// ---- Nodes ----

Result<std::vector<NodeView>> parse_nodes(std::string_view text) {
  auto v = parse_json(text, "GET /v1/nodes");
  if (!v) return v.error();
  const json::value* nodes = v->as_object().if_contains("nodes");
  if (!nodes || !nodes->is_array())
    return Error::invalid("meshd's answer to GET /v1/nodes has no \"nodes\" array");
  std::vector<NodeView> out;
  for (const json::value& n : nodes->as_array())
    if (n.is_object()) out.push_back(node_from(n.as_object()));
  return out;
}

Result<NodeView> parse_node(std::string_view text) {
  auto v = parse_json(text, "GET /v1/nodes/{name}");
  if (!v) return v.error();
  return node_from(v->as_object());
}

std::string node_state(const NodeView& n) {
  if (n.removed) return "removed";
  if (n.self) return "self";
  if (!n.in_effect) return "not in effect";
  return n.reachable ? "reachable" : "unreachable";
}

std::string format_nodes(const std::vector<NodeView>& nodes) {
  // Live nodes first, as meshd sorted them; then the removed ones.
  std::vector<const NodeView*> order;
  for (const NodeView& n : nodes)
    if (!n.removed) order.push_back(&n);
  for (const NodeView& n : nodes)
    if (n.removed) order.push_back(&n);
  std::vector<std::vector<std::string>> rows;
  for (const NodeView* np : order) {
    const NodeView& n = *np;
    bool peer = !n.self && !n.removed;
    std::string state = node_state(n);
    if (n.removed) {
      std::string who_when = removal_summary(n.removed_by, n.removed_at_ms);
      if (!who_when.empty()) state += " " + who_when;
    }
    rows.push_back({
        n.name.empty() ? kNone : n.name,
        n.endpoints.empty() ? kNone : joined(n.endpoints, ","),
        n.pod_cidr && !n.pod_cidr->empty() ? *n.pod_cidr : kNone,
        peer && n.last_handshake_age_seconds ? format_age(*n.last_handshake_age_seconds) : kNone,
        peer && n.rx_bytes ? format_bytes(*n.rx_bytes) : kNone,
        peer && n.tx_bytes ? format_bytes(*n.tx_bytes) : kNone,
        or_none(n.liveness),
        peer && n.last_seen_age_seconds ? format_age(*n.last_seen_age_seconds) : kNone,
        state,
    });
  }
  return format_table({"NAME", "ENDPOINTS", "POD CIDR", "HANDSHAKE", "RX", "TX", "LIVENESS",
                       "LAST SEEN", "STATE"},
                      rows);
}

std::string format_node(const NodeView& n) {
  std::string out;
  line(out, "name", n.name);
  line(out, "state", node_state(n));
  if (n.removed) {
    std::string who_when = removal_summary(n.removed_by, n.removed_at_ms);
    line(out, "removed", who_when.empty() ? std::string(kNone) : who_when);
    line(out, "reason", n.removal_reason && !n.removal_reason->empty() ? *n.removal_reason
                                                                        : std::string("none given"));
    if (n.released)
      line(out, "released", *n.released ? "yes (every live member holds the removal)"
                                        : "not yet (its name and pod CIDR stay reserved)");
  }
  if (n.liveness) line(out, "liveness", *n.liveness);
  line(out, "identity", or_none(n.identity));
  line(out, "public key", or_none(n.public_key));
  line(out, "endpoints", n.endpoints.empty() ? kNone : joined(n.endpoints, ", "));
  line(out, "pod cidr", or_none(n.pod_cidr));
  line(out, "version", or_none(n.version));
  line(out, "admitted", n.admitted_at_ms ? format_utc(*n.admitted_at_ms / 1000) : kNone);
  if (n.pending_public_key)
    line(out, "next key", *n.pending_public_key +
                              (n.switch_at_ms ? " (switch at " + format_utc(*n.switch_at_ms / 1000) + ")"
                                              : std::string()));
  if (!n.self && !n.removed) {
    line(out, "handshake", n.last_handshake_age_seconds
                               ? format_age(*n.last_handshake_age_seconds) + " ago"
                               : std::string("never"));
    if (n.liveness)
      line(out, "last seen", n.last_seen_age_seconds ? format_age(*n.last_seen_age_seconds) + " ago"
                                                     : std::string("never"));
    line(out, "received", n.rx_bytes ? format_bytes(*n.rx_bytes) : kNone);
    line(out, "sent", n.tx_bytes ? format_bytes(*n.tx_bytes) : kNone);
  }
  return out;
}

// ---- Removal and rotation ----

Result<RemovalView> parse_removal(std::string_view text) {
  auto v = parse_json(text, "DELETE /v1/nodes/{name}");
  if (!v) return v.error();
  const json::object* r = get_object(v->as_object(), "removed");
  if (!r)
    return Error::invalid("meshd's answer to DELETE /v1/nodes/{name} has no \"removed\" object");
  return RemovalView{get_string(*r, "name"), get_string(*r, "identity"), get_string(*r, "pod_cidr"),
                     get_int(*r, "removed_at_ms")};
}

std::string format_removal(const RemovalView& r) {
  std::string out = "node " + (r.name && !r.name->empty() ? *r.name : std::string(kNone)) + " removed";
  if (r.removed_at_ms) out += " at " + format_utc(*r.removed_at_ms / 1000);
  out += ": identity " + or_none(r.identity) + ", pod CIDR " +
         (r.pod_cidr && !r.pod_cidr->empty() ? *r.pod_cidr : std::string(kNone));
  return printable(out) + "\n";
}

Result<RotationView> parse_rotation(std::string_view text) {
  auto v = parse_json(text, "POST /v1/key/rotate");
  if (!v) return v.error();
  const json::object& o = v->as_object();
  return RotationView{get_string(o, "previous_public_key"), get_string(o, "public_key"),
                      get_int(o, "switch_at_ms")};
}

std::string format_rotation(const RotationView& r, std::int64_t now_ms) {
  std::string out;
  line(out, "rotation", (r.previous_public_key ? short_key(*r.previous_public_key) : kNone) +
                            std::string(" -> ") +
                            (r.public_key ? short_key(*r.public_key) : kNone));
  line(out, "switch at", r.switch_at_ms ? format_utc(*r.switch_at_ms / 1000) + " (" +
                                              format_relative(*r.switch_at_ms / 1000, now_ms / 1000) +
                                              ")"
                                        : std::string(kNone));
  return out;
}

// ---- Tokens ----

Result<std::vector<TokenView>> parse_tokens(std::string_view text) {
  auto v = parse_json(text, "GET /v1/tokens");
  if (!v) return v.error();
  const json::value* tokens = v->as_object().if_contains("tokens");
  if (!tokens || !tokens->is_array())
    return Error::invalid("meshd's answer to GET /v1/tokens has no \"tokens\" array");
  std::vector<TokenView> out;
  for (const json::value& t : tokens->as_array())
    if (t.is_object()) out.push_back(token_from(t.as_object()));
  return out;
}

Result<CreatedTokenView> parse_created_token(std::string_view text) {
  auto v = parse_json(text, "POST /v1/tokens");
  if (!v) return v.error();
  const json::object& o = v->as_object();
  CreatedTokenView t;
  t.token = token_from(o);
  t.secret = get_string(o, "token");
  t.join_target = get_string(o, "join_target");
  if (const json::value* c = o.if_contains("config")) {
    auto add_lines = [&](std::string_view s) {
      while (!s.empty()) {
        auto nl = s.find('\n');
        t.config_lines.emplace_back(s.substr(0, nl));
        if (nl == std::string_view::npos) break;
        s.remove_prefix(nl + 1);
      }
    };
    if (c->is_string()) add_lines(c->as_string());
    else if (c->is_array())
      for (const json::value& l : c->as_array())
        if (l.is_string()) add_lines(l.as_string());
  }
  return t;
}

std::string format_tokens(const std::vector<TokenView>& tokens, std::int64_t now) {
  std::vector<std::vector<std::string>> rows;
  for (const TokenView& t : tokens)
    rows.push_back({
        t.id,
        or_none(t.state),
        t.expires_at ? format_relative(*t.expires_at, now) : std::string("never"),
        t.uses_left ? std::to_string(*t.uses_left) : std::string("unlimited"),
        t.last_used_at ? format_relative(*t.last_used_at, now) : std::string("never"),
        t.description && !t.description->empty() ? *t.description : kNone,
    });
  return format_table({"ID", "STATE", "EXPIRES", "USES LEFT", "LAST USED", "DESCRIPTION"}, rows);
}

std::string format_created_token(const CreatedTokenView& t, std::int64_t now) {
  std::string out;
  line(out, "token", or_none(t.secret));
  line(out, "id", t.token.id);
  line(out, "expires", t.token.expires_at ? format_utc(*t.token.expires_at) + " (" +
                                                format_relative(*t.token.expires_at, now) + ")"
                                          : std::string("never"));
  line(out, "uses", t.token.uses_left ? std::to_string(*t.token.uses_left) : std::string("unlimited"));
  if (t.token.description && !t.token.description->empty())
    line(out, "description", *t.token.description);
  line(out, "join target", or_none(t.join_target));
  out += "\nThe token is shown only now: meshd keeps a verifier, not the token.\n";
  if (!t.config_lines.empty()) {
    out += "On the joining node, write the token to the token file (mode 0600) and add:\n\n";
    for (const std::string& l : t.config_lines) {
      out += printable(l);
      out += '\n';
    }
  }
  return out;
}

// ---- Events ----

Result<EventsPage> parse_events(std::string_view text) {
  auto v = parse_json(text, "GET /v1/events");
  if (!v) return v.error();
  const json::object& o = v->as_object();
  const json::value* events = o.if_contains("events");
  if (!events || !events->is_array())
    return Error::invalid("meshd's answer to GET /v1/events has no \"events\" array");
  EventsPage page;
  for (const json::value& e : events->as_array()) {
    if (!e.is_object()) continue;
    const json::object& eo = e.as_object();
    page.events.push_back({get_int(eo, "id"), get_int(eo, "at"), get_string(eo, "kind"),
                           get_string(eo, "node"), get_string(eo, "message")});
  }
  page.next = get_int(o, "next");
  return page;
}

std::string format_events(const EventsPage& page) {
  std::string out;
  for (const EventView& e : page.events) {
    std::string l = "#" + or_none(e.id) + "  " + (e.at ? format_utc(*e.at) : kNone) + "  " +
                    or_none(e.kind) + "  " +
                    (e.node && !e.node->empty() ? *e.node : kNone) + "  " + or_none(e.message);
    out += printable(l);
    out += '\n';
  }
  return out;
}

}  // namespace meshd::meshctl
