// Key files: what an operator sees on disk and what happens when the mode or
// the contents are wrong.
#include "keys/key_file.h"
#include "wg_tools.h"

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

using namespace meshd::keys;
using meshd::testing::read_file;
using meshd::testing::TempDir;
using meshd::testing::write_file;

namespace {

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  return out;
}

}  // namespace

TEST(KeyFile, WritesBase64AndNewlineWithMode0600EvenUnderPermissiveUmask) {
  TempDir dir;
  const std::string path = dir.file("private.key");
  PrivateKey k = PrivateKey::generate();
  mode_t old = ::umask(0);
  auto r = write_key_file(path, k);
  ::umask(old);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(read_file(path), k.to_base64_secret() + "\n");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"private.key"});  // no temp left
  auto back = load_private_key_file(path);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(*back == k);
}

TEST(KeyFile, WgReadsOurKeyFile) {
  MESHD_REQUIRE(meshd::test::wg_available(), "wireguard-tools (wg) not installed");
  TempDir dir;
  const std::string path = dir.file("wg.key");
  for (int i = 0; i < 20; ++i) {
    PrivateKey k = PrivateKey::generate();
    ASSERT_TRUE(write_key_file(path, k));
    auto r = meshd::test::run_process({"/bin/sh", "-c", meshd::test::kWg + " pubkey < " + path}, "");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, k.public_key().to_base64() + "\n");
  }
}

TEST(KeyFile, WeReadWgGenkeyFiles) {
  MESHD_REQUIRE(meshd::test::wg_available(), "wireguard-tools (wg) not installed");
  TempDir dir;
  const std::string path = dir.file("wg.key");
  auto r = meshd::test::run_process(
      {"/bin/sh", "-c",
       "umask 077; " + meshd::test::kWg + " genkey > " + path + " && " + meshd::test::kWg +
           " pubkey < " + path},
      "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto k = load_private_key_file(path);
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ(k->public_key().to_base64() + "\n", r.out);
}

TEST(KeyFile, ReplacesAnExistingFileWholeByRename) {
  TempDir dir;
  const std::string path = dir.file("private.key");
  const std::string old_text = std::string(500, 'x') + "\n";  // longer than a key
  write_file(path, old_text);
  ::chmod(path.c_str(), 0644);
  // A reader that opened the old file keeps a complete old file: the new one
  // is a different inode put in place by rename, never a partial overwrite.
  int reader = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);

  PrivateKey k = PrivateKey::generate();
  ASSERT_TRUE(write_key_file(path, k));
  EXPECT_EQ(read_file(path), k.to_base64_secret() + "\n");  // no tail of the old one
  EXPECT_EQ(mode_of(path), 0600u);                           // not the old 0644

  std::string seen(1000, '\0');
  ssize_t n = ::pread(reader, seen.data(), seen.size(), 0);
  ::close(reader);
  ASSERT_GE(n, 0);
  seen.resize(static_cast<std::size_t>(n));
  EXPECT_EQ(seen, old_text);
  EXPECT_EQ(entries(dir.path()).size(), 1u);
}

TEST(KeyFile, RefusesFilesReadableByOthersAndSaysHowToFix) {
  TempDir dir;
  const std::string path = dir.file("loose.key");
  PrivateKey k = PrivateKey::generate();
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0666}) {
    ASSERT_TRUE(write_key_file(path, k));
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = load_private_key_file(path);
    ASSERT_FALSE(r) << "mode " << std::oct << mode;
    EXPECT_NE(r.error().message.find("chmod 600 " + path), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find(k.to_base64_secret()), std::string::npos);
  }
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    EXPECT_TRUE(load_private_key_file(path)) << "mode " << std::oct << mode;
  }
}

TEST(KeyFile, RejectsBadContentsWithTheExpectedForm) {
  TempDir dir;
  const std::string path = dir.file("bad.key");
  const std::string key = PrivateKey::generate().to_base64_secret();
  for (const std::string& text :
       {std::string(""), std::string("\n"), key.substr(0, 43) + "\n", key + "x\n",
        key + "\n" + key + "\n", " " + key + "\n", std::string(64, 'a') + "\n",
        std::string("-----BEGIN PRIVATE KEY-----\n")}) {
    write_file(path, text);
    ::chmod(path.c_str(), 0600);
    auto r = load_private_key_file(path);
    ASSERT_FALSE(r) << "accepted: " << text;
    EXPECT_NE(r.error().message.find(path), std::string::npos);
    EXPECT_NE(r.error().message.find("44-character base64"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find(key.substr(0, 20)), std::string::npos);  // never echoed
  }
  // What `wg pubkey` tolerates after the key, we tolerate too.
  for (const std::string& text : {key, key + "\n", key + "\r\n", key + "  \t\n\n", key + '\0'}) {
    write_file(path, text);
    ::chmod(path.c_str(), 0600);
    EXPECT_TRUE(load_private_key_file(path));
  }
}

TEST(KeyFile, MissingFileAndDirectoryNameThePath) {
  TempDir dir;
  auto r = load_private_key_file(dir.file("absent.key"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(ENOENT));
  EXPECT_NE(r.error().message.find(dir.file("absent.key")), std::string::npos);

  auto w = write_key_file(dir.file("no/such/dir/k"), PrivateKey::generate());
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find(dir.file("no/such/dir")), std::string::npos);

  ::chmod(dir.path().c_str(), 0700);
  auto d = load_private_key_file(dir.path());  // a directory is not a key file
  EXPECT_FALSE(d);
}

TEST(KeyFile, PresharedAndIdentityKeysRoundTrip) {
  TempDir dir;
  PresharedKey psk = PresharedKey::generate();
  ASSERT_TRUE(write_key_file(dir.file("psk"), psk));
  auto psk2 = load_preshared_key_file(dir.file("psk"));
  ASSERT_TRUE(psk2);
  EXPECT_TRUE(*psk2 == psk);

  IdentitySecretKey id = IdentitySecretKey::generate();
  ASSERT_TRUE(write_identity_key_file(dir.file("identity"), id));
  EXPECT_EQ(mode_of(dir.file("identity")), 0600u);
  auto id2 = load_identity_key_file(dir.file("identity"));
  ASSERT_TRUE(id2) << id2.error().message;
  EXPECT_EQ(id2->public_key(), id.public_key());
}
