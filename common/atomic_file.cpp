#include "common/atomic_file.h"

#include "common/unique_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace meshd {

namespace {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<void> write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, "write " + what);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

Result<void> write_file_atomically(const std::string& path, std::string_view contents,
                                   mode_t mode) {
  const std::string dir = dir_of(path);
  std::string tmpl = dir + "/." + base_of(path) + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  // mkostemp creates the file O_EXCL with mode 0600.
  UniqueFd f(::mkostemp(name.data(), O_CLOEXEC));
  if (!f.valid()) return fail(errno, "create a temporary file in " + dir);
  const std::string tmp(name.data());
  auto cleanup = [&](Error e) -> Result<void> {
    ::unlink(tmp.c_str());
    return e;
  };
  if (::fchmod(f.get(), mode) != 0) return cleanup(fail(errno, "chmod " + tmp));
  if (auto r = write_all(f.get(), contents, tmp); !r) return cleanup(r.error());
  if (::fsync(f.get()) != 0) return cleanup(fail(errno, "fsync " + tmp));
  int fd = f.release();
  if (::close(fd) != 0) return cleanup(fail(errno, "close " + tmp));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return cleanup(fail(errno, "rename " + tmp + " to " + path));
  // The rename is durable only once the directory entry is on disk.
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.valid()) return fail(errno, "open directory " + dir + " to fsync it");
  if (::fsync(d.get()) != 0) return fail(errno, "fsync directory " + dir);
  return {};
}

}  // namespace meshd
