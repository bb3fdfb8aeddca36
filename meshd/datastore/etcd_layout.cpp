#include "meshd/datastore/etcd_layout.h"

#include "meshd/controlplane/canonical_decoder.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <map>

namespace meshd::datastore {

using controlplane::CanonicalDecoder;
using controlplane::ClusterParams;
using controlplane::MergeOutcome;
using controlplane::NodeTable;
using keys::IdentityPublicKey;

namespace {

constexpr std::string_view kParamsSegment = "params";
constexpr std::string_view kRecordsSegment = "records/";
constexpr std::string_view kTombstonesSegment = "tombstones/";
constexpr std::string_view kSubnetsSegment = "subnets/";
constexpr std::string_view kAliveSegment = "alive/";

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string to_text(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }

std::string_view segment(KeyFamily f) {
  switch (f) {
    case KeyFamily::kParams: return kParamsSegment;
    case KeyFamily::kRecord: return kRecordsSegment;
    case KeyFamily::kTombstone: return kTombstonesSegment;
    case KeyFamily::kSubnet: return kSubnetsSegment;
    case KeyFamily::kAlive: return kAliveSegment;
    case KeyFamily::kUnknown: break;
  }
  return {};
}

}  // namespace

std::string_view to_string(KeyFamily f) {
  switch (f) {
    case KeyFamily::kUnknown: return "unknown";
    case KeyFamily::kParams: return "params";
    case KeyFamily::kRecord: return "record";
    case KeyFamily::kTombstone: return "tombstone";
    case KeyFamily::kSubnet: return "subnet";
    case KeyFamily::kAlive: return "alive";
  }
  return "unknown";
}

std::string_view to_string(Disposition d) {
  switch (d) {
    case Disposition::kIgnored: return "ignored";
    case Disposition::kMerged: return "merged";
    case Disposition::kUnchanged: return "unchanged";
    case Disposition::kRefused: return "refused";
  }
  return "unknown";
}

// ---- Keys -------------------------------------------------------------------

std::string identity_hex(const IdentityPublicKey& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(id.bytes().size() * 2);
  for (std::uint8_t b : id.bytes()) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

std::optional<IdentityPublicKey> parse_identity_hex(std::string_view text) {
  keys::KeyBytes bytes{};
  if (text.size() != bytes.size() * 2) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // upper case too: one spelling per key
  };
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return IdentityPublicKey(bytes);
}

std::string subnet_segment(const IpPrefix& cidr) {
  return cidr.address.to_string() + "-" + std::to_string(cidr.length);
}

std::optional<IpPrefix> parse_subnet_segment(std::string_view text) {
  auto dash = text.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == text.size()) return std::nullopt;
  std::string_view len_text = text.substr(dash + 1);
  unsigned len = 0;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc() || end != len_text.data() + len_text.size()) return std::nullopt;
  auto addr = IpAddress::parse(text.substr(0, dash));
  if (!addr || len > (addr->is_v4() ? 32u : 128u)) return std::nullopt;
  IpPrefix p{*addr, static_cast<std::uint8_t>(len)};
  // One spelling per CIDR: no leading zeros, no host bits, no other IPv6 form.
  if (p.network() != p || subnet_segment(p) != text) return std::nullopt;
  return p;
}

std::string cluster_prefix(std::string_view prefix, std::string_view cluster) {
  std::string out;
  out.reserve(prefix.size() + cluster.size() + 1);
  out.append(prefix).append(cluster).push_back('/');
  return out;
}

std::string family_prefix(std::string_view prefix, std::string_view cluster, KeyFamily f) {
  return cluster_prefix(prefix, cluster).append(segment(f));
}

std::string params_key(std::string_view prefix, std::string_view cluster) {
  return family_prefix(prefix, cluster, KeyFamily::kParams);
}

std::string record_key(std::string_view prefix, std::string_view cluster,
                       const IdentityPublicKey& id) {
  return family_prefix(prefix, cluster, KeyFamily::kRecord) + identity_hex(id);
}

std::string tombstone_key(std::string_view prefix, std::string_view cluster,
                          const IdentityPublicKey& id) {
  return family_prefix(prefix, cluster, KeyFamily::kTombstone) + identity_hex(id);
}

std::string subnet_key(std::string_view prefix, std::string_view cluster, const IpPrefix& cidr) {
  return family_prefix(prefix, cluster, KeyFamily::kSubnet) + subnet_segment(cidr);
}

