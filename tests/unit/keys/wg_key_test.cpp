// WireGuard keys: our base64 and X25519 must agree with wireguard-tools byte
// for byte, or a node would install a peer key its neighbours never had.
#include "keys/base64.h"
#include "keys/wg_key.h"
#include "wg_tools.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"
#include <sodium.h>

#include <cctype>
#include <cstdio>
#include <random>
#include <regex>
#include <sstream>

using namespace meshd::keys;
using meshd::test::kWg;
using meshd::test::run_process;

namespace {

const std::regex kKeyRe("^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$");

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Runs `wg pubkey` once per input line inside one shell; prints the public
// key, or "ERR" when wg refuses the line.
std::vector<std::string> wg_pubkey_each(const std::vector<std::string>& inputs) {
  std::string text;
  for (const auto& s : inputs) text += s + "\n";
  auto r = run_process({"/bin/sh", "-c",
                        "while IFS= read -r k; do printf '%s' \"$k\" | " + kWg +
                            " pubkey 2>/dev/null || echo ERR; done"},
                       text);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return lines(r.out);
}

// The base64 character whose value is one more than c's (for c whose value
// has its lowest bit clear).
char alphabet_next(char c) {
  const std::string a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return a[a.find(c) + 1];
}

// Hex keys (the UAPI's form): compared with printf's %02x and strtoul for
// every byte value at every position, in both cases.
TEST(KeyHex, EveryByteAtEveryPositionMatchesPrintfAndRoundTrips) {
  for (int v = 0; v < 256; ++v) {
    KeyBytes k{};
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(v + 7 * i);
    std::string want;
    char two[3];
    for (std::uint8_t b : k) {
      std::snprintf(two, sizeof two, "%02x", b);
      want += two;
    }
    const std::string hex = key_to_hex(k);
    ASSERT_EQ(hex, want) << v;
    EXPECT_EQ(key_from_hex(hex).value(), k) << v;
    std::string upper = hex;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(key_from_hex(upper).value(), k) << v;  // other implementations may send it
  }
}

TEST(KeyHex, RefusesWrongLengthsAndEveryNonHexByteWithoutQuotingTheText) {
  EXPECT_FALSE(key_from_hex(""));
  EXPECT_FALSE(key_from_hex(std::string(63, 'a')));
  EXPECT_FALSE(key_from_hex(std::string(66, 'a')));
  for (int c = 0; c < 256; ++c) {
    if (std::isxdigit(c)) continue;
    for (std::size_t pos : {std::size_t{0}, std::size_t{31}, std::size_t{63}}) {
      std::string text(64, 'b');
      text[pos] = static_cast<char>(c);
      auto r = key_from_hex(text);
      ASSERT_FALSE(r) << c << " at " << pos;
      EXPECT_TRUE(r.error().is(EINVAL));
      EXPECT_EQ(r.error().message.find("bbbb"), std::string::npos) << r.error().message;
    }
  }
}

}  // namespace

TEST(WgKey, GeneratedKeysAreClampedLikeWgGenkey) {
  for (int i = 0; i < 1000; ++i) {
    PrivateKey k = PrivateKey::generate();
    EXPECT_EQ(k.bytes()[0] & 7, 0);
    EXPECT_EQ(k.bytes()[31] & 0xC0, 0x40);
    EXPECT_TRUE(std::regex_match(k.to_base64_secret(), kKeyRe));
  }
}

TEST(WgKey, PublicKeyMatchesWgPubkeyFor300Keys) {
  MESHD_REQUIRE(meshd::test::wg_available(), "wireguard-tools (wg) not installed");
  std::vector<std::string> privs, ours;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 300; ++i) {
    if (i % 3 == 2) {
      // Unclamped random bytes: `wg pubkey` clamps internally and so must we.
      KeyBytes b;
      for (auto& x : b) x = static_cast<std::uint8_t>(rng());
      PrivateKey k(b);
      privs.push_back(k.to_base64_secret());
      ours.push_back(k.public_key().to_base64());
    } else {
      PrivateKey k = PrivateKey::generate();
      privs.push_back(k.to_base64_secret());
      ours.push_back(k.public_key().to_base64());
    }
  }
  auto theirs = wg_pubkey_each(privs);
  ASSERT_EQ(theirs.size(), ours.size());
  for (std::size_t i = 0; i < ours.size(); ++i) EXPECT_EQ(ours[i], theirs[i]) << "key #" << i;
}

