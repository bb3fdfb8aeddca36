#include "meshd/dataplane/userspace_backend.h"

#include "common/ifname.h"
#include "common/unique_fd.h"
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
// glibc 2.36's <sys/pidfd.h> lacks __BEGIN_DECLS: its functions would get C++ linkage.
extern "C" {
#include <sys/pidfd.h>
}
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

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

bool fd_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// An error for a person, without strerror's sentence appended.
Error refuse(int err, std::string message) {
  return Error{{err, boost::system::generic_category()}, std::move(message)};
}

bool trusted_owner(uid_t uid) { return uid == 0 || uid == ::geteuid(); }

std::string octal_mode(mode_t m) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
  return b;
}

// One directory (or the leaf) on a path meshd trusts: owned by root or by
// meshd's euid, and not writable by group or others. A sticky directory
// (/tmp) is acceptable above the last level: there only an entry's owner may
// rename or remove it.
Result<void> check_component(const std::string& what, const std::string& path,
                             const struct stat& st, bool allow_sticky) {
  if (!trusted_owner(st.st_uid))
    return refuse(EPERM, what + ": refused: " + path + " is owned by uid " +
                             std::to_string(st.st_uid) + ", not root or meshd's uid " +
                             std::to_string(::geteuid()) + "; fix: chown root " + path);
  const bool writable = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
  if (writable && !(allow_sticky && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX)))
    return refuse(EPERM, what + ": refused: " + path + " has mode " + octal_mode(st.st_mode) +
                             ", writable by group or others; fix: chmod go-w " + path);
  return {};
}

// Checks `path` and every directory above it, as written (a symlink on the
// way must be ours: its directory could otherwise re-point it later) and as
// resolved. Returns the resolved path.
Result<std::string> check_trusted_path(const std::string& path, bool want_dir,
                                       const std::string& what) {
  namespace fs = std::filesystem;
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) return fail(errno, what + ": resolve " + path);
  const std::string canonical = real;
  std::free(real);

  auto walk_parents = [&](const fs::path& p) -> Result<void> {
    const fs::path parent = p.parent_path();
    const fs::path last = parent;
    fs::path prefix;
    for (const auto& part : parent) {
      prefix /= part;
      struct stat st{};
      if (::lstat(prefix.c_str(), &st) != 0)
        return fail(errno, what + ": inspect " + prefix.string());
      if (S_ISLNK(st.st_mode)) {
        if (!trusted_owner(st.st_uid))
          return refuse(EPERM, what + ": refused: the symbolic link " + prefix.string() +
                                   " is owned by uid " + std::to_string(st.st_uid) +
                                   ", not root; fix: replace it with a root-owned one");
        continue;
      }
      // The directory holding a binary must not be writable by others at all.
      const bool allow_sticky = want_dir || prefix != last;
      if (auto r = check_component(what, prefix.string(), st, allow_sticky); !r) return r;
    }
    return {};
  };
  std::error_code ec;
  const fs::path lexical = fs::absolute(path, ec);
  if (ec) return fail(ec.value(), what + ": resolve " + path);
  if (auto r = walk_parents(lexical); !r) return r.error();
  if (lexical != fs::path(canonical))
    if (auto r = walk_parents(canonical); !r) return r.error();

  struct stat st{};
  if (::stat(canonical.c_str(), &st) != 0) return fail(errno, what + ": inspect " + canonical);
  if (want_dir && !S_ISDIR(st.st_mode))
    return refuse(ENOTDIR, what + ": " + canonical + " is not a directory");
  if (!want_dir && (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0))
    return refuse(EACCES, what + ": " + canonical + " is not an executable file");
  if (auto r = check_component(what, canonical, st, false); !r) return r.error();
  return canonical;
}

