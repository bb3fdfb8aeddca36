#include "cni/container_netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace meshd::cni {

namespace {

NetnsFacts facts_of(int fd) {
  NetnsFacts f;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    f.open_errno = errno;
    return f;
  }
  f.mode = st.st_mode;
  f.id = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  struct statfs sfs {};
  if (::fstatfs(fd, &sfs) != 0) {
    f.open_errno = errno;
    return f;
  }
  f.fs_type = static_cast<std::int64_t>(sfs.f_type);
  // Only asked of nsfs files: on anything else an ioctl number could mean
  // something else to a driver. NS_GET_NSTYPE: Linux 4.11, ioctl_ns(2).
  if (f.fs_type == static_cast<std::int64_t>(NSFS_MAGIC)) {
    int type = ::ioctl(fd, NS_GET_NSTYPE);
    f.ns_type = type < 0 ? 0 : type;
  }
  return f;
}

int open_untrusted(const std::string& path) {
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
}

}  // namespace

NetnsFacts netns_facts(const std::string& path) {
  int fd = open_untrusted(path);
  if (fd < 0) return NetnsFacts{.open_errno = errno};
  NetnsFacts f = facts_of(fd);
  ::close(fd);
  return f;
}

CniResult<nl::NetnsFd> open_container_netns(const std::string& path) {
  int raw = open_untrusted(path);
  NetnsFacts f;
  if (raw < 0) f.open_errno = errno;
  nl::NetnsFd fd(raw);
  if (raw >= 0) f = facts_of(raw);

  FileId own;
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) != 0)
    return cni_error(kIoFailure, "cannot identify meshd-cni's own network namespace",
                     std::string("stat /proc/self/ns/net: ") + std::strerror(errno));
  own = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  if (auto r = check_container_netns(path, f, own); !r) return r.error();
  return fd;
}

}  // namespace meshd::cni
