#include "meshd/daemon/daemon.h"

#include "cni/conflist.h"
#include "common/version.h"
#include "keys/format.h"
#include "meshd/dataplane/desired_state.h"
#include "meshd/dataplane/event_filter.h"
#include "meshd/dataplane/kernel_backend.h"
#include "meshd/dataplane/reconciler.h"
#include "meshd/dataplane/userspace_backend.h"
#include "meshd/daemon/cni_install.h"
#include "meshd/daemon/runtime_dir.h"
#include "meshd/daemon/service_manager.h"
#include "netlink/rtnl.h"
#include "store/database.h"
#include "store/local_node.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

namespace meshd::daemon {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  auto l = spdlog::get(name);
  if (!l) {
    l = spdlog::default_logger()->clone(name);
    spdlog::register_logger(l);
  }
  return l;
}

// The link carrying the route towards `dst` (the default route's when dst is
// empty), 0 when there is none: the link nl::route_mtu reads.
int underlay_index(nl::Rtnl& rtnl, const std::optional<IpAddress>& dst) {
  if (dst) {
    auto r = rtnl.get_route(*dst);
    return r ? r->route.oif : 0;
  }
  for (int family : {AF_INET, AF_INET6}) {
    nl::RouteFilter f;
    f.family = family;
    auto routes = rtnl.list_routes(f);
    if (!routes) return 0;
    const nl::Route* best = nullptr;
    for (const nl::Route& rt : *routes)
      if (rt.dst.length == 0 && rt.oif && (!best || rt.metric < best->metric)) best = &rt;
    if (best) return best->oif;
  }
  return 0;
}

// The mesh MTU: configured, or the underlay's MTU minus WireGuard's overhead
// (never below 1280: dataplane::mesh_mtu_for_underlay). The underlay is the
// configured interface, else the one carrying the route to the first peer's
// endpoint, else the default route's.
// `underlay` is set to the index of the link the MTU was read from (0 when
// none), and `probe` to the destination whose route chose it: events about
// them make the daemon derive the MTU again.
unsigned derive_mtu(const config::Config& cfg, const std::vector<dataplane::PeerSpec>& peers,
                    nl::Rtnl& rtnl, std::vector<std::string>& notes, int& underlay,
                    std::optional<IpAddress>& probe) {
  underlay = 0;
  probe.reset();
  if (cfg.mtu) {
    notes.push_back("mtu " + std::to_string(cfg.mtu) + " (configured)");
    return cfg.mtu;
  }
  std::optional<IpAddress> dst;
  for (const auto& p : peers)
    if (p.endpoint) {
      dst = p.endpoint->address;
      break;
    }
  bool v6 = dst && dst->is_v6();
  probe = dst;
  if (!cfg.underlay_interface.empty()) {
    if (auto l = rtnl.get_link(cfg.underlay_interface); l) {
      underlay = l->index;
      auto m = dataplane::mesh_mtu_for_underlay(l->mtu, v6, "underlay " + l->name);
      notes.push_back((m.floored ? "warning: " : "") + m.note);
      return m.mtu;
    } else {
      notes.push_back("underlay_interface " + cfg.underlay_interface + ": " + l.error().message);
    }
  }
  underlay = underlay_index(rtnl, dst);
  if (auto m = nl::route_mtu(rtnl, dst); m) {
    auto mm = dataplane::mesh_mtu_for_underlay(
        *m, v6, "route to " + (dst ? dst->to_string() : std::string("default")) + ":");
    notes.push_back((mm.floored ? "warning: " : "") + mm.note);
    return mm.mtu;
  }
  notes.push_back("mtu 1420 (no underlay route found; 1500 - 80)");
  return 1420;
}