std::string alive_key(std::string_view prefix, std::string_view cluster,
                      const IdentityPublicKey& id) {
  return family_prefix(prefix, cluster, KeyFamily::kAlive) + identity_hex(id);
}

ParsedKey parse_key(std::string_view prefix, std::string_view cluster, std::string_view key) {
  ParsedKey out;
  std::string head = cluster_prefix(prefix, cluster);
  if (!key.starts_with(head)) return out;
  std::string_view rest = key.substr(head.size());
  if (rest == kParamsSegment) {
    out.family = KeyFamily::kParams;
    return out;
  }
  for (KeyFamily f : {KeyFamily::kRecord, KeyFamily::kTombstone, KeyFamily::kAlive}) {
    if (!rest.starts_with(segment(f))) continue;
    auto id = parse_identity_hex(rest.substr(segment(f).size()));
    if (!id) return out;
    out.family = f;
    out.identity = *id;
    return out;
  }
  if (rest.starts_with(kSubnetsSegment)) {
    auto cidr = parse_subnet_segment(rest.substr(kSubnetsSegment.size()));
    if (!cidr) return out;
    out.family = KeyFamily::kSubnet;
    out.cidr = *cidr;
  }
  return out;
}

// ---- Values -----------------------------------------------------------------

std::string encode_signed_value(std::span<const std::uint8_t> body, const keys::Signature& sig) {
  std::string out(body.begin(), body.end());
  out.append(sig.begin(), sig.end());
  return out;
}

std::string record_value(const controlplane::SignedRecord& r) {
  return encode_signed_value(r.body, r.signature);
}

std::string tombstone_value(const controlplane::SignedTombstone& t) {
  return encode_signed_value(t.body, t.signature);
}

Result<SignedValue> decode_signed_value(std::string_view value) {
  if (value.size() <= keys::kSignatureLength)
    return Error::invalid("signed value: " + std::to_string(value.size()) +
                          " bytes, expected a body followed by a " +
                          std::to_string(keys::kSignatureLength) + "-byte signature");
  if (value.size() > kMaxSignedValueBytes)
    return Error::invalid("signed value: " + std::to_string(value.size()) + " bytes, at most " +
                          std::to_string(kMaxSignedValueBytes) + " allowed");
  SignedValue out;
  std::size_t body_size = value.size() - keys::kSignatureLength;
  auto bytes = as_bytes(value);
  out.body.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(body_size));
  std::copy(bytes.begin() + static_cast<std::ptrdiff_t>(body_size), bytes.end(),
            out.signature.begin());
  return out;
}

std::string encode_params(const ClusterParams& p) {
  keys::CanonicalEncoder e(kParamsContext);
  e.str(p.cluster_id).str(p.cluster_cidr.to_string()).u64(p.node_prefix_length).bytes(
      p.founder.bytes());
  return to_text(e.data());
}

Result<ClusterParams> decode_params(std::string_view value) {
  if (value.size() > controlplane::kMaxRecordBytes)
    return Error::invalid("cluster params: " + std::to_string(value.size()) + " bytes, at most " +
                          std::to_string(controlplane::kMaxRecordBytes) + " allowed");
  CanonicalDecoder d(as_bytes(value));
  if (!d.context(kParamsContext))
    return Error::invalid("cluster params: does not start with context " +
                          std::string(kParamsContext));
  ClusterParams p;
  p.cluster_id = d.str(controlplane::kMaxClusterIdLength);
  std::string cidr_text = d.str(64);
  std::uint64_t node_len = d.u64();
  keys::KeyBytes founder{};
  d.fixed_bytes(founder);
  d.skip_rest();  // fields of a newer version
  if (!d.ok()) return Error::invalid("cluster params: malformed or truncated canonical encoding");
  if (p.cluster_id.empty()) return Error::invalid("cluster params: the cluster id is empty");
  auto cidr = IpPrefix::parse(cidr_text);
  if (!cidr || cidr->network() != *cidr)
    return Error::invalid("cluster params: cluster CIDR is not a network prefix (e.g. 10.244.0.0/16)");
  p.cluster_cidr = *cidr;
  if (node_len <= p.cluster_cidr.length || node_len > p.cluster_cidr.max_length())
    return Error::invalid("cluster params: node prefix length " + std::to_string(node_len) +
                          " is not longer than the cluster CIDR's " +
                          std::to_string(p.cluster_cidr.length) + " and at most " +
                          std::to_string(p.cluster_cidr.max_length()));
  p.node_prefix_length = static_cast<std::uint8_t>(node_len);
  if (founder == keys::KeyBytes{}) return Error::invalid("cluster params: the founder key is zero");
  p.founder = IdentityPublicKey(founder);
  return p;
}

