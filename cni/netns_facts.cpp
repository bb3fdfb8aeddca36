#include "cni/netns_facts.h"

#include <linux/magic.h>
#include <sched.h>
#include <sys/stat.h>

#include <cstring>
#include <string>

namespace meshd::cni {

namespace {

std::string ns_type_name(int type) {
  switch (type) {
    case CLONE_NEWNS: return "mount";
    case CLONE_NEWUTS: return "uts";
    case CLONE_NEWIPC: return "ipc";
    case CLONE_NEWUSER: return "user";
    case CLONE_NEWPID: return "pid";
    case CLONE_NEWCGROUP: return "cgroup";
#ifdef CLONE_NEWTIME
    case CLONE_NEWTIME: return "time";
#endif
  }
  return "type " + std::to_string(type);
}

std::string file_kind(unsigned mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a regular file";
}

CniError invalid(std::string_view path, std::string what) {
  return cni_error(kInvalidEnvironment, "invalid CNI_NETNS",
                   "CNI_NETNS \"" + std::string(path) + "\" " + std::move(what));
}

}  // namespace

CniResult<void> check_container_netns(std::string_view path, const NetnsFacts& f,
                                      const FileId& own_netns) {
  if (f.open_errno != 0)
    return cni_error(kUnknownContainer,
                     "cannot open the container's network namespace " + std::string(path),
                     std::strerror(f.open_errno));
  // Namespace files live on nsfs (bind mounts under /var/run/netns keep it;
  // /proc/PID/ns/net opens to the nsfs inode).
  if (f.fs_type != static_cast<std::int64_t>(NSFS_MAGIC))
    return invalid(path, "is " + file_kind(f.mode) +
                             ", not a namespace file (expected e.g. /var/run/netns/NAME or "
                             "/proc/PID/ns/net)");
  if (f.ns_type != CLONE_NEWNET)
    return invalid(path, f.ns_type == 0 ? "is a namespace file of unknown type, not a network namespace"
                                        : "is a " + ns_type_name(f.ns_type) +
                                              " namespace, not a network namespace");
  if (f.id == own_netns)
    return invalid(path,
                   "is the network namespace meshd-cni runs in (the node's own): the pod's "
                   "interface, address and default route would replace the node's");
  return {};
}

}  // namespace meshd::cni