std::unique_ptr<dataplane::WgBackend> make_backend(const config::Config& cfg, std::string& why) {
  bool kernel = false;
  switch (cfg.backend) {
    case config::BackendKind::kKernel:
      kernel = true;
      why = "configured";
      break;
    case config::BackendKind::kUserspace:
      why = "configured";
      break;
    case config::BackendKind::kAuto:
      kernel = dataplane::kernel_wireguard_available();
      why = kernel ? "auto: kernel WireGuard is available"
                   : "auto: no kernel WireGuard, using " + cfg.userspace_binary;
      break;
  }
  if (kernel) return std::make_unique<dataplane::KernelBackend>();
  dataplane::UserspaceBackendOptions uo;
  uo.implementation = cfg.userspace_binary;
  uo.socket_dir = cfg.userspace_socket_dir;
  uo.log_dir = cfg.runtime_dir;
  return std::make_unique<dataplane::UserspaceBackend>(uo);
}

class Daemon {
 public:
  explicit Daemon(DaemonOptions opts)
      : opts_(std::move(opts)),
        cfg_(opts_.config),
        log_(logger("meshd")),
        rlog_(logger("reconcile")),
        resync_(ioc_),
        retry_(ioc_),
        debounce_(ioc_),
        watchdog_(ioc_),
        signals_(ioc_, SIGINT, SIGTERM, SIGHUP),
        events_fd_(ioc_) {}

  int run();

 private:
  void open_state();
  void apply_node_settings();
  void load_desired();
  void reload();
  bool reconcile(dataplane::PassScope scope);
  void refresh_mtu();
  void schedule_resync();
  void trigger(std::chrono::milliseconds delay, dataplane::PassScope scope);
  void watch_events();
  void watch_signals();
  void start_watchdog();
  void write_status(const dataplane::ReconcileReport* report);
  void write_cni_conflist();
  int teardown();

  DaemonOptions opts_;
  config::Config& cfg_;
  std::shared_ptr<spdlog::logger> log_, rlog_;

  std::optional<RuntimeDir> runtime_dir_;
  std::unique_ptr<store::Database> db_;
  std::optional<keys::PrivateKey> private_key_;
  std::unique_ptr<dataplane::WgBackend> backend_;
  std::string backend_why_;
  std::optional<nl::Rtnl> rtnl_;
  std::optional<nl::RtnlEvents> events_;
  std::optional<dataplane::Reconciler> reconciler_;
  dataplane::EventScope event_scope_;  // what of the kernel's events concerns the mesh

  dataplane::LocalSpec local_;
  std::vector<dataplane::PeerSpec> peers_;
  std::vector<dataplane::Rejection> rejected_;
  std::vector<std::string> mtu_notes_;

  asio::io_context ioc_;
  asio::steady_timer resync_, retry_, debounce_, watchdog_;
  asio::signal_set signals_;
  asio::posix::stream_descriptor events_fd_;
  bool debounce_pending_ = false;
  dataplane::PassScope pending_scope_ = dataplane::PassScope::kWireGuard;
  bool mtu_stale_ = false;  // an underlay event arrived: derive the MTU again
  unsigned resyncs_ = 0;    // periodic passes since the last full one
  bool ready_ = false;
  int failures_ = 0;
  bool pod_cidr_withdrawn_ = false;  // removed by a reload: no new pods
  std::string last_status_;  // status.json as last written, without its time
};

void Daemon::open_state() {
  // store::Database creates a missing database directory 0700 itself (and
  // refuses one others can write to), with no window at a looser mode.
  auto rd = RuntimeDir::open(cfg_.runtime_dir);
  if (!rd) throw ErrorException(rd.error());
  runtime_dir_.emplace(std::move(*rd));

  db_ = std::make_unique<store::Database>(store::DatabaseOptions{cfg_.database});
  store::LocalNodeRepo local(*db_);

  // The node's WireGuard key survives restarts: generated once, kept in the
  // store (mode 0600), never logged.
  auto stored = local.wg_private_key();
  if (!stored) throw ErrorException(stored.error());
  if (*stored) {
    private_key_ = std::move(**stored);
  } else {
    private_key_ = keys::PrivateKey::generate();
    if (auto r = local.set_wg_private_key(*private_key_); !r) throw ErrorException(r.error());
    log_->info("generated this node's WireGuard key (public {})",
               private_key_->public_key().short_id());
  }

  apply_node_settings();
}

