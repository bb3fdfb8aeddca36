// The join exchange: a new node proves it holds a bootstrap token to the
// member that issued it, and the member answers with what the node needs to
// become a member (cluster, admission, pod CIDR, records). Pure: no socket,
// no clock, no randomness of its own; times and nonces are parameters.
//
//   request = "MJRQ" | u16 protocol version | u16 reserved (0) | u32 body length | body
//   reply   = "MJRP" | u16 protocol version | u8 kind | u8 reserved (0) | u32 body length | body
//   body    = field*,   field = u8 id | u32 length | value   (integers big-endian)
//
// Unknown field ids, in the frame and inside the boxes, are skipped (a node
// of a newer version may add fields); a known field that repeats where it
// may not, or has the wrong length, refuses the message whole. Sizes are
// bounded before anything is allocated.
//
// The boxes are XChaCha20-Poly1305 (libsodium's IETF AEAD) under the join
// key, derived from the token (token -> keys::derive_token_key ->
// keys::token_verifier -> keyed BLAKE2b "meshd/join-key/v1"): the member
// stores only the verifier, so that is what it can derive the key from. The
// additional data binds the direction, the protocol version, the token id
// and the nonces, so a box can be neither moved to another message nor
// reflected back as the other direction.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "keys/identity.h"
#include "keys/token.h"
#include "keys/wg_key.h"
#include "meshd/controlplane/node_record.h"
#include "meshd/controlplane/node_table.h"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace meshd::controlplane {

inline constexpr std::size_t kJoinNonceBytes = 24;
inline constexpr std::size_t kJoinHeaderBytes = 12;
inline constexpr std::size_t kMaxJoinRequestBytes = 4096;
inline constexpr std::size_t kMaxJoinReplyBytes = 1 << 20;
// Records a reply carries at most (the admitting member's own first); sync
// brings the rest.
inline constexpr std::size_t kMaxJoinRecords = 200;
// A request whose timestamp is further than this from the member's clock is
// refused as clock skew: replays are refused by this window and, inside it,
// by the nonce the token store remembers.
inline constexpr std::uint64_t kJoinWindowMs = 5 * 60 * 1000;

using JoinNonce = std::array<std::uint8_t, kJoinNonceBytes>;
using JoinKey = std::array<std::uint8_t, 32>;

// The box key both sides derive: from the token (joiner) or from the
// verifier the member stores. Secret.
JoinKey join_key_from_verifier(std::span<const std::uint8_t> verifier);
JoinKey join_key(const keys::Token& token);

// What the joiner says about itself (sealed).
struct JoinClaims {
  std::string name;
  keys::PublicKey wg_public_key;
  keys::IdentityPublicKey identity;
  std::vector<Endpoint> endpoints;  // at most kMaxEndpoints
  std::uint64_t timestamp = 0;      // unix ms, the joiner's clock
  auto operator<=>(const JoinClaims&) const = default;
};

// A request as it travels: the header in the clear, the claims sealed.
struct JoinRequest {
  std::uint16_t protocol_version = static_cast<std::uint16_t>(kProtocolVersion);
  std::string token_id;
  JoinNonce nonce{};
  std::vector<std::uint8_t> box;  // sealed JoinClaims
};

// Joiner side: seals `claims`; `nonce` must come from a CSPRNG.
std::vector<std::uint8_t> make_join_request(const keys::Token& token, const JoinClaims& claims,
                                            const JoinNonce& nonce);
// Strict parsing of the clear part; the box is opened by open_claims().
Result<JoinRequest> decode_join_request(std::span<const std::uint8_t> frame);
// Nothing when the box does not open under `key` or its contents are malformed.
std::optional<JoinClaims> open_claims(const JoinRequest& req, const JoinKey& key);

// Why a member refused a caller that proved it holds the token.
enum class JoinRefusal : std::uint8_t {
  kExpired = 1,
  kRevoked = 2,
  kUsedUp = 3,
  kNameHeld = 4,     // another live identity holds the name
  kCidrFull = 5,     // no free pod CIDR left in the cluster CIDR
  kClockSkew = 6,    // the request's timestamp is outside the window
  kReplayed = 7,     // this nonce was already used with this token
  kRemoved = 8,      // the identity was removed from the cluster
  kInvalidName = 9,  // the name is not a valid node name
  // The member cannot reach its datastore to claim a CIDR (datastore mode):
  // nothing was spent; the joiner tries again later.
  kUnavailable = 10,
};
// The last value a reply may carry.
inline constexpr JoinRefusal kLastJoinRefusal = JoinRefusal::kUnavailable;
std::string_view to_string(JoinRefusal r);

