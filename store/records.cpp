#include "store/records.h"

#include "store/database.h"
#include "store/sql_util.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>

namespace meshd::store {

using detail::guarded;

namespace {

// SQLite INTEGER is signed 64-bit: a version is stored as its two's-complement
// bit pattern, so UINT64_MAX (every tombstone) is -1 and versions above
// INT64_MAX are negative. Comparisons happen here on the unsigned value,
// never in SQL.
std::int64_t to_column(std::uint64_t v) { return static_cast<std::int64_t>(v); }
std::uint64_t from_column(std::int64_t v) { return static_cast<std::uint64_t>(v); }

// Public keys print as a short prefix.
std::string short_id(std::span<const std::uint8_t> id) {
  std::string out;
  char buf[3];
  for (std::size_t i = 0; i < id.size() && i < 4; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", id[i]);
    out += buf;
  }
  return out + "...";
}

std::string describe(const SignedRow& r) {
  return std::string(r.tombstone ? "tombstone of " : "record of ") + short_id(r.identity);
}

Result<void> check_row(const SignedRow& r) {
  if (r.body.empty() || r.body.size() > kMaxSignedBodyBytes)
    return Error::invalid("store " + describe(r) + ": body of " + std::to_string(r.body.size()) +
                          " bytes, expected 1 to " + std::to_string(kMaxSignedBodyBytes));
  if (r.tombstone && r.version != kTombstoneRowVersion)
    return Error::invalid("store " + describe(r) + ": a tombstone's version must be " +
                          std::to_string(kTombstoneRowVersion) + ", not " +
                          std::to_string(r.version));
  if (!r.tombstone && r.version == kTombstoneRowVersion)
    return Error::invalid("store " + describe(r) + ": version " +
                          std::to_string(kTombstoneRowVersion) +
                          " is reserved for tombstones");
  return {};
}

// Newer: a tombstone beats every record; otherwise the higher version.
bool newer(bool tomb_a, std::uint64_t ver_a, bool tomb_b, std::uint64_t ver_b) {
  return std::tie(tomb_a, ver_a) > std::tie(tomb_b, ver_b);
}

}  // namespace

Result<void> RecordRepo::put(std::span<const SignedRow> rows) {
  for (const SignedRow& r : rows)
    if (auto ok = check_row(r); !ok) return ok.error();
  if (rows.empty()) return {};
  return guarded(db_, "store " + std::to_string(rows.size()) + " signed rows",
                 [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    SQLite::Statement get(db_.sql(),
                          "SELECT tombstone, version FROM signed_records WHERE identity = ?");
    SQLite::Statement set(db_.sql(),
                          "INSERT INTO signed_records (identity, tombstone, version, body, "
                          "signature) VALUES (?, ?, ?, ?, ?) ON CONFLICT (identity) DO UPDATE "
                          "SET tombstone = excluded.tombstone, version = excluded.version, "
                          "body = excluded.body, signature = excluded.signature");
    for (const SignedRow& r : rows) {
      get.reset();
      get.bind(1, r.identity.data(), static_cast<int>(r.identity.size()));
      if (get.executeStep() &&
          !newer(r.tombstone, r.version, get.getColumn(0).getInt() != 0,
                 from_column(get.getColumn(1).getInt64())))
        continue;
      set.reset();
      set.bind(1, r.identity.data(), static_cast<int>(r.identity.size()));
      set.bind(2, r.tombstone ? 1 : 0);
      set.bind(3, to_column(r.version));
      detail::bind_bytes(set, 4, r.body);
      set.bind(5, r.signature.data(), static_cast<int>(r.signature.size()));
      set.exec();
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<SignedRow>> RecordRepo::load_all() {
  return guarded(db_, "load signed rows", [&]() -> Result<std::vector<SignedRow>> {
    SQLite::Statement st(db_.sql(),
                         "SELECT identity, tombstone, version, body, signature FROM "
                         "signed_records ORDER BY identity");
    std::vector<SignedRow> out;
    while (st.executeStep()) {
      // The schema's CHECKs hold for rows meshd wrote; a planted or edited
      // file is read as it is, and a wrong length is refused, not cut or
      // zero-filled.
      SignedRow r;
      auto id = st.getColumn(0);
      if (id.getBytes() != 32)
        return Error::invalid("stored signed row in " + db_.path() + ": identity of " +
                              std::to_string(id.getBytes()) + " bytes, expected 32");
      std::memcpy(r.identity.data(), id.getBlob(), 32);
      const std::int64_t tomb = st.getColumn(1).getInt64();
      if (tomb != 0 && tomb != 1)
        return Error::invalid("stored signed row of " + short_id(r.identity) + " in " +
                              db_.path() + ": tombstone flag " + std::to_string(tomb) +
                              ", expected 0 or 1");
      r.tombstone = tomb == 1;
      r.version = from_column(st.getColumn(2).getInt64());
      r.body = detail::column_bytes(st.getColumn(3));
      auto sig = st.getColumn(4);
      if (sig.getBytes() != 64)
        return Error::invalid("stored signed row of " + short_id(r.identity) + " in " +
                              db_.path() + ": signature of " + std::to_string(sig.getBytes()) +
                              " bytes, expected 64");
      std::memcpy(r.signature.data(), sig.getBlob(), 64);
      if (auto ok = check_row(r); !ok)
        return Error::invalid("stored signed row in " + db_.path() + ": " + ok.error().message);
      out.push_back(std::move(r));
    }
    return out;
  });
}

}  // namespace meshd::store