// The node's name and pod CIDR go to the store, where the CNI plugin reads
// them: at start and on every reload, so that the plugin leases from the
// pod CIDR the routes and the gateway address are made for.
void Daemon::apply_node_settings() {
  store::LocalNodeRepo local(*db_);
  std::string name = cfg_.node_name;
  if (name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    name = host;
  }
  if (auto r = local.set_name(name); !r) throw ErrorException(r.error());
  if (cfg_.pod_cidr) {
    // A pod CIDR given in the config is settled by definition: nobody else
    // allocates it, so the CNI plugin may hand out addresses at once.
    if (auto r = local.set_pod_cidr(*cfg_.pod_cidr, !pod_cidr_withdrawn_); !r)
      throw ErrorException(r.error());
  }
}

void Daemon::load_desired() {
  local_ = {};
  local_.interface = cfg_.interface;
  local_.public_key = private_key_->public_key();
  local_.private_key = &*private_key_;
  local_.listen_port = cfg_.listen_port;
  local_.pod_cidr = cfg_.pod_cidr;
  rejected_.clear();
  peers_ = dataplane::validate_static_peers(cfg_.peers, local_, cfg_.persistent_keepalive, rejected_);
  // From here on the validated peers are the ones meshd uses (a reload reads
  // the file again): the configured texts of a thousand peers are ~0.3 MB.
  std::vector<config::StaticPeer>().swap(cfg_.peers);
  peers_.shrink_to_fit();
  for (const auto& r : rejected_) log_->warn("peer {} rejected: {}", r.peer, r.reason);
  mtu_notes_.clear();
  local_.mtu = derive_mtu(cfg_, peers_, *rtnl_, mtu_notes_, event_scope_.underlay_index,
                          event_scope_.mtu_probe);
  event_scope_.device = cfg_.interface;
  event_scope_.mtu_from_underlay = cfg_.mtu == 0;
  for (const auto& n : mtu_notes_) {
    if (n.rfind("warning: ", 0) == 0)
      log_->warn("{}", n.substr(9));
    else
      log_->info("{}", n);
  }
  store::LocalNodeRepo repo(*db_);
  if (auto r = repo.set_mtu(local_.mtu); !r) log_->warn("{}", r.error().message);
  write_cni_conflist();
  warn_pods_above_mtu(cfg_, *db_, *rtnl_, local_.mtu, *log_);
}

// Pods can be served once the node has a settled pod CIDR: only then does the
// runtime find meshd's conflist (cni_install.h), and it goes when the CIDR does.
void Daemon::write_cni_conflist() { sync_cni_conflist(cfg_, *db_, *log_); }

// The underlay's link or route changed: the mesh MTU follows it (when it
// is not configured) on the pass this event triggers.
void Daemon::refresh_mtu() {
  std::vector<std::string> notes;
  unsigned mtu = derive_mtu(cfg_, peers_, *rtnl_, notes, event_scope_.underlay_index,
                            event_scope_.mtu_probe);
  if (mtu == local_.mtu) return;
  for (const auto& n : notes) {
    if (n.rfind("warning: ", 0) == 0)
      log_->warn("underlay changed: {}", n.substr(9));
    else
      log_->info("underlay changed: {}", n);
  }
  local_.mtu = mtu;
  mtu_notes_ = std::move(notes);
  store::LocalNodeRepo repo(*db_);
  if (auto r = repo.set_mtu(local_.mtu); !r) log_->warn("{}", r.error().message);
  warn_pods_above_mtu(cfg_, *db_, *rtnl_, local_.mtu, *log_);
}

