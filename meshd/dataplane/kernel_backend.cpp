#include "meshd/dataplane/kernel_backend.h"

#include "netlink/netns.h"

#include <unistd.h>

namespace meshd::dataplane {

namespace {

constexpr std::string_view kWireguardKind = "wireguard";

}  // namespace

KernelBackend::KernelBackend(KernelBackendOptions opts) : opts_(std::move(opts)) {}

KernelBackend::~KernelBackend() = default;

// Sockets are opened on first use, not in the constructor: the generic
// netlink family may only be resolvable once the first wireguard link has
// loaded the module, and a backend object must be cheap to make.
Result<nl::Rtnl*> KernelBackend::rtnl() {
  if (!rtnl_) {
    auto r = nl::Rtnl::open_at(opts_.netns_path);
    if (!r) return r.error();
    rtnl_.emplace(std::move(*r));
  }
  return &*rtnl_;
}

Result<nl::WgGenl*> KernelBackend::genl() {
  if (!genl_) {
    auto g = nl::run_in_netns_at(opts_.netns_path, [] { return nl::WgGenl::open(); });
    if (!g) return g.error();
    genl_.emplace(std::move(*g));
  }
  return &*genl_;
}

Result<void> KernelBackend::ensure_device(const std::string& name) {
  std::lock_guard lock(mu_);
  auto rt = rtnl();
  if (!rt) return rt.error();
  auto link = (*rt)->get_link(name);
  if (link) {
    if (link->kind == kWireguardKind) return {};  // adopt: a restarted meshd keeps the mesh
    return Error{{EEXIST, boost::system::generic_category()},
                 "ensure wireguard device " + name + ": a link named " + name + " of kind \"" +
                     link->kind + "\" already exists; remove it or configure another interface name"};
  }
  if (!link.error().is(ENODEV)) return link.error();
  auto created = (*rt)->create_link(name, kWireguardKind);
  // Lost a race with another creator: fine if what exists now is WireGuard.
  if (!created && created.error().is(EEXIST)) {
    auto again = (*rt)->get_link(name);
    if (again && again->kind == kWireguardKind) return {};
  }
  return created;
}

// After a failure the generic-netlink socket is reopened on next use: the
// family id changes if the module was reloaded, and a timed-out exchange can
// leave the socket out of step. Reopening costs one socket and one lookup.
Result<wg::WgDevice> KernelBackend::get_device(const std::string& name) {
  std::lock_guard lock(mu_);
  auto g = genl();
  if (!g) return g.error();
  auto r = (*g)->get_device(name);
  if (!r && !r.error().is(ENODEV)) genl_.reset();
  return r;
}

Result<void> KernelBackend::set_device(const wg::WgDevice& change) {
  std::lock_guard lock(mu_);
  auto g = genl();
  if (!g) return g.error();
  auto r = (*g)->set_device(change);
  if (!r && !r.error().is(ENODEV)) genl_.reset();
  return r;
}

Result<void> KernelBackend::delete_device(const std::string& name) {
  std::lock_guard lock(mu_);
  auto rt = rtnl();
  if (!rt) return rt.error();
  auto link = (*rt)->get_link(name);
  if (!link) return link.error().is(ENODEV) ? Result<void>{} : Result<void>{link.error()};
  if (link->kind != kWireguardKind)
    return Error::invalid("delete wireguard device " + name + ": link " + name + " is of kind \"" +
                          link->kind + "\", not wireguard; leaving it alone");
  return (*rt)->delete_link(name);
}

Result<void> probe_kernel_wireguard() {
  auto rt = nl::Rtnl::open();
  if (!rt) return rt.error();
  // Unique per process, so that two probing daemons in one namespace cannot
  // delete each other's probe; 7 + up to 7 digits fits IFNAMSIZ.
  const std::string name = "meshd-p" + std::to_string(getpid() % 10000000);
  auto created = rt->create_link(name, kWireguardKind);
  if (!created) {
    if (!created.error().is(EEXIST)) return created.error();
    // A probe of ours that a crash left behind (same PID after reboot/netns
    // reuse): it proves WireGuard as well, if it is one.
    auto l = rt->get_link(name);
    if (!l) return l.error();
    if (l->kind != kWireguardKind) return created.error();
  }
  auto deleted = rt->delete_link(name);
  if (!deleted) return deleted.error();
  return {};
}

bool kernel_wireguard_available() { return static_cast<bool>(probe_kernel_wireguard()); }

}  // namespace meshd::dataplane