// The member's token store, as the exchange needs it: one atomic step that
// runs `proof` against the stored verifier, then checks and spends a use and
// remembers the nonce (store::TokenRepo::consume does this in one
// transaction). For an unknown id the store must still run `proof`, on a
// stand-in verifier, so that an unknown id and a wrong secret cost the same.
class JoinTokenStore {
 public:
  enum class Outcome { kAccepted, kUnproven, kRevoked, kExpired, kUsedUp, kReplayed };
  using Proof = std::function<bool(std::span<const std::uint8_t> verifier)>;
  virtual ~JoinTokenStore() = default;
  // `now` in unix seconds (the store's unit). An error only when the store fails.
  virtual Result<Outcome> consume(const std::string& token_id, const Proof& proof,
                                  std::span<const std::uint8_t> nonce, std::int64_t now) = 0;
};

struct JoinMemberContext {
  const keys::IdentitySecretKey& identity;  // signs the admission
  const NodeTable& table;                   // cluster, allocation, name check, records sent
  // CIDRs this member handed out in replies whose node's record is not in
  // the table yet: the allocation skips them.
  std::span<const IpPrefix> reserved = {};
  // Datastore mode (docs/datastore.md): the allocation is claimed in the
  // datastore by a transaction, not only picked from the table. Called
  // after the name checks, before the token's use is spent, with the
  // table's pick (the CIDR a retried join already holds, else the lowest
  // free; nothing when the table sees none) and the admission time; returns
  // the CIDR it claimed (maybe another, if the pick was taken meanwhile).
  // ENOSPC: no CIDR is free (kCidrFull); any other error: kUnavailable.
  std::function<Result<IpPrefix>(const JoinClaims& claims, const std::optional<IpPrefix>& proposed,
                                 std::uint64_t admitted_at)>
      claim;
  // A claim made for a join that the token then refused (revoked, expired,
  // used up, replayed): undone.
  std::function<void(const JoinClaims& claims, const IpPrefix& cidr)> unclaim;
};

// What the member decided, for its own log and counters; `reply` goes back.
struct JoinAnswer {
  std::vector<std::uint8_t> reply;
  std::optional<JoinRefusal> refusal;  // set when refused after proof
  bool unproven = false;               // refused without proof (uniform reply)
  std::optional<JoinClaims> admitted;  // who was admitted ...
  std::optional<Admission> admission;  // ... with which admission
  std::optional<IpPrefix> pod_cidr;    // ... and CIDR (the daemon stores its record when it arrives)
};

// Member side. `now_ms` is the member's clock; `reply_nonce` from a CSPRNG.
// A frame that does not parse, an unknown token id and a wrong secret all
// give the same reply bytes (the uniform refusal). A caller that proved the
// token gets a sealed answer: admitted, or the refusal's reason. Clock skew,
// name and CIDR checks come before the token's use is spent, so a refusal
// the joiner can fix costs no use. An identity whose record is already in
// the table under the same name (a node retrying a join whose reply it
// lost, after its record spread) is admitted again with that record's CIDR;
// any other admission gets lowest_free_cidr(table, member.reserved).
Result<JoinAnswer> answer_join(std::span<const std::uint8_t> request_frame, std::uint64_t now_ms,
                               JoinTokenStore& tokens, const JoinMemberContext& member,
                               const JoinNonce& reply_nonce);

// The reply as the joiner reads it.
struct JoinAdmitted {
  ClusterParams cluster;
  IpPrefix pod_cidr;
  Admission admission;  // verified against the cluster, name, identity, CIDR
  std::vector<SignedRecord> records;
};
struct JoinRefused {
  // Nothing: the member gave the uniform refusal (it did not recognise the
  // token, or the request). Else a reason the member sealed with the token.
  std::optional<JoinRefusal> reason;
  std::uint64_t member_time = 0;  // unix ms; set with kClockSkew
};
using JoinOutcome = std::variant<JoinAdmitted, JoinRefused>;

// Joiner side: opens the member's reply to the request it sent. An error
// when the reply is malformed, does not open under the token's key, does not
// echo this request's nonce, or carries an admission that does not verify
// (a man in the middle, or a member that does not hold the token).
Result<JoinOutcome> open_join_reply(std::span<const std::uint8_t> reply_frame,
                                    const keys::Token& token, const JoinClaims& claims,
                                    const JoinNonce& request_nonce);

// The uniform refusal's bytes (the same for every unproven caller).
std::vector<std::uint8_t> uniform_refusal();

}  // namespace meshd::controlplane
