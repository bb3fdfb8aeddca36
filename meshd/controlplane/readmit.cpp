#include "meshd/controlplane/readmit.h"

#include "meshd/controlplane/wire_fields.h"

#include <algorithm>
#include <cstring>

namespace meshd::controlplane {
namespace {

using namespace wire;

// Request fields.
enum : std::uint8_t {
  kQClusterId = 1, kQIdentity = 2, kQName = 3, kQTimestamp = 4, kQNonce = 5, kQSignature = 6,
};
// Reply fields.
enum : std::uint8_t {
  kPStatus = 1, kPEcho = 2, kPPodCidr = 3, kPAdmitter = 4, kPAdmittedAt = 5, kPAdmissionSig = 6,
  kPMemberTime = 7,
};

Bytes frame(std::string_view magic, Bytes body) {
  put_next_version_field(body);
  Bytes f(magic.begin(), magic.end());
  put_u16(f, static_cast<std::uint16_t>(kProtocolVersion));
  f.push_back(0);
  f.push_back(0);
  put_u32(f, static_cast<std::uint32_t>(body.size()));
  f.insert(f.end(), body.begin(), body.end());
  return f;
}
std::optional<std::span<const std::uint8_t>> unframe(std::span<const std::uint8_t> f,
                                                     std::string_view magic, std::size_t max,
                                                     std::uint16_t* version) {
  if (f.size() < kJoinHeaderBytes || f.size() > max) return std::nullopt;
  if (std::memcmp(f.data(), magic.data(), 4) != 0) return std::nullopt;
  *version = static_cast<std::uint16_t>(get_be(f.subspan(4, 2)));
  if (*version == 0 || f[6] != 0 || f[7] != 0) return std::nullopt;
  if (get_be(f.subspan(8, 4)) != f.size() - kJoinHeaderBytes) return std::nullopt;
  return f.subspan(kJoinHeaderBytes);
}

keys::CanonicalEncoder signed_part(std::uint16_t version, std::string_view cluster_id,
                                   const keys::IdentityPublicKey& identity, std::string_view name,
                                   std::uint64_t timestamp, const JoinNonce& nonce) {
  keys::CanonicalEncoder e(kReadmitContext);
  e.u64(version).str(cluster_id).bytes(identity.bytes()).str(name).u64(timestamp).bytes(nonce);
  return e;
}


Bytes refusal_reply(ReadmitRefusal why, const JoinNonce* echo, std::uint64_t member_time) {
  Bytes body;
  put_field(body, kPStatus, Bytes{static_cast<std::uint8_t>(why)});
  if (echo) put_field(body, kPEcho, *echo);
  if (why == ReadmitRefusal::kClockSkew) put_field_u64(body, kPMemberTime, member_time);
  return frame(kReadmitReplyMagic, body);
}

}  // namespace

ClaimState claim_state(const NodeTable& table, const NodeRecord& own) {
  ClaimState s;
  for (const auto& id : table.members()) {
    if (id == own.identity) continue;
    const SignedRecord* r = table.find(id);
    if (!r || !precedes(r->record, own)) continue;
    if (r->record.name == own.name) return ClaimState{ClaimLoss::kNameHeld, r};
    if (!s.winner && r->record.pod_cidr.overlaps(own.pod_cidr)) s = {ClaimLoss::kCidrHeld, r};
  }
  return s;
}

std::string_view to_string(ReadmitRefusal r) {
  switch (r) {
    case ReadmitRefusal::kMalformed: return "malformed request or bad signature";
    case ReadmitRefusal::kClockSkew: return "clock skew";
    case ReadmitRefusal::kReplayed: return "request replayed";
    case ReadmitRefusal::kWrongCluster: return "another cluster";
    case ReadmitRefusal::kUnknownIdentity: return "no record of this identity";
    case ReadmitRefusal::kRemoved: return "identity removed from the cluster";
    case ReadmitRefusal::kNameMismatch: return "the identity's record has another name";
    case ReadmitRefusal::kInEffect: return "its record is in effect: nothing to do";
    case ReadmitRefusal::kNameHeld: return "its name is held by an earlier admission";
    case ReadmitRefusal::kCidrFull: return "cluster CIDR full";
  }
  return "unknown refusal";
}

bool ReadmitNonces::insert(const keys::IdentityPublicKey& id, const JoinNonce& nonce) {
  Key k{id, nonce};
  if (!seen_.insert(k).second) return false;
  order_.push_back(k);
  if (order_.size() > kMaxReadmitNonces) {
    seen_.erase(order_.front());
    order_.pop_front();
  }
  return true;
}

std::vector<std::uint8_t> make_readmit_request(const keys::IdentitySecretKey& identity,
                                               std::string_view cluster_id, std::string_view name,
                                               std::uint64_t timestamp, const JoinNonce& nonce) {
  const auto version = static_cast<std::uint16_t>(kProtocolVersion);
  const auto pub = identity.public_key();
  keys::Signature sig = identity.sign(signed_part(version, cluster_id, pub, name, timestamp, nonce));
  Bytes body;
  put_field(body, kQClusterId, cluster_id);
  put_field(body, kQIdentity, pub.bytes());
  put_field(body, kQName, name);
  put_field_u64(body, kQTimestamp, timestamp);
  put_field(body, kQNonce, nonce);
  put_field(body, kQSignature, sig);
  return frame(kReadmitRequestMagic, body);
}

Result<ReadmitRequest> decode_readmit_request(std::span<const std::uint8_t> f) {
  std::uint16_t version = 0;
  auto body = unframe(f, kReadmitRequestMagic, kMaxJoinRequestBytes, &version);
  if (!body) return fail(EINVAL, "readmit request: bad header or size");
  auto fs = fields(*body, 32);
  if (!fs) return fail(EINVAL, "readmit request: a field runs past the end");
  ReadmitRequest r;
  r.protocol_version = version;
  unsigned seen = 0;
  for (const auto& x : *fs) {
    if (x.id < kQClusterId || x.id > kQSignature) continue;  // a newer version's field
    if (seen & (1u << x.id)) return fail(EINVAL, "readmit request: a field repeats");
    seen |= 1u << x.id;
    bool ok = true;
    switch (x.id) {
      case kQClusterId:
        ok = x.value.size() <= kMaxClusterIdLength;
        if (ok) r.cluster_id = as_string(x.value);
        break;
      case kQIdentity: {
        keys::KeyBytes k{};
        ok = take_fixed(x.value, k);
        if (ok) r.identity = keys::IdentityPublicKey(k);
        break;
      }
      case kQName:
        ok = x.value.size() <= kMaxNameLength;
        if (ok) r.name = as_string(x.value);
        break;
      case kQTimestamp: ok = take_u64(x.value, r.timestamp); break;
      case kQNonce: ok = take_fixed(x.value, r.nonce); break;
      case kQSignature: ok = take_fixed(x.value, r.signature); break;
    }
    if (!ok) return fail(EINVAL, "readmit request: field " + std::to_string(x.id) + " malformed");
  }
  constexpr unsigned kAll = (1u << kQClusterId) | (1u << kQIdentity) | (1u << kQName) |
                            (1u << kQTimestamp) | (1u << kQNonce) | (1u << kQSignature);
  if (seen != kAll) return fail(EINVAL, "readmit request: a field is missing");
  if (!r.identity.verify(signed_part(version, r.cluster_id, r.identity, r.name, r.timestamp, r.nonce),
                         r.signature))
    return fail(EACCES, "readmit request: the signature does not verify under its identity");
  return r;
}

ReadmitAnswer answer_readmit(std::span<const std::uint8_t> request_frame, std::uint64_t now_ms,
                             const ReadmitMemberContext& member, ReadmitNonces& nonces) {
  ReadmitAnswer a;
  auto refuse = [&](ReadmitRefusal why) {
    a.refusal = why;
    a.reply = refusal_reply(why, a.request ? &a.request->nonce : nullptr, now_ms);
    return a;
  };
  auto req = decode_readmit_request(request_frame);
  if (!req) return refuse(ReadmitRefusal::kMalformed);
  a.request = *req;
  const NodeTable& table = member.table;
  const std::uint64_t t = req->timestamp;
  if ((t > now_ms ? t - now_ms : now_ms - t) > kJoinWindowMs) return refuse(ReadmitRefusal::kClockSkew);
  if (req->cluster_id != table.params().cluster_id) return refuse(ReadmitRefusal::kWrongCluster);
  if (!nonces.insert(req->identity, req->nonce)) return refuse(ReadmitRefusal::kReplayed);
  if (table.tombstone(req->identity)) return refuse(ReadmitRefusal::kRemoved);
  const NodeRecord* own = nullptr;
  if (const SignedRecord* held = table.find(req->identity)) {
    own = &held->record;
  } else {
    auto it = std::find_if(member.pending.begin(), member.pending.end(),
                           [&](const NodeRecord& r) { return r.identity == req->identity; });
    if (it != member.pending.end()) own = &*it;
  }
  if (!own) return refuse(ReadmitRefusal::kUnknownIdentity);
  if (own->name != req->name) return refuse(ReadmitRefusal::kNameMismatch);
  switch (claim_state(table, *own).loss) {
    case ClaimLoss::kNone: return refuse(ReadmitRefusal::kInEffect);
    case ClaimLoss::kNameHeld: return refuse(ReadmitRefusal::kNameHeld);
    case ClaimLoss::kCidrHeld: break;
  }
  // The lost CIDR is never handed back: the node's own record still claims it.
  auto cidr = lowest_free_cidr(table, member.reserved);
  if (!cidr) return refuse(ReadmitRefusal::kCidrFull);
  const std::string& cluster_id = table.params().cluster_id;
  Admission adm = admit(member.identity, cluster_id, req->name, req->identity, *cidr, now_ms);
  Bytes body;
  put_field(body, kPStatus, Bytes{0});
  put_field(body, kPEcho, req->nonce);
  put_field(body, kPPodCidr, cidr->to_string());
  put_field(body, kPAdmitter, adm.admitter.bytes());
  put_field_u64(body, kPAdmittedAt, adm.admitted_at);
  put_field(body, kPAdmissionSig, adm.signature);
  a.reply = frame(kReadmitReplyMagic, body);
  a.admission = adm;
  a.pod_cidr = cidr;
  a.lost_cidr = own->pod_cidr;
  return a;
}

Result<ReadmitOutcome> open_readmit_reply(std::span<const std::uint8_t> f,
                                          const ClusterParams& cluster, std::string_view name,
                                          const keys::IdentityPublicKey& identity,
                                          const JoinNonce& request_nonce) {
  std::uint16_t version = 0;
  auto body = unframe(f, kReadmitReplyMagic, kMaxJoinRequestBytes, &version);
  if (!body) return fail(EBADMSG, "readmit reply: bad header or size");
  auto fs = fields(*body, 32);
  if (!fs) return fail(EBADMSG, "readmit reply: a field runs past the end");
  std::optional<std::uint8_t> status;
  std::optional<JoinNonce> echo;
  std::optional<std::string> pod_cidr;
  std::optional<keys::KeyBytes> admitter;
  std::optional<std::uint64_t> admitted_at, member_time;
  std::optional<keys::Signature> sig;
  auto once = [](auto& slot) { return !slot.has_value(); };
  for (const auto& x : *fs) {
    bool ok = true;
    switch (x.id) {
      case kPStatus: ok = once(status) && x.value.size() == 1; if (ok) status = x.value[0]; break;
      case kPEcho: { JoinNonce n{}; ok = once(echo) && take_fixed(x.value, n); if (ok) echo = n; break; }
      case kPPodCidr: ok = once(pod_cidr) && x.value.size() <= 64; if (ok) pod_cidr = as_string(x.value); break;
      case kPAdmitter: { keys::KeyBytes k{}; ok = once(admitter) && take_fixed(x.value, k); if (ok) admitter = k; break; }
      case kPAdmittedAt: { std::uint64_t v = 0; ok = once(admitted_at) && take_u64(x.value, v); if (ok) admitted_at = v; break; }
      case kPMemberTime: { std::uint64_t v = 0; ok = once(member_time) && take_u64(x.value, v); if (ok) member_time = v; break; }
      case kPAdmissionSig: { keys::Signature s{}; ok = once(sig) && take_fixed(x.value, s); if (ok) sig = s; break; }
      default: break;  // a newer version's field
    }
    if (!ok) return fail(EBADMSG, "readmit reply: malformed or repeated field " + std::to_string(x.id));
  }
  if (!status) return fail(EBADMSG, "readmit reply: no status");
  if (*status == static_cast<std::uint8_t>(ReadmitRefusal::kMalformed) && !echo)
    return ReadmitOutcome(ReadmitRefused{ReadmitRefusal::kMalformed, 0});
  if (!echo || *echo != request_nonce)
    return fail(EACCES, "readmit reply: does not answer this request (nonce not echoed)");
  if (*status != 0) {
    if (*status > static_cast<std::uint8_t>(ReadmitRefusal::kCidrFull))
      return fail(EBADMSG, "readmit reply: unknown refusal " + std::to_string(*status));
    return ReadmitOutcome(ReadmitRefused{static_cast<ReadmitRefusal>(*status), member_time.value_or(0)});
  }
  if (!pod_cidr || !admitter || !admitted_at || !sig)
    return fail(EBADMSG, "readmit reply: an admission without its allocation");
  auto cidr = IpPrefix::parse(*pod_cidr);
  if (!cidr || !cluster.cluster_cidr.contains(*cidr) || cidr->length != cluster.node_prefix_length ||
      *cidr != cidr->network())
    return fail(EBADMSG, "readmit reply: pod CIDR not a node prefix inside the cluster CIDR");
  Readmitted out{*cidr, Admission{keys::IdentityPublicKey(*admitter), *admitted_at, *sig}};
  NodeRecord probe;
  probe.cluster_id = cluster.cluster_id;
  probe.name = std::string(name);
  probe.identity = identity;
  probe.pod_cidr = *cidr;
  probe.admission = out.admission;
  if (!admission_signature_valid(probe))
    return fail(EACCES, "readmit reply: the admission does not verify for this name, identity and CIDR");
  return ReadmitOutcome(out);
}

}  // namespace meshd::controlplane
