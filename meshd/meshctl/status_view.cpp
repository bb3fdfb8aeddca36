#include "meshd/meshctl/status_view.h"

#include <boost/json.hpp>

#include <cstdio>

namespace meshd::meshctl {

namespace {

// Bytes below 0x20 (but newline, handled by the caller's line structure) and
// DEL become \xNN: a status file must not be able to drive the terminal.
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

std::string shown(const boost::json::value* v) {
  if (!v) return "-";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_bool()) return v->as_bool() ? "yes" : "no";
  return boost::json::serialize(*v);
}

}  // namespace

Result<DaemonStatus> parse_status(std::string_view json) {
  boost::system::error_code ec;
  boost::json::parse_options opts;
  opts.max_depth = 64;
  boost::json::value v;
  try {
    v = boost::json::parse(json, ec, {}, opts);
  } catch (const std::exception& e) {  // e.g. allocation failure on absurd input
    return Error::invalid(std::string("not a meshd status file: ") + e.what());
  }
  if (ec) return Error::invalid("not a meshd status file: " + ec.message());
  if (!v.is_object()) return Error::invalid("not a meshd status file: not a JSON object");
  const auto& o = v.as_object();
  DaemonStatus s;
  s.interface = shown(o.if_contains("interface"));
  s.backend = shown(o.if_contains("backend"));
  s.backend_reason = shown(o.if_contains("backend_reason"));
  s.public_key = shown(o.if_contains("public_key"));
  s.listen_port = shown(o.if_contains("listen_port"));
  s.mtu = shown(o.if_contains("mtu"));
  s.pod_cidr = shown(o.if_contains("pod_cidr"));
  s.peers = shown(o.if_contains("peers"));
  s.routes = shown(o.if_contains("routes"));
  const auto* in_sync = o.if_contains("in_sync");
  s.in_sync_text = shown(in_sync);
  s.in_sync = in_sync && in_sync->is_bool() && in_sync->as_bool();
  if (const auto* errs = o.if_contains("errors"); errs && errs->is_array())
    for (const auto& e : errs->as_array())
      if (e.is_string()) s.errors.emplace_back(e.as_string());
  if (const auto* rej = o.if_contains("rejected_peers"); rej && rej->is_array())
    for (const auto& r : rej->as_array()) {
      if (!r.is_object()) continue;
      const auto* peer = r.as_object().if_contains("peer");
      const auto* reason = r.as_object().if_contains("reason");
      if (peer && reason)
        s.rejected.emplace_back(boost::json::serialize(*peer), boost::json::serialize(*reason));
    }
  return s;
}

std::string format_status(const DaemonStatus& s) {
  std::string out;
  auto line = [&](const char* label, const std::string& value) {
    out += label;
    out += printable(value);
    out += '\n';
  };
  line("interface:  ", s.interface);
  line("backend:    ", s.backend + " (" + s.backend_reason + ")");
  line("public key: ", s.public_key);
  line("port:       ", s.listen_port);
  line("mtu:        ", s.mtu);
  line("pod cidr:   ", s.pod_cidr);
  line("peers:      ", s.peers);
  line("routes:     ", s.routes);
  line("in sync:    ", s.in_sync_text);
  for (const auto& e : s.errors) line("error:      ", e);
  for (const auto& [peer, reason] : s.rejected) line("rejected:   ", peer + ": " + reason);
  return out;
}

}  // namespace meshd::meshctl
