#include "meshd/dataplane/userspace_backend.h"

#include "meshd/dataplane/uapi_client.h"
#include "netlink/netns.h"
#include "netlink/rtnl.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

extern char** environ;

namespace meshd::dataplane {

namespace {

using Clock = std::chrono::steady_clock;

// Where every UAPI implementation puts its socket, whatever we would like.
constexpr const char* kFixedSocketDir = "/var/run/wireguard";

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = [] {
    if (auto existing = spdlog::get("dataplane")) return existing;
    return spdlog::default_logger()->clone("dataplane");
  }();
  return *l;
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

bool fd_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// The implementation's path, resolved before fork(): the child may only make
// async-signal-safe calls, and a PATH walk allocates.
Result<std::string> resolve_binary(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0)
      return fail(errno, "userspace WireGuard implementation " + name + " is not executable");
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::size_t at = 0;
  while (at <= dirs.size()) {
    std::size_t colon = dirs.find(':', at);
    std::string dir = dirs.substr(at, colon == std::string::npos ? std::string::npos : colon - at);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  return fail(ENOENT, "find the userspace WireGuard implementation \"" + name +
                          "\" in PATH (install wireguard-go or set the implementation path)");
}

// What the child reports through the CLOEXEC pipe when it fails before exec.
struct ChildFailure {
  int stage;
  int err;
};
constexpr const char* kStages[] = {"setsid",        "enter the network namespace",
                                   "unshare the mount namespace",
                                   "make the mount tree a slave",
                                   "create /var/run/wireguard",
                                   "bind-mount the socket directory on /var/run/wireguard",
                                   "redirect output",  "exec"};

[[noreturn]] void child_fail(int pipe_fd, int stage) {
  ChildFailure f{stage, errno};
  (void)!::write(pipe_fd, &f, sizeof f);
  ::_exit(127);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  return "stopped";
}

}  // namespace

UserspaceBackend::UserspaceBackend(UserspaceBackendOptions opts) : opts_(std::move(opts)) {
  while (opts_.socket_dir.size() > 1 && opts_.socket_dir.back() == '/') opts_.socket_dir.pop_back();
  if (opts_.log_dir.empty()) opts_.log_dir = opts_.socket_dir;
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0)
    throw ErrorException(Error::from_errno(errno, "create the userspace backend's eventfd"));
  supervisor_ = std::thread([this] { supervisor_loop(); });
}

UserspaceBackend::~UserspaceBackend() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_supervisor();
  supervisor_.join();
  // Deliberately no kill: the data plane outlives this object (and meshd).
  // Children we do not wait for are reparented to init, which reaps them.
  for (auto& [name, inst] : instances_)
    if (inst.pidfd >= 0) ::close(inst.pidfd);
  ::close(wake_fd_);
}

std::string UserspaceBackend::socket_path(const std::string& name) const {
  return opts_.socket_dir + "/" + name + ".sock";
}

std::string UserspaceBackend::log_path(const std::string& name) const {
  return opts_.log_dir + "/" + name + ".log";
}

pid_t UserspaceBackend::implementation_pid(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = instances_.find(name);
  return it == instances_.end() ? 0 : it->second.pid;
}

