// The conflist meshd installs into the CNI config dir once the node has its
// pod CIDR. The daemon calls write_conflist(); operators can run the same
// through scripts or by hand (docs/cni.md).
#pragma once

#include "common/result.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::cni {

// A plugin meshd can chain after meshd-cni, with the capability it declares
// so that runtimes pass it their runtimeConfig (CONVENTIONS.md of the CNI
// spec: portMappings, bandwidth). Kubernetes implements hostPort with
// portmap and the bandwidth annotations with bandwidth.
struct ChainedPluginSpec {
  std::string_view type;
  std::string_view capability;
};
inline constexpr ChainedPluginSpec kChainablePlugins[] = {
    {"portmap", "portMappings"},
    {"bandwidth", "bandwidth"},
};
const ChainedPluginSpec* find_chainable(std::string_view type);

// The highest spec version every chainable plugin speaks: Debian's
// containernetworking-plugins 1.1.1 (portmap, bandwidth) speak up to 1.0.0,
// and a runtime that picked 1.1.0 from cniVersions would fail the chain.
inline constexpr std::string_view kChainedMaxVersion = "1.0.0";

// The default file name: "05-" sorts before the usual "10-containerd-net",
// "10-flannel", "10-calico", "87-podman-bridge" (runtimes take the first file
// in byte order), after "00-multus", which is meant to come first.
std::string default_conflist_name(const std::string& network);

// The name meshd used before the name was configurable: a file of this name
// that meshd wrote (is_meshd_conflist) is removed when meshd writes another,
// so an upgraded node is not left with a second, stale network config.
std::string legacy_conflist_name(const std::string& network);

// Pure: whether `text` is a conflist whose first plugin is meshd-cni.
bool is_meshd_conflist(std::string_view text);

struct ConflistOptions {
  std::string network_name = "meshd";
  // 1.0.0: what podman 4.3 and containerd 1.6 (libcni 1.x) speak; "cniVersions"
  // also lists 1.1.0 for runtimes that can pick it (STATUS, GC) unless a
  // chained plugin is present (then nothing above kChainedMaxVersion).
  std::string cni_version = "1.0.0";
  std::string database = "/var/lib/meshd/meshd.db";
  std::optional<unsigned> mtu;  // unset: the node's mesh MTU from the store
  std::string log_file;         // empty: stderr only
  // Types from kChainablePlugins, in order, after meshd-cni (unknown ones are
  // left out).
  std::vector<std::string> chained;
};

// Pure: the versions the conflist declares in "cniVersions": ours, without
// those above kChainedMaxVersion when a plugin is chained.
std::vector<std::string> declared_versions(const ConflistOptions& opts);

// Pure: the conflist JSON (pretty enough for a person to read).
std::string render_conflist(const ConflistOptions& opts);

// Writes render_conflist(opts) to `path` atomically: a temporary file in the
// same directory, fsync, rename over the old one, fsync of the directory. A
// runtime reading the directory meanwhile sees the old or the new file, never
// half of one. Unchanged content is left alone (no needless inotify events).
Result<void> write_conflist(const std::string& path, const ConflistOptions& opts);

// Pure: the names among `names` that a runtime reads as network configs
// (*.conf, *.conflist, *.json, as libcni's ConfFiles) and that sort before
// `ours` in byte order (libcni sorts the paths; containerd and CRI-O use the
// first), sorted.
std::vector<std::string> configs_sorting_before(const std::vector<std::string>& names,
                                                const std::string& ours);

// The same over the files in `dir` (empty when it cannot be read).
std::vector<std::string> configs_sorting_before_in(const std::string& dir, const std::string& ours);

// Which of `wanted` (plugin types) have an executable in one of `bin_dirs`,
// in the order of `wanted`; the others go to `missing`.
std::vector<std::string> installed_plugins(const std::vector<std::string>& wanted,
                                           const std::vector<std::string>& bin_dirs,
                                           std::vector<std::string>* missing = nullptr);

}  // namespace meshd::cni