TEST(WgKey, ParsesWgGenkeyOutputAndDerivesWgPubkey) {
  MESHD_REQUIRE(meshd::test::wg_available(), "wireguard-tools (wg) not installed");
  auto r = run_process({"/bin/sh", "-c",
                        "i=0; while [ $i -lt 300 ]; do k=$(" + kWg + " genkey); echo \"$k $(echo \"$k\" | " +
                            kWg + " pubkey)\"; i=$((i+1)); done"},
                       "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ls = lines(r.out);
  ASSERT_EQ(ls.size(), 300u);
  for (const auto& l : ls) {
    auto sp = l.find(' ');
    ASSERT_NE(sp, std::string::npos);
    std::string priv = l.substr(0, sp), pub = l.substr(sp + 1);
    auto k = PrivateKey::from_base64(priv);
    ASSERT_TRUE(k) << k.error().message;
    EXPECT_EQ(k->to_base64_secret(), priv);  // round trip, byte for byte
    EXPECT_EQ(k->public_key().to_base64(), pub);
    auto p = PublicKey::from_base64(pub);
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, k->public_key());
  }
}

// Mutations of a valid key, judged by `wg pubkey` and by us: same verdicts.
TEST(WgKey, AcceptsExactlyWhatWgAccepts) {
  MESHD_REQUIRE(meshd::test::wg_available(), "wireguard-tools (wg) not installed");
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string odd = "=-_.!~*\"'\\ \t@[]`{}\x7f\x80\xff";
  std::mt19937_64 rng(7);
  std::vector<std::string> cases;
  const std::string base = PrivateKey::generate().to_base64_secret();
  // Every character at the last data position: only 16 of 64 are canonical.
  for (char c : alphabet) cases.push_back(base.substr(0, 42) + c + "=");
  for (char c : odd) cases.push_back(base.substr(0, 42) + c + "=");
  // Random substitutions anywhere, including the padding position.
  for (int i = 0; i < 200; ++i) {
    std::string s = base;
    std::string pool = (i % 2) ? alphabet : odd;
    s[rng() % s.size()] = pool[rng() % pool.size()];
    cases.push_back(s);
  }
  cases.push_back(base.substr(0, 43));                   // no padding
  cases.push_back(base.substr(0, 43) + "A");             // padding replaced
  cases.push_back(base.substr(0, 42) + "==");            // double padding
  cases.push_back(base.substr(0, 40) + "AAA=");          // shorter last group
  cases.push_back("A" + base);                            // 45 characters
  cases.push_back(std::string(43, 'A') + "=");           // all-zero key
  cases.push_back(std::string(43, '/') + "=");           // non-canonical max
  auto verdicts = wg_pubkey_each(cases);
  ASSERT_EQ(verdicts.size(), cases.size());
  int accepted = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    bool wg_ok = verdicts[i] != "ERR";
    auto ours = key_from_base64(cases[i]);
    EXPECT_EQ(ours.has_value(), wg_ok) << "input: " << cases[i];
    if (wg_ok && ours) {
      ++accepted;
      EXPECT_EQ(PrivateKey(*ours).public_key().to_base64(), verdicts[i]);
      EXPECT_EQ(key_to_base64(*ours), cases[i]);  // anything accepted is canonical
    }
  }
  EXPECT_GT(accepted, 20);  // the sample did exercise the accepting side
}

TEST(WgKey, Base64EdgeCases) {
  const std::string good = PrivateKey::generate().to_base64_secret();
  EXPECT_TRUE(key_from_base64(good));
  EXPECT_FALSE(key_from_base64(""));
  EXPECT_FALSE(key_from_base64(good.substr(0, 43)));              // missing '='
  EXPECT_FALSE(key_from_base64(good + "="));                      // too long
  EXPECT_FALSE(key_from_base64(good.substr(0, 42) + "B="));       // non-canonical last char
  EXPECT_TRUE(key_from_base64(good.substr(0, 42) + "A="));          // canonical (low bits zero)
  EXPECT_FALSE(key_from_base64(std::string(1, '-') + good.substr(1)));  // URL-safe alphabet
  EXPECT_FALSE(key_from_base64(std::string(1, '_') + good.substr(1)));
  EXPECT_FALSE(key_from_base64(good.substr(0, 10) + "*" + good.substr(11)));  // bad char
  EXPECT_FALSE(key_from_base64(good.substr(0, 10) + std::string(1, '\0') + good.substr(11)));
  EXPECT_FALSE(key_from_base64(" " + good.substr(1)));
  EXPECT_FALSE(key_from_base64(good.substr(0, 43) + "\n"));
  // Hex is another valid WireGuard key form, but not this one.
  EXPECT_FALSE(key_from_base64(std::string(64, 'a')));
}

