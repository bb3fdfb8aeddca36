// Whether CNI_NETNS names a network namespace the plugin may configure,
// decided from what fstat(2), fstatfs(2) and the NS_GET_NSTYPE ioctl said
// about it. The decision is pure (unit-tested and fuzzed without touching a
// file); cni/container_netns.h gathers the facts.
#pragma once

#include "cni/cni_error.h"

#include <cstdint>
#include <string_view>

namespace meshd::cni {

// A file's identity: what stat(2) gives as st_dev and st_ino. Two namespace
// files name the same namespace exactly when these are equal (nsfs gives each
// namespace one inode).
struct FileId {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  bool operator==(const FileId&) const = default;
};

struct NetnsFacts {
  int open_errno = 0;          // 0: open(2) succeeded and the fields below are filled
  std::int64_t fs_type = 0;    // fstatfs f_type (NSFS_MAGIC for a namespace file)
  int ns_type = 0;             // NS_GET_NSTYPE: CLONE_NEWNET, CLONE_NEWNS, ...; 0 if it failed
  unsigned mode = 0;           // fstat st_mode
  FileId id;                   // fstat st_dev, st_ino
};

// Errors (CNI SPEC "Error"): the path cannot be opened: 3 (container unknown
// or gone); the path opens but is not a network namespace, or is the
// plugin's own one (the node's: ADD would replace the node's default route):
// 4 (invalid CNI_NETNS), each naming CNI_NETNS and what the file is instead.
CniResult<void> check_container_netns(std::string_view path, const NetnsFacts& facts,
                                      const FileId& own_netns);

}  // namespace meshd::cni
