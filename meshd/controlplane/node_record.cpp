#include "meshd/controlplane/node_record.h"

#include "meshd/controlplane/canonical_decoder.h"

#include <stdexcept>

namespace meshd::controlplane {

using keys::CanonicalEncoder;

bool valid_node_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : name)
    if (!alnum(c) && c != '-' && c != '.') return false;
  return alnum(name.front()) && alnum(name.back());
}

CanonicalEncoder encode_record(const NodeRecord& r) {
  CanonicalEncoder e(kNodeRecordContext);
  std::vector<std::string> endpoints;
  for (const auto& ep : r.endpoints) endpoints.push_back(ep.to_string());
  e.str(r.cluster_id)
      .str(r.name)
      .bytes(r.wg_public_key.bytes())
      .bytes(r.identity.bytes())
      .str_list(endpoints)
      .str(r.pod_cidr.to_string())
      .u64(r.version);
  e.list(3).bytes(r.admission.admitter.bytes()).u64(r.admission.admitted_at)
      .bytes(r.admission.signature);
  e.u64(r.protocol_version);
  if (r.pending_key)
    e.list(2).bytes(r.pending_key->wg_public_key.bytes()).u64(r.pending_key->switch_at);
  else
    e.list(0);
  // Under the owner's signature, so relays carry it intact.
  if constexpr (kWritesNextVersionFields) e.bytes(kNextVersionFieldValue);
  return e;
}

CanonicalEncoder encode_admission(std::string_view cluster_id, std::string_view name,
                                  const keys::IdentityPublicKey& identity,
                                  const IpPrefix& pod_cidr, std::uint64_t admitted_at) {
  CanonicalEncoder e(kAdmissionContext);
  e.str(cluster_id).str(name).bytes(identity.bytes()).str(pod_cidr.to_string()).u64(admitted_at);
  return e;
}

CanonicalEncoder encode_tombstone(const Tombstone& t) {
  CanonicalEncoder e(kTombstoneContext);
  e.str(t.cluster_id).bytes(t.removed.bytes()).bytes(t.removed_by.bytes()).u64(t.removed_at);
  // What the removed node held: an empty string for "no CIDR known", so a
  // zero prefix never travels as "/0".
  e.str(t.name)
      .str(t.pod_cidr == IpPrefix{} ? std::string() : t.pod_cidr.to_string())
      .str(t.reason);
  return e;
}

Admission admit(const keys::IdentitySecretKey& admitter, std::string_view cluster_id,
                std::string_view name, const keys::IdentityPublicKey& identity,
                const IpPrefix& pod_cidr, std::uint64_t admitted_at) {
  Admission a;
  a.admitter = admitter.public_key();
  a.admitted_at = admitted_at;
  a.signature = admitter.sign(encode_admission(cluster_id, name, identity, pod_cidr, admitted_at));
  return a;
}

SignedRecord sign_record(const NodeRecord& r, const keys::IdentitySecretKey& owner) {
  if (owner.public_key() != r.identity)
    throw std::invalid_argument("sign_record: the key is not the record's identity");
  CanonicalEncoder e = encode_record(r);
  return SignedRecord{r, e.data(), owner.sign(e)};
}

SignedTombstone sign_tombstone(const Tombstone& t, const keys::IdentitySecretKey& remover) {
  if (remover.public_key() != t.removed_by)
    throw std::invalid_argument("sign_tombstone: the key is not the tombstone's remover");
  CanonicalEncoder e = encode_tombstone(t);
  return SignedTombstone{t, e.data(), remover.sign(e)};
}

