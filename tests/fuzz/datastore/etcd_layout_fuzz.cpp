// Everything meshd reads back from etcd through etcd_layout.h: keys, record
// and tombstone values, cluster params, subnet claims and liveness values,
// which anyone holding etcd credentials can write. The input is tried as
// each value, as a key, and, split at its first '\n', as a key and a value
// put into a fixed table (fuzz_fixture.h). Never crashes; whatever parses
// re-encodes to something that parses to the same value; applying a put
// twice changes nothing the second time.
#include "meshd/datastore/etcd_layout.h"
#include "tests/fuzz/controlplane/fuzz_fixture.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace meshd;
using namespace meshd::datastore;

namespace {

constexpr std::string_view P = "/meshd/";
constexpr std::string_view C = "fuzz-cluster";

void check_key(std::string_view key) {
  ParsedKey k = parse_key(P, C, key);
  std::string again;
  switch (k.family) {
    case KeyFamily::kUnknown: return;
    case KeyFamily::kParams: again = params_key(P, C); break;
    case KeyFamily::kRecord: again = record_key(P, C, k.identity); break;
    case KeyFamily::kTombstone: again = tombstone_key(P, C, k.identity); break;
    case KeyFamily::kSubnet: again = subnet_key(P, C, k.cidr); break;
    case KeyFamily::kAlive: again = alive_key(P, C, k.identity); break;
  }
  // One spelling per key: what parses is exactly what the layout writes.
  if (again != key) std::abort();
}

void check_values(std::string_view value) {
  if (auto v = decode_signed_value(value)) {
    if (encode_signed_value(v->body, v->signature) != value) std::abort();
  }
  if (auto p = decode_params(value)) {
    auto back = decode_params(encode_params(*p));
    if (!back || !same_params(*back, *p)) std::abort();
  }
  static const auto params = controlplane::fuzzing::fixed_params();
  if (auto c = decode_claim(value)) {
    auto back = decode_claim(encode_claim(*c));
    if (!back || *back != *c) std::abort();
    (void)claim_valid(params, *c, IpPrefix::parse("10.244.3.0/24").value());
  }
  if (auto ms = parse_alive_value(value)) {
    if (alive_value(*ms) != value) std::abort();
  }
}

void check_put(std::string_view key, std::string_view value) {
  static const controlplane::NodeTable fixed = controlplane::fuzzing::fixed_table();
  controlplane::NodeTable table = fixed;  // a copy: no signing per input
  WatchEvent ev{WatchEvent::Type::kPut, KeyValue{std::string(key), std::string(value), 1, 1, 1, 0},
                {}};
  apply(table, ev, P, C);
  auto hash = table.hash();
  Applied again = apply(table, ev, P, C);
  if (again.disposition == Disposition::kMerged || table.hash() != hash) std::abort();
  RangeResult listing;
  listing.kvs.push_back(ev.kv);
  ApplyReport r = apply_listing(table, listing, P, C);
  if (r.merged != 0 || table.hash() != hash) std::abort();
  (void)claimed_cidrs(P, C, listing);
  (void)valid_claims(P, table.params(), listing);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check_key(in);
  check_values(in);
  auto nl = in.find('\n');
  if (nl != std::string_view::npos) {
    check_key(in.substr(0, nl));
    check_put(in.substr(0, nl), in.substr(nl + 1));
  } else {
    // The whole input as the value of node 3's record and tombstone keys.
    auto id = controlplane::fuzzing::fixed_key(3).public_key();
    check_put(record_key(P, C, id), in);
    check_put(tombstone_key(P, C, id), in);
  }
  return 0;
}
