// An append-only log of what happened to the cluster (joins, removals, key
// rotations, conflicts), for `meshd events` and the REST API. Ids only grow,
// even across prunes, so a reader can poll with since_id.
#pragma once

#include "common/result.h"

#include <cstdint>
#include <string>
#include <vector>

namespace meshd::store {

class Database;

struct Event {
  std::int64_t id = 0;  // assigned by append()
  std::int64_t at = 0;  // unix seconds
  std::string kind;     // e.g. "node-joined", "node-removed"
  std::string node;     // the node concerned; may be empty
  std::string message;
  auto operator<=>(const Event&) const = default;
};

class EventRepo {
 public:
  explicit EventRepo(Database& db) : db_(db) {}

  // Returns the new event's id.
  Result<std::int64_t> append(std::int64_t at, const std::string& kind, const std::string& node,
                              const std::string& message);
  // The oldest `limit` events with id > since_id, in id order.
  Result<std::vector<Event>> list(std::size_t limit, std::int64_t since_id = 0);
  // Deletes events with at < older_than; returns how many.
  Result<int> prune(std::int64_t older_than);

 private:
  Database& db_;
};

}  // namespace meshd::store
