#include "meshd/dataplane/uapi.h"

#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

namespace meshd::dataplane::uapi {

namespace {

void append_key(std::string& out, std::string_view name, const keys::KeyBytes& k) {
  append_wiping(out, name);
  append_wiping(out, "=");
  std::string hex = keys::key_to_hex(k);
  append_wiping(out, hex);
  wipe(hex);
  append_wiping(out, "\n");
}

template <class T>
void append_num(std::string& out, std::string_view name, T v) {
  append_wiping(out, name);
  append_wiping(out, "=");
  append_wiping(out, std::to_string(v));
  append_wiping(out, "\n");
}

// Decimal, no sign, no spaces, at most `max`: the protocol's only number form.
template <class T>
bool parse_number(std::string_view text, T max, T& out) {
  if (text.empty()) return false;
  T v{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size() || v > max) return false;
  out = v;
  return true;
}

// Keys whose values are secrets: never quoted in an error.
bool is_secret_key(std::string_view key) {
  return key == "private_key" || key == "preshared_key";
}

// Context for one reply: every error names the device, the operation, the
// line and the key; values only when they are not secret.
struct ReplyParser {
  std::string_view name;
  std::string_view op;  // "get" or "set"

  Error protocol(std::string what) const {
    return Error{{EPROTO, boost::system::generic_category()},
                 "UAPI " + std::string(op) + " on device " + std::string(name) + ": " +
                     std::move(what) + " (is the implementation a WireGuard UAPI server?)"};
  }
  Error bad_value(std::size_t line, std::string_view key, std::string_view value,
                  std::string_view expected) const {
    std::string shown = is_secret_key(key) ? std::string("<secret>")
                                           : "\"" + std::string(value.substr(0, 64)) + "\"";
    return protocol("line " + std::to_string(line) + ": invalid " + std::string(key) + " " +
                    shown + ", expected " + std::string(expected));
  }
  // errno=N: wireguard-go writes the negative errno (errno=-22), the spec and
  // wg(8) the positive one; both mean the same failure.
  Result<int> parse_errno(std::size_t line, std::string_view value) const {
    std::string_view digits = value;
    if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
    unsigned n = 0;
    if (!parse_number<unsigned>(digits, 0x7fffffffU, n))
      return bad_value(line, "errno", value, "a decimal errno");
    return static_cast<int>(n);
  }
  Error failed(int err) const {
    return Error{{err, boost::system::generic_category()},
                 "UAPI " + std::string(op) + " on device " + std::string(name) +
                     ": the implementation answered errno=" + std::to_string(err) + " (" +
                     boost::system::generic_category().message(err) + ")"};
  }
};

// Splits "key=value" lines up to the blank line. Calls f(line_no, key, value)
// for each; returns the errno value of the trailer, or an error.
template <class F>
Result<int> for_each_line(const ReplyParser& rp, std::string_view reply, F&& f) {
  std::size_t end = reply_end(reply);
  if (end == std::string_view::npos)
    return rp.protocol("truncated reply: no blank line ends it");
  std::string_view body = reply.substr(0, end - 1);  // every line still ends in '\n'
  std::optional<int> err;
  std::size_t line_no = 0;
  while (!body.empty()) {
    ++line_no;
    std::size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl + 1);
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos)
      return rp.protocol("line " + std::to_string(line_no) + " has no '='");
    std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (err)
      return rp.protocol("line " + std::to_string(line_no) + ": key \"" +
                         std::string(key.substr(0, 64)) + "\" after the errno trailer");
    if (key == "errno") {
      auto e = rp.parse_errno(line_no, value);
      if (!e) return e.error();
      err = *e;
      continue;
    }
    if (auto r = f(line_no, key, value); !r) return r.error();
  }
  if (!err) return rp.protocol("reply has no errno= trailer");
  return *err;
}

}  // namespace

void wipe(std::string& buffer) {
  if (!buffer.empty()) sodium_memzero(buffer.data(), buffer.size());
  buffer.clear();
}

