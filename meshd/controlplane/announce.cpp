#include "meshd/controlplane/announce.h"

#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/wire_fields.h"

#include <cstring>

namespace meshd::controlplane {
namespace {

using namespace wire;

// Request fields.
enum : std::uint8_t { kQClusterId = 1, kQRecordBody = 2, kQRecordSignature = 3 };
// Reply fields.
enum : std::uint8_t { kPStatus = 1, kPHeldVersion = 2, kPTombstoneBody = 3, kPTombstoneSignature = 4 };

// The join listener's framing (readmit.cpp frames its exchange the same way).
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
                                                     std::string_view magic, std::uint16_t* version) {
  if (f.size() < kJoinHeaderBytes || f.size() > kMaxJoinRequestBytes) return std::nullopt;
  if (std::memcmp(f.data(), magic.data(), 4) != 0) return std::nullopt;
  *version = static_cast<std::uint16_t>(get_be(f.subspan(4, 2)));
  if (*version == 0 || f[6] != 0 || f[7] != 0) return std::nullopt;
  if (get_be(f.subspan(8, 4)) != f.size() - kJoinHeaderBytes) return std::nullopt;
  return f.subspan(kJoinHeaderBytes);
}

}  // namespace

std::string_view to_string(AnnounceStatus s) {
  switch (s) {
    case AnnounceStatus::kMerged: return "merged";
    case AnnounceStatus::kStale: return "this version or a newer one held";
    case AnnounceStatus::kMalformed: return "malformed";
    case AnnounceStatus::kWrongCluster: return "another cluster";
    case AnnounceStatus::kUnknownIdentity: return "no record of this identity";
    case AnnounceStatus::kRemoved: return "identity removed from the cluster";
    case AnnounceStatus::kRefused: return "record refused";
  }
  return "unknown status";
}

std::vector<std::uint8_t> make_announce_request(std::string_view cluster_id, const SignedRecord& own) {
  Bytes body;
  put_field(body, kQClusterId, cluster_id);
  put_field(body, kQRecordBody, own.body);
  put_field(body, kQRecordSignature, own.signature);
  return frame(kAnnounceRequestMagic, body);
}

Result<AnnounceRequest> decode_announce_request(std::span<const std::uint8_t> f) {
  std::uint16_t version = 0;
  auto body = unframe(f, kAnnounceRequestMagic, &version);
  if (!body) return fail(EINVAL, "announce request: bad header or size");
  auto fs = fields(*body, 16);
  if (!fs) return fail(EINVAL, "announce request: a field runs past the end");
  AnnounceRequest r;
  r.protocol_version = version;
  std::optional<std::span<const std::uint8_t>> record_body;
  std::optional<keys::Signature> sig;
  unsigned seen = 0;
  for (const auto& x : *fs) {
    if (x.id < kQClusterId || x.id > kQRecordSignature) continue;  // a newer version's field
    if (seen & (1u << x.id)) return fail(EINVAL, "announce request: a field repeats");
    seen |= 1u << x.id;
    bool ok = true;
    switch (x.id) {
      case kQClusterId:
        ok = x.value.size() <= kMaxClusterIdLength;
        if (ok) r.cluster_id = as_string(x.value);
        break;
      case kQRecordBody:
        ok = !x.value.empty() && x.value.size() <= kMaxRecordBytes;
        if (ok) record_body = x.value;
        break;
      case kQRecordSignature: {
        keys::Signature s{};
        ok = take_fixed(x.value, s);
        if (ok) sig = s;
        break;
      }
    }
    if (!ok) return fail(EINVAL, "announce request: field " + std::to_string(x.id) + " malformed");
  }
  if (!record_body || !sig || !(seen & (1u << kQClusterId)))
    return fail(EINVAL, "announce request: a field is missing");
  auto rec = decode_record(*record_body, *sig);
  if (!rec) return fail(EINVAL, "announce request: the record: " + rec.error().message);
  r.record = std::move(*rec);
  return r;
}

std::vector<std::uint8_t> make_announce_reply(const AnnounceReply& reply) {
  Bytes body;
  put_field(body, kPStatus, Bytes{static_cast<std::uint8_t>(reply.status)});
  if (reply.held_version) put_field_u64(body, kPHeldVersion, *reply.held_version);
  if (reply.tombstone) {
    put_field(body, kPTombstoneBody, reply.tombstone->body);
    put_field(body, kPTombstoneSignature, reply.tombstone->signature);
  }
  return frame(kAnnounceReplyMagic, body);
}

