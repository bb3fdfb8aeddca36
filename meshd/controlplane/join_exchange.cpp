#include "meshd/controlplane/join_exchange.h"

#include "meshd/controlplane/wire_fields.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace meshd::controlplane {
namespace {

constexpr std::string_view kRequestMagic = "MJRQ";
constexpr std::string_view kReplyMagic = "MJRP";
constexpr std::string_view kJoinKeyContext = "meshd/join-key/v1";
constexpr std::string_view kRequestAd = "meshd/join-request/v1";
constexpr std::string_view kReplyAd = "meshd/join-reply/v1";
constexpr std::size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kJoinNonceBytes == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kJoinKeyContext.size() >= crypto_generichash_KEYBYTES_MIN);

enum ReplyKind : std::uint8_t { kSealed = 1, kUniform = 2 };

// Request frame fields, and the claims inside its box.
enum : std::uint8_t { kFTokenId = 1, kFNonce = 2, kFBox = 3 };
enum : std::uint8_t { kCName = 1, kCWgKey = 2, kCIdentity = 3, kCEndpoint = 4, kCTimestamp = 5 };
// Reply frame fields, and the answer inside its box.
enum : std::uint8_t { kRNonce = 1, kRBox = 2 };
enum : std::uint8_t {
  kAStatus = 1, kAEcho = 2, kAClusterId = 3, kAClusterCidr = 4, kANodePrefix = 5, kAFounder = 6,
  kAPodCidr = 7, kAAdmitter = 8, kAAdmittedAt = 9, kAAdmissionSig = 10, kARecord = 11,
  kAMemberTime = 12,
};

using namespace wire;

Bytes frame(std::string_view magic, std::uint16_t version, std::uint8_t kind, const Bytes& body) {
  Bytes f(magic.begin(), magic.end());
  put_u16(f, version);
  f.push_back(kind);
  f.push_back(0);
  put_u32(f, static_cast<std::uint32_t>(body.size()));
  f.insert(f.end(), body.begin(), body.end());
  return f;
}
// Checks the header; returns kind and body.
std::optional<std::pair<std::uint8_t, std::span<const std::uint8_t>>> unframe(
    std::span<const std::uint8_t> f, std::string_view magic, std::size_t max,
    std::uint16_t* version) {
  if (f.size() < kJoinHeaderBytes || f.size() > max) return std::nullopt;
  if (std::memcmp(f.data(), magic.data(), 4) != 0) return std::nullopt;
  *version = static_cast<std::uint16_t>(get_be(f.subspan(4, 2)));
  if (*version == 0 || f[7] != 0) return std::nullopt;
  if (get_be(f.subspan(8, 4)) != f.size() - kJoinHeaderBytes) return std::nullopt;
  return std::pair{f[6], f.subspan(kJoinHeaderBytes)};
}

Bytes additional_data(std::string_view direction, std::uint16_t version, std::string_view token_id,
                      const JoinNonce& request_nonce, const JoinNonce* reply_nonce) {
  keys::CanonicalEncoder e(direction);
  e.u64(version).str(token_id).bytes(request_nonce);
  if (reply_nonce) e.bytes(*reply_nonce);
  auto s = e.data();
  return Bytes(s.begin(), s.end());
}

Bytes seal(const Bytes& plain, const Bytes& ad, const JoinNonce& nonce, const JoinKey& key) {
  Bytes out(plain.size() + kTag);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data(), &n, plain.data(), plain.size(), ad.data(),
                                             ad.size(), nullptr, nonce.data(), key.data());
  out.resize(n);
  return out;
}
std::optional<Bytes> open(std::span<const std::uint8_t> box, const Bytes& ad,
                          const JoinNonce& nonce, const JoinKey& key) {
  if (box.size() < kTag) return std::nullopt;
  Bytes out(box.size() - kTag);
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &n, nullptr, box.data(), box.size(),
                                                 ad.data(), ad.size(), nonce.data(),
                                                 key.data()) != 0) {
    sodium_memzero(out.data(), out.size());
    return std::nullopt;
  }
  out.resize(n);
  return out;
}


