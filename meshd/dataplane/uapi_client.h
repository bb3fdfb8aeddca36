// The socket half of the UAPI: one request/reply exchange over the unix
// stream socket a userspace WireGuard implementation listens on
// (SOCKET_DIR/IFACE.sock). The text itself is uapi.h's business.
#pragma once

#include "common/result.h"
#include "netlink/wg_device.h"

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>

namespace meshd::dataplane::uapi {

struct ClientOptions {
  std::string socket_path;  // e.g. /var/run/wireguard/wg0.sock
  std::string device;       // names the device in errors
  // Bounds the whole exchange: a wedged implementation must not wedge meshd.
  std::chrono::milliseconds timeout{5000};
};

// Connects, writes `request`, reads until the blank line that ends the reply,
// and returns the reply. Errors name the socket path; ECONNREFUSED/ENOENT mean
// nothing serves it, ETIMEDOUT that it did not answer in time.
Result<std::string> transact(const ClientOptions& opts, std::string_view request);

// get=1 and decode. The raw reply (it holds the private key) is wiped.
Result<wg::WgDevice> get_device(const ClientOptions& opts);

// Encode `change` as set=1, send it, check errno. The request is wiped.
Result<void> set_device(const ClientOptions& opts, const wg::WgDevice& change);

// The PID of the process serving `socket_path` (SO_PEERCRED of a fresh
// connection): lets a restarted meshd supervise an instance it adopted.
Result<pid_t> server_pid(const ClientOptions& opts);

}  // namespace meshd::dataplane::uapi
