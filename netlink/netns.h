// Network namespaces by file descriptor: open one by path or by `ip netns`
// name, move the calling thread into one for a scope and back, or run a
// callable inside one. setns(2) with CLONE_NEWNET changes only the calling
// thread, so these are safe next to other threads (each keeps its namespace),
// but a thread must not be left in a foreign namespace: the guard restores it
// on every exit path, including errors and exceptions.
#pragma once

#include "common/result.h"
#include "common/unique_fd.h"

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace meshd::nl {

// Where `ip netns add NAME` pins a namespace.
inline constexpr std::string_view kNetnsRunDir = "/var/run/netns";

// An owned namespace file descriptor (closed on destruction).
using NetnsFd = UniqueFd;

// Opens a namespace file, e.g. "/var/run/netns/x" or "/proc/1234/ns/net"
// (CNI hands plugins such a path in CNI_NETNS). Checks that it is a network
// namespace, so that a wrong path fails here and not at setns().
Result<NetnsFd> open_netns(std::string_view path);

// Opens /var/run/netns/NAME; NAME must be a plain file name.
Result<NetnsFd> open_netns_by_name(std::string_view name);

// The calling thread's own network namespace.
Result<NetnsFd> open_current_netns();

// Moves the calling thread into a namespace until destroyed (or restore()).
class NetnsGuard {
 public:
  static Result<NetnsGuard> enter(int netns_fd);

  NetnsGuard(NetnsGuard&& o) noexcept : home_(std::move(o.home_)) {}
  NetnsGuard& operator=(NetnsGuard&&) = delete;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  // Returns to the original namespace. If even that fails the thread would
  // go on configuring the wrong namespace: that aborts the process.
  ~NetnsGuard();

  // Returns early, reporting a failure instead of aborting.
  Result<void> restore();

 private:
  explicit NetnsGuard(NetnsFd home) : home_(std::move(home)) {}
  NetnsFd home_;  // the thread's namespace before enter(); invalid once restored
};

// Runs `f` on the calling thread inside the namespace of `netns_fd` and
// returns what it returns. `f` must return a Result<T>: failing to enter the
// namespace is returned as that Result's error.
template <class F>
auto run_in_netns(int netns_fd, F&& f) -> std::invoke_result_t<F> {
  auto guard = NetnsGuard::enter(netns_fd);
  if (!guard) return guard.error();
  auto out = std::forward<F>(f)();
  if (auto r = guard->restore(); !r) return r.error();
  return out;
}

// Runs `f` inside the namespace at `path` (opened as open_netns() does), or
// right here, in the calling thread's namespace, when `path` is empty: the
// "netns_path" option of the backends. Errors name the path.
template <class F>
auto run_in_netns_at(std::string_view path, F&& f) -> std::invoke_result_t<F> {
  if (path.empty()) return std::forward<F>(f)();
  auto ns = open_netns(path);
  if (!ns) return ns.error();
  return run_in_netns(ns->get(), std::forward<F>(f));
}

}  // namespace meshd::nl