bool same_params(const ClusterParams& a, const ClusterParams& b) {
  return a.cluster_id == b.cluster_id && a.cluster_cidr == b.cluster_cidr &&
         a.node_prefix_length == b.node_prefix_length && a.founder == b.founder;
}

SubnetClaim claim_of(const controlplane::NodeRecord& r) {
  return SubnetClaim{r.identity, r.name, r.admission};
}

std::string encode_claim(const SubnetClaim& c) {
  keys::CanonicalEncoder e(kSubnetClaimContext);
  e.bytes(c.identity.bytes()).str(c.name);
  e.list(3).bytes(c.admission.admitter.bytes()).u64(c.admission.admitted_at).bytes(
      c.admission.signature);
  return to_text(e.data());
}

Result<SubnetClaim> decode_claim(std::string_view value) {
  if (value.size() > controlplane::kMaxRecordBytes)
    return Error::invalid("subnet claim: " + std::to_string(value.size()) + " bytes, at most " +
                          std::to_string(controlplane::kMaxRecordBytes) + " allowed");
  CanonicalDecoder d(as_bytes(value));
  if (!d.context(kSubnetClaimContext))
    return Error::invalid("subnet claim: does not start with context " +
                          std::string(kSubnetClaimContext));
  SubnetClaim c;
  keys::KeyBytes k{};
  d.fixed_bytes(k);
  c.identity = IdentityPublicKey(k);
  c.name = d.str(controlplane::kMaxNameLength);
  if (d.list(3) != 3 && d.ok()) return Error::invalid("subnet claim: admission needs 3 fields");
  d.fixed_bytes(k);
  c.admission.admitter = IdentityPublicKey(k);
  c.admission.admitted_at = d.u64();
  d.fixed_bytes(c.admission.signature);
  d.skip_rest();  // fields of a newer version
  if (!d.ok()) return Error::invalid("subnet claim: malformed or truncated canonical encoding");
  return c;
}

bool claim_valid(const ClusterParams& params, const SubnetClaim& claim, const IpPrefix& cidr) {
  if (!controlplane::valid_node_name(claim.name)) return false;
  if (cidr.network() != cidr || cidr.length != params.node_prefix_length ||
      cidr.address.family != params.cluster_cidr.address.family ||
      !params.cluster_cidr.contains(cidr))
    return false;
  // Only the founder admits itself (NodeTable's rule for records).
  if (claim.admission.admitter == claim.identity && claim.identity != params.founder) return false;
  controlplane::NodeRecord r;
  r.cluster_id = params.cluster_id;
  r.name = claim.name;
  r.identity = claim.identity;
  r.pod_cidr = cidr;
  r.admission = claim.admission;
  return controlplane::admission_signature_valid(r);
}

std::string alive_value(std::uint64_t unix_ms) { return std::to_string(unix_ms); }

std::optional<std::uint64_t> parse_alive_value(std::string_view value) {
  if (value.empty() || (value.size() > 1 && value.front() == '0')) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
  return v;
}

// ---- Allocation -------------------------------------------------------------

Txn claim_txn(std::string_view prefix, const ClusterParams& params, const IpPrefix& cidr,
              const SubnetClaim& claim) {
  std::string key = subnet_key(prefix, params.cluster_id, cidr);
  Txn t;
  // create_revision == 0: the key does not exist. Exactly one of any number
  // of racers wins (measured: 1 of 20, issue 13).
  t.compare.push_back(
      Compare{key, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}});
  // No lease: a subnet outlives any outage of its node (flannel#904, #1289).
  t.success.push_back(RequestOp{RequestOp::Kind::kPut, key, encode_claim(claim), 0, {}});
  t.failure.push_back(RequestOp{RequestOp::Kind::kRange, key, {}, 0, {}});
  return t;
}

Txn release_txn(std::string_view prefix, std::string_view cluster, const IpPrefix& cidr,
                std::string expected_value) {
  std::string key = subnet_key(prefix, cluster, cidr);
  Txn t;
  t.compare.push_back(Compare{key, Compare::Target::kValue, Compare::Result::kEqual, 0,
                              std::move(expected_value)});
  t.success.push_back(RequestOp{RequestOp::Kind::kDelete, key, {}, 0, {}});
  t.failure.push_back(RequestOp{RequestOp::Kind::kRange, key, {}, 0, {}});
  return t;
}

