// Where this node's view of an external datastore (etcd, issue 13) stands:
// for each scope, the last revision whose events it has applied to the node
// table. A restart resumes the watch after that revision instead of listing
// the whole cluster again; a compacted revision (etcd answers with
// compact_revision) makes the caller re-list and store the listed revision.
//
// A scope names one watched keyspace, e.g. "etcd:/meshd/<cluster id>": a
// node moved to another prefix, cluster or etcd must not resume from a
// revision that belongs to a different history.
#pragma once

#include "common/result.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace meshd::store {

class Database;

// A scope is 1 to this many printable ASCII characters, without spaces.
inline constexpr std::size_t kMaxDatastoreScopeBytes = 512;

class DatastoreStateRepo {
 public:
  explicit DatastoreStateRepo(Database& db) : db_(db) {}

  // Nothing when no revision is stored for the scope (never watched, or
  // cleared). EINVAL for a malformed scope, or a stored row that is not a
  // revision >= 1 (a planted file), naming the column.
  Result<std::optional<std::int64_t>> revision(const std::string& scope);
  // Replaces the scope's revision with `rev`, also with a lower one: etcd
  // restored from a backup, or replaced, starts its revisions again, and
  // only the caller can tell. EINVAL for a malformed scope or rev < 1 (0
  // means "from now" to etcd: resuming there would skip events).
  Result<void> set_revision(const std::string& scope, std::int64_t rev);
  // Forgets the scope's revision (the next start lists everything). A scope
  // with nothing stored is not an error.
  Result<void> clear(const std::string& scope);

 private:
  Database& db_;
};

}  // namespace meshd::store
