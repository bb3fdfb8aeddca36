#include "netlink/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace meshd::nl {

Result<NetnsFd> open_netns(std::string_view path) {
  const std::string p(path);
  const std::string what = "open network namespace " + p;
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno, what);
  NetnsFd out(fd);
  // Namespace files live on nsfs; anything else (a plain file, a directory,
  // a stale bind-mount target) would only fail later, at setns(), with EINVAL.
  struct statfs st {};
  if (fstatfs(fd, &st) < 0) return fail(errno, what);
  if (st.f_type != NSFS_MAGIC && st.f_type != PROC_SUPER_MAGIC)
    return Error::invalid(what + ": not a namespace file (expected e.g. /var/run/netns/NAME or /proc/PID/ns/net)");
  return out;
}

Result<NetnsFd> open_netns_by_name(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos)
    return Error::invalid("open network namespace \"" + std::string(name) +
                          "\": a name as `ip netns add` takes it, without '/'");
  return open_netns(std::string(kNetnsRunDir) + "/" + std::string(name));
}

Result<NetnsFd> open_current_netns() { return open_netns("/proc/thread-self/ns/net"); }

Result<NetnsGuard> NetnsGuard::enter(int netns_fd) {
  auto home = open_current_netns();
  if (!home) return home.error();
  if (::setns(netns_fd, CLONE_NEWNET) < 0)
    return fail(errno, "enter network namespace (fd " + std::to_string(netns_fd) + ")");
  return NetnsGuard(std::move(*home));
}

Result<void> NetnsGuard::restore() {
  if (!home_.valid()) return {};
  if (::setns(home_.get(), CLONE_NEWNET) < 0) return fail(errno, "return to the original network namespace");
  home_ = NetnsFd();
  return {};
}

NetnsGuard::~NetnsGuard() {
  if (auto r = restore(); !r) {
    std::fprintf(stderr, "meshd: %s; aborting rather than acting in the wrong namespace\n",
                 r.error().message.c_str());
    std::abort();
  }
}

}  // namespace meshd::nl
