// Helpers shared by the store tests: a private temporary directory, file
// bytes, and running the helper program built next to the tests.
#pragma once

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
using meshd::testing::write_file;

inline std::string helper_path() { return std::string(MESHD_BIN_DIR) + "/store_test_helper"; }

// Starts the helper with `args`; its stdout goes to `stdout_fd` (if >= 0) and
// `fd3` (if >= 0) becomes its fd 3.
inline pid_t spawn_helper(const std::vector<std::string>& args, int stdout_fd, int fd3 = -1) {
  std::vector<std::string> all{helper_path()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stdout_fd, 1);
  if (fd3 >= 0) posix_spawn_file_actions_adddup2(&fa, fd3, 3);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("spawn " + all[0] + " failed: " + std::to_string(rc));
  return pid;
}

// Exit status, or 128 + signal.
inline int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace meshd::store::test
