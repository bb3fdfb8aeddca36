#include "store/cluster.h"

#include "store/database.h"
#include "store/row_codec.h"
#include "store/sql_util.h"

#include <cstring>

namespace meshd::store {

using detail::guarded;

namespace {

Result<std::optional<ClusterInfo>> read(Database& db) {
  SQLite::Statement st(db.sql(),
                       "SELECT cluster_id, cidr, node_prefix_length, created_at, founder FROM cluster");
  if (!st.executeStep()) return std::optional<ClusterInfo>{};
  ClusterInfo c;
  c.id = st.getColumn(0).getString();
  auto cidr = codec::decode_prefix(st.getColumn(1).getString());
  if (!cidr) return Error::invalid("stored cluster CIDR in " + db.path() + ": " + cidr.error().message);
  c.cidr = *cidr;
  auto len = codec::decode_node_prefix_length(st.getColumn(2).getInt64(), c.cidr);
  if (!len) return Error::invalid("stored cluster in " + db.path() + ": " + len.error().message);
  c.node_prefix_length = *len;
  c.created_at = st.getColumn(3).getInt64();
  // The CHECK holds for rows meshd wrote, not for a planted file.
  auto founder = st.getColumn(4);
  if (founder.getBytes() != 32)
    return Error::invalid("stored cluster founder in " + db.path() + " has " +
                          std::to_string(founder.getBytes()) + " bytes, expected 32");
  std::memcpy(c.founder.data(), founder.getBlob(), 32);
  return std::optional<ClusterInfo>{c};
}

}  // namespace

Result<std::optional<ClusterInfo>> ClusterRepo::get() {
  return guarded(db_, "read cluster", [&] { return read(db_); });
}

Result<void> ClusterRepo::set(const ClusterInfo& info) {
  if (info.id.empty()) return Error::invalid("found cluster: the cluster id is empty");
  if (info.node_prefix_length < info.cidr.length ||
      info.node_prefix_length > info.cidr.max_length())
    return Error::invalid("found cluster " + info.id + ": node prefix length /" +
                          std::to_string(info.node_prefix_length) + " does not fit in " +
                          info.cidr.to_string() + " (expected /" +
                          std::to_string(info.cidr.length) + " to /" +
                          std::to_string(info.cidr.max_length()) + ")");
  return guarded(db_, "found cluster " + info.id, [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    auto existing = read(db_);
    if (!existing) return existing.error();
    if (*existing)
      return Error{{EEXIST, boost::system::generic_category()},
                   "found cluster " + info.id + ": " + db_.path() +
                       " already belongs to cluster " + (*existing)->id + " (" +
                       (*existing)->cidr.to_string() + "); a node is founded once"};
    SQLite::Statement st(db_.sql(),
                         "INSERT INTO cluster (singleton, cluster_id, cidr, node_prefix_length, "
                         "created_at, founder) VALUES (1, ?, ?, ?, ?, ?)");
    st.bind(1, info.id);
    st.bind(2, info.cidr.network().to_string());
    st.bind(3, static_cast<int>(info.node_prefix_length));
    st.bind(4, static_cast<std::int64_t>(info.created_at));
    st.bind(5, info.founder.data(), static_cast<int>(info.founder.size()));
    st.exec();
    tx.commit();
    return {};
  });
}

}  // namespace meshd::store
