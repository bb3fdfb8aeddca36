// Bootstrap tokens: the form operators paste, what members store, and how a
// presented token is checked.
#include "keys/token.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <regex>
#include <unordered_set>

using namespace meshd::keys;

namespace {
const std::regex kTokenRe("^[a-z0-9]{6}\\.[a-z0-9]{16}$");

std::string hex(const std::uint8_t* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}
}  // namespace

TEST(Token, TenThousandGeneratedAreWellFormedAndUnique) {
  std::unordered_set<std::string> seen, ids;
  for (int i = 0; i < 10000; ++i) {
    Token t = Token::generate();
    std::string s = t.reveal();
    ASSERT_TRUE(std::regex_match(s, kTokenRe)) << s;
    EXPECT_EQ(t.id(), s.substr(0, 6));
    seen.insert(s);
    ids.insert(t.id());
  }
  EXPECT_EQ(seen.size(), 10000u);
  // 36^6 ids: a birthday collision among 10000 has probability ~2%, so allow
  // a few; many would mean a weak generator.
  EXPECT_GE(ids.size(), 9995u);
}

TEST(Token, CharactersAreUniform) {
  // Chi-square over 220000 characters, 35 degrees of freedom. A modulo-biased
  // generator (256 % 36 = 4) lands near 250; a uniform one rarely above 70.
  // The threshold 110 fails a uniform generator with probability < 1e-9.
  std::array<long, 36> counts{};
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  long total = 0;
  for (int i = 0; i < 10000; ++i) {
    for (char c : Token::generate().reveal()) {
      if (c == '.') continue;
      counts[alphabet.find(c)]++;
      ++total;
    }
  }
  double expected = static_cast<double>(total) / 36, chi2 = 0;
  for (long c : counts) chi2 += (c - expected) * (c - expected) / expected;
  std::printf("token character chi-square: %.1f (35 dof)\n", chi2);
  EXPECT_LT(chi2, 110.0);
}

TEST(Token, ParseAcceptsTheFormAndRoundTrips) {
  auto t = Token::parse("abc123.0123456789abcdef");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->id(), "abc123");
  EXPECT_EQ(t->reveal(), "abc123.0123456789abcdef");
}

TEST(Token, ParseErrorsStateTheExpectedForm) {
  for (const std::string& bad :
       {std::string(""), std::string("abc123"), std::string("abc123.0123456789abcde"),
        std::string("abc123.0123456789abcdef0"), std::string("ABC123.0123456789abcdef"),
        std::string("abc12.30123456789abcdef"), std::string("abc123-0123456789abcdef"),
        std::string(" abc123.0123456789abcdef"), std::string("abc123.0123456789abcdef\n"),
        std::string("abc123.0123456789abcd_f"), std::string("abc123.0123456789abcd\0f", 23),
        std::string("abc123..123456789abcdef")}) {
    auto t = Token::parse(bad);
    ASSERT_FALSE(t) << "accepted: " << bad;
    EXPECT_NE(t.error().message.find("[a-z0-9]{6}.[a-z0-9]{16}"), std::string::npos)
        << t.error().message;
    if (bad.size() > 10) {
      EXPECT_EQ(t.error().message.find(bad.substr(7, 10)), std::string::npos);  // no echo
    }
  }
}

TEST(Token, DerivedKeyIsKeyedBlake2bAndStable) {
  auto t = Token::parse("abcdef.0123456789abcdef");
  ASSERT_TRUE(t);
  TokenKey k = derive_token_key(*t);
  // Independently computed: Python
  // hashlib.blake2b(b"abcdef.0123456789abcdef", key=b"meshd/token-key/v1", digest_size=32)
  EXPECT_EQ(hex(k.bytes().data(), k.bytes().size()),
            "13a3137bc0232ec7556284fff68ba8fcfa1a9fe3ee1840626d38cc91195138a6");
  // Same token, same key; the verifier is a different value from the key.
  EXPECT_TRUE(derive_token_key(*Token::parse("abcdef.0123456789abcdef")) == k);
  TokenVerifier v = token_verifier(k);
  EXPECT_NE(hex(v.data(), v.size()), hex(k.bytes().data(), k.bytes().size()));
  EXPECT_EQ(token_verifier(derive_token_key(*t)), v);
}

TEST(Token, VerifyAcceptsOnlyTheSameToken) {
  Token t = Token::generate();
  TokenVerifier stored = token_verifier(derive_token_key(t));
  EXPECT_TRUE(verify_token(*Token::parse(t.reveal()), stored));

  std::string s = t.reveal();
  std::string other_secret = s;
  other_secret.back() = other_secret.back() == 'a' ? 'b' : 'a';
  EXPECT_FALSE(verify_token(*Token::parse(other_secret), stored));
  std::string other_id = s;
  other_id[0] = other_id[0] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(verify_token(*Token::parse(other_id), stored));
  EXPECT_FALSE(verify_token(Token::generate(), stored));
}

TEST(Token, VerifierStorageFormRoundTrips) {
  TokenVerifier v = token_verifier(derive_token_key(Token::generate()));
  auto back = token_verifier_from_base64(token_verifier_to_base64(v));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, v);
  EXPECT_FALSE(token_verifier_from_base64("abc"));
}

TEST(Token, MovedFromTokenHoldsNoSecret) {
  Token t = Token::generate();
  std::string s = t.reveal();
  Token u = std::move(t);
  EXPECT_EQ(u.reveal(), s);
  EXPECT_EQ(t.reveal().substr(7), std::string(16, '\0'));  // NOLINT(bugprone-use-after-move)
}
