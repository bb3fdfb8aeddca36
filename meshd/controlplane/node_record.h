// A node's record as the control plane exchanges it, the admission that makes
// it a member, and the tombstone that removes it; their canonical encodings
// and signatures.
//
// A record is signed by its owner (the node's identity key) over its
// canonical encoding. Peers keep and relay the exact bytes that were signed
// (`body`), never a re-encoding: a node of a newer version may append fields
// that this version skips, and the owner's signature still covers them when
// this node relays the record.
//
// The admission is the admitting member's signature over what it allocated:
// cluster id, name, identity key, pod CIDR and the admission time. The owner
// can change its endpoints or its WireGuard key freely (a new version), but
// not its name or pod CIDR without a new admission.
//
// Times are unix milliseconds, passed in by the caller: nothing here reads a
// clock.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "keys/identity.h"
#include "keys/wg_key.h"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::controlplane {

// Version of the records and sync messages this build writes.
//
// MESHD_WIRE_NEXT builds `meshd-next`, a stand-in for the next protocol
// version, for the mixed-version tests only (never shipped): it writes
// version 2, appends a field this version does not know to every message it
// encodes (records, sync frames, join requests and replies, inside and
// outside their boxes), and sends a sync message type this version does not
// know on every anti-entropy tick. The decoders are the same in both builds.
#ifdef MESHD_WIRE_NEXT
inline constexpr std::uint64_t kProtocolVersion = 2;
inline constexpr bool kWritesNextVersionFields = true;
#else
inline constexpr std::uint64_t kProtocolVersion = 1;
inline constexpr bool kWritesNextVersionFields = false;
#endif
// What meshd-next appends: a field id no version 1 decoder knows, its value,
// and a sync message type version 1 ignores.
inline constexpr std::uint8_t kNextVersionFieldId = 0xF0;
inline constexpr std::array<std::uint8_t, 4> kNextVersionFieldValue = {'n', 'e', 'x', 't'};
inline constexpr std::uint8_t kNextVersionMessageType = 9;

inline constexpr std::string_view kNodeRecordContext = "meshd/node-record/v1";
inline constexpr std::string_view kAdmissionContext = "meshd/admission/v1";
inline constexpr std::string_view kTombstoneContext = "meshd/tombstone/v1";

inline constexpr std::size_t kMaxRecordBytes = 4096;  // a signed body, fields of newer versions included
inline constexpr std::size_t kMaxNameLength = 63;
inline constexpr std::size_t kMaxClusterIdLength = 64;
inline constexpr std::size_t kMaxEndpoints = 8;
inline constexpr std::size_t kMaxReasonLength = 128;
// Reserved: a record version may never reach it. In digests it stands for "a
// tombstone", which outranks every record of the identity.
inline constexpr std::uint64_t kTombstoneVersion = UINT64_MAX;

// A node name: 1-63 characters of [a-z0-9.-], starting and ending with a
// letter or digit (a host name as RFC 1123 allows, lower case).
bool valid_node_name(std::string_view name);

struct Admission {
  keys::IdentityPublicKey admitter;
  std::uint64_t admitted_at = 0;  // unix ms
  keys::Signature signature{};

  auto operator<=>(const Admission&) const = default;
};

// Room for hitless key rotation (the lifecycle issue): the owner announces its
// next WireGuard key and when it switches; peers add it ahead of time.
struct PendingKey {
  keys::PublicKey wg_public_key;
  std::uint64_t switch_at = 0;  // unix ms

  auto operator<=>(const PendingKey&) const = default;
};

struct NodeRecord {
  std::string cluster_id;
  std::string name;
  keys::PublicKey wg_public_key;
  keys::IdentityPublicKey identity;
  std::vector<Endpoint> endpoints;
  IpPrefix pod_cidr;
  std::uint64_t version = 0;  // the owner raises it with every change
  Admission admission;
  std::uint64_t protocol_version = kProtocolVersion;  // the owner's
  std::optional<PendingKey> pending_key;

  auto operator<=>(const NodeRecord&) const = default;
};

// The record, the exact bytes its owner signed, and that signature.
struct SignedRecord {
  NodeRecord record;
  std::vector<std::uint8_t> body;
  keys::Signature signature{};
};

// Issued by any member: `removed` may never come back; its CIDR is free
// again once every live member has shown it holds the tombstone
// (SyncEngine::released()), its name at once (docs/protocol.md, "Removal").
struct Tombstone {
  std::string cluster_id;
  keys::IdentityPublicKey removed;
  keys::IdentityPublicKey removed_by;
  std::uint64_t removed_at = 0;  // unix ms
  // What the removed node held when it was removed (its record in the
  // remover's table): the name and the CIDR that become free once the
  // tombstone has reached every live member. Empty / zero when the remover
  // held no record of it.
  std::string name;
  IpPrefix pod_cidr;
  // e.g. "removed by the operator", "pruned: silent for 3600 s"; at most
  // kMaxReasonLength bytes.
  std::string reason;

  auto operator<=>(const Tombstone&) const = default;
};

struct SignedTombstone {
  Tombstone tombstone;
  std::vector<std::uint8_t> body;
  keys::Signature signature{};
};

// Canonical encodings: what the signatures cover.
keys::CanonicalEncoder encode_record(const NodeRecord& r);
keys::CanonicalEncoder encode_admission(std::string_view cluster_id, std::string_view name,
                                        const keys::IdentityPublicKey& identity,
                                        const IpPrefix& pod_cidr, std::uint64_t admitted_at);
keys::CanonicalEncoder encode_tombstone(const Tombstone& t);

// The admitting member's side: its signature over the allocation.
Admission admit(const keys::IdentitySecretKey& admitter, std::string_view cluster_id,
                std::string_view name, const keys::IdentityPublicKey& identity,
                const IpPrefix& pod_cidr, std::uint64_t admitted_at);

// The owner signs its own record; throws std::invalid_argument if `owner` is
// not the record's identity (a programming error).
SignedRecord sign_record(const NodeRecord& r, const keys::IdentitySecretKey& owner);
SignedTombstone sign_tombstone(const Tombstone& t, const keys::IdentitySecretKey& remover);

// Decoding only (fields of newer versions skipped); no signature is checked
// here. Errors name the field and never quote key material.
Result<SignedRecord> decode_record(std::span<const std::uint8_t> body, const keys::Signature& sig);
Result<SignedTombstone> decode_tombstone(std::span<const std::uint8_t> body,
                                         const keys::Signature& sig);

bool owner_signature_valid(const SignedRecord& r);
bool admission_signature_valid(const NodeRecord& r);
bool tombstone_signature_valid(const SignedTombstone& t);

}  // namespace meshd::controlplane
