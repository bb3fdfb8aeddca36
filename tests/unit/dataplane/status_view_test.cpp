// meshctl status's parser and formatter (meshd/meshctl/status_view.h).
#include "meshd/meshctl/status_view.h"

#include <gtest/gtest.h>

namespace meshd::meshctl {
namespace {

TEST(StatusView, ShowsWhatTheDaemonWrote) {
  auto s = parse_status(R"({"interface":"meshd0","backend":"userspace","backend_reason":"configured",
    "public_key":"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=","listen_port":51820,"mtu":1440,
    "pod_cidr":"10.77.1.0/24","in_sync":false,"peers":2,"routes":4,
    "errors":["route 10.77.2.0/24 dev meshd0 not installed"],
    "rejected_peers":[{"peer":"laptop","reason":"public_key: bad"}]})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(s->in_sync);
  EXPECT_EQ(format_status(*s),
            "interface:  meshd0\n"
            "backend:    userspace (configured)\n"
            "public key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
            "port:       51820\n"
            "mtu:        1440\n"
            "pod cidr:   10.77.1.0/24\n"
            "peers:      2\n"
            "routes:     4\n"
            "in sync:    no\n"
            "error:      route 10.77.2.0/24 dev meshd0 not installed\n"
            "rejected:   \"laptop\": \"public_key: bad\"\n");
}

TEST(StatusView, InSyncOnlyForTrueAndMissingFieldsShowADash) {
  auto s = parse_status(R"({"in_sync":true})");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->in_sync);
  EXPECT_EQ(s->interface, "-");
  for (const char* v : {R"({"in_sync":"true"})", R"({"in_sync":1})", R"({})"}) {
    auto t = parse_status(v);
    ASSERT_TRUE(t) << v;
    EXPECT_FALSE(t->in_sync) << v;
  }
}

TEST(StatusView, NotAStatusFileIsAnErrorSayingWhy) {
  for (const char* v : {"", "not json", "[1,2]", "{\"a\":", "\"x\""}) {
    auto s = parse_status(v);
    ASSERT_FALSE(s) << v;
    EXPECT_NE(s.error().message.find("not a meshd status file"), std::string::npos) << s.error().message;
  }
}

// A status file is data: control characters (a terminal escape, a newline
// that would forge a line) are shown as \xNN, never sent to the terminal.
TEST(StatusView, ControlCharactersAreShownNotSent) {
  auto s = parse_status(R"({"interface":"a\u001b[2Jb","errors":["one\nin sync:    yes"]})");
  ASSERT_TRUE(s);
  std::string out = format_status(*s);
  EXPECT_NE(out.find("interface:  a\\x1b[2Jb\n"), std::string::npos) << out;
  EXPECT_NE(out.find("error:      one\\x0ain sync:    yes\n"), std::string::npos) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace meshd::meshctl
