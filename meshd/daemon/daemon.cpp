#include "meshd/daemon/daemon.h"

#include "cni/conflist.h"
#include "common/version.h"
#include "keys/format.h"
#include "meshd/dataplane/desired_state.h"
#include "meshd/dataplane/event_filter.h"
#include "meshd/dataplane/kernel_backend.h"
#include "meshd/dataplane/reconciler.h"
#include "meshd/dataplane/userspace_backend.h"
#include "common/pod_network.h"
#include "common/secret_file.h"
#include "meshd/api/routes.h"
#include "meshd/api/server.h"
#include "meshd/daemon/cluster_member.h"
#include "meshd/daemon/cni_install.h"
#include "meshd/daemon/runtime_dir.h"
#include "meshd/daemon/service_manager.h"
#include "meshd/logging/fields.h"
#include "meshd/daemon/service_status.h"
#include "netlink/rtnl.h"
#include "store/cluster.h"
#include "store/database.h"
#include "store/events.h"
#include "store/ipam.h"
#include "store/tokens.h"
#include "store/local_node.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
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

class Daemon final : public api::StatusSource {
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

  // What holds sockets and timers of the loop goes before the loop does.
  ~Daemon() override { shutdown(); }

  int run();

  // api::StatusSource
  bool ready() const override { return ready_; }
  api::StatusSnapshot status() const override;

 private:
  void start_api();
  void start_api_tcp();
  void shutdown();
  std::map<keys::PublicKey, api::PeerStats> peer_stats(bool fresh = false) const;
  void open_state();
  void apply_node_settings();
  void load_desired();
  void compose_peers();
  void start_cluster();
  void cluster_changed();
  void reload();
  bool reconcile(dataplane::PassScope scope);
  void refresh_mtu();
  void schedule_resync();
  void trigger(std::chrono::milliseconds delay, dataplane::PassScope scope);
  void watch_events();
  void watch_signals();
  void start_watchdog();
  std::string service_status_line() const;
  void notify_status(bool ready_now);
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
  dataplane::NftEgressTable egress_;  // egress: meshd's nftables table, set by the reconciler
  dataplane::EventScope event_scope_;  // what of the kernel's events concerns the mesh

