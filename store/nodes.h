// Records of the cluster's nodes as this node knows them: each one signed by
// its owner and versioned, so a newer record replaces an older one and never
// the reverse. Removed nodes stay as tombstones so a relayed old record
// cannot resurrect them.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meshd::store {

class Database;

struct NodeRecord {
  std::string name;                                 // unique
  std::array<std::uint8_t, 32> wg_public_key{};     // Curve25519
  std::array<std::uint8_t, 32> identity_public_key{};  // Ed25519
  std::vector<Endpoint> endpoints;
  std::optional<IpPrefix> pod_cidr;
  std::uint64_t version = 0;
  std::string admitted_by;            // name of the admitting member
  std::int64_t admitted_at = 0;       // unix seconds
  std::vector<std::uint8_t> admission_proof;
  std::vector<std::uint8_t> signature;
  std::int64_t last_seen = 0;         // unix seconds; 0 = never
  bool removed = false;
  std::optional<std::int64_t> removed_at;
  auto operator<=>(const NodeRecord&) const = default;
};

enum class NodeFilter { live, all };

class NodeRepo {
 public:
  explicit NodeRepo(Database& db) : db_(db) {}

  // Inserts or replaces the record of `rec.name`. A version lower than the
  // stored one is refused (ESTALE, naming both versions); the same version
  // is accepted only with identical content (EEXIST otherwise: two different
  // records must not share a version). Storing a record does not clear a
  // tombstone: a removed node stays removed.
  Result<void> upsert(const NodeRecord& rec);
  Result<std::optional<NodeRecord>> get(const std::string& name);
  Result<std::vector<NodeRecord>> list(NodeFilter filter = NodeFilter::live);  // by name
  // Tombstones the node (ENOENT if unknown; already removed = success, the
  // first removed_at is kept).
  Result<void> mark_removed(const std::string& name, std::int64_t now);
  // Liveness only; does not change the record's version. ENOENT if unknown.
  Result<void> set_last_seen(const std::string& name, std::int64_t when);

 private:
  Database& db_;
};

}  // namespace meshd::store