void append_wiping(std::string& buffer, std::string_view text) {
  const std::size_t need = buffer.size() + text.size();
  if (need > buffer.capacity()) {
    std::string bigger;
    bigger.reserve(std::max(need, 2 * buffer.capacity()));
    bigger.append(buffer);
    wipe(buffer);
    buffer.swap(bigger);  // the wiped allocation is freed with `bigger`
  }
  buffer.append(text);
}

std::size_t reply_end(std::string_view buffer) {
  std::size_t at = buffer.find("\n\n");
  return at == std::string_view::npos ? at : at + 2;
}

std::string encode_set(const wg::WgDevice& change) {
  // A 1000-peer request is ~200 kB. One allocation up front usually suffices;
  // when the estimate falls short (long v6 allowed IPs), append_wiping wipes
  // every buffer it leaves behind, so no key lingers in freed memory.
  std::size_t estimate = 160;
  for (const auto& p : change.peers) estimate += 240 + 48 * p.allowed_ips.size();
  std::string out;
  out.reserve(estimate);
  append_wiping(out, "set=1\n");
  if (change.private_key) append_key(out, "private_key", change.private_key->bytes());
  if (change.listen_port) append_num(out, "listen_port", *change.listen_port);
  if (change.fwmark) append_num(out, "fwmark", *change.fwmark);
  if (change.replace_peers) append_wiping(out, "replace_peers=true\n");
  for (const auto& p : change.peers) {
    append_key(out, "public_key", p.public_key.bytes());
    if (p.remove) {
      append_wiping(out, "remove=true\n");
      continue;  // anything else for a removed peer is meaningless
    }
    if (p.update_only) append_wiping(out, "update_only=true\n");
    if (p.preshared_key) append_key(out, "preshared_key", p.preshared_key->bytes());
    if (p.endpoint) {
      append_wiping(out, "endpoint=");
      append_wiping(out, p.endpoint->to_string());  // [v6]:port as the spec requires
      append_wiping(out, "\n");
    }
    if (p.persistent_keepalive)
      append_num(out, "persistent_keepalive_interval", *p.persistent_keepalive);
    if (p.replace_allowed_ips) append_wiping(out, "replace_allowed_ips=true\n");
    for (const auto& ip : p.allowed_ips) {
      append_wiping(out, "allowed_ip=");
      append_wiping(out, ip.to_string());
      append_wiping(out, "\n");
    }
  }
  append_wiping(out, "\n");
  return out;
}

