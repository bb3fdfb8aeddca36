// What the API reads from the running daemon: a plain snapshot, taken under
// whatever lock the daemon needs, so handlers never see a half-updated state.
// The daemon implements StatusSource; tests use a struct.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace meshd::api {

// Reconcile pass durations as a Prometheus histogram: counts per bucket (not
// cumulative; the last is above every bound), their sum and count. The
// daemon calls observe() once per pass.
struct DurationHistogram {
  // Upper bounds in seconds: Prometheus' default buckets.
  static constexpr std::array<double, 11> kBounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,    2.5,   5,    10};
  std::array<std::uint64_t, kBounds.size() + 1> counts{};
  double sum_seconds = 0;
  std::uint64_t count = 0;

  void observe(double seconds) {
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    ++counts[i];
    sum_seconds += seconds;
    ++count;
  }
};

struct ReconcileSnapshot {
  // Unix milliseconds of the last pass; nothing before the first.
  std::optional<std::int64_t> last_at_ms;
  double last_duration_seconds = 0;
  std::optional<std::string> last_error;  // the last pass's failure; nothing if it succeeded
  std::uint64_t passes = 0;               // since start
  std::uint64_t failures = 0;             // since start
  DurationHistogram durations;            // every pass since start
};

struct StatusSnapshot {
  std::string backend;                  // "kernel" or "userspace"
  std::string interface;                // the WireGuard device
  int mtu = 0;                          // bytes
  std::string public_key;               // base64; never the private key
  std::optional<std::string> pod_cidr;  // nothing until one is assigned
  bool pod_cidr_settled = false;
  std::string backend_reason;           // why this backend ("configured", "auto: ...")
  std::optional<std::string> cluster_id;  // nothing in static mode or before founding/joining
  std::uint64_t peer_count = 0;
  std::uint64_t route_count = 0;        // meshd's routes after the last pass
  // The last pass left nothing to repair (no error, no step failed).
  bool in_sync = false;
  std::vector<std::string> errors;      // what the last pass could not do
  // Static peers refused by validation: (peer name, reason). A reason never
  // quotes a key.
  std::vector<std::pair<std::string, std::string>> rejected_peers;
  std::uint64_t peers_reachable = 0;  // peers with a recent handshake
  // The CNI plugin's address leases in this node's pod CIDR; nothing when
  // there is no pool yet.
  std::optional<std::uint64_t> cni_leases_in_use, cni_leases_free;
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
