// meshd's runtime directory (the API socket, the userspace implementation's
// logs): opened once, checked, and then used only through its descriptor, so
// a path swapped for a symlink afterwards cannot redirect a write.
#pragma once

#include "common/result.h"
#include "common/unique_fd.h"

#include <sys/types.h>

#include <string>
#include <string_view>

namespace meshd::daemon {

class RuntimeDir {
 public:
  // Creates `path` (mode 0755, set explicitly rather than left to the umask:
  // the status file in it is for every local user to read) and its missing
  // parents, then opens it with O_NOFOLLOW and refuses it unless it is a
  // directory owned by this process's effective uid that neither group nor
  // others can write: anyone who can write there can replace what meshd
  // publishes. The error names the path, the owner or
  // mode found, and what to do.
  static Result<RuntimeDir> open(const std::string& path);

  RuntimeDir(RuntimeDir&&) noexcept = default;
  RuntimeDir& operator=(RuntimeDir&&) noexcept = default;

  const std::string& path() const { return path_; }

 private:
  RuntimeDir(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  UniqueFd fd_;
};

}  // namespace meshd::daemon
