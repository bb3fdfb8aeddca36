#include "store/schema.h"

namespace meshd::store::detail {

namespace {

// STRICT tables (SQLite >= 3.37): a wrongly typed value is an error, not a
// silently coerced string.
constexpr const char* kV1 = R"sql(
CREATE TABLE cluster (
  singleton          INTEGER PRIMARY KEY CHECK (singleton = 1),
  cluster_id         TEXT    NOT NULL,
  cidr               TEXT    NOT NULL,
  node_prefix_length INTEGER NOT NULL,
  created_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE local_node (
  singleton        INTEGER PRIMARY KEY CHECK (singleton = 1),
  name             TEXT    NOT NULL DEFAULT '',
  pod_cidr         TEXT,
  pod_cidr_settled INTEGER NOT NULL DEFAULT 0,
  mtu              INTEGER NOT NULL DEFAULT 0,
  wg_private_key   BLOB CHECK (wg_private_key IS NULL OR length(wg_private_key) = 32),
  identity_secret  BLOB CHECK (identity_secret IS NULL OR length(identity_secret) = 64)
) STRICT;

CREATE TABLE nodes (
  name                TEXT    PRIMARY KEY,
  wg_public_key       BLOB    NOT NULL CHECK (length(wg_public_key) = 32),
  identity_public_key BLOB    NOT NULL CHECK (length(identity_public_key) = 32),
  endpoints           TEXT    NOT NULL DEFAULT '',
  pod_cidr            TEXT,
  version             INTEGER NOT NULL,
  admitted_by         TEXT    NOT NULL DEFAULT '',
  admitted_at         INTEGER NOT NULL DEFAULT 0,
  admission_proof     BLOB    NOT NULL DEFAULT x'',
  signature           BLOB    NOT NULL DEFAULT x'',
  last_seen           INTEGER NOT NULL DEFAULT 0,
  removed             INTEGER NOT NULL DEFAULT 0,
  removed_at          INTEGER
) STRICT;

CREATE TABLE tokens (
  id          TEXT    PRIMARY KEY CHECK (length(id) = 6),
  verifier    BLOB    NOT NULL,
  expires_at  INTEGER,
  usages_left INTEGER CHECK (usages_left IS NULL OR usages_left >= 0),
  revoked     INTEGER NOT NULL DEFAULT 0,
  description TEXT    NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE join_nonces (
  token_id TEXT    NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
  nonce    BLOB    NOT NULL,
  seen_at  INTEGER NOT NULL,
  PRIMARY KEY (token_id, nonce)
) STRICT;

CREATE TABLE ipam_leases (
  network      TEXT    NOT NULL,
  container_id TEXT    NOT NULL,
  ifname       TEXT    NOT NULL,
  address      TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (network, container_id, ifname),
  UNIQUE (network, address)
) STRICT;

-- AUTOINCREMENT: ids are never reused after a prune, so a reader polling
-- with since_id never skips or repeats an event.
CREATE TABLE events (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  kind    TEXT    NOT NULL,
  node    TEXT    NOT NULL DEFAULT '',
  message TEXT    NOT NULL
) STRICT;
)sql";

// v2: tokens remember when they were last used (shown by `token list`), and
// the prunes of join nonces and events get indexes instead of full scans.
constexpr const char* kV2 = R"sql(
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
CREATE INDEX join_nonces_seen_at ON join_nonces(seen_at);
CREATE INDEX events_at ON events(at);
)sql";

// v3: a lease records its host-side interface, so that CNI GC deletes only
// interfaces its own leases name (a name prefix cannot tell networks apart),
// and its last claimant, so that an ADD undoing itself releases a lease only
// while no concurrent ADD of the same attachment has taken it over.
constexpr const char* kV3 = R"sql(
ALTER TABLE ipam_leases ADD COLUMN host_interface TEXT NOT NULL DEFAULT '';
ALTER TABLE ipam_leases ADD COLUMN claimant INTEGER NOT NULL DEFAULT 0;
)sql";

// v4: each CNI network remembers the address it allocated last, so that
// allocation rotates through the pool instead of handing a released address
// out again at once.
constexpr const char* kV4 = R"sql(
CREATE TABLE ipam_cursors (
  network      TEXT NOT NULL PRIMARY KEY,
  last_address TEXT NOT NULL
) STRICT;
)sql";

// v5: the node table as the control plane keeps it: one row per identity
// holding the exact bytes its owner (record) or remover (tombstone) signed.
// SQLite INTEGER is signed 64-bit, so a version is stored as its
// two's-complement bit pattern: every tombstone's UINT64_MAX is -1. The
// unsigned, name-keyed `nodes` table of v1 is dropped: it held no signed
// bytes to convert, and the daemon never wrote to it. The cluster
// remembers its founder's identity key, the root of trust (zero for a
// cluster stored before v5).
constexpr const char* kV5 = R"sql(
CREATE TABLE signed_records (
  identity  BLOB    PRIMARY KEY CHECK (length(identity) = 32),
  tombstone INTEGER NOT NULL CHECK (tombstone IN (0, 1)),
  version   INTEGER NOT NULL,
  body      BLOB    NOT NULL CHECK (length(body) BETWEEN 1 AND 4096),
  signature BLOB    NOT NULL CHECK (length(signature) = 64),
  CHECK ((tombstone = 1) = (version = -1))
) STRICT;
DROP TABLE nodes;
ALTER TABLE cluster ADD COLUMN founder BLOB NOT NULL
  DEFAULT x'0000000000000000000000000000000000000000000000000000000000000000' CHECK (length(founder) = 32);
)sql";

// v6: a WireGuard key rotation in progress (meshd/controlplane/rotation.h):
// the next private key and its switch time (unix ms), stored before the key
// is announced so that a restart finishes the rotation. Secret like
// wg_private_key; the two columns are set and cleared together.
constexpr const char* kV6 = R"sql(
ALTER TABLE local_node ADD COLUMN pending_wg_key BLOB
  CHECK (pending_wg_key IS NULL OR length(pending_wg_key) = 32);
ALTER TABLE local_node ADD COLUMN pending_switch_at INTEGER
  CHECK ((pending_switch_at IS NULL) = (pending_wg_key IS NULL) AND
         (pending_switch_at IS NULL OR pending_switch_at >= 0));
)sql";

// v7: the etcd datastore's watch position (store/datastore_state.h): per
// scope (which etcd, which prefix, which cluster), the last revision whose
// events are applied, so a restarted node resumes its watch there instead
// of listing everything again. A revision is >= 1: 0 would mean "from now"
// to etcd and skip whatever happened while the node was down.
constexpr const char* kV7 = R"sql(
CREATE TABLE datastore_state (
  scope    TEXT    PRIMARY KEY CHECK (length(scope) BETWEEN 1 AND 512),
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;
)sql";

constexpr Migration kMigrations[] = {
    {1, "initial schema", kV1},
    {2, "token last use, prune indexes", kV2},
    {3, "lease host interface and claimant", kV3},
    {4, "IPAM allocation cursor per network", kV4},
    {5, "signed node records and tombstones, cluster founder", kV5},
    {6, "pending WireGuard key of a rotation", kV6},
    {7, "datastore watch revision per scope", kV7},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

}  // namespace meshd::store::detail