void UserspaceBackend::wake_supervisor() {
  std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void UserspaceBackend::forget_process_locked(Instance& inst) {
  if (inst.pidfd >= 0) ::close(inst.pidfd);
  inst.pidfd = -1;
  inst.pid = 0;
  inst.child = false;
  inst.pid_unknown = false;
}

bool UserspaceBackend::alive_locked(const std::string& name, Instance& inst) {
  if (inst.pid_unknown) {
    // Adopted from a PID namespace we cannot see into: only the socket tells.
    if (uapi::get_device({socket_path(name), name, opts_.request_timeout})) return true;
    logger().warn("adopted userspace WireGuard implementation on {} stopped answering",
                  socket_path(name));
    forget_process_locked(inst);
    return false;
  }
  if (inst.pid <= 0) return false;
  if (inst.pidfd >= 0 && !fd_readable(inst.pidfd)) return true;
  if (inst.pidfd < 0) return ::kill(inst.pid, 0) == 0;  // no pidfd: best effort
  if (inst.child) {
    int status = 0;
    if (::waitpid(inst.pid, &status, WNOHANG) == inst.pid)
      logger().warn("userspace WireGuard implementation (pid {}) {}", inst.pid,
                    describe_status(status));
  } else {
    logger().warn("adopted userspace WireGuard implementation (pid {}) exited", inst.pid);
  }
  forget_process_locked(inst);
  return false;
}

Result<void> UserspaceBackend::adopt_locked(const std::string& name, Instance& inst) {
  uapi::ClientOptions co{socket_path(name), name, opts_.request_timeout};
  auto dev = uapi::get_device(co);
  if (!dev) return dev.error();
  forget_process_locked(inst);
  if (auto pid = uapi::server_pid(co)) {
    inst.pid = *pid;
    inst.pidfd = pidfd_open(*pid);
  } else {
    inst.pid_unknown = true;
  }
  logger().info("adopted the userspace WireGuard implementation serving {} (pid {})",
                socket_path(name), inst.pid);
  return {};
}

Result<void> UserspaceBackend::start_locked(const std::string& name, Instance& inst) {
  inst.last_start = Clock::now();
  const std::string what = "start " + opts_.implementation + " for device " + name;

  // A link of that name that no live implementation serves (a leftover
  // device) would make wireguard-go fail with an obscure TUN error: say so.
  {
    nl::NetnsFd ns;
    if (!opts_.netns_path.empty()) {
      auto r = nl::open_netns(opts_.netns_path);
      if (!r) return Error{r.error().code, what + ": " + r.error().message};
      ns = std::move(*r);
    }
    auto rtnl = ns.valid() ? nl::Rtnl::open_in_netns(ns.get()) : nl::Rtnl::open();
    if (!rtnl) return Error{rtnl.error().code, what + ": " + rtnl.error().message};
    if (auto link = rtnl->get_link(name))
      return fail(EEXIST, what + ": a " + (link->kind.empty() ? "" : link->kind + " ") +
                              "device named " + name + " exists but nothing answers on " +
                              socket_path(name) + "; delete it (ip link del " + name +
                              ") or pick another interface name");
  }

  auto binary = resolve_binary(opts_.implementation);
  if (!binary) return binary.error();
  std::error_code ec;
  std::filesystem::create_directories(opts_.socket_dir, ec);
  if (ec) return fail(ec.value(), what + ": create socket directory " + opts_.socket_dir);
  std::filesystem::create_directories(opts_.log_dir, ec);
  if (ec) return fail(ec.value(), what + ": create log directory " + opts_.log_dir);

  // Everything the child needs, prepared before fork().
  // /run/wireguard is the same directory on Debian (/var/run -> /run): no
  // private namespace is needed to serve the standard path.
  const bool private_mounts = std::filesystem::weakly_canonical(opts_.socket_dir, ec) !=
                              std::filesystem::weakly_canonical(kFixedSocketDir, ec);
  int netns_fd = -1;
  if (!opts_.netns_path.empty()) {
    netns_fd = ::open(opts_.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) return fail(errno, what + ": open network namespace " + opts_.netns_path);
  }
  int log_fd = ::open(log_path(name).c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {netns_fd, log_fd, null_fd, pipe_fds[0], pipe_fds[1]})
      if (fd >= 0) ::close(fd);
  };
  if (log_fd < 0 || null_fd < 0 || ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int err = errno;
    close_all();
    return fail(err, what + ": open " + log_path(name) + " or a status pipe");
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    // Inherited WG_* descriptors would point wireguard-go at meshd's fds.
    if (kv.starts_with("WG_PROCESS_FOREGROUND=") || kv.starts_with("WG_TUN_FD=") ||
        kv.starts_with("WG_UAPI_FD="))
      continue;
    env_strings.emplace_back(kv);
  }
  env_strings.emplace_back("WG_PROCESS_FOREGROUND=1");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = *binary, arg1 = name;
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  const char* socket_dir = opts_.socket_dir.c_str();

  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    close_all();
    return fail(err, what + ": fork");
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to execve.
    int report = pipe_fds[1];
    // Its own session and process group: signals aimed at meshd's group (a
    // terminal's ^C, systemd's KillMode=mixed SIGTERM) do not reach it.
    if (::setsid() < 0) child_fail(report, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) child_fail(report, 1);
    if (private_mounts) {
      if (::unshare(CLONE_NEWNS) != 0) child_fail(report, 2);
      // Slave, not private: mounts the host makes or removes later (ip netns
      // add/del pin files) still propagate in, none of ours leak out.
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) child_fail(report, 3);
      if (::mkdir(kFixedSocketDir, 0755) != 0 && errno != EEXIST) child_fail(report, 4);
      if (::mount(socket_dir, kFixedSocketDir, nullptr, MS_BIND, nullptr) != 0)
        child_fail(report, 5);
    }
    if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0)
      child_fail(report, 6);
    ::execve(argv[0], argv, envp.data());
    child_fail(report, 7);
  }

  ::close(pipe_fds[1]);
  pipe_fds[1] = -1;
  ChildFailure failure{};
  ssize_t got;
  do {
    got = ::read(pipe_fds[0], &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  close_all();
  if (got == static_cast<ssize_t>(sizeof failure)) {
    ::waitpid(pid, nullptr, 0);
    return fail(failure.err, what + ": could not " + kStages[failure.stage]);
  }

  forget_process_locked(inst);
  inst.pid = pid;
  inst.child = true;
  inst.pidfd = pidfd_open(pid);

  // Bounded wait for the socket to answer: wireguard-go needs ~10-30 ms.
  uapi::ClientOptions co{socket_path(name), name, opts_.request_timeout};
  const auto deadline = Clock::now() + opts_.start_timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      forget_process_locked(inst);
      return fail(ECHILD, what + ": it " + describe_status(status) + " before serving " +
                              socket_path(name) + "; see " + log_path(name));
    }
    auto dev = uapi::get_device(co);
    if (dev) break;
    if (Clock::now() >= deadline) {
      // Ours, never adopted, not serving: stop it so a retry starts clean.
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      forget_process_locked(inst);
      return fail(ETIMEDOUT, what + ": " + socket_path(name) + " did not answer within " +
                                 std::to_string(opts_.start_timeout.count()) + " ms (last: " +
                                 dev.error().message + "); see " + log_path(name));
    }
    ::usleep(5000);
  }
  logger().info("started {} for device {} (pid {}, socket {})", *binary, name, pid,
                socket_path(name));
  return {};
}

