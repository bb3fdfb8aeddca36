// Helpers shared by the store tests: a private temporary directory, file
// bytes, and running the helper program built next to the tests.
#pragma once

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace meshd::store::test {

using meshd::testing::file_mode;
using meshd::testing::TempDir;
using meshd::testing::read_file;
using meshd::testing::wait_exit;
using meshd::testing::write_file;

inline std::string helper_path() { return std::string(MESHD_BIN_DIR) + "/store_test_helper"; }

// Starts the helper with `args`; its stdout goes to `stdout_fd` (if >= 0) and
// `fd3` (if >= 0) becomes its fd 3. Reap it with wait_exit().
inline pid_t spawn_helper(const std::vector<std::string>& args, int stdout_fd, int fd3 = -1) {
  std::vector<std::string> all{helper_path()};
  all.insert(all.end(), args.begin(), args.end());
  meshd::testing::SpawnOptions o;
  if (stdout_fd >= 0) o.fds.push_back({stdout_fd, 1});
  if (fd3 >= 0) o.fds.push_back({fd3, 3});
  return meshd::testing::spawn(all, o);
}

}  // namespace meshd::store::test
