// The service manager's notification protocol ($NOTIFY_SOCKET, sd_notify(3)):
// READY=1, STOPPING=1, WATCHDOG=1, STATUS=... as one datagram on a Unix
// socket. systemd documents the protocol as stable and meant to be
// reimplemented; linking libsystemd only for it cost meshd about 1 MB of
// resident memory (libsystemd and the compression and crypto libraries it
// loads). Without $NOTIFY_SOCKET every call is a no-op.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <string_view>

namespace meshd::daemon {

// $NOTIFY_SOCKET as a socket address: an absolute path, or "@name" for the
// abstract namespace (the '@' becomes a NUL byte). nullopt for an empty,
// relative or too long value. `len` is what bind/sendto take.
struct NotifyAddress {
  sockaddr_un addr{};
  socklen_t len = 0;
};
std::optional<NotifyAddress> parse_notify_socket(std::string_view value);

// $WATCHDOG_USEC (and $WATCHDOG_PID, which must name `pid` when set): the
// interval the manager expects WATCHDOG=1 within; nullopt when the watchdog
// is off or the values do not parse. Half of it is the usual ping period.
std::optional<std::chrono::microseconds> parse_watchdog(const char* usec, const char* pid_text,
                                                        long pid);

// Sends `state` to the manager named by $NOTIFY_SOCKET. True when sent,
// false when there is no manager or the send failed (the manager then acts
// as if the message never came: nothing for meshd to do but carry on).
bool notify_service_manager(std::string_view state);

// The watchdog interval from this process's environment.
std::optional<std::chrono::microseconds> service_watchdog_interval();

}  // namespace meshd::daemon