std::vector<ClaimedSubnet> valid_claims(std::string_view prefix, const ClusterParams& params,
                                        const RangeResult& subnets) {
  std::vector<ClaimedSubnet> out;
  for (const KeyValue& kv : subnets.kvs) {
    ParsedKey k = parse_key(prefix, params.cluster_id, kv.key);
    if (k.family != KeyFamily::kSubnet) continue;
    auto claim = decode_claim(kv.value);
    if (!claim || !claim_valid(params, *claim, k.cidr)) continue;
    out.push_back({k.cidr, std::move(*claim), kv.mod_revision});
  }
  std::sort(out.begin(), out.end(),
            [](const ClaimedSubnet& a, const ClaimedSubnet& b) { return a.cidr < b.cidr; });
  return out;
}

std::vector<IpPrefix> claimed_cidrs(std::string_view prefix, std::string_view cluster,
                                    const RangeResult& subnets) {
  std::vector<IpPrefix> out;
  for (const KeyValue& kv : subnets.kvs) {
    ParsedKey k = parse_key(prefix, cluster, kv.key);
    if (k.family == KeyFamily::kSubnet) out.push_back(k.cidr);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<IpPrefix> reuse(std::string_view prefix, const ClusterParams& params,
                              const RangeResult& subnets, const IdentityPublicKey& identity) {
  for (const ClaimedSubnet& c : valid_claims(prefix, params, subnets))  // lowest CIDR first
    if (c.claim.identity == identity) return c.cidr;
  return std::nullopt;
}

std::optional<IpPrefix> next_candidate(const NodeTable& table, std::span<const IpPrefix> claimed,
                                       std::span<const IpPrefix> reserved) {
  std::vector<IpPrefix> all(claimed.begin(), claimed.end());
  all.insert(all.end(), reserved.begin(), reserved.end());
  return controlplane::lowest_free_cidr(table, all);
}

// ---- Applying etcd to a NodeTable -------------------------------------------

namespace {

Disposition disposition_of(MergeOutcome o) {
  if (controlplane::accepted(o)) return Disposition::kMerged;
  if (o == MergeOutcome::kStale || o == MergeOutcome::kRemovedIdentity)
    return Disposition::kUnchanged;
  return Disposition::kRefused;
}

// A record or tombstone read from etcd, decoded and checked against its key,
// ready for the table.
struct Entry {
  Applied applied;  // filled when it cannot reach the table
  std::optional<controlplane::SignedRecord> record;
  std::optional<controlplane::SignedTombstone> tombstone;
  IdentityPublicKey key_identity;
  Revision mod_revision = 0;
};

Entry prepare(const KeyValue& kv, bool is_delete, std::string_view prefix,
              std::string_view cluster) {
  Entry e;
  e.mod_revision = kv.mod_revision;
  ParsedKey k = parse_key(prefix, cluster, kv.key);
  e.applied.family = k.family;
  e.key_identity = k.identity;
  // A delete never removes a record: only a signed tombstone does, and
  // anyone with etcd credentials can delete a key.
  if (is_delete || (k.family != KeyFamily::kRecord && k.family != KeyFamily::kTombstone))
    return e;
  e.applied.disposition = Disposition::kRefused;
  auto value = decode_signed_value(kv.value);
  if (!value) {
    e.applied.outcome = MergeOutcome::kMalformed;
    return e;
  }
  if (k.family == KeyFamily::kRecord) {
    auto r = controlplane::decode_record(value->body, value->signature);
    if (!r) {
      e.applied.outcome = MergeOutcome::kMalformed;
    } else if (r->record.identity != k.identity) {
      // A valid record copied to another node's key: it must not stand in
      // for (or hide) the node the key names.
      e.applied.key_mismatch = true;
    } else {
      e.record = std::move(*r);
    }
  } else {
    auto t = controlplane::decode_tombstone(value->body, value->signature);
    if (!t) {
      e.applied.outcome = MergeOutcome::kMalformed;
    } else if (t->tombstone.removed != k.identity) {
      e.applied.key_mismatch = true;
    } else {
      e.tombstone = std::move(*t);
    }
  }
  return e;
}

bool ready(const Entry& e) { return e.record || e.tombstone; }

// NodeTable's signer rule (founder, a member, or removed after `when`), read
// through its public API: whether merging now could pass the signer check.
// Used only to decide whether to wait for the rest of a batch, so that a
// record is not counted as unknown_signer while its admitter's record is
// further down the same listing.
bool signer_known_now(const NodeTable& t, const IdentityPublicKey& signer, std::uint64_t when) {
  if (const auto* ts = t.tombstone(signer)) return ts->tombstone.removed_at > when;
  return signer == t.params().founder || t.find(signer) != nullptr;
}

bool can_wait(const NodeTable& t, const Entry& e) {
  if (e.record) {
    const auto& r = e.record->record;
    if (r.admission.admitter == r.identity) return false;  // merge decides at once
    return !signer_known_now(t, r.admission.admitter, r.admission.admitted_at);
  }
  const auto& ts = e.tombstone->tombstone;
  return !signer_known_now(t, ts.removed_by, ts.removed_at);
}

Applied merge_entry(NodeTable& table, const Entry& e) {
  Applied a = e.applied;
  MergeOutcome o = e.record ? table.merge(*e.record) : table.merge(*e.tombstone);
  a.outcome = o;
  a.disposition = disposition_of(o);
  return a;
}

// Applies `entries` (in revision order first) and retries those whose signer
// was unknown while a round makes progress; reports every entry once.
ApplyReport apply_batch(NodeTable& table, std::vector<Entry> entries) {
  ApplyReport report;
  auto note = [&](const Applied& a) { report.add(a); };
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.mod_revision < b.mod_revision;
  });
  std::vector<const Entry*> pending;
  for (const Entry& e : entries) {
    if (ready(e))
      pending.push_back(&e);
    else
      note(e.applied);
  }
  for (;;) {
    std::vector<const Entry*> waiting;
    bool progress = false;
    for (const Entry* e : pending) {
      if (can_wait(table, *e)) {
        waiting.push_back(e);
        continue;
      }
      Applied a = merge_entry(table, *e);
      progress = progress || a.disposition == Disposition::kMerged;
      note(a);
    }
    if (waiting.empty()) break;
    if (!progress) {
      // Nothing left can make a signer known: let the table refuse them.
      for (const Entry* e : waiting) note(merge_entry(table, *e));
      break;
    }
    pending = std::move(waiting);
  }
  return report;
}

}  // namespace

