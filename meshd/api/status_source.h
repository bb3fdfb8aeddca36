// What the API reads from the running daemon: a plain snapshot, taken under
// whatever lock the daemon needs, so handlers never see a half-updated state.
// The daemon implements StatusSource; tests use a struct.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace meshd::api {

struct ReconcileSnapshot {
  // Unix milliseconds of the last pass; nothing before the first.
  std::optional<std::int64_t> last_at_ms;
  double last_duration_seconds = 0;
  std::optional<std::string> last_error;  // the last pass's failure; nothing if it succeeded
  std::uint64_t passes = 0;               // since start
  std::uint64_t failures = 0;             // since start
};

struct StatusSnapshot {
  std::string backend;                  // "kernel" or "userspace"
  std::string interface;                // the WireGuard device
  int mtu = 0;                          // bytes
  std::string public_key;               // base64; never the private key
  std::optional<std::string> pod_cidr;  // nothing until one is assigned
  bool pod_cidr_settled = false;
  std::uint64_t peer_count = 0;
  ReconcileSnapshot reconcile;
};

class StatusSource {
 public:
  virtual ~StatusSource() = default;
  // True once a reconcile pass has succeeded (and stays true).
  virtual bool ready() const = 0;
  virtual StatusSnapshot status() const = 0;
};

}  // namespace meshd::api
