// A WireGuard backend: one way of owning and programming a WireGuard device.
// `kernel` speaks the "wireguard" generic-netlink family; `userspace` starts a
// UAPI implementation (wireguard-go) and speaks its text protocol. Both read
// and write the one WgDevice model, so the planner never knows which it drives.
#pragma once

#include "common/result.h"
#include "netlink/wg_device.h"

#include <string>
#include <string_view>

namespace meshd::dataplane {

class WgBackend {
 public:
  virtual ~WgBackend() = default;

  virtual std::string_view kind() const = 0;  // "kernel" or "userspace"

  // Makes sure the device `name` exists, adopting one that is already there
  // (a restarted meshd must not disturb a running mesh). Userspace: starts the
  // implementation if no live one serves the device.
  virtual Result<void> ensure_device(const std::string& name) = 0;

  // The device as the backend reports it, every peer included.
  virtual Result<wg::WgDevice> get_device(const std::string& name) = 0;

  // Applies a partial update (the model's flags say replace/remove/update-only).
  virtual Result<void> set_device(const wg::WgDevice& change) = 0;

  // Removes the device (teardown). Missing device = success.
  virtual Result<void> delete_device(const std::string& name) = 0;

  // Userspace: true if the implementation serving `name` died since the last
  // call (it has been restarted, so the caller must re-apply the full state).
  virtual bool restarted_since_last_check(const std::string& name) {
    (void)name;
    return false;
  }
};

}  // namespace meshd::dataplane