  dataplane::LocalSpec local_;
  std::vector<dataplane::PeerSpec> peers_;         // static and cluster peers
  std::vector<dataplane::PeerSpec> static_peers_;  // validated [[peers]]
  // The names of the peers of the last pass by key: a data-plane line about
  // a peer names it in the journal's MESHD_PEER, also once it has left
  // peers_ ("remove peer").
  std::map<keys::PublicKey, std::string> peer_names_;
  std::unique_ptr<ClusterMember> cluster_;         // cluster mode only
  std::unique_ptr<store::TokenRepo> tokens_;
  std::unique_ptr<store::EventRepo> events_repo_;
  std::optional<api::Router> router_;
  std::unique_ptr<api::Server> api_server_;  // the unix socket
  std::unique_ptr<api::Server> api_tcp_;     // TCP, once its address exists
  std::optional<api::ServerOptions> api_tcp_options_;
  api::ReconcileSnapshot reconcile_stats_;
  std::size_t last_peer_count_ = 0;
  std::size_t last_route_count_ = 0;
  std::vector<std::string> last_errors_;  // of the last pass
  std::optional<std::string> last_egress_error_;  // egress: logged once per distinct error
  std::optional<std::string> last_event_error_;  // the last error put in the events log
  // The device's peer statistics, read at most once a second for the API.
  mutable std::map<keys::PublicKey, api::PeerStats> peer_stats_;
  mutable std::chrono::steady_clock::time_point peer_stats_at_{};
  int exit_code_ = 0;
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
  std::string last_status_;  // the STATUS= line systemd has
  int failures_ = 0;
  bool pod_cidr_withdrawn_ = false;  // removed by a reload: no new pods
  bool removed_ = false;             // removed from the cluster: the mesh is torn down
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
  logging::set_node_name(name);  // the journal's MESHD_NODE
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
  local_.pod_cidr = cluster_ ? cluster_->pod_cidr() : cfg_.pod_cidr;
  local_.cluster_cidr = cluster_ ? cluster_->cluster_cidr() : std::nullopt;
  local_.masquerade_egress = cfg_.egress_masquerade;  // egress: applied (or removed) by the next pass
  rejected_.clear();
  static_peers_ =
      dataplane::validate_static_peers(cfg_.peers, local_, cfg_.persistent_keepalive, rejected_);
  // From here on the validated peers are the ones meshd uses (a reload reads
  // the file again): the configured texts of a thousand peers are ~0.3 MB.
  std::vector<config::StaticPeer>().swap(cfg_.peers);
  static_peers_.shrink_to_fit();
  for (const auto& r : rejected_) log_->warn("peer {} rejected: {}", r.peer, r.reason);
  compose_peers();
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

api::StatusSnapshot Daemon::status() const {
  api::StatusSnapshot s;
  s.backend = std::string(backend_->kind());
  s.interface = cfg_.interface;
  s.mtu = static_cast<int>(local_.mtu);
  s.public_key = private_key_->public_key().to_base64();
  if (local_.pod_cidr) s.pod_cidr = local_.pod_cidr->to_string();
  auto ln = store::LocalNodeRepo(*db_).get();
  s.pod_cidr_settled = ln && ln->pod_cidr_settled && !pod_cidr_withdrawn_;
  s.backend_reason = backend_why_;
  if (cluster_)
    if (auto c = cluster_->cluster()) s.cluster_id = c->cluster_id;
  s.peer_count = last_peer_count_;
  s.route_count = last_route_count_;
  s.in_sync = reconcile_stats_.last_at_ms && last_errors_.empty();
  s.errors = last_errors_;
  for (const auto& r : rejected_) s.rejected_peers.emplace_back(r.peer, r.reason);
  for (const auto& [key, st] : peer_stats())
    if (st.reachable) ++s.peers_reachable;
  s.reconcile = reconcile_stats_;
  if (local_.pod_cidr) {
    if (auto leases = store::Ipam(*db_).list(cfg_.cni_network); leases) {
      std::uint64_t in_use = 0;
      for (const auto& l : *leases)
        if (local_.pod_cidr->contains(l.address)) ++in_use;
      // Network, gateway and broadcast are never leased.
      std::uint64_t size = std::uint64_t{1} << (32 - local_.pod_cidr->length);
      s.cni_leases_in_use = in_use;
      s.cni_leases_free = size > 3 + in_use ? size - 3 - in_use : 0;
    }
  }
  return s;
}

// WireGuard's session keys expire 180 s after a handshake (REJECT_AFTER_TIME);
// a peer that keeps no session past that is not reachable.
std::map<keys::PublicKey, api::PeerStats> Daemon::peer_stats(bool fresh) const {
  auto now = std::chrono::steady_clock::now();
  if (!fresh && now - peer_stats_at_ < 1s) return peer_stats_;
  if (removed_) return {};
  peer_stats_at_ = now;
  peer_stats_.clear();
  auto dev = backend_->get_device(cfg_.interface);
  if (!dev) return peer_stats_;
  auto wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& p : dev->peers) {
    api::PeerStats st;
    st.rx_bytes = p.rx_bytes;
    st.tx_bytes = p.tx_bytes;
    if (p.last_handshake_sec) {
      double age = wall - (static_cast<double>(p.last_handshake_sec) + p.last_handshake_nsec / 1e9);
      st.last_handshake_age_seconds = std::max(0.0, age);
      st.reachable = age < 180;
    }
    peer_stats_[p.public_key] = st;
  }
  return peer_stats_;
}