// Creates the missing directories of `path` (the last one with `mode`,
// parents 0755, explicitly, whatever the umask), then checks the whole path.
Result<std::string> ensure_trusted_dir(const std::string& path, mode_t mode,
                                       const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path full = fs::absolute(path, ec).lexically_normal();
  if (ec) return fail(ec.value(), what + ": resolve " + path);
  if (!full.has_filename() && full != full.root_path()) full = full.parent_path();  // "dir/"
  fs::path prefix;
  for (auto it = full.begin(); it != full.end(); ++it) {
    prefix /= *it;
    const bool leaf = std::next(it) == full.end();
    struct stat st{};
    if (::stat(prefix.c_str(), &st) == 0) continue;
    if (::mkdir(prefix.c_str(), leaf ? mode : 0755) == 0) {
      if (::chmod(prefix.c_str(), leaf ? mode : 0755) != 0)
        return fail(errno, what + ": set the mode of " + prefix.string());
    } else if (errno != EEXIST) {
      return fail(errno, what + ": create " + prefix.string());
    }
  }
  return check_trusted_path(path, true, what);
}

// The implementation's path, resolved before fork() (the child may only make
// async-signal-safe calls, and a PATH walk allocates) and checked: meshd runs
// it as root and hands it the private key.
Result<std::string> resolve_binary(const std::string& name) {
  const std::string what = "userspace WireGuard implementation " + name;
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) return fail(errno, what + " is not executable");
    return check_trusted_path(name, false, what);
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::size_t at = 0;
  while (at <= dirs.size()) {
    std::size_t colon = dirs.find(':', at);
    std::string dir = dirs.substr(at, colon == std::string::npos ? std::string::npos : colon - at);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return check_trusted_path(candidate, false, what);
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  return fail(ENOENT, "find the userspace WireGuard implementation \"" + name +
                          "\" in PATH (install wireguard-go or set the implementation path)");
}

// The log file: never through a symlink planted at its path (O_NOFOLLOW),
// never a FIFO that would block meshd (O_NONBLOCK, then a regular-file check),
// never a terminal that would become the child's controlling one (O_NOCTTY).
Result<int> open_log_file(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(),
                  O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK,
                  0600);
  if (fd < 0) {
    int err = errno;
    if (err == ELOOP)
      return refuse(ELOOP, what + ": the log file " + path +
                               " is a symbolic link; meshd does not follow it: remove it (rm " +
                               path + ")");
    return fail(err, what + ": open the log file " + path);
  }
  struct stat st{};
  std::string problem;
  if (::fstat(fd, &st) != 0)
    problem = std::string("cannot be inspected: ") + std::strerror(errno);
  else if (!S_ISREG(st.st_mode))
    problem = "is not a regular file";
  else if (!trusted_owner(st.st_uid))
    problem = "is owned by uid " + std::to_string(st.st_uid) + ", not root";
  else if (st.st_nlink != 1)
    problem = "has " + std::to_string(st.st_nlink) + " hard links";
  else if (st.st_mode & (S_IWGRP | S_IWOTH))
    problem = "has mode " + octal_mode(st.st_mode) + ", writable by group or others";
  if (problem.empty() && ::fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) != 0)
    problem = std::string("cannot be made blocking: ") + std::strerror(errno);
  if (!problem.empty()) {
    ::close(fd);
    return refuse(EPERM, what + ": the log file " + path + " " + problem + "; remove it (rm " +
                             path + ") and meshd creates a fresh one");
  }
  return fd;
}

// Moves a descriptor the child needs above 0-2, so the dup2() onto stdin,
// stdout and stderr cannot overwrite it (meshd may have started with them closed).
int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

