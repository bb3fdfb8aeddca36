#include "meshd/daemon/runtime_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace meshd::daemon {

namespace {

std::string octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

}  // namespace

Result<RuntimeDir> RuntimeDir::open(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return Error::invalid("runtime directory: [state] runtime_dir is empty");
  fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  bool created = ::mkdir(path.c_str(), 0755) == 0;
  if (!created && errno != EEXIST) return fail(errno, "create runtime directory " + path);
  // O_NOFOLLOW: a symlink in place of the directory is refused (ELOOP), not
  // followed to wherever it points.
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP || e == ENOTDIR)
      return fail(e, "open runtime directory " + path +
                         ": it is not a directory (a symlink or a file); remove it or set "
                         "[state] runtime_dir to a directory meshd creates");
    return fail(e, "open runtime directory " + path);
  }
  RuntimeDir dir(path, fd);
  // The mode we mean, not what the umask left of it; an existing directory
  // keeps the mode its owner chose, within the checks below.
  if (created && ::fchmod(fd, 0755) != 0) return fail(errno, "chmod runtime directory " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(errno, "stat runtime directory " + path);
  if (st.st_uid != ::geteuid())
    return Error{{EPERM, boost::system::generic_category()},
                 "runtime directory " + path + " is owned by uid " + std::to_string(st.st_uid) +
                     ", not by meshd's uid " + std::to_string(::geteuid()) +
                     ": whoever owns it can replace meshd's status; chown it or use another "
                     "[state] runtime_dir"};
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return Error{{EPERM, boost::system::generic_category()},
                 "runtime directory " + path + " has mode " + octal(st.st_mode) +
                     ": group or others may write to it and replace meshd's status; "
                     "chmod go-w it or use another [state] runtime_dir"};
  return dir;
}


}  // namespace meshd::daemon
