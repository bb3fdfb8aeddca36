// The conflist meshd installs into the CNI config dir once the node has its
// pod CIDR. The daemon calls write_conflist(); operators can run the same
// through scripts or by hand (docs/cni.md).
#pragma once

#include "common/result.h"

#include <optional>
#include <string>

namespace meshd::cni {

struct ConflistOptions {
  std::string network_name = "meshd";
  // 1.0.0: what podman 4.3 and containerd 1.6 (libcni 1.x) speak; "cniVersions"
  // also lists 1.1.0 for runtimes that can pick it (STATUS, GC).
  std::string cni_version = "1.0.0";
  std::string database = "/var/lib/meshd/meshd.db";
  std::optional<unsigned> mtu;  // unset: the node's mesh MTU from the store
  std::string log_file;         // empty: stderr only
};

// Pure: the conflist JSON (pretty enough for a person to read).
std::string render_conflist(const ConflistOptions& opts);

// Writes render_conflist(opts) to `path` atomically: a temporary file in the
// same directory, fsync, rename over the old one, fsync of the directory. A
// runtime reading the directory meanwhile sees the old or the new file, never
// half of one. Unchanged content is left alone (no needless inotify events).
Result<void> write_conflist(const std::string& path, const ConflistOptions& opts);

}  // namespace meshd::cni
