#include "common/secret_file.h"

#include "tests/support/prerequisite.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace meshd {
namespace {

using testing::TempDir;

constexpr const char* kSecret = "abc123.0123456789abcdef";

std::string secret_file(const TempDir& dir, const std::string& content, mode_t mode = 0600) {
  const std::string path = dir.file("token");
  testing::write_file(path, content);
  ::chmod(path.c_str(), mode);
  return path;
}

// Every refusal names the path and never quotes the content.
void expect_refused(const Result<std::string>& r, int err, const std::string& path,
                    const std::string& says) {
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(err)) << r.error().value() << " " << r.error().message;
  EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("abc123"), std::string::npos) << r.error().message;
}

TEST(SecretFile, ReadsTheContentWithoutOneTrailingNewline) {
  TempDir dir;
  const std::pair<std::string, std::string> cases[] = {
      {std::string(kSecret) + "\n", kSecret},
      {std::string(kSecret) + "\r\n", kSecret},
      {kSecret, kSecret},
      {std::string(kSecret) + "\n\n", std::string(kSecret) + "\n"},  // only one
      {" x y \n", " x y "},                                            // nothing else trimmed
      {"", ""},
  };
  for (const auto& [content, expected] : cases) {
    SCOPED_TRACE(content);
    auto r = read_secret_file(secret_file(dir, content));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, expected);
  }
  // 0400 is private too.
  auto ro = read_secret_file(secret_file(dir, kSecret, 0400));
  ASSERT_TRUE(ro) << ro.error().message;
  EXPECT_EQ(*ro, kSecret);
}

TEST(SecretFile, RefusesGroupOrOtherBitsNamingChmod) {
  TempDir dir;
  for (mode_t mode : {0640, 0604, 0620, 0602, 0610, 0666}) {
    SCOPED_TRACE(mode);
    const auto path = secret_file(dir, kSecret, mode);
    expect_refused(read_secret_file(path), EPERM, path, "run `chmod 600 " + path + "`");
  }
}

TEST(SecretFile, RefusesAnotherUsersFileNamingChown) {
  MESHD_REQUIRE(::geteuid() == 0, "root, to give the file to another uid");
  TempDir dir;
  const auto path = secret_file(dir, kSecret);
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  expect_refused(read_secret_file(path), EPERM, path, "owned by uid 65534");
  expect_refused(read_secret_file(path), EPERM, path, "chown 0 " + path);
}

TEST(SecretFile, RefusesALinkADirectoryAFifoAndAMissingFile) {
  TempDir dir;
  const auto target = secret_file(dir, kSecret);
  const auto link = dir.file("link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  expect_refused(read_secret_file(link), ELOOP, link, "symbolic link");

  const auto sub = dir.file("dir");
  ASSERT_EQ(::mkdir(sub.c_str(), 0700), 0);
  expect_refused(read_secret_file(sub), EINVAL, sub, "not a regular file");

  // A FIFO must be refused, not block the daemon's start waiting for a writer.
  const auto fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_refused(read_secret_file(fifo), EINVAL, fifo, "not a regular file");

  const auto missing = dir.file("missing");
  expect_refused(read_secret_file(missing), ENOENT, missing, "open secret file");
}

TEST(SecretFile, HoldsAtMost4096Bytes) {
  TempDir dir;
  const std::string full(kMaxSecretFileBytes, 'a');
  auto ok = read_secret_file(secret_file(dir, full));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ok, full);
  const auto path = secret_file(dir, "abc123" + full);
  expect_refused(read_secret_file(path), EFBIG, path, "more than 4096");
}

}  // namespace
}  // namespace meshd
