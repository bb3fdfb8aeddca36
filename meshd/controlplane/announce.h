// The underlay announcement: a member cut off from the mesh hands its own
// signed record to another member's join listener. Sync runs inside the mesh,
// so a node whose peers route its pod CIDR to a WireGuard key it no longer
// holds (restored from a backup taken before its last key rotation) can
// reach nobody by sync and nobody reaches it: the record that names its
// current key never leaves it. Over the underlay it does (docs/protocol.md,
// "Underlay announcement"). Pure: no socket, no clock, no randomness of its own.
//
//   request = "MJRN" | u16 protocol version | u16 reserved (0) | u32 body length | body
//   reply   = "MJRO" | u16 protocol version | u16 reserved (0) | u32 body length | body
//   body    = field*,   field = u8 id | u32 length | value   (integers big-endian)
//
// The request carries the cluster id and one signed record (its body, the
// bytes the owner signed, and the signature). The reply carries a status,
// the version of the identity's record the member holds (with kStale), and
// the identity's tombstone (with kRemoved). Nothing in either is secret and
// nothing needs sealing: the record is signed by its owner and admitted by a
// member, and the member merges it through the same NodeTable rules as a
// record that came by sync, so a forged one is refused and a replayed older
// one loses on version. A reply is not authenticated except for the
// tombstone it may carry (signed by its remover): a man in the middle can make
// the node send again, as it can by dropping the connection. Both frames are
// bounded by the join listener's kMaxJoinRequestBytes.
#pragma once

#include "common/result.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/sync_engine.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::controlplane {

inline constexpr std::string_view kAnnounceRequestMagic = "MJRN";
inline constexpr std::string_view kAnnounceReplyMagic = "MJRO";

enum class AnnounceStatus : std::uint8_t {
  kMerged = 0,           // new here: merged, in the member's data plane, pushed on by sync
  kStale = 1,            // the member holds this version of the identity's record or a newer one
  kMalformed = 2,        // does not parse
  kWrongCluster = 3,
  kUnknownIdentity = 4,  // no record of this identity here: a new node joins instead
  kRemoved = 5,          // the identity has a tombstone (carried in the reply)
  kRefused = 6,          // the table refused it (signature, admission, fields)
};
inline constexpr AnnounceStatus kLastAnnounceStatus = AnnounceStatus::kRefused;
std::string_view to_string(AnnounceStatus s);

struct AnnounceRequest {
  std::uint16_t protocol_version = static_cast<std::uint16_t>(kProtocolVersion);
  std::string cluster_id;
  SignedRecord record;  // decoded, not verified: the table checks it
};

struct AnnounceReply {
  AnnounceStatus status = AnnounceStatus::kMerged;
  std::optional<std::uint64_t> held_version;       // with kStale
  std::optional<SignedTombstone> tombstone;        // with kRemoved
};

// Node side: its own record, signed.
std::vector<std::uint8_t> make_announce_request(std::string_view cluster_id, const SignedRecord& own);
// Strict parsing: an error for a frame that does not parse, or whose record
// does not decode. No signature is checked here.
Result<AnnounceRequest> decode_announce_request(std::span<const std::uint8_t> frame);

std::vector<std::uint8_t> make_announce_reply(const AnnounceReply& reply);
// Node side: the member's reply. A tombstone in it is decoded only; the
// caller merges it through its table, which checks the remover's signature.
Result<AnnounceReply> decode_announce_reply(std::span<const std::uint8_t> frame);

struct AnnounceAnswer {
  std::vector<std::uint8_t> reply;
  AnnounceStatus status = AnnounceStatus::kMalformed;
  std::optional<AnnounceRequest> request;  // set once it parsed
  MergeOutcome outcome = MergeOutcome::kMalformed;  // the table's, when it got that far
  std::vector<Outgoing> out;  // the sync push of a merged record (its owner left out)
};

// Member side: merges the record into `engine`'s table by the sync rules
// and, when it is new, returns the push that carries it on.
AnnounceAnswer answer_announce(std::span<const std::uint8_t> request_frame, SyncEngine& engine, Rng& rng);

}  // namespace meshd::controlplane
