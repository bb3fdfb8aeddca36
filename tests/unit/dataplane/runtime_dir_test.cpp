// The runtime directory: refused unless it is a directory of ours that nobody
// else can write; created with its mode whatever the umask.
#include "meshd/daemon/runtime_dir.h"

#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace meshd::daemon {
namespace {

using meshd::testing::file_mode;
using meshd::testing::TempDir;
using meshd::testing::write_file;

// Sets the umask for one scope.
struct Umask {
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
  mode_t old;
};

TEST(RuntimeDir, CreatedWithItsParentsWhateverTheUmask) {
  TempDir t;
  const std::string path = t.file("a/b/run");
  Umask u(077);
  auto dir = RuntimeDir::open(path);
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(file_mode(path), 0755u);
}

TEST(RuntimeDir, RefusesASymlinkAFileAndDirectoriesOthersCanWrite) {
  TempDir t;
  std::filesystem::create_directory(t.file("real"));
  std::filesystem::create_directory_symlink(t.file("real"), t.file("link"));
  auto r = RuntimeDir::open(t.file("link"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a directory"), std::string::npos) << r.error().message;
  write_file(t.file("file"), "");
  EXPECT_FALSE(RuntimeDir::open(t.file("file")));

  for (mode_t m : {0775u, 0757u, 0777u, 0770u}) {
    std::filesystem::create_directory(t.file("open"));
    ASSERT_EQ(::chmod(t.file("open").c_str(), m), 0);
    auto o = RuntimeDir::open(t.file("open"));
    ASSERT_FALSE(o) << std::oct << m;
    char want[8];
    std::snprintf(want, sizeof want, "%04o", static_cast<unsigned>(m));
    EXPECT_NE(o.error().message.find(std::string("has mode ") + want), std::string::npos)
        << o.error().message;
    std::filesystem::remove(t.file("open"));
  }
  std::filesystem::create_directory(t.file("ok"));
  ASSERT_EQ(::chmod(t.file("ok").c_str(), 0700), 0);
  EXPECT_TRUE(RuntimeDir::open(t.file("ok")));
}

// A directory owned by another uid needs root to make: that case is in
// tests/integration/dataplane (DataplaneCommands), against the real meshd.

}  // namespace
}  // namespace meshd::daemon
