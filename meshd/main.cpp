// meshd: the node daemon. Command line only; the work is in meshd/daemon/.
#include "common/version.h"
#include "meshd/daemon/daemon.h"
#include "meshd/daemon/migrate.h"
#include "meshd/logging/fields.h"
#include "meshd/logging/journal.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{
      "meshd: keeps this node's WireGuard mesh and pod routes in the state its config\n"
      "and cluster say. Stopping meshd leaves the data plane running; starting it again\n"
      "adopts what is there."};
  std::string config_path = "/etc/meshd/meshd.toml";
  bool once = false, teardown = false, version = false, migrate = false, check = false;
  std::string log_level = "info";
  app.add_option("-c,--config", config_path, "configuration file (TOML)")->capture_default_str();
  app.add_flag("--once", once, "reconcile once and exit: 0 when the data plane matches the config");
  app.add_flag("--teardown", teardown,
               "remove the WireGuard device, meshd's routes and the CNI conflist, then exit");
  app.add_flag("--check-config", check,
               "load and validate the configuration, print the paths and the device it names "
               "(key=value lines, for scripts), then exit: 0 valid, 1 not");
  app.add_flag("--migrate-to-etcd", migrate,
               "copy this member's cluster from its store into the etcd of [datastore], then exit; run "
               "it with meshd stopped on every node (docs/datastore.md, \"Moving a cluster\")");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("-V,--version", version, "print the version and exit");
  app.footer(
      "With [cluster] or [join] in the config, meshd founds a cluster or joins one through\n"
      "a member with a bootstrap token (docs/protocol.md); operators manage it over the\n"
      "REST API, with meshctl.\n"
      "Exit status: 0 stopped by SIGTERM/SIGINT (or --once converged); 1 a start-up error or\n"
      "--once not converged; 2 a member refused this node's join (a new token or name is\n"
      "needed: restarting will not help).");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::printf("meshd %s\n", meshd::kVersion);
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  // Under systemd: structured journal entries instead of stdout lines
  // (docs/logging.md). Before any logger is made: they copy the default one.
  bool journal = meshd::logging::log_to_journal_if_connected();
  try {
    if (check) {
      // What the package's maintainer scripts and operators need to find
      // (and tear down) what this configuration makes; nothing secret.
      auto c = meshd::config::load_config(config_path);
      std::printf("config=%s\ninterface=%s\ndatabase=%s\nruntime_dir=%s\napi_socket=%s\n"
                  "userspace_socket_dir=%s\ncni_conflist=%s\n",
                  c.source.c_str(), c.interface.c_str(), c.database.c_str(), c.runtime_dir.c_str(),
                  c.api_socket.c_str(), c.userspace_socket_dir.c_str(),
                  meshd::config::cni_conflist_path(c).c_str());
      return 0;
    }
    if (migrate) return meshd::daemon::migrate_to_etcd(meshd::config::load_config(config_path), stdout);
    meshd::daemon::DaemonOptions opts{meshd::config::load_config(config_path), once, teardown};
    // MESHD_NODE from the first line on; the daemon sets it again from the
    // store's name (the same rule: [node] name, else the host name).
    std::string node = opts.config.node_name;
    if (node.empty()) {
      char host[256] = {};
      ::gethostname(host, sizeof host - 1);
      node = host;
    }
    meshd::logging::set_node_name(node);
    return meshd::daemon::run_daemon(std::move(opts));
  } catch (const std::exception& e) {
    // In the journal as an entry with PRIORITY=3, not as a bare stderr line.
    if (journal)
      spdlog::error("{}", e.what());
    else
      std::fprintf(stderr, "meshd: %s\n", e.what());
    return 1;
  }
}
