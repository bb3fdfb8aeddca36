// The `userspace` WireGuard backend: each device is served by a UAPI
// implementation process (wireguard-go by default) that meshd starts,
// supervises and — after a meshd restart — adopts; configuration goes over
// the cross-platform UAPI socket (uapi.h, uapi_client.h).
//
// Lifetime rules, because the data plane must outlive the control plane:
//   - an implementation runs in its own session, never tied to meshd's: a
//     stopped or SIGKILLed meshd leaves it forwarding traffic;
//   - ensure_device() adopts an implementation that already answers on
//     SOCKET_DIR/NAME.sock instead of starting another;
//   - destroying a UserspaceBackend leaves every implementation running;
//     only delete_device() stops one (by deleting its link, which makes
//     wireguard-go exit).
// See docs/userspace-backend.md.
#pragma once

#include "meshd/dataplane/wg_backend.h"

#include <sys/types.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace meshd::dataplane {

struct UserspaceBackendOptions {
  // The implementation binary: a path, or a name looked up in PATH. It is run
  // as `IMPLEMENTATION IFACE` with WG_PROCESS_FOREGROUND=1 and no other
  // argument (wireguard-go would take any other argument for an interface name).
  std::string implementation = "wireguard-go";
  // Where the UAPI sockets are. Implementations always listen in
  // /var/run/wireguard; for any other directory each one runs in a private
  // mount namespace with this directory bind-mounted there, so instances for
  // different nodes (different network namespaces) never share a socket.
  std::string socket_dir = "/var/run/wireguard";
  // Network namespace the devices are created in (e.g. /var/run/netns/node1);
  // empty = the namespace meshd runs in.
  std::string netns_path;
  // Where each implementation writes its own log: DIR/IFACE.log. Empty =
  // socket_dir. A file, not meshd's stderr: a pipe to a dead meshd would kill
  // the implementation with SIGPIPE.
  std::string log_dir;
  std::chrono::milliseconds start_timeout{5000};    // until the socket answers
  std::chrono::milliseconds request_timeout{5000};  // one UAPI exchange
  std::chrono::milliseconds restart_backoff{500};   // least time between starts
};

class UserspaceBackend final : public WgBackend {
 public:
  explicit UserspaceBackend(UserspaceBackendOptions opts = {});
  ~UserspaceBackend() override;  // stops supervising; implementations keep running
  UserspaceBackend(const UserspaceBackend&) = delete;
  UserspaceBackend& operator=(const UserspaceBackend&) = delete;

  std::string_view kind() const override { return "userspace"; }
  Result<void> ensure_device(const std::string& name) override;
  Result<wg::WgDevice> get_device(const std::string& name) override;
  Result<void> set_device(const wg::WgDevice& change) override;
  Result<void> delete_device(const std::string& name) override;
  bool restarted_since_last_check(const std::string& name) override;

  // The PID of the implementation serving `name` (0 if none is known): for
  // operators and tests.
  pid_t implementation_pid(const std::string& name) const;
  std::string socket_path(const std::string& name) const;
  std::string log_path(const std::string& name) const;

 private:
  struct Instance {
    pid_t pid = 0;
    int pidfd = -1;      // readable once the process has exited
    bool child = false;  // ours to reap with waitpid
    bool pid_unknown = false;  // adopted, but its PID is not visible to us
    bool restarted = false;
    std::chrono::steady_clock::time_point last_start{};
  };

  Result<void> start_locked(const std::string& name, Instance& inst);
  Result<void> adopt_locked(const std::string& name, Instance& inst);
  bool alive_locked(const std::string& name, Instance& inst);
  void forget_process_locked(Instance& inst);
  void supervise_locked();
  void supervisor_loop();
  void wake_supervisor();
  Result<void> delete_link(const std::string& name);

  UserspaceBackendOptions opts_;
  mutable std::mutex mu_;
  std::map<std::string, Instance> instances_;
  int wake_fd_ = -1;  // eventfd: instance set changed, or stop
  bool stopping_ = false;
  std::thread supervisor_;
};

}  // namespace meshd::dataplane
