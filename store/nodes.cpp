#include "store/nodes.h"

#include "store/database.h"
#include "store/row_codec.h"
#include "store/sql_util.h"

#include <cstring>

namespace meshd::store {

using detail::guarded;

namespace {

constexpr const char* kColumns =
    "name, wg_public_key, identity_public_key, endpoints, pod_cidr, version, admitted_by, "
    "admitted_at, admission_proof, signature, last_seen, removed, removed_at";

Result<NodeRecord> row(SQLite::Statement& st) {
  NodeRecord r;
  r.name = st.getColumn(0).getString();
  // The schema's CHECK holds for rows meshd wrote; a planted or edited file
  // is read as it is: a key of another length is refused, not zero-filled.
  auto key32 = [&](int col, std::array<std::uint8_t, 32>& out, const char* what) -> Result<void> {
    auto c = st.getColumn(col);
    if (c.getBytes() != 32)
      return Error::invalid("stored " + std::string(what) + " of node " + r.name + " has " +
                            std::to_string(c.getBytes()) + " bytes, expected 32");
    std::memcpy(out.data(), c.getBlob(), 32);
    return {};
  };
  if (auto k = key32(1, r.wg_public_key, "WireGuard public key"); !k) return k.error();
  if (auto k = key32(2, r.identity_public_key, "identity public key"); !k) return k.error();
  auto eps = codec::decode_endpoints(st.getColumn(3).getString());
  if (!eps) return Error::invalid("stored endpoints of node " + r.name + ": " + eps.error().message);
  r.endpoints = std::move(*eps);
  if (!st.getColumn(4).isNull()) {
    auto cidr = codec::decode_prefix(st.getColumn(4).getString());
    if (!cidr) return Error::invalid("stored pod CIDR of node " + r.name + ": " + cidr.error().message);
    r.pod_cidr = *cidr;
  }
  // SQLite integers are signed 64-bit; versions round-trip bit for bit.
  r.version = static_cast<std::uint64_t>(st.getColumn(5).getInt64());
  r.admitted_by = st.getColumn(6).getString();
  r.admitted_at = st.getColumn(7).getInt64();
  r.admission_proof = detail::column_bytes(st.getColumn(8));
  r.signature = detail::column_bytes(st.getColumn(9));
  r.last_seen = st.getColumn(10).getInt64();
  r.removed = st.getColumn(11).getInt() != 0;
  if (!st.getColumn(12).isNull()) r.removed_at = st.getColumn(12).getInt64();
  return r;
}

Result<std::optional<NodeRecord>> read(Database& db, const std::string& name) {
  SQLite::Statement st(db.sql(), std::string("SELECT ") + kColumns + " FROM nodes WHERE name = ?");
  st.bind(1, name);
  if (!st.executeStep()) return std::optional<NodeRecord>{};
  auto r = row(st);
  if (!r) return r.error();
  return std::optional<NodeRecord>{std::move(*r)};
}

// What a record says, as opposed to local bookkeeping (last_seen, tombstone).
bool same_content(const NodeRecord& a, const NodeRecord& b) {
  return a.name == b.name && a.wg_public_key == b.wg_public_key &&
         a.identity_public_key == b.identity_public_key && a.endpoints == b.endpoints &&
         a.pod_cidr == b.pod_cidr && a.version == b.version && a.admitted_by == b.admitted_by &&
         a.admitted_at == b.admitted_at && a.admission_proof == b.admission_proof &&
         a.signature == b.signature;
}

}  // namespace

Result<void> NodeRepo::upsert(const NodeRecord& rec) {
  if (rec.name.empty()) return Error::invalid("store node record: the node name is empty");
  return guarded(db_, "store record of node " + rec.name, [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    auto existing = read(db_, rec.name);
    if (!existing) return existing.error();
    if (*existing) {
      const NodeRecord& old = **existing;
      if (rec.version < old.version)
        return Error{{ESTALE, boost::system::generic_category()},
                     "store record of node " + rec.name + ": version " +
                         std::to_string(rec.version) + " is older than the stored version " +
                         std::to_string(old.version)};
      if (rec.version == old.version) {
        if (!same_content(rec, old))
          return Error{{EEXIST, boost::system::generic_category()},
                       "store record of node " + rec.name + ": a different record with version " +
                           std::to_string(rec.version) + " is already stored"};
        if (rec.last_seen > old.last_seen) {
          SQLite::Statement st(db_.sql(), "UPDATE nodes SET last_seen = ? WHERE name = ?");
          st.bind(1, static_cast<std::int64_t>(rec.last_seen));
          st.bind(2, rec.name);
          st.exec();
        }
        tx.commit();
        return {};
      }
    }
    // The tombstone is local knowledge and survives a newer record.
    SQLite::Statement st(
        db_.sql(),
        "INSERT INTO nodes (name, wg_public_key, identity_public_key, endpoints, pod_cidr, "
        "version, admitted_by, admitted_at, admission_proof, signature, last_seen, removed, "
        "removed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET wg_public_key = excluded.wg_public_key, "
        "identity_public_key = excluded.identity_public_key, endpoints = excluded.endpoints, "
        "pod_cidr = excluded.pod_cidr, version = excluded.version, "
        "admitted_by = excluded.admitted_by, admitted_at = excluded.admitted_at, "
        "admission_proof = excluded.admission_proof, signature = excluded.signature, "
        "last_seen = max(nodes.last_seen, excluded.last_seen), "
        "removed = max(nodes.removed, excluded.removed), "
        "removed_at = coalesce(nodes.removed_at, excluded.removed_at)");
    st.bind(1, rec.name);
    st.bind(2, rec.wg_public_key.data(), 32);
    st.bind(3, rec.identity_public_key.data(), 32);
    st.bind(4, codec::encode_endpoints(rec.endpoints));
    if (rec.pod_cidr)
      st.bind(5, rec.pod_cidr->to_string());
    else
      st.bind(5);
    st.bind(6, static_cast<std::int64_t>(rec.version));
    st.bind(7, rec.admitted_by);
    st.bind(8, static_cast<std::int64_t>(rec.admitted_at));
    detail::bind_bytes(st, 9, rec.admission_proof);
    detail::bind_bytes(st, 10, rec.signature);
    st.bind(11, static_cast<std::int64_t>(rec.last_seen));
    st.bind(12, rec.removed ? 1 : 0);
    if (rec.removed_at)
      st.bind(13, static_cast<std::int64_t>(*rec.removed_at));
    else if (rec.removed)
      st.bind(13, static_cast<std::int64_t>(rec.last_seen));
    else
      st.bind(13);
    st.exec();
    tx.commit();
    return {};
  });
}

Result<std::optional<NodeRecord>> NodeRepo::get(const std::string& name) {
  return guarded(db_, "read record of node " + name, [&] { return read(db_, name); });
}

Result<std::vector<NodeRecord>> NodeRepo::list(NodeFilter filter) {
  return guarded(db_, "list nodes", [&]() -> Result<std::vector<NodeRecord>> {
    SQLite::Statement st(db_.sql(), std::string("SELECT ") + kColumns + " FROM nodes" +
                                        (filter == NodeFilter::live ? " WHERE removed = 0" : "") +
                                        " ORDER BY name");
    std::vector<NodeRecord> out;
    while (st.executeStep()) {
      auto r = row(st);
      if (!r) return r.error();
      out.push_back(std::move(*r));
    }
    return out;
  });
}

Result<void> NodeRepo::mark_removed(const std::string& name, std::int64_t now) {
  return guarded(db_, "remove node " + name, [&]() -> Result<void> {
    SQLite::Statement st(db_.sql(),
                         "UPDATE nodes SET removed = 1, removed_at = coalesce(removed_at, ?) "
                         "WHERE name = ?");
    st.bind(1, static_cast<std::int64_t>(now));
    st.bind(2, name);
    if (st.exec() == 0)
      return Error{{ENOENT, boost::system::generic_category()},
                   "remove node " + name + ": no such node in " + db_.path()};
    return {};
  });
}

Result<void> NodeRepo::set_last_seen(const std::string& name, std::int64_t when) {
  return guarded(db_, "update last seen of node " + name, [&]() -> Result<void> {
    SQLite::Statement st(db_.sql(),
                         "UPDATE nodes SET last_seen = max(last_seen, ?) WHERE name = ?");
    st.bind(1, static_cast<std::int64_t>(when));
    st.bind(2, name);
    if (st.exec() == 0)
      return Error{{ENOENT, boost::system::generic_category()},
                   "update last seen of node " + name + ": no such node in " + db_.path()};
    return {};
  });
}

}  // namespace meshd::store