Result<void> UserspaceBackend::ensure_device(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    const bool known = instances_.count(name) > 0;
    Instance& inst = instances_[name];
    if (alive_locked(name, inst)) return {};
    // Somebody (a previous meshd) may already serve it: adopt, never restart.
    if (!adopt_locked(name, inst)) {
      if (auto r = start_locked(name, inst); !r) {
        if (!known) instances_.erase(name);  // a known one stays supervised
        return r;
      }
      // It was ours and died: whatever was configured is gone.
      if (known) inst.restarted = true;
    }
  }
  wake_supervisor();  // watch the new pidfd
  return {};
}

Result<wg::WgDevice> UserspaceBackend::get_device(const std::string& name) {
  return uapi::get_device({socket_path(name), name, opts_.request_timeout});
}

Result<void> UserspaceBackend::set_device(const wg::WgDevice& change) {
  return uapi::set_device({socket_path(change.name), change.name, opts_.request_timeout}, change);
}

Result<void> UserspaceBackend::delete_link(const std::string& name) {
  auto del = [&]() -> Result<void> {
    auto rtnl = nl::Rtnl::open();
    if (!rtnl) return rtnl.error();
    return rtnl->delete_link(name);
  };
  if (opts_.netns_path.empty()) return del();
  auto ns = nl::open_netns(opts_.netns_path);
  if (!ns) return ns.error();
  return nl::run_in_netns(ns->get(), del);
}

