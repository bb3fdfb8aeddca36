// The node table as this node persists it: every signed record and tombstone
// it accepted, one row per identity, kept as the exact bytes their owners
// (records) or removers (tombstones) signed. The store does not decode or
// verify them: the control plane does both before it calls put() and again
// when it loads the rows, so a planted row is never trusted on the store's
// word.
#pragma once

#include "common/result.h"

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace meshd::store {

class Database;

// Longest signed body a row holds (a record with the fields of newer
// versions, or a tombstone).
inline constexpr std::size_t kMaxSignedBodyBytes = 4096;
// The version every tombstone row carries; a record's version never reaches it.
inline constexpr std::uint64_t kTombstoneRowVersion = UINT64_MAX;

struct SignedRow {
  std::array<std::uint8_t, 32> identity{};  // Ed25519 public key of the owner (record) / removed node (tombstone)
  bool tombstone = false;
  std::uint64_t version = 0;                // record version; tombstones: UINT64_MAX
  std::vector<std::uint8_t> body;           // the signed canonical bytes, as received
  std::array<std::uint8_t, 64> signature{};
  auto operator<=>(const SignedRow&) const = default;
};

class RecordRepo {
 public:
  explicit RecordRepo(Database& db) : db_(db) {}

  // One BEGIN IMMEDIATE transaction for all rows: each replaces the
  // identity's row only if its (tombstone, version) is newer (a tombstone
  // beats every record; a record never replaces a tombstone). Rows that are
  // not newer, an equal one included, are ignored. A malformed row (empty or
  // oversized body, a tombstone whose version is not UINT64_MAX, a record
  // whose version is) refuses the whole call with EINVAL before anything is
  // written.
  Result<void> put(std::span<const SignedRow> rows);
  // Every row, ordered by identity (bytewise). A row that breaks the table's
  // rules (edited or planted file) fails the read with EINVAL naming it.
  Result<std::vector<SignedRow>> load_all();

 private:
  Database& db_;
};

}  // namespace meshd::store
