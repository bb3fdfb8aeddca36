// meshctl genkey/pubkey/genpsk against wg: same stdout, same stderr (but for
// the program name), same exit code, for good and bad input alike.
#include "common/version.h"
#include "keys/wg_key.h"
#include "wg_tools.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <regex>

using namespace meshd::test;

namespace {

const std::regex kKeyLineRe("^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\n$");

// wg prefixes errors with its argv[0]; meshctl with "meshctl".
std::string normalise(std::string s, const std::string& prog) {
  for (std::size_t at; (at = s.find(prog)) != std::string::npos;) s.replace(at, prog.size(), "PROG");
  return s;
}

void expect_same_as_wg(const std::vector<std::string>& args, const std::string& input,
                       const std::string& label) {
  std::vector<std::string> ours{kMeshctl}, theirs{kWg};
  ours.insert(ours.end(), args.begin(), args.end());
  theirs.insert(theirs.end(), args.begin(), args.end());
  ProcessResult a = run_process(ours, input), b = run_process(theirs, input);
  EXPECT_EQ(a.exit_code, b.exit_code) << label;
  EXPECT_EQ(a.out, b.out) << label;
  EXPECT_EQ(normalise(a.err, "meshctl"), normalise(b.err, kWg)) << label;
}

}  // namespace

TEST(Meshctl, VersionAndHelp) {
  auto v = run_process({kMeshctl, "--version"}, "");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, std::string("meshctl ") + meshd::kVersion + "\n");
  auto h = run_process({kMeshctl, "--help"}, "");
  EXPECT_EQ(h.exit_code, 0);
  for (const char* sub : {"genkey", "pubkey", "genpsk"})
    EXPECT_NE(h.out.find(sub), std::string::npos) << h.out;
  auto none = run_process({kMeshctl}, "");
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("genkey"), std::string::npos);  // shows what it can do
}

TEST(Meshctl, GenkeyPrintsAClampedKeyThatWgAccepts) {
  MESHD_REQUIRE(wg_available(), "wireguard-tools (wg) not installed");
  for (int i = 0; i < 30; ++i) {
    auto g = run_process({kMeshctl, "genkey"}, "");
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_EQ(g.err, "");
    ASSERT_TRUE(std::regex_match(g.out, kKeyLineRe)) << g.out;
    auto k = meshd::keys::PrivateKey::from_base64(g.out.substr(0, 44));
    ASSERT_TRUE(k);
    EXPECT_EQ(k->bytes()[0] & 7, 0);
    EXPECT_EQ(k->bytes()[31] & 0xC0, 0x40);
    auto ours = run_process({kMeshctl, "pubkey"}, g.out);
    auto theirs = run_process({kWg, "pubkey"}, g.out);
    EXPECT_EQ(ours.exit_code, 0);
    EXPECT_EQ(ours.out, theirs.out);
  }
}

TEST(Meshctl, GenpskPrintsA32ByteKey) {
  auto a = run_process({kMeshctl, "genpsk"}, ""), b = run_process({kMeshctl, "genpsk"}, "");
  EXPECT_EQ(a.exit_code, 0);
  EXPECT_TRUE(std::regex_match(a.out, kKeyLineRe)) << a.out;
  EXPECT_NE(a.out, b.out);
}

TEST(Meshctl, PubkeyMatchesWgForGoodInput) {
  MESHD_REQUIRE(wg_available(), "wireguard-tools (wg) not installed");
  for (int i = 0; i < 20; ++i) {
    std::string key = meshd::keys::PrivateKey::generate().to_base64_secret();
    expect_same_as_wg({"pubkey"}, key + "\n", "key+newline");
    expect_same_as_wg({"pubkey"}, key, "key without newline");
  }
  std::string key = meshd::keys::PrivateKey::generate().to_base64_secret();
  expect_same_as_wg({"pubkey"}, key + " \t\r\n\v\f\n", "trailing whitespace");
  expect_same_as_wg({"pubkey"}, key + std::string("\0\0\n", 3), "trailing NULs");
  expect_same_as_wg({"pubkey"}, std::string(43, 'A') + "=\n", "all-zero key");
}

TEST(Meshctl, PubkeyRefusesBadInputLikeWg) {
  MESHD_REQUIRE(wg_available(), "wireguard-tools (wg) not installed");
  std::string key = meshd::keys::PrivateKey::generate().to_base64_secret();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bad\n", "short garbage"},
      {"", "empty input"},
      {key.substr(0, 43) + "\n", "43 characters"},
      {key + "x\n", "trailing characters"},
      {key + "\n" + key + "\n", "two keys"},
      {" " + key + "\n", "leading space"},
      {key.substr(0, 42) + "B=\n", "non-canonical last character"},
      {key.substr(0, 10) + "-" + key.substr(11) + "\n", "URL-safe alphabet"},
      {key.substr(0, 10) + std::string(1, '\0') + key.substr(11) + "\n", "embedded NUL"},
      {std::string(64, 'a') + "\n", "hex key"},
      {key.substr(0, 43) + "A\n", "padding replaced"},
  };
  for (const auto& [input, label] : cases) expect_same_as_wg({"pubkey"}, input, label);
}

TEST(Meshctl, ExtraArgumentsPrintUsageLikeWg) {
  MESHD_REQUIRE(wg_available(), "wireguard-tools (wg) not installed");
  expect_same_as_wg({"genkey", "extra"}, "", "genkey extra");
  expect_same_as_wg({"pubkey", "extra"}, "", "pubkey extra");
  expect_same_as_wg({"genpsk", "extra"}, "", "genpsk extra");
}

TEST(Meshctl, GenkeyWarnsLikeWgWhenStdoutIsWorldReadable) {
  MESHD_REQUIRE(wg_available(), "wireguard-tools (wg) not installed");
  for (const char* cmd : {"genkey", "genpsk"}) {
    auto ours = run_process({kMeshctl, cmd}, "", {.stdout_mode = 0644});
    auto theirs = run_process({kWg, cmd}, "", {.stdout_mode = 0644});
    EXPECT_EQ(ours.exit_code, theirs.exit_code);
    EXPECT_EQ(ours.err, theirs.err);
    EXPECT_NE(ours.err.find("umask to 077"), std::string::npos);
    EXPECT_TRUE(std::regex_match(ours.out, kKeyLineRe));
    // Group-readable only is not "world accessible" for wg either.
    EXPECT_EQ(run_process({kMeshctl, cmd}, "", {.stdout_mode = 0640}).err, run_process({kWg, cmd}, "", {.stdout_mode = 0640}).err);
    EXPECT_EQ(run_process({kMeshctl, cmd}, "", {.stdout_mode = 0600}).err, "");
  }
}