Result<void> UserspaceBackend::delete_device(const std::string& name) {
  Instance inst;
  {
    std::lock_guard lock(mu_);
    if (auto it = instances_.find(name); it != instances_.end()) {
      inst = it->second;  // take over its pidfd; the supervisor forgets it
      instances_.erase(it);
    }
  }
  wake_supervisor();
  if (inst.pid == 0) {
    // Not ours (yet): find who serves the socket, so we can wait for it.
    uapi::ClientOptions co{socket_path(name), name, opts_.request_timeout};
    if (auto pid = uapi::server_pid(co)) {
      inst.pid = *pid;
      inst.pidfd = pidfd_open(*pid);
    }
  }
  // Deleting the link is how an implementation is told to go: wireguard-go
  // exits when its TUN device disappears, removing its socket.
  auto r = delete_link(name);
  if (r && inst.pid > 0) {
    const auto deadline = Clock::now() + opts_.start_timeout;
    bool gone = false;
    while (!gone && Clock::now() < deadline) {
      if (inst.pidfd >= 0) {
        pollfd p{inst.pidfd, POLLIN, 0};
        gone = ::poll(&p, 1, 20) > 0;
      } else {
        gone = ::kill(inst.pid, 0) != 0;
        if (!gone) ::usleep(20000);
      }
    }
    if (!gone) {
      logger().warn("{} (pid {}) did not exit after its device {} was deleted; terminating it",
                    opts_.implementation, inst.pid, name);
      ::kill(inst.pid, SIGTERM);
    }
    if (inst.child) ::waitpid(inst.pid, nullptr, 0);
  }
  if (inst.pidfd >= 0) ::close(inst.pidfd);
  if (!r) return Error{r.error().code, "delete userspace WireGuard device " + name + ": " +
                                           r.error().message};
  return {};
}

bool UserspaceBackend::restarted_since_last_check(const std::string& name) {
  std::lock_guard lock(mu_);
  supervise_locked();
  auto it = instances_.find(name);
  if (it == instances_.end()) return false;
  return std::exchange(it->second.restarted, false);
}

void UserspaceBackend::supervise_locked() {
  for (auto& [name, inst] : instances_) {
    if (alive_locked(name, inst)) continue;
    if (Clock::now() - inst.last_start < opts_.restart_backoff) continue;
    // A fresh instance knows nothing: the caller must re-apply the full
    // state, which restarted_since_last_check() tells it. If another one
    // already serves the socket (an operator started it), adopt that.
    if (adopt_locked(name, inst)) {
      inst.restarted = true;
      continue;
    }
    if (auto r = start_locked(name, inst); r) {
      inst.restarted = true;
      logger().warn("restarted the userspace WireGuard implementation for {}", name);
    } else {
      logger().error("restarting the userspace WireGuard implementation for {} failed: {}",
                     name, r.error().message);
    }
  }
}

void UserspaceBackend::supervisor_loop() {
  for (;;) {
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    bool pending = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      for (auto& [name, inst] : instances_) {
        if (inst.pidfd >= 0)
          fds.push_back({inst.pidfd, POLLIN, 0});
        else
          pending = true;  // not running, or no pidfd: look again after the backoff
      }
    }
    int timeout_ms = pending ? static_cast<int>(std::max<long>(opts_.restart_backoff.count(), 50))
                             : 1000;
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      logger().error("userspace backend supervisor: poll: {}", std::strerror(errno));
      ::usleep(100000);
    }
    if (fds[0].revents & POLLIN) {
      std::uint64_t v;
      (void)!::read(wake_fd_, &v, sizeof v);
    }
    std::lock_guard lock(mu_);
    if (stopping_) return;
    supervise_locked();
  }
}

}  // namespace meshd::dataplane