TEST(WgKey, ParseErrorNamesTheFormAndNeverEchoesTheInput) {
  const std::string secretish = PrivateKey::generate().to_base64_secret().substr(0, 40) + "!!!=";
  auto r = PrivateKey::from_base64(secretish);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("44 characters"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("base64"), std::string::npos);
  EXPECT_EQ(r.error().message.find(secretish.substr(0, 20)), std::string::npos);
}

TEST(WgKey, KnownVectorFromRfc7748) {
  // RFC 7748 section 6.1: Alice's private key and public key.
  KeyBytes priv{0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1,
                0x72, 0x51, 0xb2, 0x66, 0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0,
                0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a};
  KeyBytes pub{0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d,
               0xdc, 0xb4, 0x3e, 0xf7, 0x5a, 0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38,
               0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a};
  EXPECT_EQ(PrivateKey(priv).public_key(), PublicKey(pub));
}

TEST(WgKey, SecretsMoveAndCloneAndCompare) {
  PrivateKey a = PrivateKey::generate();
  PrivateKey b = a.clone();
  EXPECT_TRUE(a == b);
  PrivateKey c = std::move(a);
  EXPECT_TRUE(c == b);
  EXPECT_TRUE(a.is_zero());  // NOLINT(bugprone-use-after-move): moved-from is wiped
  EXPECT_FALSE(c.is_zero());
  PresharedKey p = PresharedKey::generate();
  auto p2 = PresharedKey::from_base64(p.to_base64_secret());
  ASSERT_TRUE(p2);
  EXPECT_TRUE(*p2 == p);
  EXPECT_FALSE(PresharedKey::generate() == p);
}

TEST(WgKey, ShortIdIsAPrefixOfThePublicKey) {
  PublicKey p = PrivateKey::generate().public_key();
  std::string id = p.short_id();
  EXPECT_EQ(id, p.to_base64().substr(0, 8) + "\u2026");
  EXPECT_TRUE(PublicKey().is_zero());
  EXPECT_FALSE(p.is_zero());
}


// libsodium 1.0.18's decoder takes bytes 0x80-0xff for base64 characters;
// wg does not, and neither may we (else two texts name one key).
TEST(Base64, RejectsEveryByteOutsideTheAlphabet) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string good = PrivateKey::generate().to_base64_secret();
  for (int c = 0; c < 256; ++c) {
    std::string s = good;
    s[5] = static_cast<char>(c);
    bool in_alphabet = alphabet.find(static_cast<char>(c)) != std::string::npos;
    EXPECT_EQ(key_from_base64(s).has_value(), in_alphabet) << "byte " << c;
  }
}

TEST(Base64, ExactDecodeForEverySizeRoundTrips) {
  std::mt19937_64 rng(3);
  for (std::size_t n = 0; n <= 70; ++n) {
    std::vector<std::uint8_t> in(n), out(n);
    for (auto& b : in) b = static_cast<std::uint8_t>(rng());
    std::string text = base64_encode(in);
    EXPECT_EQ(text.size(), base64_length(n));
    ASSERT_TRUE(base64_decode_exact(text, out)) << n;
    EXPECT_EQ(out, in);
    if (n % 3 != 0) {
      // Set an unused low bit of the last data character: same bytes, other text.
      std::string bent = text;
      std::size_t last = text.find('=') - 1;
      bent[last] = alphabet_next(bent[last]);
      EXPECT_FALSE(base64_decode_exact(bent, out)) << n << " " << bent;
    }
    if (n > 0) {
      EXPECT_FALSE(base64_decode_exact(text.substr(0, text.size() - 1), out));
      std::vector<std::uint8_t> shorter(n - 1);
      EXPECT_FALSE(base64_decode_exact(text, shorter));
    }
  }
}
