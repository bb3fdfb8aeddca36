// The tests' one way to run a program: posix_spawn with chosen descriptors
// and, optionally, exactly the environment given (CNI plugins are driven by
// their environment), then a wait that reports the exit status. run_process()
// feeds stdin and collects stdout and stderr through files, not pipes, so no
// output size can deadlock, and stdout can be a regular file with a chosen
// mode (wg's umask warning). No shell: nothing to quote.
#pragma once

#include "tests/support/temp_dir.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace meshd::testing {

struct SpawnOptions {
  // When set: the child's whole environment, plus a PATH when it has none.
  // Unset: the child inherits the test's environment.
  std::optional<std::map<std::string, std::string>> env;
  // Descriptors of the test that become the child's (source, child number),
  // e.g. {{pipe_w, 1}} for stdout, {{fd, 3}} for an inherited fd 3.
  std::vector<std::pair<int, int>> fds;
  // Files opened for the child's stdin / stdout / stderr ("" = inherited).
  std::string stdin_path, stdout_path, stderr_path;
};

// Starts argv[0] (a path, not searched in PATH). Throws when it cannot.
inline pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& o = {}) {
  if (argv.empty()) throw std::runtime_error("spawn: no program");
  std::vector<std::string> args_s = argv, env_s;
  std::vector<char*> args, envp;
  for (auto& a : args_s) args.push_back(a.data());
  args.push_back(nullptr);
  if (o.env) {
    if (!o.env->contains("PATH")) env_s.push_back("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
    for (const auto& [k, v] : *o.env) env_s.push_back(k + "=" + v);
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!o.stdin_path.empty()) posix_spawn_file_actions_addopen(&fa, 0, o.stdin_path.c_str(), O_RDONLY, 0);
  if (!o.stdout_path.empty())
    posix_spawn_file_actions_addopen(&fa, 1, o.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (!o.stderr_path.empty())
    posix_spawn_file_actions_addopen(&fa, 2, o.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  for (const auto& [from, to] : o.fds) posix_spawn_file_actions_adddup2(&fa, from, to);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), o.env ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

// Reaps `pid`: its exit status, or 128 + the signal that ended it.
inline int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error("waitpid " + std::to_string(pid) + ": " + std::strerror(errno));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;  // empty when stderr was left to the test's own
};

struct RunOptions {
  std::optional<std::map<std::string, std::string>> env;  // as SpawnOptions::env
  mode_t stdout_mode = 0600;   // permissions of the file that receives stdout
  bool capture_stderr = true;  // false: the child writes to the test's stderr
};

// Runs argv with `input` on stdin until it exits; collects stdout (and stderr).
inline ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input,
                                 const RunOptions& o = {}) {
  TempDir dir("meshd-run");
  const std::string in = dir.file("in"), out = dir.file("out"), err = dir.file("err");
  write_file(in, input);
  int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out_fd < 0 || ::fchmod(out_fd, o.stdout_mode) != 0) {
    if (out_fd >= 0) ::close(out_fd);
    throw std::runtime_error("open " + out);
  }
  SpawnOptions so;
  so.env = o.env;
  so.stdin_path = in;
  so.fds = {{out_fd, 1}};
  if (o.capture_stderr) so.stderr_path = err;
  pid_t pid = -1;
  try {
    pid = spawn(argv, so);
  } catch (...) {
    ::close(out_fd);
    throw;
  }
  ::close(out_fd);
  ProcessResult r;
  r.exit_code = wait_exit(pid);
  r.out = read_file(out);
  if (o.capture_stderr) r.err = read_file(err);
  return r;
}

}  // namespace meshd::testing
