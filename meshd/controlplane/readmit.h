// Re-admission: a node whose record lost its pod CIDR to a record of higher
// precedence (two members admitted two nodes to one CIDR at once) asks a
// member for another CIDR over the join port. It cannot ask through the
// mesh (its mesh address is the winner's; peers route that CIDR to the
// winner) and its bootstrap token may be used up, so the request is proven
// by the node's identity key instead: the member only re-admits the
// identity whose record it holds, under that record's name. Pure: no
// socket, no clock, no randomness of its own.
//
//   request = "MJRA" | u16 protocol version | u16 reserved (0) | u32 body length | body
//   reply   = "MJRR" | u16 protocol version | u16 reserved (0) | u32 body length | body
//   body    = field*,   field = u8 id | u32 length | value   (integers big-endian)
//
// (the join listener's framing and size limit apply to both). A reply
// states its status; a refusal echoes the nonce unless the request did not
// parse. The request carries cluster id, identity, name, timestamp (unix ms) and a
// 24-byte nonce, signed by the identity over the context "meshd/readmit/v1"
// and every field (and the protocol version). The reply is not sealed:
// nothing in it is secret, and the admission it carries is usable only by
// the identity's owner, who must sign a record with it. It echoes the
// request's nonce, and the node checks the admission's signature, so a
// forged or replayed reply gives it nothing it can use. A refusal is not
// authenticated: a man in the middle can make the node retry, as it can by
// dropping the connection.
//
// Replays: the member refuses a request outside kJoinWindowMs of its clock,
// and inside it an (identity, nonce) it remembers (ReadmitNonces, bounded).
// A replay it no longer remembers re-admits the same identity again: the
// member reserves one CIDR per identity until that reservation expires.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "keys/identity.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/node_table.h"

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace meshd::controlplane {

inline constexpr std::string_view kReadmitRequestMagic = "MJRA";
inline constexpr std::string_view kReadmitReplyMagic = "MJRR";
inline constexpr std::string_view kReadmitContext = "meshd/readmit/v1";
// (identity, nonce) pairs a member remembers; the oldest goes first.
inline constexpr std::size_t kMaxReadmitNonces = 4096;

// Why this node's own record is not in effect, as the table decides it.
enum class ClaimLoss : std::uint8_t {
  kNone,      // in effect
  kCidrHeld,  // only its pod CIDR: a record of higher precedence claims it
  kNameHeld,  // its name (whatever the CIDR): the operator must act
};
struct ClaimState {
  ClaimLoss loss = ClaimLoss::kNone;
  const SignedRecord* winner = nullptr;  // the record of higher precedence (not kNone)
};
ClaimState claim_state(const NodeTable& table, const NodeRecord& own);

struct ReadmitRequest {
  std::uint16_t protocol_version = static_cast<std::uint16_t>(kProtocolVersion);
  std::string cluster_id;
  keys::IdentityPublicKey identity;
  std::string name;
  std::uint64_t timestamp = 0;  // unix ms, the node's clock
  JoinNonce nonce{};
  keys::Signature signature{};
};

// Node side: signs with the identity; `nonce` must come from a CSPRNG.
std::vector<std::uint8_t> make_readmit_request(const keys::IdentitySecretKey& identity,
                                               std::string_view cluster_id, std::string_view name,
                                               std::uint64_t timestamp, const JoinNonce& nonce);
// Strict parsing and the signature check: an error for a frame that does
// not parse or whose signature does not verify under its identity.
Result<ReadmitRequest> decode_readmit_request(std::span<const std::uint8_t> frame);

enum class ReadmitRefusal : std::uint8_t {
  kMalformed = 1,        // does not parse, or the signature does not verify
  kClockSkew = 2,        // timestamp outside kJoinWindowMs of the member's clock
  kReplayed = 3,         // (identity, nonce) seen already
  kWrongCluster = 4,
  kUnknownIdentity = 5,  // no record of this identity in the member's table
  kRemoved = 6,          // the identity has a tombstone
  kNameMismatch = 7,     // the record of this identity has another name
  kInEffect = 8,         // its record is in effect here: nothing to do
  kNameHeld = 9,         // its name lost: another CIDR does not help
  kCidrFull = 10,
};
std::string_view to_string(ReadmitRefusal r);

// Remembers recent (identity, nonce) pairs, at most kMaxReadmitNonces.
class ReadmitNonces {
 public:
  // False if the pair is already remembered; else remembers it.
  bool insert(const keys::IdentityPublicKey& id, const JoinNonce& nonce);

 private:
  using Key = std::pair<keys::IdentityPublicKey, JoinNonce>;
  std::set<Key> seen_;
  std::deque<Key> order_;
};

struct ReadmitMemberContext {
  const keys::IdentitySecretKey& identity;  // signs the admission
  const NodeTable& table;
  // CIDRs handed out by this member whose node's record does not hold them
  // yet (other identities' only): the allocation skips them.
  std::span<const IpPrefix> reserved = {};
  // What this member admitted and whose signed record it has not received:
  // name, identity, pod CIDR and admission (unsigned by the owner). A node
  // whose record never reached anyone (its admitter routes its CIDR to the
  // record that beat it) asks with this entry alone; one with a record in
  // the table is judged by that record.
  std::span<const NodeRecord> pending = {};
};

struct ReadmitAnswer {
  std::vector<std::uint8_t> reply;
  std::optional<ReadmitRequest> request;  // set once it parsed and verified
  std::optional<ReadmitRefusal> refusal;
  std::optional<Admission> admission;     // set when re-admitted ...
  std::optional<IpPrefix> pod_cidr;       // ... with this CIDR
  std::optional<IpPrefix> lost_cidr;      // ... instead of this one
};

// Member side. `now_ms` is the member's clock. The node's claim is its
// record in the table, else its entry in member.pending. The nonce is remembered only
// for a request that verified and is inside the window. The new CIDR is
// lowest_free_cidr(table, reserved): never the lost one, which the node's
// record still claims.
ReadmitAnswer answer_readmit(std::span<const std::uint8_t> request_frame, std::uint64_t now_ms,
                             const ReadmitMemberContext& member, ReadmitNonces& nonces);

struct Readmitted {
  IpPrefix pod_cidr;
  Admission admission;  // verified for the node's cluster, name, identity and this CIDR
};
struct ReadmitRefused {
  ReadmitRefusal reason;
  std::uint64_t member_time = 0;  // unix ms, with kClockSkew
};
using ReadmitOutcome = std::variant<Readmitted, ReadmitRefused>;

// Node side: reads the member's reply to the request it sent (the same
// cluster id, name, identity and nonce). An error when it is malformed, does
// not echo the nonce, or its admission does not verify (the caller also
// checks that the admitter is a member it knows).
Result<ReadmitOutcome> open_readmit_reply(std::span<const std::uint8_t> reply_frame,
                                          const ClusterParams& cluster, std::string_view name,
                                          const keys::IdentityPublicKey& identity,
                                          const JoinNonce& request_nonce);

}  // namespace meshd::controlplane
