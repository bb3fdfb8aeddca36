// The runtime directory: refused unless it is a directory of ours that nobody
// else can write; files in it replaced through the checked descriptor with
// the mode asked for, whatever the umask, never through a planted symlink.
#include "meshd/daemon/runtime_dir.h"

#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace meshd::daemon {
namespace {

using meshd::testing::file_mode;
using meshd::testing::read_file;
using meshd::testing::TempDir;
using meshd::testing::write_file;

// Sets the umask for one scope.
struct Umask {
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
  mode_t old;
};

TEST(RuntimeDir, CreatedWithItsParentsAndFilesGetTheirModeWhateverTheUmask) {
  TempDir t;
  const std::string path = t.file("a/b/run");
  Umask u(077);
  auto dir = RuntimeDir::open(path);
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(file_mode(path), 0755u);
  ASSERT_TRUE(dir->replace_file("status.json", "one\n", 0644));
  EXPECT_EQ(file_mode(path + "/status.json"), 0644u);
  EXPECT_EQ(read_file(path + "/status.json"), "one\n");
  ASSERT_TRUE(dir->replace_file("status.json", "two\n", 0644));
  EXPECT_EQ(read_file(path + "/status.json"), "two\n");
  // No temporary file is left behind.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  EXPECT_FALSE(dir->replace_file("../escape", "x", 0644));
  EXPECT_FALSE(dir->replace_file("", "x", 0644));
}

TEST(RuntimeDir, ASymlinkPlantedAtTheFileIsReplacedNotFollowed) {
  TempDir t;
  auto dir = RuntimeDir::open(t.file("run"));
  ASSERT_TRUE(dir) << dir.error().message;
  write_file(t.file("victim"), "precious\n");
  std::filesystem::create_symlink(t.file("victim"), t.file("run/status.json"));
  ASSERT_TRUE(dir->replace_file("status.json", "status\n", 0644));
  EXPECT_EQ(read_file(t.file("victim")), "precious\n");
  EXPECT_FALSE(std::filesystem::is_symlink(t.file("run/status.json")));
  EXPECT_EQ(read_file(t.file("run/status.json")), "status\n");
}

TEST(RuntimeDir, WritesGoWhereTheCheckedDirectoryIsEvenIfThePathIsSwapped) {
  TempDir t;
  auto dir = RuntimeDir::open(t.file("run"));
  ASSERT_TRUE(dir) << dir.error().message;
  std::filesystem::rename(t.file("run"), t.file("moved"));
  std::filesystem::create_directory(t.file("elsewhere"));
  std::filesystem::create_directory_symlink(t.file("elsewhere"), t.file("run"));
  ASSERT_TRUE(dir->replace_file("status.json", "x\n", 0644));
  EXPECT_EQ(read_file(t.file("moved/status.json")), "x\n");
  EXPECT_FALSE(std::filesystem::exists(t.file("elsewhere/status.json")));
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