bool Daemon::reconcile(dataplane::PassScope scope) {
  if (mtu_stale_) {
    mtu_stale_ = false;
    refresh_mtu();
  }
  dataplane::DesiredState desired = dataplane::compute_desired(local_, peers_);
  desired.device.private_key = private_key_->clone();
  auto report = reconciler_->apply(desired, scope);
  if (scope == dataplane::PassScope::kFull || !event_scope_.device_index) {
    // What the next events are matched against: this pass's device and routes.
    if (auto l = rtnl_->get_link(cfg_.interface); l) event_scope_.device_index = l->index;
    event_scope_.route_slots.clear();
    for (const auto& r : desired.routes) event_scope_.route_slots.push_back(r.dst.network());
  }
  if (!report) {
    rlog_->warn("reconcile failed: {}", report.error().message);
    write_status(nullptr);
    return false;
  }
  if (report->changes.empty() && report->ok())
    rlog_->debug("in sync: {} peers, {} routes", report->peers, report->routes);
  for (const auto& c : report->changes) rlog_->info("{}", c);
  for (const auto& e : report->errors) rlog_->warn("{}", e);
  write_status(&*report);
  return report->ok();
}

void Daemon::write_status(const dataplane::ReconcileReport* report) {
  boost::json::object s;
  s["version"] = kVersion;
  s["interface"] = cfg_.interface;
  s["backend"] = std::string(backend_->kind());
  s["backend_reason"] = backend_why_;
  s["public_key"] = private_key_->public_key().to_base64();
  s["listen_port"] = cfg_.listen_port;
  s["mtu"] = local_.mtu;
  s["pod_cidr"] = cfg_.pod_cidr ? cfg_.pod_cidr->to_string() : "";
  s["in_sync"] = report && report->ok();
  s["peers"] = report ? report->peers : 0;
  s["routes"] = report ? report->routes : 0;
  boost::json::array errs, rej;
  if (report)
    for (const auto& e : report->errors) errs.push_back(boost::json::string(e));
  for (const auto& r : rejected_) rej.push_back({{"peer", r.peer}, {"reason", r.reason}});
  s["errors"] = std::move(errs);
  s["rejected_peers"] = std::move(rej);
  // A pass that changes nothing leaves the file alone: no write and fsync
  // every resync interval. "changed_at" is when its contents last changed.
  std::string body = boost::json::serialize(s);
  if (body == last_status_) return;
  s["changed_at"] = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  if (auto r = runtime_dir_->replace_file("status.json", boost::json::serialize(s) + "\n", 0644); r)
    last_status_ = std::move(body);
  else
    log_->warn("cannot write the status file: {}", r.error().message);
}

// Every resync interval the WireGuard peers are read back and repaired (they
// change without an rtnetlink event); the link, addresses and routes are
// repaired on their events, and by an occasional full pass
// (dataplane::periodic_pass_scope).
void Daemon::schedule_resync() {
  resync_.expires_after(std::chrono::milliseconds(cfg_.resync_interval_ms));
  resync_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    trigger(0ms, dataplane::periodic_pass_scope(++resyncs_));
    schedule_resync();
  });
}

// Coalesces bursts (our own changes echo back as rtnetlink events) into one
// pass, full if any of the requests asked for one; a failed pass retries
// (fully) with exponential backoff up to the resync interval.
void Daemon::trigger(std::chrono::milliseconds delay, dataplane::PassScope scope) {
  if (scope == dataplane::PassScope::kFull) pending_scope_ = scope;
  if (debounce_pending_) return;
  debounce_pending_ = true;
  debounce_.expires_after(delay);
  debounce_.async_wait([this](boost::system::error_code ec) {
    debounce_pending_ = false;
    if (ec) return;
    dataplane::PassScope scope = pending_scope_;
    pending_scope_ = dataplane::PassScope::kWireGuard;
    if (scope == dataplane::PassScope::kFull) resyncs_ = 0;
    bool ok = reconcile(scope);
    // A pass over a thousand peers allocates a megabyte or two (the device
    // read back, route dumps, plans) and frees it; glibc keeps freed pages
    // that are not at the top of the heap. Give them back: at one pass a
    // second this costs microseconds, and idle RSS is what a node pays.
    ::malloc_trim(0);
    if (ok) {
      failures_ = 0;
      if (!ready_) {
        ready_ = true;
        notify_service_manager("READY=1\nSTATUS=mesh in sync");
        log_->info("ready: {} on {} backend ({}), {} peers", cfg_.interface, backend_->kind(),
                   backend_why_, peers_.size());
      }
    } else {
      failures_ = std::min(failures_ + 1, 10);
      auto backoff = std::min<std::chrono::milliseconds>(
          std::chrono::milliseconds(100) * (1 << std::min(failures_, 6)),
          std::chrono::milliseconds(cfg_.resync_interval_ms));
      retry_.expires_after(backoff);
      retry_.async_wait([this](boost::system::error_code ec2) {
        if (!ec2) trigger(0ms, dataplane::PassScope::kFull);
      });
    }
  });
}