Bytes encode_claims(const JoinClaims& c) {
  Bytes b;
  put_field(b, kCName, c.name);
  put_field(b, kCWgKey, c.wg_public_key.bytes());
  put_field(b, kCIdentity, c.identity.bytes());
  for (const auto& ep : c.endpoints) put_field(b, kCEndpoint, ep.to_string());
  put_field_u64(b, kCTimestamp, c.timestamp);
  put_next_version_field(b);
  return b;
}

std::optional<JoinClaims> decode_claims(std::span<const std::uint8_t> plain) {
  auto fs = fields(plain, 64);
  if (!fs) return std::nullopt;
  JoinClaims c;
  unsigned seen = 0;
  for (const auto& f : *fs) {
    if (f.id >= kCName && f.id <= kCTimestamp && f.id != kCEndpoint) {
      if (seen & (1u << f.id)) return std::nullopt;  // a known field twice
      seen |= 1u << f.id;
    }
    switch (f.id) {
      case kCName:
        if (f.value.size() > kMaxNameLength) return std::nullopt;
        c.name = as_string(f.value);
        break;
      case kCWgKey: {
        keys::KeyBytes k{};
        if (!take_fixed(f.value, k)) return std::nullopt;
        c.wg_public_key = keys::PublicKey(k);
        break;
      }
      case kCIdentity: {
        keys::KeyBytes k{};
        if (!take_fixed(f.value, k)) return std::nullopt;
        c.identity = keys::IdentityPublicKey(k);
        break;
      }
      case kCEndpoint: {
        if (c.endpoints.size() == kMaxEndpoints || f.value.size() > 64) return std::nullopt;
        auto ep = Endpoint::parse(as_string(f.value));
        if (!ep) return std::nullopt;
        c.endpoints.push_back(*ep);
        break;
      }
      case kCTimestamp:
        if (!take_u64(f.value, c.timestamp)) return std::nullopt;
        break;
      default:
        break;  // a newer version's field
    }
  }
  constexpr unsigned kRequired = (1u << kCName) | (1u << kCWgKey) | (1u << kCIdentity) |
                                 (1u << kCTimestamp);
  if ((seen & kRequired) != kRequired) return std::nullopt;
  return c;
}

JoinNonce to_nonce(std::span<const std::uint8_t> n) {
  JoinNonce out{};
  std::copy(n.begin(), n.end(), out.begin());
  return out;
}

}  // namespace

JoinKey join_key_from_verifier(std::span<const std::uint8_t> verifier) {
  JoinKey k{};
  crypto_generichash(k.data(), k.size(), verifier.data(), verifier.size(),
                     reinterpret_cast<const unsigned char*>(kJoinKeyContext.data()),
                     kJoinKeyContext.size());
  return k;
}

JoinKey join_key(const keys::Token& token) {
  keys::TokenKey tk = keys::derive_token_key(token);
  keys::TokenVerifier v = keys::token_verifier(tk);
  JoinKey k = join_key_from_verifier(v);
  sodium_memzero(v.data(), v.size());
  return k;
}

std::string_view to_string(JoinRefusal r) {
  switch (r) {
    case JoinRefusal::kExpired: return "token expired";
    case JoinRefusal::kRevoked: return "token revoked";
    case JoinRefusal::kUsedUp: return "token used up";
    case JoinRefusal::kNameHeld: return "name held by another live node";
    case JoinRefusal::kCidrFull: return "cluster CIDR full";
    case JoinRefusal::kClockSkew: return "clock skew";
    case JoinRefusal::kReplayed: return "request replayed";
    case JoinRefusal::kRemoved: return "identity removed from the cluster";
    case JoinRefusal::kInvalidName: return "invalid node name";
    case JoinRefusal::kUnavailable: return "datastore unavailable";
  }
  return "unknown refusal";
}