// Whether process `pid` holds the TUN device `name` open: tun's fdinfo
// carries an "iff:" line with the interface name (drivers/net/tun.c).
bool holds_tun(pid_t pid, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  for (fs::directory_iterator it(proc + "/fd", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code lec;
    if (fs::read_symlink(it->path(), lec) != "/dev/net/tun" || lec) continue;
    std::ifstream info(proc + "/fdinfo/" + it->path().filename().string());
    std::string line;
    while (std::getline(info, line))
      if (line == "iff:\t" + name) return true;
  }
  return false;
}

// Through the pidfd when there is one: the PID alone may name another
// process by now. Without one, a child we have not reaped still owns its PID.
bool signal_process(pid_t pid, int pidfd, bool child, int sig) {
  if (pidfd >= 0) return ::pidfd_send_signal(pidfd, sig, nullptr, 0) == 0;
  if (child || process_running(pid)) return ::kill(pid, sig) == 0;
  return false;
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
                                   "redirect output",
                                   "keep the status pipe above standard error",
                                   "exec"};

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

bool process_running(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // A zombie still answers kill(pid, 0). proc(5): the state follows the last ')'.
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;  // /proc unreadable: kill() is all we know
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return true;
  const char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

UserspaceBackend::UserspaceBackend(UserspaceBackendOptions opts)
    : opts_(std::move(opts)), binary_(resolve_binary(opts_.implementation)) {
  while (opts_.socket_dir.size() > 1 && opts_.socket_dir.back() == '/') opts_.socket_dir.pop_back();
  if (opts_.log_dir.empty()) opts_.log_dir = opts_.socket_dir;
  // Only what the implementation needs: nothing of meshd's own (NOTIFY_SOCKET
  // would let it speak for meshd to systemd, LISTEN_FDS/WG_*_FD point at
  // descriptors it does not have). LOG_LEVEL is wireguard-go's log switch.
  child_env_ = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "WG_PROCESS_FOREGROUND=1"};
  if (const char* level = std::getenv("LOG_LEVEL"))
    child_env_.push_back(std::string("LOG_LEVEL=") + level);
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
  int status = 0;
  bool reaped = false;
  if (inst.pidfd >= 0) {
    if (!fd_readable(inst.pidfd)) return true;
  } else if (inst.child) {
    // No pidfd: waitpid() tells. kill(pid, 0) would call a zombie alive.
    pid_t r = ::waitpid(inst.pid, &status, WNOHANG);
    if (r == 0) return true;
    reaped = r == inst.pid;
  } else if (process_running(inst.pid)) {
    return true;
  }
  if (inst.child && !reaped) reaped = ::waitpid(inst.pid, &status, WNOHANG) == inst.pid;
  if (reaped)
    logger().warn("userspace WireGuard implementation (pid {}) {}", inst.pid,
                  describe_status(status));
  else
    logger().warn("userspace WireGuard implementation (pid {}) exited", inst.pid);
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
    inst.pidfd = ::pidfd_open(*pid, 0);
  } else {
    inst.pid_unknown = true;
  }
  logger().info("adopted the userspace WireGuard implementation serving {} (pid {})",
                socket_path(name), inst.pid);
  return {};
}

// A link of that name that no live implementation serves (a leftover device)
// would make wireguard-go fail with an obscure TUN error: say so.
Result<void> UserspaceBackend::refuse_leftover_link(const std::string& name, const std::string& what) {
  auto rtnl = nl::Rtnl::open_at(opts_.netns_path);
  if (!rtnl) return Error{rtnl.error().code, what + ": " + rtnl.error().message};
  if (auto link = rtnl->get_link(name))
    return fail(EEXIST, what + ": a " + (link->kind.empty() ? "" : link->kind + " ") +
                            "device named " + name + " exists but nothing answers on " +
                            socket_path(name) + "; delete it (ip link del " + name +
                            ") or pick another interface name");
  return {};
}

// Everything the child needs, prepared before fork(): the child makes only
// async-signal-safe calls, so it allocates nothing and opens nothing.
struct UserspaceBackend::ChildSetup {
  UniqueFd netns, log, null, report_read, report_write;
  bool private_mounts = false;  // bind `socket_dir` on kFixedSocketDir in a mount namespace
  std::string socket_dir;
  std::string binary, name;
  std::vector<std::string> env;
  int max_fd = 0;  // for closing descriptors one by one without close_range(2)
};