void Daemon::watch_events() {
  events_fd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;
    auto evs = events_->read();
    if (!evs) {
      // ENOBUFS: the kernel dropped events; what they said is unknown.
      rlog_->debug("rtnetlink events: {}; resyncing", evs.error().message);
      mtu_stale_ = event_scope_.mtu_from_underlay;
      trigger(50ms, dataplane::PassScope::kFull);
    } else {
      bool mesh = false;
      for (const auto& ev : *evs) {
        auto effect = dataplane::event_effect(ev, event_scope_);
        if (effect == dataplane::EventEffect::kUnderlay) mtu_stale_ = true;
        mesh = mesh || effect != dataplane::EventEffect::kNone;
      }
      if (mesh) trigger(50ms, dataplane::PassScope::kFull);
    }
    watch_events();
  });
}

// SIGHUP. What a running meshd can apply fully is applied: peers, pod CIDR
// (store, gateway address, routes, CNI conflist), node name, MTU, underlay,
// keepalive, listen port, resync interval, CNI conf dir and network. What it
// cannot (the device, backend, implementation, store or runtime directory it
// holds open) keeps its running value, with a warning naming the key.
void Daemon::reload() {
  config::Config next;
  try {
    next = config::load_config(cfg_.source);
  } catch (const std::exception& e) {
    log_->error("reload failed, keeping the running configuration: {}", e.what());
    return;
  }
  auto keep = [&](const char* key, std::string& now, const std::string& running) {
    if (now == running) return;
    log_->warn("reload: {} changed from \"{}\" to \"{}\": needs a restart; keeping \"{}\"", key,
               running, now, running);
    now = running;
  };
  keep("wireguard.interface", next.interface, cfg_.interface);
  keep("userspace.binary", next.userspace_binary, cfg_.userspace_binary);
  keep("userspace.socket_dir", next.userspace_socket_dir, cfg_.userspace_socket_dir);
  keep("state.database", next.database, cfg_.database);
  keep("state.runtime_dir", next.runtime_dir, cfg_.runtime_dir);
  if (next.backend != cfg_.backend) {
    log_->warn("reload: wireguard.backend changed from \"{}\" to \"{}\": needs a restart; keeping \"{}\"",
               config::to_string(cfg_.backend), config::to_string(next.backend),
               config::to_string(cfg_.backend));
    next.backend = cfg_.backend;
  }
  if (cfg_.pod_cidr && !next.pod_cidr) {
    // Withdrawn: no new pods. The store keeps the CIDR but unsettled, so
    // meshd-cni refuses ADD (STATUS 50) and the conflist goes; the pods
    // holding leases from it keep their addresses and routes.
    log_->warn("reload: node.pod_cidr removed: {} is withdrawn from new pods (CNI conflist removed, "
               "meshd-cni refuses ADD); existing pods keep their addresses and routes",
               cfg_.pod_cidr->to_string());
    next.pod_cidr = cfg_.pod_cidr;
    pod_cidr_withdrawn_ = true;
  } else if (next.pod_cidr) {
    pod_cidr_withdrawn_ = false;
  }

  config::Config old = std::move(cfg_);
  cfg_ = std::move(next);
  try {
    apply_node_settings();
  } catch (const std::exception& e) {
    log_->error("reload failed, keeping the running configuration: {}", e.what());
    cfg_ = std::move(old);
    return;
  }
  if (cfg_.pod_cidr != old.pod_cidr)
    log_->info("pod CIDR {} -> {}", old.pod_cidr ? old.pod_cidr->to_string() : "(none)",
               cfg_.pod_cidr->to_string());
  // A conflist under the old name or directory would leave the runtime two
  // networks: the one meshd wrote is removed.
  if (config::cni_conflist_path(old) != config::cni_conflist_path(cfg_))
    remove_cni_conflist(old, *log_);
  load_desired();
  if (cfg_.resync_interval_ms != old.resync_interval_ms) schedule_resync();
  log_->info("configuration reloaded from {}", cfg_.source);
  trigger(0ms, dataplane::PassScope::kFull);
}

