// Formatting keys (as every log line does through spdlog/fmt) shows only a
// prefix of the public half; secrets never appear.
#include "keys/format.h"

#include <gtest/gtest.h>

using namespace meshd::keys;

TEST(KeyFormat, PrivateKeyPrintsOnlyItsPublicPrefix) {
  for (int i = 0; i < 100; ++i) {
    PrivateKey k = PrivateKey::generate();
    std::string out = fmt::format("peer {} up", k);
    std::string secret = k.to_base64_secret();
    EXPECT_EQ(out.find(secret.substr(0, 6)), std::string::npos) << out;
    EXPECT_NE(out.find(k.public_key().short_id()), std::string::npos) << out;
    EXPECT_EQ(out.find(k.public_key().to_base64()), std::string::npos);  // prefix only
  }
}

TEST(KeyFormat, PublicKeysPrintShortIds) {
  PublicKey p = PrivateKey::generate().public_key();
  EXPECT_EQ(fmt::format("{}", p), p.short_id());
  IdentitySecretKey id = IdentitySecretKey::generate();
  EXPECT_EQ(fmt::format("{}", id.public_key()), id.public_key().short_id());
}

TEST(KeyFormat, SecretsWithoutPublicHalfPrintPlaceholders) {
  PresharedKey psk = PresharedKey::generate();
  std::string out = fmt::format("{}", psk);
  EXPECT_EQ(out.find(psk.to_base64_secret().substr(0, 6)), std::string::npos);
  EXPECT_EQ(out, "(preshared key)");
  TokenKey tk = derive_token_key(Token::generate());
  EXPECT_EQ(fmt::format("{}", tk), "(token key)");
}

TEST(KeyFormat, IdentitySecretPrintsItsPublicPrefix) {
  IdentitySecretKey id = IdentitySecretKey::generate();
  std::string out = fmt::format("{}", id);
  EXPECT_EQ(out.find(id.to_base64_secret().substr(0, 6)), std::string::npos) << out;
  EXPECT_NE(out.find(id.public_key().short_id()), std::string::npos);
}

TEST(KeyFormat, TokenPrintsOnlyItsId) {
  for (int i = 0; i < 100; ++i) {
    Token t = Token::generate();
    std::string out = fmt::format("joined with {}", t);
    EXPECT_EQ(out, "joined with token " + t.id());
    EXPECT_EQ(out.find(t.reveal().substr(7, 6)), std::string::npos);
  }
}

TEST(KeyFormat, FormatSpecsAreRefused) {
  // "{:>60}" or "{:.44}" must not become a way around the redaction.
  PrivateKey k = PrivateKey::generate();
  EXPECT_THROW((void)fmt::format(fmt::runtime("{:>60}"), k), fmt::format_error);
}