// The REST API on the daemon's own loop: the unix socket (file permissions
// decide who manages), and TCP only with a bearer token, and TLS off the
// loopback and mesh addresses.
void Daemon::start_api() {
  tokens_ = std::make_unique<store::TokenRepo>(*db_);
  events_repo_ = std::make_unique<store::EventRepo>(*db_);
  api::ApiOptions ao;
  ao.status = this;
  ao.tokens = tokens_.get();
  ao.cluster = cluster_.get();
  ao.events = events_repo_.get();
  router_.emplace(api::make_router(std::move(ao)));
  api::ServerOptions so;
  so.unix_socket = cfg_.api_socket;
  so.unix_socket_group = cfg_.api_socket_group;
  so.max_connections = cfg_.api_max_connections;
  so.idle_timeout = std::chrono::milliseconds(cfg_.api_idle_timeout_ms);
  if (cfg_.api_listen) {
    std::optional<IpAddress> mesh;
    if (cluster_) mesh = cluster_->mesh_address();
    bool tls = !cfg_.api_tls_cert_file.empty();
    if (auto why = api::tcp_listener_refusal(*cfg_.api_listen, mesh,
                                             !cfg_.api_bearer_token_file.empty(), tls))
      throw ErrorException(fail(EINVAL, "[api] listen " + cfg_.api_listen->to_string() + ": " + *why));
    auto token = read_secret_file(cfg_.api_bearer_token_file);
    if (!token) throw ErrorException(fail(token.error().code.value(), "[api] bearer_token_file: " +
                                                                          token.error().message));
    // Bound after the first pass (start_api_tcp): the mesh address exists
    // only once the device carries it.
    api_tcp_options_ = so;
    api_tcp_options_->unix_socket.clear();
    api_tcp_options_->tcp = cfg_.api_listen;
    api_tcp_options_->bearer_token = std::move(*token);
    api_tcp_options_->tls_cert_file = cfg_.api_tls_cert_file;
    api_tcp_options_->tls_key_file = cfg_.api_tls_key_file;
  }
  if (so.unix_socket.empty()) return;
  api_server_ = std::make_unique<api::Server>(ioc_, std::move(so), *router_);
  log_->info("API on {}", cfg_.api_socket);
}

void Daemon::start_api_tcp() {
  if (!api_tcp_options_ || api_tcp_) return;
  try {
    api_tcp_ = std::make_unique<api::Server>(ioc_, *api_tcp_options_, *router_);
  } catch (const std::exception& e) {
    log_->warn("API on {}: {}; retrying after the next pass", cfg_.api_listen->to_string(), e.what());
    return;
  }
  log_->info("API on {} ({}, bearer token)", api_tcp_->tcp_endpoint()->to_string(),
             cfg_.api_tls_cert_file.empty() ? "HTTP" : "HTTPS");
}

// The peers the planner gets: the static ones, then every cluster member in
// effect (a static peer listing a member's key or CIDR is the operator's
// mistake; the static one wins, as it was validated first).
void Daemon::compose_peers() {
  peers_ = static_peers_;
  if (!cluster_) return;
  for (auto& p : cluster_->peers(cfg_.persistent_keepalive)) {
    bool clash = std::any_of(static_peers_.begin(), static_peers_.end(), [&](const dataplane::PeerSpec& q) {
      if (q.public_key == p.public_key) return true;
      for (const auto& a : q.allowed_ips)
        for (const auto& b : p.allowed_ips)
          if (a.overlaps(b)) return true;
      return false;
    });
    if (clash) {
      log_->warn("cluster member {} clashes with a static peer (same key or allowed IPs); "
                 "the static peer is kept",
                 p.name);
      continue;
    }
    peers_.push_back(std::move(p));
  }
}

// The control plane changed the peers, this node's pod CIDR or whether it is
// settled: the next pass applies it, and the CNI conflist follows settling.
void Daemon::cluster_changed() {
  local_.cluster_cidr = cluster_->cluster_cidr();
  auto cidr = cluster_->pod_cidr();
  if (cidr != local_.pod_cidr) {
    local_.pod_cidr = cidr;
    if (cidr) log_->info("pod CIDR {} (allocated by the cluster)", cidr->to_string());
  }
  compose_peers();
  write_cni_conflist();
  trigger(0ms, dataplane::PassScope::kFull);
}