std::vector<std::uint8_t> make_join_request(const keys::Token& token, const JoinClaims& claims,
                                            const JoinNonce& nonce) {
  const auto version = static_cast<std::uint16_t>(kProtocolVersion);
  const std::string id = token.id();
  JoinKey key = join_key(token);
  Bytes plain = encode_claims(claims);
  Bytes box = seal(plain, additional_data(kRequestAd, version, id, nonce, nullptr), nonce, key);
  sodium_memzero(key.data(), key.size());
  Bytes body;
  put_field(body, kFTokenId, id);
  put_field(body, kFNonce, nonce);
  put_field(body, kFBox, box);
  put_next_version_field(body);
  return frame(kRequestMagic, version, 0, body);
}

Result<JoinRequest> decode_join_request(std::span<const std::uint8_t> f) {
  std::uint16_t version = 0;
  auto u = unframe(f, kRequestMagic, kMaxJoinRequestBytes, &version);
  if (!u || u->first != 0) return fail(EINVAL, "join request: bad header or size");
  auto fs = fields(u->second, 32);
  if (!fs) return fail(EINVAL, "join request: a field runs past the end");
  JoinRequest r;
  r.protocol_version = version;
  unsigned seen = 0;
  for (const auto& x : *fs) {
    if (x.id >= kFTokenId && x.id <= kFBox) {
      if (seen & (1u << x.id)) return fail(EINVAL, "join request: a field repeats");
      seen |= 1u << x.id;
    }
    if (x.id == kFTokenId) {
      // The id's form is checked here so that nothing else reaches the store
      // or a log line.
      const bool form = std::all_of(x.value.begin(), x.value.end(), [](std::uint8_t c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      });
      if (x.value.size() != keys::kTokenIdLength || !form)
        return fail(EINVAL, "join request: the token id is not 6 characters of [a-z0-9]");
      r.token_id = as_string(x.value);
    } else if (x.id == kFNonce) {
      if (x.value.size() != kJoinNonceBytes) return fail(EINVAL, "join request: nonce length");
      r.nonce = to_nonce(x.value);
    } else if (x.id == kFBox) {
      r.box.assign(x.value.begin(), x.value.end());
    }
  }
  if (seen != ((1u << kFTokenId) | (1u << kFNonce) | (1u << kFBox)))
    return fail(EINVAL, "join request: token id, nonce or box missing");
  return r;
}

std::optional<JoinClaims> open_claims(const JoinRequest& req, const JoinKey& key) {
  auto plain = open(req.box, additional_data(kRequestAd, req.protocol_version, req.token_id,
                                             req.nonce, nullptr),
                    req.nonce, key);
  if (!plain) return std::nullopt;
  return decode_claims(*plain);
}

std::vector<std::uint8_t> uniform_refusal() {
  return frame(kReplyMagic, static_cast<std::uint16_t>(kProtocolVersion), kUniform, {});
}

