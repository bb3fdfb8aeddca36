// meshctl's pure views: API answers (canned, in docs/api.md's shapes) to the
// tables and lines a person reads.
#include "meshd/meshctl/views.h"

#include "tests/unit/meshctl/test_server.h"

#include <gtest/gtest.h>

namespace meshd::meshctl {
namespace {

TEST(MeshctlFormat, AgesFloorToTheirUnit) {
  EXPECT_EQ(format_age(0), "0s");
  EXPECT_EQ(format_age(12.9), "12s");
  EXPECT_EQ(format_age(59.99), "59s");
  EXPECT_EQ(format_age(60), "1m");
  EXPECT_EQ(format_age(3599), "59m");
  EXPECT_EQ(format_age(3600), "1h");
  EXPECT_EQ(format_age(2 * 3600 + 59 * 60), "2h");
  EXPECT_EQ(format_age(86400 * 5 + 1), "5d");
  EXPECT_EQ(format_age(-1), "-");
  EXPECT_EQ(format_age(std::numeric_limits<double>::quiet_NaN()), "-");
  EXPECT_EQ(format_age(std::numeric_limits<double>::infinity()), "-");
  EXPECT_EQ(format_age(1e300), "-");
}

TEST(MeshctlFormat, BytesInIecUnits) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.0 KiB");
  EXPECT_EQ(format_bytes(1468006), "1.4 MiB");
  EXPECT_EQ(format_bytes(1048575), "1.0 MiB");  // not "1024.0 KiB"
  EXPECT_EQ(format_bytes(5ULL << 30), "5.0 GiB");
  EXPECT_EQ(format_bytes(UINT64_MAX), "16.0 EiB");
}

TEST(MeshctlFormat, TimesAndRelativeTimes) {
  EXPECT_EQ(format_utc(1800000000), "2027-01-15 08:00:00Z");
  EXPECT_EQ(format_relative(1000 + 3 * 3600, 1000), "in 3h");
  EXPECT_EQ(format_relative(1000 - 12, 1000), "12s ago");
  EXPECT_EQ(format_relative(1000, 1000), "now");
  EXPECT_NO_THROW(format_relative(INT64_MIN, INT64_MAX));
  EXPECT_NO_THROW(format_utc(INT64_MAX));
}

TEST(MeshctlFormat, DurationsForTtl) {
  EXPECT_EQ(parse_duration_seconds("86400").value(), 86400);
  EXPECT_EQ(parse_duration_seconds("90s").value(), 90);
  EXPECT_EQ(parse_duration_seconds("30m").value(), 1800);
  EXPECT_EQ(parse_duration_seconds("24h").value(), 86400);
  EXPECT_EQ(parse_duration_seconds("7d").value(), 7 * 86400);
  EXPECT_EQ(parse_duration_seconds("0").value(), 0);
  for (const char* bad : {"", "h", "-5", "1.5h", "24H", "1w", "12 h", "99999999999999999999",
                          "999999999999999999d"})
    EXPECT_FALSE(parse_duration_seconds(bad)) << bad;
}

TEST(MeshctlFormat, TablesAlignColumnsAndNeutraliseControlCharacters) {
  std::string t = format_table({"A", "BB", "C"}, {{"xxxx", "y", "z"}, {"é", "\x1b[2J", ""}});
  EXPECT_EQ(t,
            "A     BB       C\n"
            "xxxx  y        z\n"
            "é     \\x1b[2J\n");
}

TEST(MeshctlStatus, ShowsEveryField) {
  auto s = parse_status(testing::kStatusJson);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE(s->in_sync());
  EXPECT_EQ(format_status(*s, 1800000012123),
            "interface:  meshd0\n"
            "backend:    kernel (auto: kernel WireGuard is available)\n"
            "public key: HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\n"
            "mtu:        1420\n"
            "pod cidr:   10.244.1.0/24 (settled)\n"
            "peers:      3 (2 reachable)\n"
            "routes:     3\n"
            "in sync:    yes\n"
            "last pass:  12s ago, took 0.25 s, succeeded\n"
            "passes:     10 (2 failed)\n"
            "cni leases: 5 in use, 248 free\n"
            "cluster:    5f1c0a9e2b7d4c31\n"
            "rejected:   laptop: public_key: not 32 bytes\n");
}

// A removed node says so first: by whom, when, why; and the table hash.
TEST(MeshctlStatus, ARemovedNodeSaysByWhomWhenAndWhy) {
  auto s = parse_status(testing::kRemovedStatusJson);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE(s->removed);
  std::string out = format_status(*s, 1800000090000);
  EXPECT_EQ(out.substr(0, out.find("interface:")),
            "removed:    this node was removed from the cluster by node-a at 2027-01-15 08:00:30Z (1m ago)\n"
            "reason:     decommissioned\n");
  EXPECT_NE(out.find("table hash: 9f86d081884c7d65\n"), std::string::npos) << out;
  auto live = parse_status(testing::kStatusJson);
  ASSERT_TRUE(live);
  EXPECT_FALSE(live->removed);
  auto no_reason = parse_status(R"({"cluster":{"removed":{}}})");
  ASSERT_TRUE(no_reason);
  EXPECT_TRUE(no_reason->removed);
  std::string bare = format_status(*no_reason, 0);
  EXPECT_EQ(bare.substr(0, bare.find("interface:")),
            "removed:    this node was removed from the cluster\n"
            "reason:     none given\n");
  // "removed" of another type is not a removal.
  auto odd = parse_status(R"({"cluster":{"removed":true}})");
  ASSERT_TRUE(odd);
  EXPECT_FALSE(odd->removed);
}

TEST(MeshctlStatus, InSyncIsMeshdsWhenSentElseTheLastPass) {
  auto out_of_sync = parse_status(
      R"({"in_sync":false,"errors":["route 10.77.2.0/24 dev meshd0 not installed"],)"
      R"("last_reconcile":{"at_ms":1000,"duration_seconds":1,"error":null}})");
  ASSERT_TRUE(out_of_sync);
  EXPECT_FALSE(out_of_sync->in_sync());
  std::string out = format_status(*out_of_sync, 61000);
  EXPECT_NE(out.find("in sync:    no\n"), std::string::npos) << out;
  EXPECT_NE(out.find("last pass:  1m ago, took 1 s, succeeded\n"), std::string::npos) << out;
  EXPECT_NE(out.find("error:      route 10.77.2.0/24 dev meshd0 not installed\n"), std::string::npos) << out;

  // Without "in_sync": a failed pass is not in sync, and its error is shown once.
  auto failed = parse_status(
      R"({"last_reconcile":{"at_ms":1000,"duration_seconds":1,"error":"add route: File exists"},)"
      R"("errors":["add route: File exists"]})");
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->in_sync());
  out = format_status(*failed, 61000);
  EXPECT_NE(out.find("last pass:  1m ago, took 1 s, failed\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("error:"), out.rfind("error:")) << out;

  auto none = parse_status(R"({"last_reconcile":null,"pod_cidr":null,"cluster_id":null,"cni_leases":null})");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->in_sync());
  out = format_status(*none, 0);
  EXPECT_NE(out.find("last pass:  none yet\n"), std::string::npos) << out;
  EXPECT_NE(out.find("pod cidr:   -\n"), std::string::npos) << out;
  EXPECT_NE(out.find("cluster:    none (static peers, or not joined yet)\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("cni leases"), std::string::npos) << out;

  auto succeeded = parse_status(R"({"last_reconcile":{"error":null}})");
  ASSERT_TRUE(succeeded);
  EXPECT_TRUE(succeeded->in_sync());
  // An error of another type still counts as a failure.
  auto odd = parse_status(R"({"last_reconcile":{"error":{"code":5}}})");
  ASSERT_TRUE(odd);
  EXPECT_FALSE(odd->in_sync());
}

TEST(MeshctlStatus, NotJsonOrNotAnObjectIsAnError) {
  for (const char* bad : {"", "nope", "[1,2]", "\"x\"", "{\"a\":", "null"}) {
    auto s = parse_status(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().message.find("GET /v1/status"), std::string::npos);
  }
}

TEST(MeshctlStatus, ControlCharactersFromTheDaemonNeverReachTheTerminal) {
  auto s = parse_status(
      R"({"interface":"a\u001b[2Jb","in_sync":false,"errors":["one\nin sync:    yes"],)"
      R"("rejected_peers":[{"peer":"p\u0007","reason":"r\r"}]})");
  ASSERT_TRUE(s);
  std::string out = format_status(*s, 0);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_NE(out.find("a\\x1b[2Jb"), std::string::npos) << out;
  EXPECT_NE(out.find("one\\x0ain sync:    yes"), std::string::npos) << out;
  EXPECT_NE(out.find("rejected:   p\\x07: r\\x0d\n"), std::string::npos) << out;
  EXPECT_NE(out.find("in sync:    no\n"), std::string::npos) << out;
}

TEST(MeshctlNodes, TableWithAgesBytesAndStates) {
  auto nodes = parse_nodes(testing::kNodesJson);
  ASSERT_TRUE(nodes) << nodes.error().message;
  ASSERT_EQ(nodes->size(), 4u);
  EXPECT_EQ(format_nodes(*nodes),
            "NAME    ENDPOINTS                            POD CIDR       HANDSHAKE  RX       TX       LIVENESS  LAST SEEN  STATE\n"
            "node-a  192.0.2.1:51820                      10.244.1.0/24  -          -        -        -         -          self\n"
            "node-b  192.0.2.2:51820                      10.244.2.0/24  12s        1.4 MiB  300 B    -         -          reachable\n"
            "node-c  192.0.2.3:51820,[2001:db8::3]:51820  10.244.3.0/24  10m        2.0 KiB  4.0 KiB  -         -          reachable\n"
            "node-d  -                                    10.244.4.0/24  -          0 B      0 B      -         -          unreachable\n");
}

// Liveness and last seen per node; removed nodes last, whatever meshd's
// order, with who removed them and when.
TEST(MeshctlNodes, LivenessLastSeenAndRemovedNodesLast) {
  auto nodes = parse_nodes(testing::kLifecycleNodesJson);
  ASSERT_TRUE(nodes) << nodes.error().message;
  ASSERT_EQ(nodes->size(), 6u);
  EXPECT_TRUE((*nodes)[2].removed);
  EXPECT_TRUE((*nodes)[2].quiet() == false);
  EXPECT_TRUE((*nodes)[3].quiet());
  EXPECT_EQ(format_nodes(*nodes),
            "NAME    ENDPOINTS        POD CIDR       HANDSHAKE  RX       TX       LIVENESS  LAST SEEN  STATE\n"
            "node-a  192.0.2.1:51820  10.244.1.0/24  -          -        -        self      -          self\n"
            "node-b  192.0.2.2:51820  10.244.2.0/24  12s        1.4 MiB  300 B    alive     2s         reachable\n"
            "node-c  192.0.2.3:51820  10.244.3.0/24  6m         2.0 KiB  4.0 KiB  silent    6m         unreachable\n"
            "node-e  192.0.2.5:51820  10.244.5.0/24  1h         1 B      1 B      prunable  1h         unreachable\n"
            "node-b  -                10.244.9.0/24  -          -        -        removed   -          removed by node-a at 2027-01-15 08:00:30Z\n"
            "node-d  -                -              -          -        -        removed   -          removed by aWQtYw== at 2027-01-15 08:00:40Z\n");
  // A tombstone marked only by its liveness, without who or when.
  auto bare = parse_nodes(R"({"nodes":[{"name":"x","liveness":"removed"},{"name":"y"}]})");
  ASSERT_TRUE(bare);
  EXPECT_EQ(format_nodes(*bare),
            "NAME  ENDPOINTS  POD CIDR  HANDSHAKE  RX  TX  LIVENESS  LAST SEEN  STATE\n"
            "y     -          -         -          -   -   -         -          unreachable\n"
            "x     -          -         -          -   -   removed   -          removed\n");
}

TEST(MeshctlNodes, ARemovedNodeAndARotatingOneInFull) {
  auto nodes = parse_nodes(testing::kLifecycleNodesJson);
  ASSERT_TRUE(nodes);
  EXPECT_EQ(format_node((*nodes)[2]),
            "name:       node-b\n"
            "state:      removed\n"
            "removed:    by node-a at 2027-01-15 08:00:30Z\n"
            "reason:     reinstalled\n"
            "released:   yes (every live member holds the removal)\n"
            "liveness:   removed\n"
            "identity:   b2xkLWI=\n"
            "public key: \n"
            "endpoints:  -\n"
            "pod cidr:   10.244.9.0/24\n"
            "version:    0\n"
            "admitted:   1970-01-01 00:00:00Z\n");
  std::string d = format_node((*nodes)[4]);
  EXPECT_NE(d.find("reason:     none given\nreleased:   not yet (its name and pod CIDR stay reserved)\n"),
            std::string::npos) << d;
  std::string a = format_node((*nodes)[0]);
  EXPECT_NE(a.find("next key:   bmV3LWtleS1h (switch at 2027-01-15 08:01:05Z)\n"), std::string::npos) << a;
  std::string c = format_node((*nodes)[3]);
  EXPECT_NE(c.find("liveness:   silent\n"), std::string::npos) << c;
  EXPECT_NE(c.find("last seen:  6m ago\n"), std::string::npos) << c;
}

TEST(MeshctlRemoval, PrintsWhatWasRemoved) {
  auto r = parse_removal(
      R"({"removed":{"name":"node-b","identity":"aWQtYg==","pod_cidr":"10.244.2.0/24","removed_at_ms":1800000030000}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(format_removal(*r),
            "node node-b removed at 2027-01-15 08:00:30Z: identity aWQtYg==, pod CIDR 10.244.2.0/24\n");
  auto bare = parse_removal(R"({"removed":{"name":"","identity":7,"pod_cidr":"x\u001b[2J"}})");
  ASSERT_TRUE(bare);
  EXPECT_EQ(format_removal(*bare), "node - removed: identity -, pod CIDR x\\x1b[2J\n");
  EXPECT_FALSE(parse_removal(R"({"name":"node-b"})"));
  EXPECT_FALSE(parse_removal("[]"));
}

TEST(MeshctlRotation, PrintsShortKeyIdsAndTheSwitchTime) {
  auto r = parse_rotation(
      R"({"previous_public_key":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",)"
      R"("public_key":"bmV3IGtleSBvZiBub2RlIGEgaW4gYmFzZTY0IGZvcm0=","switch_at_ms":1800000065000})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(format_rotation(*r, 1800000060000),
            "rotation:   HIgo9xNz -> bmV3IGtl\n"
            "switch at:  2027-01-15 08:01:05Z (in 5s)\n");
  std::string later = format_rotation(*r, 1800000070000);
  EXPECT_EQ(later.substr(later.find('\n') + 1), "switch at:  2027-01-15 08:01:05Z (5s ago)\n");
  auto none = parse_rotation("{}");
  ASSERT_TRUE(none);
  EXPECT_EQ(format_rotation(*none, 0), "rotation:   - -> -\nswitch at:  -\n");
  EXPECT_FALSE(parse_rotation("nope"));
  EXPECT_EQ(short_key("abc"), "abc");
}

TEST(MeshctlNodes, MissingFieldsShowAsDashAndBadEntriesAreSkipped) {
  auto nodes = parse_nodes(R"({"nodes":[{"name":7,"in_effect":false},5,"x",{"name":"n","stats":[]}]})");
  ASSERT_TRUE(nodes);
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].name, "-");
  EXPECT_EQ(node_state((*nodes)[0]), "not in effect");
  EXPECT_EQ(node_state((*nodes)[1]), "unreachable");
  EXPECT_FALSE(parse_nodes(R"({"node":[]})"));
  EXPECT_FALSE(parse_nodes(R"({"nodes":{}})"));
}

TEST(MeshctlNodes, OneNodeInFull) {
  auto n = parse_node(
      R"({"name":"node-b","identity":"aWQtYg==","public_key":"cGstYg==","endpoints":["192.0.2.2:51820"],)"
      R"("pod_cidr":"10.244.2.0/24","version":1,"admitted_at_ms":1800000001000,"self":false,"in_effect":true,)"
      R"("stats":{"last_handshake_age_seconds":12.5,"rx_bytes":1468006,"tx_bytes":300,"reachable":true}})");
  ASSERT_TRUE(n);
  EXPECT_EQ(format_node(*n),
            "name:       node-b\n"
            "state:      reachable\n"
            "identity:   aWQtYg==\n"
            "public key: cGstYg==\n"
            "endpoints:  192.0.2.2:51820\n"
            "pod cidr:   10.244.2.0/24\n"
            "version:    1\n"
            "admitted:   2027-01-15 08:00:01Z\n"
            "handshake:  12s ago\n"
            "received:   1.4 MiB\n"
            "sent:       300 B\n");
  auto never = parse_node(R"({"name":"x","stats":{"last_handshake_age_seconds":null}})");
  ASSERT_TRUE(never);
  EXPECT_NE(format_node(*never).find("handshake:  never\n"), std::string::npos);
}

TEST(MeshctlTokens, ListTable) {
  auto t = parse_tokens(
      R"({"tokens":[{"id":"k3x9qa","description":"rack 4","state":"active","created_at":1000,)"
      R"("expires_at":4600,"uses_left":2,"last_used_at":null},)"
      R"({"id":"zz0001","description":"","state":"revoked","created_at":900,"expires_at":null,)"
      R"("uses_left":null,"last_used_at":940}]})");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_tokens(*t, 1000),
            "ID      STATE    EXPIRES  USES LEFT  LAST USED  DESCRIPTION\n"
            "k3x9qa  active   in 1h    2          never      rack 4\n"
            "zz0001  revoked  never    unlimited  1m ago     -\n");
  EXPECT_FALSE(parse_tokens("{}"));
}

TEST(MeshctlTokens, CreatedTokenPrintsTheSecretOnceWithTheJoinerConfig) {
  auto t = parse_created_token(
      R"({"id":"k3x9qa","token":"k3x9qa.8f2mz0c1r7vd4hqe","description":"rack 4","created_at":1000,)"
      R"("expires_at":87400,"uses_left":2,"join_target":"192.0.2.1:7946",)"
      R"("config":"[join]\ntarget = \"192.0.2.1:7946\"\ntoken_file = \"/etc/meshd/join-token\"\n"})");
  ASSERT_TRUE(t);
  std::string out = format_created_token(*t, 1000);
  EXPECT_EQ(out.find("k3x9qa.8f2mz0c1r7vd4hqe"), out.find("token:      k3x9qa.8f2mz0c1r7vd4hqe\n") + 12)
      << out;
  EXPECT_EQ(out.find("k3x9qa.8f2mz0c1r7vd4hqe", out.find("k3x9qa.8f2mz0c1r7vd4hqe") + 1),
            std::string::npos)
      << "the secret once";
  EXPECT_NE(out.find("expires:    1970-01-02 00:16:40Z (in 1d)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("uses:       2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\n[join]\ntarget = \"192.0.2.1:7946\"\ntoken_file = \"/etc/meshd/join-token\"\n"),
            std::string::npos)
      << out;
  // The config may also come as an array of lines.
  auto a = parse_created_token(R"({"id":"a","token":"a.b","config":["[join]","x = 1"]})");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->config_lines, (std::vector<std::string>{"[join]", "x = 1"}));
}

TEST(MeshctlEvents, OneLinePerEventAndTheCursor) {
  auto p = parse_events(
      R"({"events":[{"id":7,"at":1800000000,"kind":"node-joined","node":"node-b","message":"admitted with 10.244.2.0/24"},)"
      R"({"id":8,"at":1800000005,"kind":"join-refused","node":"","message":"bad\u001b token"}],"next":8})");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->next, 8);
  EXPECT_EQ(format_events(*p),
            "#7  2027-01-15 08:00:00Z  node-joined  node-b  admitted with 10.244.2.0/24\n"
            "#8  2027-01-15 08:00:05Z  join-refused  -  bad\\x1b token\n");
  EXPECT_FALSE(parse_events(R"({"next":3})"));
}

}  // namespace
}  // namespace meshd::meshctl
