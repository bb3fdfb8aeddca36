// The cross-platform userspace WireGuard configuration protocol
// (https://www.wireguard.com/xplatform/, "Configuration Protocol") as pure
// functions: a WgDevice change becomes a `set=1` request; a `get=1` reply
// becomes a WgDevice; the `errno=N` trailer becomes success or an Error.
// No sockets here (see uapi_client.h), so every rule is unit-testable.
//
// Secrets: requests and replies carry the private and preshared keys in hex.
// Error messages never quote those values, and wipe() clears a buffer that
// held them once the caller is done with it.
#pragma once

#include "common/result.h"
#include "netlink/wg_device.h"

#include <string>
#include <string_view>

namespace meshd::dataplane::uapi {

// What a client writes to read the whole device: the operation line and the
// blank line that ends every request.
inline constexpr std::string_view kGetRequest = "get=1\n\n";

// Encodes `change` as a complete `set=1` request, ending with its blank line.
// Only what the change sets is written; flags map one to one:
//   replace_peers -> replace_peers=true, peer.remove -> remove=true (nothing
//   else for that peer), peer.update_only -> update_only=true (written right
//   after public_key: wireguard-go only honours it before the peer is created),
//   peer.replace_allowed_ips -> replace_allowed_ips=true, before allowed_ip lines.
// Keys are lowercase hex as the protocol demands. The result holds secrets when
// the change has a private or preshared key: wipe() it after sending.
std::string encode_set(const wg::WgDevice& change);

// Decodes a complete `get=1` reply (every line up to and including the blank
// line) for device `name`. Unknown keys are skipped, as wg(8) does, so newer
// implementations stay readable. The reply must end with `errno=N` and a blank
// line: a non-zero errno becomes an Error carrying that errno; a missing errno,
// a missing blank line (truncated reply), a line without '=', bad hex, a bad
// number, an allowed IP or endpoint that does not parse, or a device key after
// the first peer give EPROTO with the line number and key (never a secret).
Result<wg::WgDevice> decode_get(std::string_view reply, std::string_view name);

// Decodes the reply to a `set=1` request: exactly `errno=N` and a blank line.
// `name` names the device in errors.
Result<void> decode_set_reply(std::string_view reply, std::string_view name);

// Where the reply in `buffer` ends: the index just past the blank line that
// closes it, or npos while more bytes are needed. A reply never starts with a
// blank line (errno= is always there), so the first "\n\n" is the end.
std::size_t reply_end(std::string_view buffer);

// Overwrites a buffer that held secrets, in a way the compiler cannot elide.
void wipe(std::string& buffer);

// Appends `text` to a buffer that holds (or will hold) secrets. When the
// buffer must grow, the bytes move to a larger allocation and the old one is
// wiped before it is freed: a plain append would leave a copy of every key in
// freed heap memory on each reallocation.
void append_wiping(std::string& buffer, std::string_view text);

}  // namespace meshd::dataplane::uapi
