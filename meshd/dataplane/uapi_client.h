// The socket half of the UAPI: one request/reply exchange over the unix
// stream socket a userspace WireGuard implementation listens on
// (SOCKET_DIR/IFACE.sock). The text itself is uapi.h's business.
#pragma once

#include "common/result.h"
#include "netlink/wg_device.h"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace meshd::dataplane::uapi {

// A get reply is ~350 bytes per peer (~400 kB for 1000 peers): 16 MiB leaves
// room for tens of thousands while keeping a runaway server from taking
// meshd's memory.
inline constexpr std::size_t kDefaultMaxReplyBytes = 16u << 20;

struct ClientOptions {
  std::string socket_path;  // e.g. /var/run/wireguard/wg0.sock
  std::string device;       // names the device in errors
  // Bounds the whole exchange: a wedged implementation must not wedge meshd.
  std::chrono::milliseconds timeout{5000};
  // Bounds the reply: a server that keeps sending gets EMSGSIZE, not memory.
  std::size_t max_reply_bytes = kDefaultMaxReplyBytes;
};

// Every connection is checked before a byte is written: the process that
// listens on the socket (SO_PEERCRED) must run as root or as meshd's own
// effective uid. Anything else gets EPERM naming its uid and PID: a request
// may carry the private key, and whoever answers decides what meshd believes.

// Connects, writes `request`, reads until the blank line that ends the reply,
// and returns the reply. Errors name the socket path; ECONNREFUSED/ENOENT mean
// nothing serves it, ETIMEDOUT that it did not answer in time, EPERM that the
// server runs as another user, EMSGSIZE that the reply outgrew max_reply_bytes.
// The reply grows without leaving copies behind (uapi::append_wiping), and the
// read buffer is wiped, since a get reply carries the private key.
Result<std::string> transact(const ClientOptions& opts, std::string_view request);

// get=1 and decode. The raw reply (it holds the private key) is wiped.
Result<wg::WgDevice> get_device(const ClientOptions& opts);

// Encode `change` as set=1, send it, check errno. The request is wiped.
Result<void> set_device(const ClientOptions& opts, const wg::WgDevice& change);

// The PID of the process serving `socket_path` (SO_PEERCRED of a fresh
// connection, after the uid check above): lets a restarted meshd supervise an
// instance it adopted.
Result<pid_t> server_pid(const ClientOptions& opts);

}  // namespace meshd::dataplane::uapi
