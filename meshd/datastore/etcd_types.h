// What meshd exchanges with etcd's v3 JSON gateway (etcd 3.4): plain values,
// no I/O. Keys and values are bytes (the gateway carries them as base64);
// revisions and leases are int64 (the gateway writes them as strings and
// omits zero values: the codec in etcd_json.h fills the zeros back in).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meshd::datastore {

using Revision = std::int64_t;
using LeaseId = std::int64_t;

struct KeyValue {
  std::string key;    // bytes
  std::string value;  // bytes
  Revision create_revision = 0;
  Revision mod_revision = 0;
  std::int64_t version = 0;
  LeaseId lease = 0;
  auto operator<=>(const KeyValue&) const = default;
};

// The end of a range covering every key that starts with `prefix`: the
// prefix with its last byte incremented (etcd's rule; "\0" for an empty
// prefix means "every key").
std::string prefix_end(const std::string& prefix);

struct RangeRequest {
  std::string key;
  std::string range_end;  // "" = the single key
  Revision revision = 0;  // 0 = the newest
  std::int64_t limit = 0;
  bool keys_only = false;
};

struct RangeResult {
  Revision revision = 0;  // the store's revision when the range was read (header)
  std::vector<KeyValue> kvs;
  bool more = false;
  std::int64_t count = 0;
};

// One comparison of a transaction (etcd's Compare, the forms meshd uses).
struct Compare {
  enum class Target : std::uint8_t { kCreateRevision, kModRevision, kVersion, kValue };
  enum class Result : std::uint8_t { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kCreateRevision;
  Result result = Result::kEqual;
  std::int64_t number = 0;  // for the revision and version targets
  std::string value;        // for kValue
};

// One operation of a transaction's success or failure branch.
struct RequestOp {
  enum class Kind : std::uint8_t { kPut, kRange, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;      // put
  LeaseId lease = 0;      // put
  std::string range_end;  // range, delete
};

struct Txn {
  std::vector<Compare> compare;
  std::vector<RequestOp> success;
  std::vector<RequestOp> failure;
};

struct TxnResult {
  Revision revision = 0;
  bool succeeded = false;
  // The results of the branch that ran, in order: a range's kvs (empty for
  // a put or a delete).
  std::vector<RangeResult> responses;
};

struct WatchEvent {
  enum class Type : std::uint8_t { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;                   // for a delete: key and mod_revision only
  std::optional<KeyValue> prev;  // with prev_kv
};

// One message of a watch stream.
struct WatchResponse {
  Revision revision = 0;  // header revision
  bool created = false;   // the first message: the watch is set up
  bool canceled = false;
  // Set when the start revision was compacted away: the watcher must list
  // again and diff (the stream ends).
  Revision compact_revision = 0;
  std::string cancel_reason;
  std::vector<WatchEvent> events;
  bool progress_notify() const { return events.empty() && !created && !canceled; }
  // The revision a watcher has seen everything up to once it applied this
  // message, or 0 when the message says nothing about that. The header's
  // revision is etcd's current one, which runs ahead while a watch catches
  // up (the created message comes before any missed event): only the
  // events' own revisions count, and a progress notification's header
  // (etcd sends one only to a watch that has caught up).
  Revision applied_through() const {
    if (progress_notify()) return revision;
    Revision r = 0;
    for (const auto& e : events) r = std::max(r, e.kv.mod_revision);
    return r;
  }
};

}  // namespace meshd::datastore
