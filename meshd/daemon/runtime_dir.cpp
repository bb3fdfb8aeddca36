#include "meshd/daemon/runtime_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <random>

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

Result<void> RuntimeDir::replace_file(std::string_view name_in, std::string_view contents,
                                      mode_t mode) const {
  const std::string name(name_in);
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return Error::invalid("runtime file name \"" + name + "\" is not one path component");
  const std::string where = path_ + "/" + name;
  std::random_device rd;
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = "." + name + ".tmp." + std::to_string(rd());
    fd = ::openat(fd_.get(), tmp.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return fail(errno, "create a temporary file for " + where);
  }
  if (fd < 0) return fail(EEXIST, "create a temporary file for " + where);
  auto give_up = [&](int e, const std::string& what) -> Result<void> {
    ::close(fd);
    ::unlinkat(fd_.get(), tmp.c_str(), 0);
    return fail(e, what + " " + path_ + "/" + tmp);
  };
  if (::fchmod(fd, mode) != 0) return give_up(errno, "chmod");
  for (std::string_view rest = contents; !rest.empty();) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return give_up(errno, "write");
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd) != 0) return give_up(errno, "fsync");
  if (::close(fd) != 0) {
    int e = errno;
    ::unlinkat(fd_.get(), tmp.c_str(), 0);
    return fail(e, "close " + path_ + "/" + tmp);
  }
  // renameat replaces the directory entry: a symlink planted at `name` is
  // replaced, never followed.
  if (::renameat(fd_.get(), tmp.c_str(), fd_.get(), name.c_str()) != 0) {
    int e = errno;
    ::unlinkat(fd_.get(), tmp.c_str(), 0);
    return fail(e, "rename " + path_ + "/" + tmp + " to " + where);
  }
  if (::fsync(fd_.get()) != 0) return fail(errno, "fsync directory " + path_);
  return {};
}

}  // namespace meshd::daemon