void Daemon::start_cluster() {
  ClusterMemberOptions o;
  o.config = &cfg_;
  o.db = db_.get();
  o.wg_key = &*private_key_;
  o.ioc = &ioc_;
  o.node_name = store::LocalNodeRepo(*db_).get().value().name;
  o.on_change = [this] { cluster_changed(); };
  o.peer_stats = [this](bool fresh) { return peer_stats(fresh); };
  o.set_wg_key = [this](keys::PrivateKey key) {
    // The optional keeps its storage: ClusterMember's pointer to the key
    // stays valid and now reads the new one.
    *private_key_ = std::move(key);
    local_.public_key = private_key_->public_key();
    trigger(0ms, dataplane::PassScope::kWireGuard);
  };
  o.on_removed = [this] {
    // Removed from the cluster: the mesh goes as on --teardown, and no pass
    // brings it back (reconcile() does nothing from here on).
    removed_ = true;
    debounce_.cancel();
    retry_.cancel();
    peers_.clear();
    last_peer_count_ = last_route_count_ = 0;
    (void)teardown();
    notify_status(false);
  };
  o.on_fatal = [this](int status, const std::string& message) {
    log_->error("{}", message);
    exit_code_ = status;
    ioc_.stop();
  };
  cluster_ = std::make_unique<ClusterMember>(std::move(o));
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
  if (removed_) return true;
  if (mtu_stale_) {
    mtu_stale_ = false;
    refresh_mtu();
  }
  dataplane::DesiredState desired = dataplane::compute_desired(local_, peers_);
  desired.device.private_key = private_key_->clone();
  auto started = std::chrono::steady_clock::now();
  auto report = reconciler_->apply(desired, scope);
  reconcile_stats_.last_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
  reconcile_stats_.last_duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  reconcile_stats_.durations.observe(reconcile_stats_.last_duration_seconds);
  ++reconcile_stats_.passes;
  if (!report)
    reconcile_stats_.last_error = report.error().message;
  else if (!report->ok())
    reconcile_stats_.last_error = report->errors.front();
  else
    reconcile_stats_.last_error.reset();
  if (reconcile_stats_.last_error) ++reconcile_stats_.failures;
  // The events log gets a failing pass once per distinct error, and the
  // recovery: not every retry of the same failure.
  if (events_repo_ && reconcile_stats_.last_error != last_event_error_) {
    auto at = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    if (reconcile_stats_.last_error)
      (void)events_repo_->append(at, "reconcile-error", "", *reconcile_stats_.last_error);
    else
      (void)events_repo_->append(at, "reconcile-recovered", "", "the data plane is in sync again");
    last_event_error_ = reconcile_stats_.last_error;
  }
  if (report) {
    last_peer_count_ = report->peers;
    last_route_count_ = report->routes;
    last_errors_ = report->errors;
  } else {
    last_errors_ = {report.error().message};
  }
  // egress: a masquerade that cannot be set is in the status and logged
  // once per distinct error; it does not fail the pass (pods still reach pods).
  if (report && report->egress_error) last_errors_.push_back(*report->egress_error);
  if (report && report->egress_error != last_egress_error_) {
    if (report->egress_error) rlog_->warn("{}", *report->egress_error);
    last_egress_error_ = report->egress_error;
  }
  if (scope == dataplane::PassScope::kFull || !event_scope_.device_index) {
    // What the next events are matched against: this pass's device and routes.
    if (auto l = rtnl_->get_link(cfg_.interface); l) event_scope_.device_index = l->index;
    event_scope_.route_slots.clear();
    for (const auto& r : desired.routes) event_scope_.route_slots.push_back(r.dst.network());
  }
  if (!report) {
    rlog_->warn("reconcile failed: {}", report.error().message);
    return false;
  }
  if (report->changes.empty() && report->ok())
    rlog_->debug("in sync: {} peers, {} routes", report->peers, report->routes);
  std::map<keys::PublicKey, std::string> names;
  for (const auto& p : peers_) names.emplace(p.public_key, p.name);
  for (const auto& c : report->changes) {
    std::string peer;
    if (c.peer) {
      if (auto it = names.find(*c.peer); it != names.end())
        peer = it->second;
      else if (auto was = peer_names_.find(*c.peer); was != peer_names_.end())
        peer = was->second;
    }
    logging::PeerField field(std::move(peer));
    rlog_->info("{}", c.text);
  }
  peer_names_ = std::move(names);
  for (const auto& e : report->errors) rlog_->warn("{}", e);
  return report->ok();
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
      if (cluster_) cluster_->data_plane_ready();
      start_api_tcp();
      if (!ready_) {
        ready_ = true;
        notify_status(true);
        log_->info("ready: {} on {} backend ({}), {} peers", cfg_.interface, backend_->kind(),
                   backend_why_, peers_.size());
      } else {
        notify_status(false);
      }
    } else {
      notify_status(false);
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
// keepalive, listen port, resync interval, CNI conf dir and network, egress
// masquerade, liveness and rotation settings (read where used). What it
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
  // The control plane and the API hold their listeners, the cluster and its
  // join for the process's life: a change needs a restart.
  auto keep_text = [&](const char* key, auto& now, const auto& running, auto show) {
    if (now == running) return;
    log_->warn("reload: {} changed from \"{}\" to \"{}\": needs a restart; keeping \"{}\"", key,
               show(running), show(now), show(running));
    now = running;
  };
  auto ep = [](const std::optional<Endpoint>& e) { return e ? e->to_string() : std::string(); };
  auto same = [](const auto& v) { return std::to_string(v); };
  keep_text("cluster mode ([cluster] or [join])", next.cluster_mode, cfg_.cluster_mode,
            [](bool b) { return std::string(b ? "on" : "off"); });
  keep_text("cluster.cidr", next.cluster_cidr, cfg_.cluster_cidr,
            [](const IpPrefix& p) { return p.to_string(); });
  keep_text("cluster.node_prefix", next.node_prefix_length, cfg_.node_prefix_length,
            [](std::uint8_t v) { return std::to_string(v); });
  keep_text("cluster.join_listen", next.join_listen, cfg_.join_listen,
            [](const Endpoint& e) { return e.to_string(); });
  keep_text("cluster.sync_port", next.sync_port, cfg_.sync_port, same);
  keep_text("cluster.anti_entropy_interval_ms", next.anti_entropy_interval_ms,
            cfg_.anti_entropy_interval_ms, same);
  keep_text("cluster.advertise_endpoint", next.advertise_endpoint, cfg_.advertise_endpoint, ep);
  keep_text("join.target", next.join_target, cfg_.join_target, ep);
  keep("join.token_file", next.join_token_file, cfg_.join_token_file);
  keep("api.socket", next.api_socket, cfg_.api_socket);
  keep("api.socket_group", next.api_socket_group, cfg_.api_socket_group);
  keep_text("api.listen", next.api_listen, cfg_.api_listen, ep);
  keep("api.bearer_token_file", next.api_bearer_token_file, cfg_.api_bearer_token_file);
  keep("api.tls_cert_file", next.api_tls_cert_file, cfg_.api_tls_cert_file);
  keep("api.tls_key_file", next.api_tls_key_file, cfg_.api_tls_key_file);
  keep_text("api.max_connections", next.api_max_connections, cfg_.api_max_connections, same);
  keep_text("api.idle_timeout_ms", next.api_idle_timeout_ms, cfg_.api_idle_timeout_ms, same);
  // The datastore holds the node table's source for the process's life.
  if (auto changed = config::datastore_keys_changed(cfg_, next); !changed.empty()) {
    std::string keys;
    for (const auto& k : changed) keys += (keys.empty() ? "" : ", ") + k;
    log_->warn("reload: {} changed: needs a restart; keeping the running [datastore]", keys);
    next.datastore_kind = cfg_.datastore_kind;
    next.etcd_endpoints = cfg_.etcd_endpoints;
    next.etcd_ca_file = cfg_.etcd_ca_file;
    next.etcd_cert_file = cfg_.etcd_cert_file;
    next.etcd_key_file = cfg_.etcd_key_file;
    next.etcd_username = cfg_.etcd_username;
    next.etcd_password_file = cfg_.etcd_password_file;
    next.etcd_prefix = cfg_.etcd_prefix;
    next.etcd_timeout_ms = cfg_.etcd_timeout_ms;
    next.etcd_resync_interval_s = cfg_.etcd_resync_interval_s;
    next.etcd_lease_ttl_s = cfg_.etcd_lease_ttl_s;
  }
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

// What the node does now, for `systemctl status` (service_status.h).
std::string Daemon::service_status_line() const {
  ServiceFacts f;
  f.removed = removed_;
  f.cluster_mode = cluster_ != nullptr;
  if (cluster_) {
    f.joined = cluster_->joined();
    if (cfg_.join_target) f.join_target = cfg_.join_target->to_string();
    if (auto ds = cluster_->counters().datastore) f.datastore_reachable = ds->reachable;
    f.settled = cluster_->settled();
  }
  if (local_.pod_cidr) f.pod_cidr = local_.pod_cidr->to_string();
  f.passed = reconcile_stats_.passes > 0;
  if (!last_errors_.empty()) f.error = last_errors_.front();
  f.peers = last_peer_count_;
  return service_status(f);
}

// READY=1 goes once, with the first successful pass; STATUS= whenever its
// line changed (a pass runs every resync interval, so a change the control
// plane makes between passes shows within one).
void Daemon::notify_status(bool ready_now) {
  auto line = service_status_line();
  if (!ready_now && line == last_status_) return;
  last_status_ = line;
  notify_service_manager(std::string(ready_now ? "READY=1\n" : "") + "STATUS=" + line);
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
  // egress: meshd's nftables table goes with the mesh, whatever the config says now.
  if (auto r = egress_.remove(); !r) {
    log_->error("{}", r.error().message);
    rc = 1;
  } else if (*r) {
    log_->info("removed nftables table {}", dataplane::kEgressTable);
  }
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
  // Cluster mode: configured, or a cluster already in the store (a restart
  // never drops out of its cluster because a section was edited away).
  auto stored_cluster = store::ClusterRepo(*db_).get();
  if (!stored_cluster) throw ErrorException(stored_cluster.error());
  if (cfg_.cluster_mode || *stored_cluster) {
    if (!cfg_.cluster_mode)
      log_->warn("the store holds cluster {}: running as its member although the configuration "
                 "has no [cluster] section",
                 (*stored_cluster)->id);
    if (cfg_.pod_cidr)
      throw ErrorException(fail(EINVAL, "[node] pod_cidr is the static mode's, and this node is a "
                                        "cluster member: remove pod_cidr (the cluster allocates it)"));
    start_cluster();
  }
  load_desired();

  reconciler_.emplace(dataplane::ReconcilerOptions{backend_.get(), &*rtnl_, &egress_});  // egress: with the table
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
  if (cluster_) cluster_->start();
  start_api();
  trigger(0ms, dataplane::PassScope::kFull);
  schedule_resync();
  ioc_.run();
  shutdown();
  return exit_code_;
}

// The listeners close, the loop runs what their closing aborted (the handlers
// hold the connections' state), and only then do they and the loop go: the
// other order freed sockets under handlers still queued.
void Daemon::shutdown() {
  if (api_tcp_) api_tcp_->close();
  if (api_server_) api_server_->close();
  if (cluster_) cluster_->stop();
  ioc_.restart();
  ioc_.poll();
  api_tcp_.reset();
  api_server_.reset();
  cluster_.reset();
}

}  // namespace

int run_daemon(DaemonOptions opts) {
  Daemon d(std::move(opts));
  return d.run();
}

}  // namespace meshd::daemon
