#include "store/local_node.h"

#include "store/database.h"
#include "store/row_codec.h"
#include "store/sql_util.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

namespace meshd::store {

using detail::guarded;

namespace {

// The row exists only once something was set; every setter upserts one column.
void upsert(Database& db, const char* column_sql, auto&& bind) {
  SQLite::Statement st(db.sql(), std::string("INSERT INTO local_node (singleton, ") + column_sql +
                                     ") VALUES (1, ?) ON CONFLICT (singleton) DO UPDATE SET " +
                                     column_sql + " = excluded." + column_sql);
  bind(st);
  st.exec();
}

// A 32-byte WireGuard key column as keys/' type. A planted or edited file
// may hold any length (the schema's CHECK binds only meshd's writes): EINVAL
// naming the column, never a cut or zero-filled key. The temporary copy is
// wiped.
Result<keys::PrivateKey> key_from_column(const Database& db, const SQLite::Column& c,
                                         const std::string& what) {
  keys::KeyBytes b{};
  if (c.getBytes() != static_cast<int>(b.size()))
    return Error::invalid("stored " + what + " in " + db.path() + " has " +
                          std::to_string(c.getBytes()) + " bytes, expected 32");
  std::memcpy(b.data(), c.getBlob(), b.size());
  keys::PrivateKey k(b);
  sodium_memzero(b.data(), b.size());
  return k;
}

}  // namespace

Result<LocalNode> LocalNodeRepo::get() {
  return guarded(db_, "read local node", [&]() -> Result<LocalNode> {
    LocalNode n;
    SQLite::Statement st(db_.sql(),
                         "SELECT name, pod_cidr, pod_cidr_settled, mtu FROM local_node");
    if (!st.executeStep()) return n;
    n.name = st.getColumn(0).getString();
    if (!st.getColumn(1).isNull()) {
      auto cidr = codec::decode_prefix(st.getColumn(1).getString());
      if (!cidr) return Error::invalid("stored pod CIDR of the local node: " + cidr.error().message);
      n.pod_cidr = *cidr;
    }
    n.pod_cidr_settled = st.getColumn(2).getInt() != 0;
    auto mtu = codec::decode_mtu(st.getColumn(3).getInt64());
    if (!mtu) return Error::invalid("stored MTU of the local node in " + db_.path() + ": " + mtu.error().message);
    n.mtu = *mtu;
    return n;
  });
}

Result<void> LocalNodeRepo::set_name(const std::string& name) {
  return guarded(db_, "set local node name", [&]() -> Result<void> {
    upsert(db_, "name", [&](SQLite::Statement& st) { st.bind(1, name); });
    return {};
  });
}

Result<void> LocalNodeRepo::set_pod_cidr(const IpPrefix& cidr, bool settled) {
  return guarded(db_, "set local pod CIDR " + cidr.to_string(), [&]() -> Result<void> {
    SQLite::Statement st(db_.sql(),
                         "INSERT INTO local_node (singleton, pod_cidr, pod_cidr_settled) "
                         "VALUES (1, ?, ?) ON CONFLICT (singleton) DO UPDATE SET "
                         "pod_cidr = excluded.pod_cidr, "
                         "pod_cidr_settled = excluded.pod_cidr_settled");
    st.bind(1, cidr.to_string());
    st.bind(2, settled ? 1 : 0);
    st.exec();
    return {};
  });
}

Result<void> LocalNodeRepo::set_mtu(unsigned mtu) {
  if (mtu > codec::kMaxMtu)
    return Error::invalid("set local MTU " + std::to_string(mtu) + ": expected 0 to " +
                          std::to_string(codec::kMaxMtu));
  return guarded(db_, "set local MTU", [&]() -> Result<void> {
    upsert(db_, "mtu", [&](SQLite::Statement& st) { st.bind(1, static_cast<std::int64_t>(mtu)); });
    return {};
  });
}

Result<void> LocalNodeRepo::set_wg_private_key(const keys::PrivateKey& key) {
  return guarded(db_, "store WireGuard private key", [&]() -> Result<void> {
    upsert(db_, "wg_private_key", [&](SQLite::Statement& st) {
      st.bindNoCopy(1, key.bytes().data(), static_cast<int>(key.bytes().size()));
    });
    return {};
  });
}

Result<std::optional<keys::PrivateKey>> LocalNodeRepo::wg_private_key() {
  return guarded(db_, "read WireGuard private key",
                 [&]() -> Result<std::optional<keys::PrivateKey>> {
                   SQLite::Statement st(db_.sql(), "SELECT wg_private_key FROM local_node");
                   if (!st.executeStep() || st.getColumn(0).isNull())
                     return std::optional<keys::PrivateKey>{};
                   auto k = key_from_column(db_, st.getColumn(0), "WireGuard private key");
                   if (!k) return k.error();
                   return std::optional<keys::PrivateKey>{std::move(*k)};
                 });
}

Result<void> LocalNodeRepo::set_pending_wg_key(const keys::PrivateKey& key,
                                               std::uint64_t switch_at_ms) {
  // Stored as SQLite's signed INTEGER; a unix time in ms reaches INT64_MAX
  // only in some 292 million years, so anything above is a caller's bug.
  if (switch_at_ms > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return Error::invalid("store pending WireGuard key: switch time " +
                          std::to_string(switch_at_ms) + " ms is above " +
                          std::to_string(std::numeric_limits<std::int64_t>::max()));
  return guarded(db_, "store pending WireGuard key", [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    // Compared inside SQLite: the current key is never copied out for it.
    SQLite::Statement same(db_.sql(), "SELECT wg_private_key IS NOT NULL AND wg_private_key = ? "
                                      "FROM local_node");
    same.bindNoCopy(1, key.bytes().data(), static_cast<int>(key.bytes().size()));
    if (same.executeStep() && same.getColumn(0).getInt() != 0)
      return Error::invalid("store pending WireGuard key in " + db_.path() +
                            ": it is the node's current key; a rotation needs a new one");
    SQLite::Statement st(db_.sql(),
                         "INSERT INTO local_node (singleton, pending_wg_key, pending_switch_at) "
                         "VALUES (1, ?, ?) ON CONFLICT (singleton) DO UPDATE SET "
                         "pending_wg_key = excluded.pending_wg_key, "
                         "pending_switch_at = excluded.pending_switch_at");
    st.bindNoCopy(1, key.bytes().data(), static_cast<int>(key.bytes().size()));
    st.bind(2, static_cast<std::int64_t>(switch_at_ms));
    st.exec();
    tx.commit();
    return {};
  });
}

Result<std::optional<LocalNodeRepo::PendingWgKey>> LocalNodeRepo::pending_wg_key() {
  using Out = std::optional<PendingWgKey>;
  return guarded(db_, "read pending WireGuard key", [&]() -> Result<Out> {
    SQLite::Statement st(db_.sql(), "SELECT pending_wg_key, pending_switch_at FROM local_node");
    if (!st.executeStep() || st.getColumn(0).isNull()) return Out{};
    auto k = key_from_column(db_, st.getColumn(0), "pending WireGuard key");
    if (!k) return k.error();
    // The schema ties the two columns together and keeps the time >= 0; a
    // planted file need not.
    const SQLite::Column at = st.getColumn(1);
    if (!at.isInteger() || at.getInt64() < 0)
      return Error::invalid("stored pending_switch_at in " + db_.path() +
                            " is not a unix time in ms (expected an integer >= 0 beside the "
                            "pending key)");
    return Out{PendingWgKey{std::move(*k), static_cast<std::uint64_t>(at.getInt64())}};
  });
}

Result<void> LocalNodeRepo::commit_pending_wg_key() {
  return guarded(db_, "commit pending WireGuard key", [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    SQLite::Statement pending(db_.sql(), "SELECT pending_wg_key IS NOT NULL FROM local_node");
    if (!pending.executeStep() || pending.getColumn(0).getInt() == 0)
      return fail(ENOENT, "commit pending WireGuard key in " + db_.path() +
                              ": no rotation is pending");
    // Moved inside SQLite, so the key is never copied out for it; the old
    // key's bytes are zeroed in the file (secure_delete).
    db_.sql().exec("UPDATE local_node SET wg_private_key = pending_wg_key, "
                   "pending_wg_key = NULL, pending_switch_at = NULL WHERE singleton = 1");
    tx.commit();
    return {};
  });
}

Result<void> LocalNodeRepo::set_identity_secret(std::span<const std::uint8_t> secret) {
  if (secret.size() != kIdentitySecretLength)
    return Error::invalid("identity secret must be " + std::to_string(kIdentitySecretLength) +
                          " bytes, got " + std::to_string(secret.size()));
  return guarded(db_, "store identity secret", [&]() -> Result<void> {
    upsert(db_, "identity_secret", [&](SQLite::Statement& st) {
      st.bindNoCopy(1, secret.data(), static_cast<int>(secret.size()));
    });
    return {};
  });
}

Result<std::optional<SecretBytes>> LocalNodeRepo::identity_secret() {
  using Out = std::optional<SecretBytes>;
  return guarded(db_, "read identity secret", [&]() -> Result<Out> {
    SQLite::Statement st(db_.sql(), "SELECT identity_secret FROM local_node");
    if (!st.executeStep() || st.getColumn(0).isNull()) return Out{};
    const SQLite::Column c = st.getColumn(0);
    // The schema's CHECK holds for rows meshd wrote; a planted or edited
    // file is read as it is, so the length is checked again here.
    if (c.getBytes() != static_cast<int>(kIdentitySecretLength))
      return Error::invalid("stored identity secret in " + db_.path() + " has " +
                            std::to_string(c.getBytes()) + " bytes, expected " +
                            std::to_string(kIdentitySecretLength));
    const auto* p = static_cast<const std::uint8_t*>(c.getBlob());
    return Out{SecretBytes(p, p + c.getBytes())};
  });
}

Result<void> LocalNodeRepo::set_identity_key(const keys::IdentitySecretKey& key) {
  std::array<std::uint8_t, kIdentitySecretLength> raw{};
  keys::KeyBytes seed = key.seed();
  std::memcpy(raw.data(), seed.data(), 32);
  std::memcpy(raw.data() + 32, key.public_key().bytes().data(), 32);
  auto r = set_identity_secret(raw);
  sodium_memzero(raw.data(), raw.size());
  sodium_memzero(seed.data(), seed.size());
  return r;
}

Result<std::optional<keys::IdentitySecretKey>> LocalNodeRepo::identity_key() {
  using Out = std::optional<keys::IdentitySecretKey>;
  auto raw = identity_secret();
  if (!raw) return raw.error();
  if (!*raw) return Out{};
  SecretBytes& bytes = **raw;
  keys::KeyBytes seed{};
  std::memcpy(seed.data(), bytes.data(), 32);
  auto key = keys::IdentitySecretKey::from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  const bool matches = std::memcmp(key.public_key().bytes().data(), bytes.data() + 32, 32) == 0;
  sodium_memzero(bytes.data(), bytes.size());
  if (!matches)
    return Error::invalid("stored identity secret in " + db_.path() +
                          " is inconsistent: its public half does not match its seed");
  return Out{std::move(key)};
}

}  // namespace meshd::store