void Daemon::watch_signals() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reload();
      watch_signals();
      return;
    }
    log_->info("stopping on signal {}; the data plane stays up", sig);
    notify_service_manager("STOPPING=1");
    ioc_.stop();
  });
}

void Daemon::start_watchdog() {
  auto interval = service_watchdog_interval();
  if (!interval) return;
  watchdog_.expires_after(*interval / 2);
  watchdog_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    notify_service_manager("WATCHDOG=1");
    start_watchdog();
  });
}

int Daemon::teardown() {
  int rc = 0;
  if (auto r = backend_->delete_device(cfg_.interface); !r) {
    log_->error("{}", r.error().message);
    rc = 1;
  }
  nl::RouteFilter f;
  f.protocol = nl::kMeshdRouteProtocol;
  if (auto routes = rtnl_->list_routes(f); routes) {
    for (const auto& r : *routes)
      if (auto d = rtnl_->delete_route(r); !d) log_->warn("{}", d.error().message);
  }
  log_->info("removed {} and meshd's routes", cfg_.interface);
  // Without the mesh, a runtime must not report the pod network ready.
  remove_cni_conflist(cfg_, *log_);
  return rc;
}

int Daemon::run() {
  // One malloc arena: meshd's second thread (the userspace backend's
  // supervisor) allocates little, and each extra arena keeps its own
  // free pages resident.
  ::mallopt(M_ARENA_MAX, 1);
  log_->info("meshd {} starting (config {})", kVersion, cfg_.source);
  auto rtnl = nl::Rtnl::open();
  if (!rtnl) throw ErrorException(rtnl.error());
  rtnl_.emplace(std::move(*rtnl));
  open_state();
  backend_ = make_backend(cfg_, backend_why_);
  log_->info("backend: {} ({})", backend_->kind(), backend_why_);
  if (opts_.teardown) return teardown();
  load_desired();

  reconciler_.emplace(dataplane::ReconcilerOptions{backend_.get(), &*rtnl_});
  if (opts_.once) return reconcile(dataplane::PassScope::kFull) ? 0 : 1;

  auto events = nl::RtnlEvents::open();
  if (!events) throw ErrorException(events.error());
  events_.emplace(std::move(*events));
  // Asio owns (and closes) what it is given: a duplicate, close-on-exec like
  // every descriptor of ours, so the userspace implementation meshd starts
  // never inherits the netlink socket.
  int events_fd = ::fcntl(events_->fd(), F_DUPFD_CLOEXEC, 0);
  if (events_fd < 0) throw ErrorException(fail(errno, "duplicate the rtnetlink event socket"));
  events_fd_.assign(events_fd);

  watch_signals();
  watch_events();
  start_watchdog();
  trigger(0ms, dataplane::PassScope::kFull);
  schedule_resync();
  ioc_.run();
  return 0;
}

}  // namespace

int run_daemon(DaemonOptions opts) {
  Daemon d(std::move(opts));
  return d.run();
}

}  // namespace meshd::daemon