Result<JoinAnswer> answer_join(std::span<const std::uint8_t> request_frame, std::uint64_t now_ms,
                               JoinTokenStore& tokens, const JoinMemberContext& member,
                               const JoinNonce& reply_nonce) {
  JoinAnswer a;
  auto req = decode_join_request(request_frame);
  if (!req) {
    a.reply = uniform_refusal();
    a.unproven = true;
    return a;
  }
  const NodeTable& table = member.table;
  // Filled by the proof, which runs inside the store's transaction.
  std::optional<JoinKey> key;
  std::optional<JoinClaims> claims;
  std::optional<JoinRefusal> early;
  std::optional<IpPrefix> cidr;
  bool claimed = false;  // member.claim took cidr in the datastore
  auto proof = [&](std::span<const std::uint8_t> verifier) {
    JoinKey k = join_key_from_verifier(verifier);
    auto c = open_claims(*req, k);
    if (!c) {
      sodium_memzero(k.data(), k.size());
      return false;
    }
    key = k;
    sodium_memzero(k.data(), k.size());
    claims = std::move(c);
    const std::uint64_t t = claims->timestamp;
    if ((t > now_ms ? t - now_ms : now_ms - t) > kJoinWindowMs) {
      early = JoinRefusal::kClockSkew;
      return false;  // no use spent, no nonce remembered: the joiner may retry
    }
    switch (admission_check(table, claims->name, claims->identity)) {
      case MergeOutcome::kAccepted: break;
      case MergeOutcome::kRemovedIdentity: early = JoinRefusal::kRemoved; return false;
      case MergeOutcome::kAcceptedNameHeld: early = JoinRefusal::kNameHeld; return false;
      default: early = JoinRefusal::kInvalidName; return false;
    }
    if (const SignedRecord* held = table.find(claims->identity);
        held && held->record.name == claims->name)
      cidr = held->record.pod_cidr;
    else
      cidr = lowest_free_cidr(table, member.reserved);
    if (member.claim) {
      auto c = member.claim(*claims, cidr, now_ms);
      if (!c) {
        early = c.error().is(ENOSPC) ? JoinRefusal::kCidrFull : JoinRefusal::kUnavailable;
        return false;
      }
      cidr = *c;
      claimed = true;
    }
    if (!cidr) {
      early = JoinRefusal::kCidrFull;
      return false;
    }
    return true;
  };
  auto outcome = tokens.consume(req->token_id, proof, req->nonce,
                                static_cast<std::int64_t>(now_ms / 1000));
  if (!outcome) {
    if (claimed && member.unclaim) member.unclaim(*claims, *cidr);
    return outcome.error();
  }

  std::optional<JoinRefusal> refusal = early;
  if (!early) switch (*outcome) {
      case JoinTokenStore::Outcome::kAccepted: break;
      case JoinTokenStore::Outcome::kUnproven: break;
      case JoinTokenStore::Outcome::kRevoked: refusal = JoinRefusal::kRevoked; break;
      case JoinTokenStore::Outcome::kExpired: refusal = JoinRefusal::kExpired; break;
      case JoinTokenStore::Outcome::kUsedUp: refusal = JoinRefusal::kUsedUp; break;
      case JoinTokenStore::Outcome::kReplayed: refusal = JoinRefusal::kReplayed; break;
    }
  if (claimed && refusal && member.unclaim) member.unclaim(*claims, *cidr);
  if (!key) {  // never proven: the uniform refusal, whatever the cause
    a.reply = uniform_refusal();
    a.unproven = true;
    return a;
  }

  const ClusterParams& params = table.params();
  Bytes plain;
  Bytes status{static_cast<std::uint8_t>(refusal ? static_cast<std::uint8_t>(*refusal) : 0)};
  put_field(plain, kAStatus, status);
  put_field(plain, kAEcho, req->nonce);
  if (refusal) {
    if (*refusal == JoinRefusal::kClockSkew) put_field_u64(plain, kAMemberTime, now_ms);
    a.refusal = refusal;
  } else {
    Admission adm = admit(member.identity, params.cluster_id, claims->name, claims->identity,
                          *cidr, now_ms);
    put_field(plain, kAClusterId, params.cluster_id);
    put_field(plain, kAClusterCidr, params.cluster_cidr.to_string());
    put_field(plain, kANodePrefix, Bytes{params.node_prefix_length});
    put_field(plain, kAFounder, params.founder.bytes());
    put_field(plain, kAPodCidr, cidr->to_string());
    put_field(plain, kAAdmitter, adm.admitter.bytes());
    put_field_u64(plain, kAAdmittedAt, adm.admitted_at);
    put_field(plain, kAAdmissionSig, adm.signature);
    // The member's own record first: it vouches for the admission.
    std::vector<std::shared_ptr<const SignedRecord>> recs;
    if (auto self = table.find_shared(member.identity.public_key())) recs.push_back(self);
    for (auto& r : table.view()) {
      if (recs.size() == kMaxJoinRecords) break;
      if (r->record.identity != member.identity.public_key()) recs.push_back(r);
    }
    for (const auto& r : recs) {
      Bytes v = r->body;
      v.insert(v.end(), r->signature.begin(), r->signature.end());
      put_field(plain, kARecord, v);
    }
    a.admitted = claims;
    a.admission = adm;
    a.pod_cidr = cidr;
  }
  put_next_version_field(plain);
  const auto version = static_cast<std::uint16_t>(kProtocolVersion);
  Bytes box = seal(plain, additional_data(kReplyAd, version, req->token_id, req->nonce, &reply_nonce),
                   reply_nonce, *key);
  sodium_memzero(key->data(), key->size());
  Bytes body;
  put_field(body, kRNonce, reply_nonce);
  put_field(body, kRBox, box);
  put_next_version_field(body);
  a.reply = frame(kReplyMagic, version, kSealed, body);
  return a;
}

