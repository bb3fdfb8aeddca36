// The wire form of sync messages between members.
//
//   frame  = magic "MSYN" | u16 protocol version | u8 type | u8 reserved (0)
//            | u32 body length | body                  (integers big-endian)
//   body   = field*
//   field  = u8 id | u32 length | value
//
// A receiver skips field ids it does not know, and reports a message type it
// does not know as such, so a node of the next version (new fields, new
// messages) still interoperates with this one. Sizes are bounded before
// anything is allocated: a frame above kMaxMessageBytes, a record above
// kMaxRecordBytes, or more entries than the limits below is refused whole.
#pragma once

#include "common/result.h"
#include "keys/identity.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/node_table.h"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace meshd::controlplane {

inline constexpr std::size_t kMaxMessageBytes = 1 << 20;
inline constexpr std::size_t kFrameHeaderBytes = 12;
inline constexpr std::size_t kMaxDigestEntries = 16384;
inline constexpr std::size_t kMaxWanted = 16384;
inline constexpr std::size_t kMaxSignedPerMessage = 4096;

enum class MessageType : std::uint8_t {
  kPush = 1,     // records/tombstones that changed; forwarded once by each receiver
  kSummary = 2,  // the sender's table hash: "compare with me"
  kDigest = 3,   // (identity, version) of every record and tombstone
  kRequest = 4,  // identities whose record or tombstone the sender wants
  kRecords = 5,  // records/tombstones answering a digest or a request
};

enum class FieldId : std::uint8_t {
  kRecord = 1,         // canonical body | 64-byte owner signature
  kTombstone = 2,      // canonical body | 64-byte remover signature
  kTableHash = 3,      // 32 bytes
  kDigestEntries = 4,  // n x (32-byte identity | u64 version)
  kWanted = 5,         // n x 32-byte identity
  kReplyWanted = 6,    // empty; in a Summary: answer even if the tables are equal
};

// A record or tombstone as it travels: the signed bytes and the signature.
struct SignedBytes {
  std::vector<std::uint8_t> body;
  keys::Signature signature{};
  auto operator<=>(const SignedBytes&) const = default;
};

struct SyncMessage {
  std::uint16_t protocol_version = static_cast<std::uint16_t>(kProtocolVersion);
  MessageType type = MessageType::kPush;
  std::vector<SignedBytes> records;
  std::vector<SignedBytes> tombstones;
  std::optional<TableHash> table_hash;
  std::vector<DigestEntry> digest;
  std::vector<keys::IdentityPublicKey> wanted;
  bool reply_wanted = false;
};

// Encodes; throws std::length_error if the message breaks a limit (the
// sender's bug: it must split, see split_signed()).
std::vector<std::uint8_t> encode_message(const SyncMessage& m);
// The size encode_message(m) will have.
std::size_t encoded_size(const SyncMessage& m);

// Result of decoding: a message, or a known reason to drop it. A type of a
// newer version is not an error: `unknown_type` is set and nothing else.
struct Decoded {
  SyncMessage message;
  bool unknown_type = false;
};
Result<Decoded> decode_message(std::span<const std::uint8_t> frame);

// Messages of `type`, each within kMaxMessageBytes, carrying all of
// `records` and `tombstones`.
std::vector<SyncMessage> split_signed(MessageType type, std::vector<SignedBytes> records,
                                      std::vector<SignedBytes> tombstones);

}  // namespace meshd::controlplane
