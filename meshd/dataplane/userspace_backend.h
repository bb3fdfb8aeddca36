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
//     only delete_device() stops one (by deleting its TUN link, which makes
//     wireguard-go exit; SIGTERM, then SIGKILL, if it does not).
// Trust rules, because meshd runs as root and hands the implementation its
// private key: the binary, the socket directory and the log directory must be
// owned by root (or meshd's euid) and not writable by group or others; the
// process answering on the socket must run as root or meshd's euid
// (uapi_client.h); the child gets a minimal environment and no inherited
// descriptor beyond stdin/stdout/stderr.
// See docs/userspace-backend.md.
#pragma once

#include "meshd/dataplane/wg_backend.h"
#include "netlink/rtnl.h"

#include <sys/types.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace meshd::dataplane {

struct UserspaceBackendOptions {
  // The implementation binary: a path, or a name looked up in meshd's PATH.
  // Resolved once, when the backend is constructed, to an absolute path whose
  // file and directories are checked (see above). It is run as
  // `IMPLEMENTATION IFACE` with no other argument (wireguard-go would take any
  // other argument for an interface name) and only PATH,
  // WG_PROCESS_FOREGROUND=1 and, if meshd has it, LOG_LEVEL in its environment.
  std::string implementation = "wireguard-go";
  // Where the UAPI sockets are. Implementations always listen in
  // /var/run/wireguard; for any other directory each one runs in a private
  // mount namespace with this directory bind-mounted there, so instances for
  // different nodes (different network namespaces) never share a socket.
  std::string socket_dir = "/var/run/wireguard";
  // Network namespace the devices are created in (e.g. /var/run/netns/node1);
  // empty = the namespace meshd runs in.
  std::string netns_path;
  // Where each implementation writes its own log: DIR/IFACE.log (0600, never
  // through a symlink). Empty = socket_dir. A file, not meshd's stderr: a pipe
  // to a dead meshd would kill the implementation with SIGPIPE. Both
  // directories are created 0700 when missing.
  std::string log_dir;
  std::chrono::milliseconds start_timeout{5000};    // until the socket answers
  std::chrono::milliseconds request_timeout{5000};  // one UAPI exchange
  std::chrono::milliseconds restart_backoff{500};   // least time between starts
  // delete_device(): how long to wait for the exit that deleting the link
  // causes, then again after SIGTERM, before SIGKILL.
  std::chrono::milliseconds stop_timeout{5000};
};

// Whether `pid` is a process that has not exited. A zombie (exited, not yet
// reaped) answers kill(pid, 0) but is not running.
bool process_running(pid_t pid);

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

  // Starting an implementation, step by step (start_locked runs them).
  struct ChildSetup;
  Result<void> start_locked(const std::string& name, Instance& inst);
  Result<void> refuse_leftover_link(const std::string& name, const std::string& what);
  Result<ChildSetup> prepare_child(const std::string& name, const std::string& what);
  static Result<pid_t> spawn_child(ChildSetup& c, const std::string& what);
  [[noreturn]] static void exec_child(const ChildSetup& c, char* const argv[], char* const envp[]);
  Result<void> wait_until_serving(const std::string& name, Instance& inst, const std::string& what);
  Result<void> adopt_locked(const std::string& name, Instance& inst);
  bool alive_locked(const std::string& name, Instance& inst);
  void forget_process_locked(Instance& inst);
  void supervise_locked();
  void supervisor_loop();
  void wake_supervisor();
  Result<std::optional<nl::Link>> find_link(const std::string& name);
  Result<void> delete_link(const std::string& name);
  bool wait_exit(Instance& inst, std::chrono::milliseconds timeout);
  void stop_process(Instance& inst, const std::string& name);

  UserspaceBackendOptions opts_;
  Result<std::string> binary_;  // the implementation, resolved and checked once
  std::vector<std::string> child_env_;
  mutable std::mutex mu_;
  std::map<std::string, Instance> instances_;
  int wake_fd_ = -1;  // eventfd: instance set changed, or stop
  bool stopping_ = false;
  std::thread supervisor_;
};

}  // namespace meshd::dataplane
