// Runs a program with given stdin bytes and captures stdout, stderr and the
// exit code: how the tests compare meshctl with wireguard-tools' `wg`.
// Files, not pipes, carry the streams, so no output size can deadlock, and
// stdout can be a regular file with a chosen mode (wg's umask warning).
#pragma once

#include "tests/support/temp_dir.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace meshd::test {

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

using meshd::testing::read_file;
using meshd::testing::TempDir;
using meshd::testing::write_file;

// `stdout_mode`: permissions of the file that receives stdout (0600 unless a
// test wants a world-readable one).
inline ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input,
                                 mode_t stdout_mode = 0600) {
  TempDir dir;
  const std::string in = dir.file("in"), out = dir.file("out"), err = dir.file("err");
  write_file(in, input);
  int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (out_fd < 0 || ::fchmod(out_fd, stdout_mode) != 0) throw std::runtime_error("open " + out);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_fd);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  ProcessResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

inline bool wg_available() { return ::access("/usr/bin/wg", X_OK) == 0; }
inline const std::string kWg = "/usr/bin/wg";
inline const std::string kMeshctl = std::string(MESHD_BIN_DIR) + "/meshctl";

}  // namespace meshd::test