Result<SignedRecord> decode_record(std::span<const std::uint8_t> body, const keys::Signature& sig) {
  if (body.size() > kMaxRecordBytes)
    return Error::invalid("node record: " + std::to_string(body.size()) + " bytes, at most " +
                          std::to_string(kMaxRecordBytes) + " allowed");
  CanonicalDecoder d(body);
  NodeRecord r;
  keys::KeyBytes k{};
  if (!d.context(kNodeRecordContext))
    return Error::invalid(std::string("node record: does not start with context ") +
                          std::string(kNodeRecordContext));
  r.cluster_id = d.str(kMaxClusterIdLength);
  r.name = d.str(kMaxNameLength);
  d.fixed_bytes(k);
  r.wg_public_key = keys::PublicKey(k);
  d.fixed_bytes(k);
  r.identity = keys::IdentityPublicKey(k);
  std::uint64_t n = d.list(kMaxEndpoints);
  for (std::uint64_t i = 0; i < n && d.ok(); ++i) {
    auto text = d.str(64);
    if (!d.ok()) break;
    auto ep = Endpoint::parse(text);
    if (!ep || ep->port == 0)
      return Error::invalid("node record: endpoint " + std::to_string(i) +
                            " is not an address:port (e.g. 192.0.2.1:51820)");
    r.endpoints.push_back(*ep);
  }
  auto cidr_text = d.str(64);
  if (d.ok()) {
    auto cidr = IpPrefix::parse(cidr_text);
    if (!cidr || cidr->network() != *cidr)
      return Error::invalid("node record: pod CIDR is not a network prefix (e.g. 10.244.1.0/24)");
    r.pod_cidr = *cidr;
  }
  r.version = d.u64();
  if (d.list(3) != 3 && d.ok()) return Error::invalid("node record: admission needs 3 fields");
  d.fixed_bytes(k);
  r.admission.admitter = keys::IdentityPublicKey(k);
  r.admission.admitted_at = d.u64();
  d.fixed_bytes(r.admission.signature);
  r.protocol_version = d.u64();
  std::uint64_t pending = d.list(2);
  if (pending == 2) {
    PendingKey p;
    d.fixed_bytes(k);
    p.wg_public_key = keys::PublicKey(k);
    p.switch_at = d.u64();
    r.pending_key = p;
  } else if (pending != 0 && d.ok()) {
    return Error::invalid("node record: pending key needs 2 fields or none");
  }
  d.skip_rest();  // fields of a newer version
  if (!d.ok()) return Error::invalid("node record: malformed or truncated canonical encoding");
  return SignedRecord{std::move(r), {body.begin(), body.end()}, sig};
}

Result<SignedTombstone> decode_tombstone(std::span<const std::uint8_t> body,
                                         const keys::Signature& sig) {
  if (body.size() > kMaxRecordBytes)
    return Error::invalid("tombstone: " + std::to_string(body.size()) + " bytes, at most " +
                          std::to_string(kMaxRecordBytes) + " allowed");
  CanonicalDecoder d(body);
  Tombstone t;
  keys::KeyBytes k{};
  d.context(kTombstoneContext);
  t.cluster_id = d.str(kMaxClusterIdLength);
  d.fixed_bytes(k);
  t.removed = keys::IdentityPublicKey(k);
  d.fixed_bytes(k);
  t.removed_by = keys::IdentityPublicKey(k);
  t.removed_at = d.u64();
  t.name = d.str(kMaxNameLength);
  auto cidr_text = d.str(64);
  if (d.ok() && !cidr_text.empty()) {
    auto cidr = IpPrefix::parse(cidr_text);
    if (!cidr || cidr->network() != *cidr)
      return Error::invalid("tombstone: pod CIDR is not a network prefix (e.g. 10.244.1.0/24)");
    t.pod_cidr = *cidr;
  }
  t.reason = d.str(kMaxReasonLength);
  d.skip_rest();  // fields of a newer version
  if (!d.ok()) return Error::invalid("tombstone: malformed or truncated canonical encoding");
  return SignedTombstone{t, {body.begin(), body.end()}, sig};
}

namespace {
bool verify_bytes(const keys::IdentityPublicKey& key, std::span<const std::uint8_t> body,
                  const keys::Signature& sig) {
  auto e = CanonicalEncoder::adopt(body);
  return e && key.verify(*e, sig);
}
}  // namespace

bool owner_signature_valid(const SignedRecord& r) {
  return verify_bytes(r.record.identity, r.body, r.signature);
}

bool admission_signature_valid(const NodeRecord& r) {
  return r.admission.admitter.verify(
      encode_admission(r.cluster_id, r.name, r.identity, r.pod_cidr, r.admission.admitted_at),
      r.admission.signature);
}

bool tombstone_signature_valid(const SignedTombstone& t) {
  return verify_bytes(t.tombstone.removed_by, t.body, t.signature);
}

}  // namespace meshd::controlplane