Result<UserspaceBackend::ChildSetup> UserspaceBackend::prepare_child(const std::string& name,
                                                                      const std::string& what) {
  auto socket_dir = ensure_trusted_dir(opts_.socket_dir, 0700, what + ": socket directory");
  if (!socket_dir) return socket_dir.error();
  auto log_dir = ensure_trusted_dir(opts_.log_dir, 0700, what + ": log directory");
  if (!log_dir) return log_dir.error();

  ChildSetup c;
  c.socket_dir = *socket_dir;
  c.binary = *binary_;
  c.name = name;
  c.env = child_env_;
  // /run/wireguard is the same directory on Debian (/var/run -> /run): no
  // private namespace is needed to serve the standard path.
  std::error_code ec;
  c.private_mounts = c.socket_dir != std::filesystem::weakly_canonical(kFixedSocketDir, ec);
  if (!opts_.netns_path.empty()) {
    c.netns.reset(above_stdio(::open(opts_.netns_path.c_str(), O_RDONLY | O_CLOEXEC)));
    if (!c.netns.valid()) return fail(errno, what + ": open network namespace " + opts_.netns_path);
  }
  auto log = open_log_file(log_path(name), what);
  if (!log) return log.error();
  c.log.reset(above_stdio(*log));
  c.null.reset(above_stdio(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  int pipe_fds[2] = {-1, -1};
  if (!c.log.valid() || !c.null.valid() || ::pipe2(pipe_fds, O_CLOEXEC) != 0)
    return fail(errno, what + ": open /dev/null or a status pipe");
  c.report_read.reset(above_stdio(pipe_fds[0]));
  c.report_write.reset(above_stdio(pipe_fds[1]));
  if (!c.report_read.valid() || !c.report_write.valid())
    return fail(errno, what + ": move the status pipe above the standard descriptors");
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  c.max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
  return c;
}

// The child, from fork() to execve(): only async-signal-safe calls. A failed
// stage is written to the status pipe (close-on-exec: a successful execve
// closes it unwritten).
void UserspaceBackend::exec_child(const ChildSetup& c, char* const argv[], char* const envp[]) {
  int report = c.report_write.get();
  // Its own session and process group: signals aimed at meshd's group (a
  // terminal's ^C, systemd's KillMode=mixed SIGTERM) do not reach it.
  if (::setsid() < 0) child_fail(report, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
  if (c.netns.valid() && ::setns(c.netns.get(), CLONE_NEWNET) != 0) child_fail(report, 1);
  if (c.private_mounts) {
    if (::unshare(CLONE_NEWNS) != 0) child_fail(report, 2);
    // Slave, not private: mounts the host makes or removes later (ip netns
    // add/del pin files) still propagate in, none of ours leak out.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) child_fail(report, 3);
    if (::mkdir(kFixedSocketDir, 0755) != 0 && errno != EEXIST) child_fail(report, 4);
    if (::mount(c.socket_dir.c_str(), kFixedSocketDir, nullptr, MS_BIND, nullptr) != 0)
      child_fail(report, 5);
  }
  if (::dup2(c.null.get(), 0) < 0 || ::dup2(c.log.get(), 1) < 0 || ::dup2(c.log.get(), 2) < 0)
    child_fail(report, 6);
  // Nothing of meshd's survives exec but 0-2 and the (close-on-exec) status
  // pipe, moved to 3: descriptors meshd or its libraries opened without
  // O_CLOEXEC would otherwise live on in the implementation.
  if (report != 3) {
    if (::dup3(report, 3, O_CLOEXEC) < 0) child_fail(report, 7);
    report = 3;
  }
  if (::close_range(4, ~0U, 0) != 0)
    for (int fd = 4; fd < c.max_fd; ++fd) ::close(fd);
  ::execve(argv[0], argv, envp);
  child_fail(report, 8);
}

// Forks and execs the implementation; returns its PID once execve succeeded,
// or the stage that failed, read from the status pipe.
Result<pid_t> UserspaceBackend::spawn_child(ChildSetup& c, const std::string& what) {
  // The pointer arrays are built here, after `c` has its final address.
  std::vector<char*> envp;
  for (auto& e : c.env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* argv[] = {c.binary.data(), c.name.data(), nullptr};

  pid_t pid = ::fork();
  if (pid < 0) return fail(errno, what + ": fork");
  if (pid == 0) exec_child(c, argv, envp.data());

  c.report_write.reset();  // EOF on the read end once execve closes the child's copy
  ChildFailure failure{};
  ssize_t got;
  do {
    got = ::read(c.report_read.get(), &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    ::waitpid(pid, nullptr, 0);
    return fail(failure.err, what + ": could not " + kStages[failure.stage]);
  }
  return pid;
}

// Bounded wait for the socket to answer: wireguard-go needs ~10-30 ms. A child
// that exits first, or never answers, is reaped and forgotten.
Result<void> UserspaceBackend::wait_until_serving(const std::string& name, Instance& inst,
                                                  const std::string& what) {
  const pid_t pid = inst.pid;
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
    if (dev) return {};
    if (Clock::now() >= deadline) {
      // Ours, never adopted, not serving: stop it so a retry starts clean.
      // Unreaped, the PID is still ours; SIGKILL cannot be caught.
      signal_process(pid, inst.pidfd, true, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      forget_process_locked(inst);
      return fail(ETIMEDOUT, what + ": " + socket_path(name) + " did not answer within " +
                                 std::to_string(opts_.start_timeout.count()) + " ms (last: " +
                                 dev.error().message + "); see " + log_path(name));
    }
    ::usleep(5000);
  }
}

Result<void> UserspaceBackend::start_locked(const std::string& name, Instance& inst) {
  inst.last_start = Clock::now();
  if (!binary_) return binary_.error();
  const std::string what = "start " + *binary_ + " for device " + name;
  if (auto r = refuse_leftover_link(name, what); !r) return r;
  Result<pid_t> pid = [&]() -> Result<pid_t> {
    auto setup = prepare_child(name, what);  // its descriptors close when the child has exec'd
    if (!setup) return setup.error();
    return spawn_child(*setup, what);
  }();
  if (!pid) return pid.error();

  forget_process_locked(inst);
  inst.pid = *pid;
  inst.child = true;
  inst.pidfd = ::pidfd_open(*pid, 0);
  if (auto r = wait_until_serving(name, inst, what); !r) return r;
  logger().info("started {} for device {} (pid {}, socket {})", *binary_, name, *pid, socket_path(name));
  return {};
}

Result<void> UserspaceBackend::ensure_device(const std::string& name) {
  // Before the name reaches a socket path or the implementation's argv
  // (wireguard-go takes "--version" for an interface name, "../x" escapes).
  if (auto r = check_interface_name(name, "ensure userspace WireGuard device"); !r) return r;
  // Only root (or meshd's uid) may have planted what answers on the socket.
  if (auto r = ensure_trusted_dir(opts_.socket_dir, 0700,
                                  "userspace WireGuard device " + name + ": socket directory");
      !r)
    return r.error();
  {
    std::lock_guard lock(mu_);
    const bool known = instances_.count(name) > 0;
    Instance& inst = instances_[name];
    if (alive_locked(name, inst)) return {};
    // Somebody (a previous meshd) may already serve it: adopt, never restart.
    if (auto adopted = adopt_locked(name, inst); !adopted) {
      // Served, but by another user: say so, rather than start a second
      // instance that would only find the socket taken.
      if (adopted.error().value() == EPERM) {
        if (!known) instances_.erase(name);
        return adopted;
      }
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
  if (auto r = check_interface_name(name, "get userspace WireGuard device"); !r) return r.error();
  return uapi::get_device({socket_path(name), name, opts_.request_timeout});
}

Result<void> UserspaceBackend::set_device(const wg::WgDevice& change) {
  if (auto r = check_interface_name(change.name, "set userspace WireGuard device"); !r) return r;
  return uapi::set_device({socket_path(change.name), change.name, opts_.request_timeout}, change);
}

Result<std::optional<nl::Link>> UserspaceBackend::find_link(const std::string& name) {
  auto rtnl = nl::Rtnl::open_at(opts_.netns_path);
  if (!rtnl) return rtnl.error();
  auto link = rtnl->get_link(name);
  if (link) return std::optional<nl::Link>(std::move(*link));
  if (link.error().value() == ENODEV) return std::optional<nl::Link>();
  return link.error();
}

Result<void> UserspaceBackend::delete_link(const std::string& name) {
  auto rtnl = nl::Rtnl::open_at(opts_.netns_path);
  if (!rtnl) return rtnl.error();
  return rtnl->delete_link(name);
}

bool UserspaceBackend::wait_exit(Instance& inst, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    bool gone;
    if (inst.pidfd >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{inst.pidfd, POLLIN, 0};
      gone = ::poll(&p, 1, static_cast<int>(std::clamp<long>(left.count(), 0, 20))) > 0;
    } else if (inst.child) {
      gone = ::waitpid(inst.pid, nullptr, WNOHANG) == inst.pid;
      if (gone) inst.child = false;  // reaped: the PID is no longer ours
    } else {
      gone = !process_running(inst.pid);
    }
    if (gone) return true;
    if (Clock::now() >= deadline) return false;
    if (inst.pidfd < 0) ::usleep(20000);
  }
}

void UserspaceBackend::stop_process(Instance& inst, const std::string& name) {
  if (inst.pid > 0 && !wait_exit(inst, opts_.stop_timeout)) {
    logger().warn("{} (pid {}) did not exit after its device {} was deleted; sending SIGTERM",
                  opts_.implementation, inst.pid, name);
    signal_process(inst.pid, inst.pidfd, inst.child, SIGTERM);
    if (!wait_exit(inst, opts_.stop_timeout)) {
      logger().warn("{} (pid {}) did not exit on SIGTERM; sending SIGKILL", opts_.implementation,
                    inst.pid);
      signal_process(inst.pid, inst.pidfd, inst.child, SIGKILL);
      wait_exit(inst, opts_.stop_timeout);
    }
  }
  if (inst.child) ::waitpid(inst.pid, nullptr, WNOHANG);
  if (inst.pidfd >= 0) ::close(inst.pidfd);
  inst = Instance{};
}

Result<void> UserspaceBackend::delete_device(const std::string& name) {
  const std::string what = "delete userspace WireGuard device " + name;
  if (auto r = check_interface_name(name, what); !r) return r;
  Instance inst;
  bool supervised = false;
  {
    std::lock_guard lock(mu_);
    if (auto it = instances_.find(name); it != instances_.end()) {
      inst = it->second;  // take over its pidfd; the supervisor forgets it
      instances_.erase(it);
      supervised = true;
    }
  }
  wake_supervisor();
  // Refusing leaves everything as it was, supervision included.
  auto refuse_and_keep = [&](Error e) -> Result<void> {
    {
      std::lock_guard lock(mu_);
      if (supervised && !instances_.count(name))
        instances_[name] = inst;
      else if (inst.pidfd >= 0)
        ::close(inst.pidfd);
    }
    wake_supervisor();
    return e;
  };
  uapi::ClientOptions co{socket_path(name), name, opts_.request_timeout};
  if (inst.pid == 0 && !inst.pid_unknown) {
    // Not ours (yet): find who serves the socket, so we can wait for it.
    if (auto pid = uapi::server_pid(co)) {
      inst.pid = *pid;
      inst.pidfd = ::pidfd_open(*pid, 0);
    } else if (pid.error().value() == ESRCH) {
      inst.pid_unknown = true;  // served from a PID namespace we cannot see into
    }
  }

  auto link = find_link(name);
  if (!link) return refuse_and_keep(Error{link.error().code, what + ": " + link.error().message});
  if (!*link) {
    // Nothing to delete. Our own implementation goes too (wireguard-go exits
    // when its device disappears); anyone else's is left alone.
    if (!supervised && inst.pidfd >= 0) ::close(inst.pidfd);
    if (!supervised) inst = Instance{};
    stop_process(inst, name);
    return {};
  }
  // Only the TUN device of the implementation serving this device's socket
  // is ours to delete, as the kernel backend deletes only wireguard links.
  if ((*link)->kind != "tun")
    return refuse_and_keep(Error::invalid(
        what + ": link " + name + " is of kind \"" + (*link)->kind +
        "\", not the TUN device of a userspace WireGuard implementation; leaving it alone"));
  bool ours = false;
  if (inst.pid > 0)
    // The pidfd still open afterwards: the PID we looked at was that process.
    ours = holds_tun(inst.pid, name) && (inst.pidfd < 0 || !fd_readable(inst.pidfd));
  else if (inst.pid_unknown)
    ours = static_cast<bool>(uapi::get_device(co));  // its fds are out of sight; the socket answers
  if (!ours)
    return refuse_and_keep(Error::invalid(
        what + ": TUN device " + name + " is not held by " +
        (inst.pid > 0 ? "the process serving " + co.socket_path + " (pid " +
                            std::to_string(inst.pid) + ")"
                      : "any userspace WireGuard implementation (nothing serves " +
                            co.socket_path + ")") +
        "; leaving it alone (if it is a leftover, remove it: ip link del " + name + ")"));

  // Deleting the link is how an implementation is told to go: wireguard-go
  // exits when its TUN device disappears, removing its socket.
  if (auto r = delete_link(name); !r)
    return refuse_and_keep(Error{r.error().code, what + ": " + r.error().message});
  stop_process(inst, name);
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
