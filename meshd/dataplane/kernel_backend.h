// The `kernel` WireGuard backend: the device is a "wireguard" rtnetlink link,
// configured over the "wireguard" generic-netlink family (netlink/wireguard.h).
// The kernel holds all state, so a restarted or stopped meshd leaves the mesh
// running untouched; ensure_device() adopts an existing device.
#pragma once

#include "meshd/dataplane/wg_backend.h"
#include "netlink/rtnl.h"
#include "netlink/wireguard.h"

#include <mutex>
#include <optional>
#include <string>

namespace meshd::dataplane {

struct KernelBackendOptions {
  // Network namespace the devices live in (e.g. /var/run/netns/node1); empty
  // = the namespace meshd runs in. Both sockets are opened inside it once and
  // stay bound to it (netlink sockets keep the namespace they were made in).
  std::string netns_path;
};

class KernelBackend final : public WgBackend {
 public:
  explicit KernelBackend(KernelBackendOptions opts = {});
  ~KernelBackend() override;  // closes its sockets; devices stay
  KernelBackend(const KernelBackend&) = delete;
  KernelBackend& operator=(const KernelBackend&) = delete;

  std::string_view kind() const override { return "kernel"; }
  // Creates link `name` of kind "wireguard", or adopts one that exists with
  // that kind. A same-named link of another kind is an error naming it:
  // meshd never takes over or deletes an interface it did not make.
  Result<void> ensure_device(const std::string& name) override;
  Result<wg::WgDevice> get_device(const std::string& name) override;
  Result<void> set_device(const wg::WgDevice& change) override;
  // Deletes the link if it is a WireGuard link; missing = success; another
  // kind is an error (never deletes someone else's interface).
  Result<void> delete_device(const std::string& name) override;

 private:
  Result<nl::Rtnl*> rtnl();
  Result<nl::WgGenl*> genl();

  KernelBackendOptions opts_;
  std::mutex mu_;
  std::optional<nl::Rtnl> rtnl_;
  std::optional<nl::WgGenl> genl_;
};

// Whether this kernel can make WireGuard devices, for the `auto` backend
// choice: creates and deletes a throwaway wireguard link in the CURRENT
// network namespace. The error says why not (no module, no privilege).
Result<void> probe_kernel_wireguard();
bool kernel_wireguard_available();

}  // namespace meshd::dataplane