Result<wg::WgDevice> decode_get(std::string_view reply, std::string_view name) {
  ReplyParser rp{name, "get"};
  wg::WgDevice dev;
  dev.name = std::string(name);
  wg::WgPeer* peer = nullptr;

  auto on_line = [&](std::size_t line, std::string_view key,
                     std::string_view value) -> Result<void> {
    auto bad = [&](std::string_view expected) { return rp.bad_value(line, key, value, expected); };
    auto device_key = [&]() -> Result<void> {
      if (peer)
        return rp.protocol("line " + std::to_string(line) + ": device key " + std::string(key) +
                           " after the first peer");
      return {};
    };
    auto peer_key = [&]() -> Result<void> {
      if (!peer)
        return rp.protocol("line " + std::to_string(line) + ": peer key " + std::string(key) +
                           " before any public_key");
      return {};
    };

    if (key == "private_key") {
      if (auto r = device_key(); !r) return r;
      auto k = keys::key_from_hex(value);
      if (!k) return bad("64 hex digits");
      keys::PrivateKey priv{*k};
      sodium_memzero(k->data(), k->size());
      // The reply carries only the private half; like wg(8), derive the public one.
      if (!priv.is_zero()) {
        dev.public_key = priv.public_key();
        dev.private_key = std::move(priv);
      }
    } else if (key == "listen_port") {
      if (auto r = device_key(); !r) return r;
      std::uint16_t v = 0;
      if (!parse_number<std::uint16_t>(value, 65535, v)) return bad("a port from 0 to 65535");
      dev.listen_port = v;
    } else if (key == "fwmark") {
      if (auto r = device_key(); !r) return r;
      std::uint32_t v = 0;
      if (!parse_number<std::uint32_t>(value, 0xffffffffU, v)) return bad("a 32-bit number");
      dev.fwmark = v;
    } else if (key == "public_key") {
      auto k = keys::key_from_hex(value);
      if (!k) return bad("64 hex digits");
      peer = &dev.peers.emplace_back();
      peer->public_key = keys::PublicKey(*k);
    } else if (key == "preshared_key") {
      if (auto r = peer_key(); !r) return r;
      auto k = keys::key_from_hex(value);
      if (!k) return bad("64 hex digits");
      keys::PresharedKey psk{*k};
      sodium_memzero(k->data(), k->size());
      if (!psk.is_zero()) peer->preshared_key = std::move(psk);  // all-zero = none
    } else if (key == "endpoint") {
      if (auto r = peer_key(); !r) return r;
      // A link-local v6 endpoint may carry a zone ("[fe80::1%eth0]:51820");
      // the model has no zone, so keep the address and port.
      std::string text(value);
      if (auto pct = text.find('%'); pct != std::string::npos && !text.empty() && text[0] == '[') {
        auto close = text.find(']', pct);
        if (close != std::string::npos) text.erase(pct, close - pct);
      }
      auto e = Endpoint::parse(text);
      if (!e) return bad("a.b.c.d:port or [ipv6]:port");
      peer->endpoint = *e;
    } else if (key == "persistent_keepalive_interval") {
      if (auto r = peer_key(); !r) return r;
      std::uint16_t v = 0;
      if (!parse_number<std::uint16_t>(value, 65535, v)) return bad("seconds from 0 to 65535");
      peer->persistent_keepalive = v;
    } else if (key == "allowed_ip") {
      if (auto r = peer_key(); !r) return r;
      // The prefix must be explicit here: a bare address is not a reply form.
      if (value.find('/') == std::string_view::npos) return bad("address/length");
      auto p = IpPrefix::parse(value);
      if (!p) return bad("address/length");
      peer->allowed_ips.push_back(*p);
    } else if (key == "last_handshake_time_sec") {
      if (auto r = peer_key(); !r) return r;
      std::int64_t v = 0;
      if (!parse_number<std::int64_t>(value, std::numeric_limits<std::int64_t>::max(), v))
        return bad("unix seconds");
      peer->last_handshake_sec = v;
    } else if (key == "last_handshake_time_nsec") {
      if (auto r = peer_key(); !r) return r;
      std::int64_t v = 0;
      if (!parse_number<std::int64_t>(value, 999'999'999, v)) return bad("nanoseconds below 1e9");
      peer->last_handshake_nsec = v;
    } else if (key == "rx_bytes" || key == "tx_bytes") {
      if (auto r = peer_key(); !r) return r;
      std::uint64_t v = 0;
      if (!parse_number<std::uint64_t>(value, std::numeric_limits<std::uint64_t>::max(), v))
        return bad("a byte count");
      (key == "rx_bytes" ? peer->rx_bytes : peer->tx_bytes) = v;
    } else if (key == "protocol_version") {
      if (auto r = peer_key(); !r) return r;
      int v = 0;
      if (!parse_number<int>(value, 0x7fffffff, v)) return bad("a version number");
      peer->protocol_version = v;
    }
    // Anything else: a key this codec does not know. wg(8) skips those too,
    // so an implementation that reports more stays readable.
    return {};
  };

  auto err = for_each_line(rp, reply, on_line);
  if (!err) return err.error();
  if (*err != 0) return rp.failed(*err);
  return dev;
}

Result<void> decode_set_reply(std::string_view reply, std::string_view name) {
  ReplyParser rp{name, "set"};
  auto err = for_each_line(rp, reply, [&](std::size_t line, std::string_view key,
                                          std::string_view) -> Result<void> {
    return rp.protocol("line " + std::to_string(line) + ": unexpected key \"" +
                       std::string(key.substr(0, 64)) + "\" in a set reply");
  });
  if (!err) return err.error();
  if (*err != 0) return rp.failed(*err);
  return {};
}

}  // namespace meshd::dataplane::uapi