void ApplyReport::add(const Applied& a) {
  switch (a.disposition) {
    case Disposition::kIgnored: ++ignored; break;
    case Disposition::kMerged: ++merged; break;
    case Disposition::kUnchanged: ++unchanged; break;
    case Disposition::kRefused: ++refused; break;
  }
  if (a.key_mismatch) ++key_mismatch;
  if (a.outcome) ++outcomes[static_cast<std::size_t>(*a.outcome)];
}

Applied apply(NodeTable& table, const WatchEvent& event, std::string_view prefix,
              std::string_view cluster) {
  Entry e = prepare(event.kv, event.type == WatchEvent::Type::kDelete, prefix, cluster);
  if (!ready(e)) return e.applied;
  return merge_entry(table, e);
}

ApplyReport apply_events(NodeTable& table, std::span<const WatchEvent> events,
                         std::string_view prefix, std::string_view cluster) {
  std::vector<Entry> entries;
  entries.reserve(events.size());
  for (const WatchEvent& ev : events)
    entries.push_back(prepare(ev.kv, ev.type == WatchEvent::Type::kDelete, prefix, cluster));
  return apply_batch(table, std::move(entries));
}

ApplyReport apply_listing(NodeTable& table, const RangeResult& listing, std::string_view prefix,
                          std::string_view cluster) {
  std::vector<Entry> entries;
  entries.reserve(listing.kvs.size());
  std::map<IdentityPublicKey, std::string_view> record_values;
  for (const KeyValue& kv : listing.kvs) {
    entries.push_back(prepare(kv, false, prefix, cluster));
    if (entries.back().applied.family == KeyFamily::kRecord)
      record_values.emplace(entries.back().key_identity, kv.value);
  }
  ApplyReport report = apply_batch(table, std::move(entries));
  if (listing.more) return report;  // a partial listing says nothing of what is missing
  // After the merge, a valid newer copy in etcd is the table's too; so etcd
  // is behind exactly where its value is not the table's bytes (absent,
  // older, tampered).
  for (const IdentityPublicKey& id : table.members()) {
    auto it = record_values.find(id);
    if (it == record_values.end() || it->second != record_value(*table.find(id)))
      report.behind.push_back(id);
  }
  return report;
}

}  // namespace meshd::datastore