Result<JoinOutcome> open_join_reply(std::span<const std::uint8_t> f, const keys::Token& token,
                                    const JoinClaims& claims, const JoinNonce& request_nonce) {
  std::uint16_t version = 0;
  auto u = unframe(f, kReplyMagic, kMaxJoinReplyBytes, &version);
  if (!u) return fail(EBADMSG, "join reply: bad header or size");
  if (u->first == kUniform) {
    if (!u->second.empty()) return fail(EBADMSG, "join reply: a uniform refusal with a body");
    return JoinOutcome(JoinRefused{});
  }
  if (u->first != kSealed) return fail(EBADMSG, "join reply: unknown kind");
  auto fs = fields(u->second, 32);
  if (!fs) return fail(EBADMSG, "join reply: a field runs past the end");
  std::optional<JoinNonce> reply_nonce;
  std::optional<std::span<const std::uint8_t>> box;
  for (const auto& x : *fs) {
    if (x.id == kRNonce) {
      if (reply_nonce || x.value.size() != kJoinNonceBytes) return fail(EBADMSG, "join reply: nonce");
      reply_nonce = to_nonce(x.value);
    } else if (x.id == kRBox) {
      if (box) return fail(EBADMSG, "join reply: two boxes");
      box = x.value;
    }
  }
  if (!reply_nonce || !box) return fail(EBADMSG, "join reply: nonce or box missing");
  JoinKey key = join_key(token);
  auto plain = open(*box, additional_data(kReplyAd, version, token.id(), request_nonce, &*reply_nonce),
                    *reply_nonce, key);
  sodium_memzero(key.data(), key.size());
  if (!plain)
    return fail(EACCES, "join reply: does not open with the token (not from a member that holds it)");
  auto as = fields(*plain, kMaxJoinRecords + 32);
  if (!as) return fail(EBADMSG, "join reply: malformed answer");

  std::optional<std::uint8_t> status;
  std::optional<JoinNonce> echo;
  std::optional<std::string> cluster_id, cluster_cidr, pod_cidr;
  std::optional<std::uint8_t> node_prefix;
  std::optional<keys::KeyBytes> founder, admitter;
  std::optional<std::uint64_t> admitted_at, member_time;
  std::optional<keys::Signature> sig;
  std::vector<SignedRecord> records;
  auto once = [](auto& slot) { return !slot.has_value(); };
  for (const auto& x : *as) {
    bool ok = true;
    switch (x.id) {
      case kAStatus: ok = once(status) && x.value.size() == 1; if (ok) status = x.value[0]; break;
      case kAEcho: ok = once(echo) && x.value.size() == kJoinNonceBytes; if (ok) echo = to_nonce(x.value); break;
      case kAClusterId: ok = once(cluster_id) && x.value.size() <= kMaxClusterIdLength; if (ok) cluster_id = as_string(x.value); break;
      case kAClusterCidr: ok = once(cluster_cidr) && x.value.size() <= 64; if (ok) cluster_cidr = as_string(x.value); break;
      case kAPodCidr: ok = once(pod_cidr) && x.value.size() <= 64; if (ok) pod_cidr = as_string(x.value); break;
      case kANodePrefix: ok = once(node_prefix) && x.value.size() == 1; if (ok) node_prefix = x.value[0]; break;
      case kAFounder: { keys::KeyBytes k{}; ok = once(founder) && take_fixed(x.value, k); if (ok) founder = k; break; }
      case kAAdmitter: { keys::KeyBytes k{}; ok = once(admitter) && take_fixed(x.value, k); if (ok) admitter = k; break; }
      case kAAdmittedAt: { std::uint64_t v = 0; ok = once(admitted_at) && take_u64(x.value, v); if (ok) admitted_at = v; break; }
      case kAMemberTime: { std::uint64_t v = 0; ok = once(member_time) && take_u64(x.value, v); if (ok) member_time = v; break; }
      case kAAdmissionSig: { keys::Signature s{}; ok = once(sig) && take_fixed(x.value, s); if (ok) sig = s; break; }
      case kARecord: {
        constexpr std::size_t kSig = std::tuple_size_v<keys::Signature>;
        ok = x.value.size() > kSig && x.value.size() <= kMaxRecordBytes + kSig;
        if (!ok) break;
        keys::Signature s{};
        std::copy(x.value.end() - kSig, x.value.end(), s.begin());
        auto r = decode_record(x.value.first(x.value.size() - kSig), s);
        ok = r.has_value();
        if (ok) records.push_back(std::move(*r));
        break;
      }
      default: break;  // a newer version's field
    }
    if (!ok) return fail(EBADMSG, "join reply: malformed or repeated field " + std::to_string(x.id));
  }
  if (!status || !echo || *echo != request_nonce)
    return fail(EACCES, "join reply: does not answer this request (nonce not echoed)");
  if (*status != 0) {
    if (*status < 1 || *status > static_cast<std::uint8_t>(kLastJoinRefusal))
      return fail(EBADMSG, "join reply: unknown refusal " + std::to_string(*status));
    JoinRefused r{static_cast<JoinRefusal>(*status), member_time.value_or(0)};
    return JoinOutcome(r);
  }
  if (!cluster_id || !cluster_cidr || !pod_cidr || !node_prefix || !founder || !admitter ||
      !admitted_at || !sig)
    return fail(EBADMSG, "join reply: an admission without its cluster or allocation");
  auto ccidr = IpPrefix::parse(*cluster_cidr);
  auto pcidr = IpPrefix::parse(*pod_cidr);
  if (!ccidr || !pcidr || !ccidr->contains(*pcidr) || pcidr->length != *node_prefix ||
      *pcidr != pcidr->network())
    return fail(EBADMSG, "join reply: pod CIDR not a node prefix inside the cluster CIDR");
  JoinAdmitted ad;
  ad.cluster = ClusterParams{*cluster_id, *ccidr, *node_prefix, keys::IdentityPublicKey(*founder)};
  ad.pod_cidr = *pcidr;
  ad.admission = Admission{keys::IdentityPublicKey(*admitter), *admitted_at, *sig};
  NodeRecord probe;
  probe.cluster_id = *cluster_id;
  probe.name = claims.name;
  probe.identity = claims.identity;
  probe.pod_cidr = *pcidr;
  probe.admission = ad.admission;
  if (!admission_signature_valid(probe))
    return fail(EACCES, "join reply: the admission does not verify for this name, identity and CIDR");
  ad.records = std::move(records);
  return JoinOutcome(std::move(ad));
}

}  // namespace meshd::controlplane