Result<AnnounceReply> decode_announce_reply(std::span<const std::uint8_t> f) {
  std::uint16_t version = 0;
  auto body = unframe(f, kAnnounceReplyMagic, &version);
  if (!body) return fail(EBADMSG, "announce reply: bad header or size");
  auto fs = fields(*body, 16);
  if (!fs) return fail(EBADMSG, "announce reply: a field runs past the end");
  std::optional<std::uint8_t> status;
  std::optional<std::uint64_t> held;
  std::optional<std::span<const std::uint8_t>> ts_body;
  std::optional<keys::Signature> ts_sig;
  auto once = [](const auto& slot) { return !slot.has_value(); };
  for (const auto& x : *fs) {
    bool ok = true;
    switch (x.id) {
      case kPStatus: ok = once(status) && x.value.size() == 1; if (ok) status = x.value[0]; break;
      case kPHeldVersion: { std::uint64_t v = 0; ok = once(held) && take_u64(x.value, v); if (ok) held = v; break; }
      case kPTombstoneBody: ok = once(ts_body) && !x.value.empty() && x.value.size() <= kMaxRecordBytes; if (ok) ts_body = x.value; break;
      case kPTombstoneSignature: { keys::Signature s{}; ok = once(ts_sig) && take_fixed(x.value, s); if (ok) ts_sig = s; break; }
      default: break;  // a newer version's field
    }
    if (!ok) return fail(EBADMSG, "announce reply: malformed or repeated field " + std::to_string(x.id));
  }
  if (!status) return fail(EBADMSG, "announce reply: no status");
  if (*status > static_cast<std::uint8_t>(kLastAnnounceStatus))
    return fail(EBADMSG, "announce reply: unknown status " + std::to_string(*status));
  AnnounceReply r;
  r.status = static_cast<AnnounceStatus>(*status);
  if (r.status == AnnounceStatus::kStale) {
    if (!held) return fail(EBADMSG, "announce reply: stale without the version held");
    r.held_version = held;
  }
  if (r.status == AnnounceStatus::kRemoved && ts_body && ts_sig) {
    auto t = decode_tombstone(*ts_body, *ts_sig);
    if (!t) return fail(EBADMSG, "announce reply: the tombstone: " + t.error().message);
    r.tombstone = std::move(*t);
  }
  return r;
}

AnnounceAnswer answer_announce(std::span<const std::uint8_t> request_frame, SyncEngine& engine, Rng& rng) {
  AnnounceAnswer a;
  AnnounceReply reply;
  auto answer = [&](AnnounceStatus s) {
    a.status = s;
    reply.status = s;
    a.reply = make_announce_reply(reply);
    return std::move(a);
  };
  auto req = decode_announce_request(request_frame);
  if (!req) return answer(AnnounceStatus::kMalformed);
  a.request = std::move(*req);
  const NodeTable& table = engine.table();
  const SignedRecord& r = a.request->record;
  if (a.request->cluster_id != table.params().cluster_id || r.record.cluster_id != table.params().cluster_id) {
    a.outcome = MergeOutcome::kWrongCluster;
    return answer(AnnounceStatus::kWrongCluster);
  }
  if (const SignedTombstone* t = table.tombstone(r.record.identity)) {
    a.outcome = MergeOutcome::kRemovedIdentity;
    reply.tombstone = *t;
    return answer(AnnounceStatus::kRemoved);
  }
  // Only a member this node knows announces itself: a new node joins (and
  // its admitter's pending entry waits for its record by sync).
  const SignedRecord* held = table.find(r.record.identity);
  if (!held) return answer(AnnounceStatus::kUnknownIdentity);
  if (held->record.version >= r.record.version) {
    a.outcome = MergeOutcome::kStale;
    reply.held_version = held->record.version;
    return answer(AnnounceStatus::kStale);
  }
  a.out = engine.relay(r, rng, &a.outcome);
  if (!accepted(a.outcome)) return answer(AnnounceStatus::kRefused);
  return answer(AnnounceStatus::kMerged);
}

}  // namespace meshd::controlplane
