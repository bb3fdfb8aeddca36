// The cluster this node belongs to: founded once (by `meshd init` or by the
// first successful join) and never changed afterwards, so a restart never
// re-founds (wesher#49).
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace meshd::store {

class Database;

struct ClusterInfo {
  std::string id;                       // random cluster id, printable
  IpPrefix cidr;                        // pod network of the whole cluster
  std::uint8_t node_prefix_length = 0;  // each node's pod CIDR length, e.g. 24
  std::int64_t created_at = 0;          // unix seconds
  // Ed25519 identity public key of the founding node, the root of trust.
  // All zero for a cluster stored before schema v5.
  std::array<std::uint8_t, 32> founder{};
  auto operator<=>(const ClusterInfo&) const = default;
};

class ClusterRepo {
 public:
  explicit ClusterRepo(Database& db) : db_(db) {}

  // Nothing when the cluster has not been founded (or joined) yet.
  Result<std::optional<ClusterInfo>> get();
  // Once only: EEXIST naming the existing cluster on a second call; EINVAL
  // when node_prefix_length does not fit inside cidr.
  Result<void> set(const ClusterInfo& info);

 private:
  Database& db_;
};

}  // namespace meshd::store
