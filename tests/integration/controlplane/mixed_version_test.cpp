// A node of the next protocol version in a cluster of this one, with real
// processes: `meshd-next` (meshd built with MESHD_WIRE_NEXT: protocol version
// 2, a field version 1 does not know appended to every record, sync frame,
// join request and reply, and a sync message type version 1 does not know
// sent on every anti-entropy tick) joins through a version 1 founder, and a
// version 1 node joins through it (taking the founder's record from
// meshd-next's join reply). Every record must be accepted everywhere with its
// owner's signature, and every pod must reach every other.
#include "meshd/controlplane/node_record.h"
#include "store/records.h"
#include "tests/support/api_client.h"
#include "tests/support/cluster_nodes.h"
#include "tests/support/prerequisite.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <regex>

namespace meshd::testing {
namespace {

const std::string kMeshdNext = std::string(MESHD_BIN_DIR) + "/meshd-next";

// GET /v1/nodes of `n`: node name -> record version (empty when it did not
// answer).
std::map<std::string, std::uint64_t> versions_seen_by(const ClusterNodes::Node& n) {
  std::map<std::string, std::uint64_t> out;
  std::string body = api_get(n.api_socket(), "/v1/nodes");
  if (body.empty()) return out;
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return out;
  for (const auto& e : v.as_object().at("nodes").as_array()) {
    const auto& o = e.as_object();
    out[std::string(o.at("name").as_string())] = boost::json::value_to<std::uint64_t>(o.at("version"));
  }
  return out;
}

// `family`{reason="<reason>"} from `n`'s /metrics; nothing when the sample
// is absent.
std::optional<double> by_reason(const ClusterNodes::Node& n, const std::string& family, const std::string& reason) {
  std::string text = api_get(n.api_socket(), "/metrics");
  std::regex re(family + "\\{reason=\"" + reason + "\"\\} (\\S+)");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return std::nullopt;
  return std::stod(m[1]);
}

// The record of `owner` as `at` stored it: the signed bytes as received.
std::optional<store::SignedRow> stored_record_of(const ClusterNodes::Node& owner, const ClusterNodes::Node& at) {
  auto id = ClusterNodes::identity(owner).public_key().bytes();
  auto db = ClusterNodes::open_store(at);
  for (auto& r : store::RecordRepo(*db).load_all().value())
    if (!r.tombstone && r.identity == id) return r;
  return std::nullopt;
}

TEST(MixedVersion, ANodeOfTheNextVersionJoinsAndSyncsWithThisOne) {
  MESHD_REQUIRE(is_root(), "needs root (network namespaces)");
  MESHD_REQUIRE(::access(kMeshdNext.c_str(), X_OK) == 0, "needs " + kMeshdNext + " (target meshd-next)");
  ClusterNodes c;
  // v1 founds; v2 (meshd-next) joins through v1; v1b joins through v2, so
  // each version answers a join of the other and relays the other's records.
  auto& v1 = c.add_node("v1");
  c.start(v1);
  ASSERT_TRUE(c.wait_settled(v1)) << "v1 did not found a cluster:\n" << c.log_tail(v1);

  auto& v2 = c.add_node("v2", &v1);
  c.write_token(v2, ClusterNodes::create_token(v1));
  c.start(v2, kMeshdNext);
  ASSERT_TRUE(c.wait_log(v2, "joined cluster")) << "meshd-next did not join through meshd:\n"
                                                  << c.log_tail(v2) << "\n" << c.log_tail(v1);
  ASSERT_TRUE(c.wait_settled(v2)) << "v2 did not settle:\n" << c.log_tail(v2);

  auto& v1b = c.add_node("v1b", &v2);
  c.write_token(v1b, ClusterNodes::create_token(v2));
  c.start(v1b);
  ASSERT_TRUE(c.wait_log(v1b, "joined cluster")) << "meshd did not join through meshd-next:\n"
                                                   << c.log_tail(v1b) << "\n" << c.log_tail(v2);
  ASSERT_TRUE(c.wait_settled(v1b)) << "v1b did not settle:\n" << c.log_tail(v1b);

  // Every node lists all three, with the same record versions.
  std::vector<ClusterNodes::Node*> all{&v1, &v2, &v1b};
  std::map<std::string, std::uint64_t> agreed;
  bool same = eventually(
      [&] {
        auto first = versions_seen_by(*all.front());
        if (first.size() != all.size()) return false;
        for (auto* n : all)
          if (versions_seen_by(*n) != first) return false;
        agreed = first;
        return true;
      },
      30s, 200ms);
  ASSERT_TRUE(same) << "the nodes' GET /v1/nodes never agreed on three records";
  for (const char* name : {"v1", "v2", "v1b"}) EXPECT_TRUE(agreed.contains(name)) << name;

  // The version 1 nodes hold v2's record as v2 signed it, the field version
  // 1 does not know included; this build's decoder reads it, skips that
  // field and verifies the owner's signature over all of it.
  namespace cp = meshd::controlplane;
  const auto& next = cp::kNextVersionFieldValue;
  for (auto* n : {&v1, &v1b}) {
    auto row = stored_record_of(v2, *n);
    ASSERT_TRUE(row) << n->name << " stored no record of v2";
    EXPECT_NE(std::search(row->body.begin(), row->body.end(), next.begin(), next.end()), row->body.end())
        << n->name << " holds v2's record without the field of version 2";
    auto rec = cp::decode_record(row->body, row->signature);
    ASSERT_TRUE(rec) << rec.error().message;
    EXPECT_EQ(rec->record.protocol_version, 2u);
    EXPECT_TRUE(cp::owner_signature_valid(*rec));
  }

  // Every pod reaches every other, across both versions.
  for (auto* n : all) c.add_pod(*n);
  for (auto* a : all)
    for (auto* b : all) {
      if (a == b) continue;
      EXPECT_TRUE(ClusterNodes::reaches(*a->pods.front().ns, b->pods.front().address))
          << "pod on " << a->name << " cannot reach pod on " << b->name;
    }

  // The version 1 nodes ignored meshd-next's sync messages of a type they do
  // not know (it sends some on every tick), decoded all its other messages,
  // and accepted the version 2 records (v1b also the ones v2 relayed) as
  // they are: nothing refused as undecodable, badly signed or holding a field
  // out of range.
  for (auto* n : {&v1, &v1b}) {
    EXPECT_TRUE(eventually(
        [&] { return by_reason(*n, "meshd_sync_messages_dropped_total", "unknown_type").value_or(0) > 0; },
        10s, 100ms))
        << n->name << " never counted a sync message of an unknown type from meshd-next";
    auto dropped = by_reason(*n, "meshd_sync_messages_dropped_total", "malformed");
    ASSERT_TRUE(dropped) << n->name << "'s /metrics has no sync_messages_dropped sample for malformed";
    EXPECT_EQ(*dropped, 0) << n->name << " dropped sync messages as malformed";
    for (const char* reason : {"malformed", "bad_signature", "invalid_field"}) {
      auto count = by_reason(*n, "meshd_records_rejected_total", reason);
      ASSERT_TRUE(count) << n->name << "'s /metrics has no records_rejected sample for " << reason;
      EXPECT_EQ(*count, 0) << n->name << " refused records as " << reason;
    }
  }
}

}  // namespace
}  // namespace meshd::testing
