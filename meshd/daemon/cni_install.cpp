#include "meshd/daemon/cni_install.h"

#include "cni/conflist.h"
#include "cni/naming.h"
#include "cni/pod_mtu.h"
#include "netlink/rtnl.h"
#include "store/database.h"
#include "store/ipam.h"
#include "store/local_node.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace meshd::daemon {

namespace {

std::string joined(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// An earlier meshd wrote 10-<network>.conflist: once ours has another name,
// that file (only if meshd wrote it) would be a second, stale network config.
void remove_legacy_conflist(const config::Config& cfg, spdlog::logger& log) {
  if (cfg.cni_conf_dir.empty()) return;
  const std::string legacy = cfg.cni_conf_dir + "/" + cni::legacy_conflist_name(cfg.cni_network);
  if (legacy == config::cni_conflist_path(cfg)) return;
  std::ifstream in(legacy, std::ios::binary);
  if (!in) return;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!cni::is_meshd_conflist(text)) return;
  if (::unlink(legacy.c_str()) == 0)
    log.info("removed {}, written by an earlier meshd under the old name", legacy);
}

}  // namespace

bool remove_cni_conflist(const config::Config& cfg, spdlog::logger& log) {
  remove_legacy_conflist(cfg, log);
  const std::string path = config::cni_conflist_path(cfg);
  if (path.empty()) return false;
  if (::unlink(path.c_str()) == 0) {
    log.info("removed the CNI conflist {}", path);
    return true;
  }
  if (errno != ENOENT) log.warn("cannot remove the CNI conflist {}: {}", path, std::strerror(errno));
  return false;
}

void sync_cni_conflist(const config::Config& cfg, store::Database& db, spdlog::logger& log) {
  const std::string path = config::cni_conflist_path(cfg);
  if (path.empty()) return;
  auto node = store::LocalNodeRepo(db).get();
  if (!node) {
    log.warn("cannot read this node's pod CIDR for the CNI conflist: {}", node.error().message);
    return;
  }
  if (!node->pod_cidr || !node->pod_cidr_settled) {
    remove_cni_conflist(cfg, log);
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(cfg.cni_conf_dir, ec);
  cni::ConflistOptions o;
  o.network_name = cfg.cni_network;
  o.database = cfg.database;
  if (cfg.cni_mtu) o.mtu = cfg.cni_mtu;
  o.log_file = cfg.cni_log_file;
  std::vector<std::string> missing;
  o.chained = cni::installed_plugins(cfg.cni_chained, cfg.cni_bin_dirs, &missing);
  for (const auto& m : missing)
    log.info("CNI plugin {} is not in {}: not chained{}", m, joined(cfg.cni_bin_dirs, ":"),
             m == "portmap" ? " (no hostPort)" : m == "bandwidth" ? " (no traffic shaping)" : "");
  if (cni::installed_plugins({"meshd-cni"}, cfg.cni_bin_dirs).empty())
    log.warn("meshd-cni is not in {}: runtimes will not find the plugin the conflist names",
             joined(cfg.cni_bin_dirs, ":"));
  if (auto r = cni::write_conflist(path, o); r)
    log.debug("CNI conflist {} in place", path);
  else
    log.warn("cannot write the CNI conflist: {}", r.error().message);
  remove_legacy_conflist(cfg, log);
  const std::string name = std::filesystem::path(path).filename().string();
  if (auto earlier = cni::configs_sorting_before_in(cfg.cni_conf_dir, name); !earlier.empty())
    log.warn("CNI config {} in {} sorts before {}: runtimes use the first network config, not "
             "meshd's; remove it or set [cni] conflist to a name that sorts first",
             joined(earlier), cfg.cni_conf_dir, name);
}

void warn_pods_above_mtu(const config::Config& cfg, store::Database& db, nl::Rtnl& rtnl,
                         unsigned mesh_mtu, spdlog::logger& log) {
  auto leases = store::Ipam(db).list(cfg.cni_network);
  if (!leases) {
    log.debug("pod MTU check: {}", leases.error().message);
    return;
  }
  std::vector<cni::PodLink> pods;
  for (const auto& l : *leases) {
    cni::PodLink p{l.key.container_id, l.key.ifname, l.host_interface, 0};
    if (p.host_interface.empty())  // leases from before schema 3: the derived name
      p.host_interface = cni::host_veth_name(cfg.cni_network, l.key.container_id, l.key.ifname);
    if (auto link = rtnl.get_link(p.host_interface); link) p.mtu = link->mtu;
    pods.push_back(std::move(p));
  }
  auto above = cni::pods_above_mtu(pods, mesh_mtu);
  if (above.empty()) return;
  log.warn("{} pod(s) have an MTU above the mesh MTU {}: {}; their larger packets to other nodes "
           "now depend on path MTU discovery: recreate these pods to give them MTU {}",
           above.size(), mesh_mtu, joined(above, "; "), mesh_mtu);
}

}  // namespace meshd::daemon
