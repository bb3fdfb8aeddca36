#include "store/local_node.h"

#include "store/database.h"
#include "store/row_codec.h"
#include "store/sql_util.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>

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
                   const auto c = st.getColumn(0);
                   keys::KeyBytes b{};
                   if (c.getBytes() != static_cast<int>(b.size()))
                     return Error::invalid("stored WireGuard private key in " + db_.path() +
                                           " has " + std::to_string(c.getBytes()) +
                                           " bytes, expected 32");
                   std::memcpy(b.data(), c.getBlob(), b.size());
                   std::optional<keys::PrivateKey> k{keys::PrivateKey(b)};
                   sodium_memzero(b.data(), b.size());
                   return k;
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
