// The running control plane of one node: founds the cluster or joins it
// through a member, keeps the signed node table (in memory and in SQLite),
// answers joins on the underlay, speaks sync inside the mesh, and tells the
// daemon when the peers, the pod CIDR or its settled state change.
//
// The rules live in meshd/controlplane/ (pure: records, merge, sync, join);
// this class is their edge: clocks, randomness, sockets, the store, logs.
// Everything runs on the daemon's one io_context thread.
#pragma once

#include "common/ip.h"
#include "meshd/config/config.h"
#include "keys/identity.h"
#include "keys/wg_key.h"
#include "meshd/api/sources.h"
#include "meshd/controlplane/announce.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/liveness.h"
#include "meshd/controlplane/readmit.h"
#include "meshd/controlplane/rotation.h"
#include "meshd/controlplane/sync_engine.h"
#include "meshd/dataplane/desired_state.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}
namespace meshd::store {
class Database;
class TokenRepo;
}
namespace meshd::datastore {
struct EtcdOptions;
class EtcdClient;
class EtcdWatch;
struct WatchResponse;
struct RangeResult;
}  // namespace meshd::datastore
namespace meshd::controlplane {
class JoinServer;
class SyncChannel;
class StoreJoinTokens;
}  // namespace meshd::controlplane

namespace meshd::daemon {

// meshd's exit status when a member refused this node's join: the operator
// must act (a new token, another name); restarting will not help.
inline constexpr int kExitJoinRefused = 2;

struct ClusterMemberOptions {
  const config::Config* config = nullptr;
  store::Database* db = nullptr;
  const keys::PrivateKey* wg_key = nullptr;  // this node's WireGuard key (its public half goes in the record)
  boost::asio::io_context* ioc = nullptr;
  std::string node_name;
  // The peers, the pod CIDR or whether it is settled changed: the daemon
  // computes its desired state again and reconciles.
  std::function<void()> on_change;
  // A refusal the node cannot get past alone: the daemon logs `message` and
  // exits with `status`.
  std::function<void(int status, const std::string& message)> on_fatal;
  // The device's view of each peer (handshake age, bytes), for nodes() and
  // liveness; `fresh` reads the device now instead of a cached copy (a
  // rotation watches for the first handshake under a peer's next key).
  std::function<std::map<keys::PublicKey, api::PeerStats>(bool fresh)> peer_stats;
  // A key rotation's switch: the device takes `key` as its private key on
  // the next pass (the daemon owns the key *wg_key points to).
  std::function<void(keys::PrivateKey key)> set_wg_key;
  // This node was removed from the cluster: the daemon tears its mesh down
  // (device, routes, CNI conflist) and keeps only its API.
  std::function<void()> on_removed;
};

class ClusterMember final : public api::ClusterSource {
 public:
  explicit ClusterMember(ClusterMemberOptions opts);
  ~ClusterMember() override;
  ClusterMember(const ClusterMember&) = delete;
  ClusterMember& operator=(const ClusterMember&) = delete;

  // Takes up the cluster the store holds, or founds one, or starts joining
  // (attempts run on the io_context until admitted or refused). Throws
  // ErrorException when the store or the configuration cannot work.
  void start();

  // The daemon's pass succeeded: the node's mesh address is on the device,
  // so the sync channel can bind it (once).
  void data_plane_ready();

  // Closes the listeners and timers; the daemon then lets the loop run their
  // aborted handlers before it destroys the loop.
  void stop();

  // This node's allocated pod CIDR: nothing until founded or admitted.
  std::optional<IpPrefix> pod_cidr() const;
  // The cluster's whole pod network: nothing until founded or admitted.
  std::optional<IpPrefix> cluster_cidr() const;
  bool settled() const;
  bool joined() const { return engine_ != nullptr; }
  // The mesh address: the gateway of this node's pod CIDR.
  std::optional<IpAddress> mesh_address() const;
  // Every other member in effect, and members admitted here whose record has
  // not arrived yet, as WireGuard peers routing their pod CIDRs.
  std::vector<dataplane::PeerSpec> peers(std::uint16_t keepalive) const;

  // This node's own identity is tombstoned: its mesh is torn down.
  bool removed() const { return removed_.has_value(); }

  // api::ClusterSource
  std::optional<api::ClusterSnapshot> cluster() const override;
  std::vector<api::NodeSnapshot> nodes() const override;
  api::ControlPlaneCounters counters() const override;
  Result<api::RemovalResult> remove_node(const std::string& name_or_identity) override;
  Result<api::RotationResult> rotate_key() override;


 private:
  struct Pending {  // admitted here, record not yet received
    controlplane::JoinClaims claims;
    IpPrefix pod_cidr;
    std::chrono::steady_clock::time_point until;
    controlplane::Admission admission;  // what this member signed for it
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  };

  void load(const controlplane::ClusterParams& params);
  void found();
  void join_attempt();
  void become_member(controlplane::ClusterParams params,
                     std::vector<controlplane::SignedRecord> records,
                     const controlplane::SignedRecord& own);
  void start_join_server();
  void start_timers();
  controlplane::JoinServer* join_server() const { return join_server_.get(); }

  std::vector<std::uint8_t> answer_join(std::span<const std::uint8_t> frame, const IpAddress& source,
                                        bool& failure);
  std::vector<std::uint8_t> answer_readmit(std::span<const std::uint8_t> frame,
                                           const IpAddress& source, bool& failure);
  // A member's own record over the underlay (announce.h): merged like a
  // synced one, then pushed on by sync.
  std::vector<std::uint8_t> answer_announce(std::span<const std::uint8_t> frame,
                                            const IpAddress& source, bool& failure);
  // The underlay announcement (docs/protocol.md, "Underlay announcement"):
  // no sync message from any member for announce_quiet(): this node's
  // record, signed again at a new version, to a member's join listener,
  // with backoff, until a sync message arrives.
  std::chrono::milliseconds announce_quiet() const;
  void maybe_announce();
  void schedule_announce(std::chrono::milliseconds delay);
  void announce_attempt();
  // The join target, then every other member's first endpoint address at
  // this node's own join_listen port.
  std::vector<Endpoint> announce_targets() const;
  // This node's record lost its pod CIDR: ask the member it joined through
  // for another (readmit.h), retrying with backoff while it stays lost.
  void schedule_readmit(std::chrono::milliseconds delay);
  void readmit_attempt();
  // The node's record holding the pending CIDR is in the table.
  bool arrived(const keys::IdentityPublicKey& id, const Pending& p) const;
  // A pending entry this member routes to: not arrived, and no record of
  // higher precedence claims its CIDR. A record it overlaps is displaced
  // (not routed) until the pending record arrives and the table decides.
  bool routed(const keys::IdentityPublicKey& id, const Pending& p) const;
  bool displaced(const controlplane::NodeRecord& r) const;
  void deliver(const keys::IdentityPublicKey& from, std::span<const std::uint8_t> payload);
  void send(std::vector<controlplane::Outgoing> out);
  void send_probe();
  void schedule_fast_probe();
  bool withheld(const keys::IdentityPublicKey& to) const;
  std::optional<keys::IdentityPublicKey> member_at(const IpAddress& source) const;
  std::optional<IpAddress> address_of(const keys::IdentityPublicKey& id) const;
  // After the table may have changed: store what is new, re-check settled,
  // tell the daemon.
  void after_table_change();
  void persist_new();
  void check_own_record();
  // `to_all`: push the new version to every member (rotation), not only
  // the rumour's fanout.
  // `force`: a new version even when nothing changed, above `above` too
  // (the underlay announcement).
  void refresh_own_record(bool to_all = false, bool force = false, std::uint64_t above = 0);
  void expire_pending();
  void event(const std::string& kind, const std::string& node, const std::string& message);

  // Removal (docs/protocol.md, "Removal").
  Result<api::RemovalResult> remove(const keys::IdentityPublicKey& id, const std::string& reason);
  // A push of `t` (a record or tombstone) to every member at once, not only
  // the rumour's fanout: removals and rotations are waited for.
  void push_to_all(const std::vector<std::uint8_t>& bytes, const keys::IdentityPublicKey* skip = nullptr);
  // New tombstones in the table: logged once each; this node's own: removed.
  void notice_tombstones();
  void become_removed(const controlplane::SignedTombstone& t);
  std::string name_of(const keys::IdentityPublicKey& id) const;
  void expire_farewells();
  // Liveness (docs/lifecycle.md, "Liveness").
  controlplane::MemberSeen seen(const controlplane::NodeRecord& r,
                               const std::map<keys::PublicKey, api::PeerStats>& stats) const;
  controlplane::LivenessPolicy liveness_policy() const;
  // Once per anti-entropy period: report members going silent or coming
  // back, and prune when configured and allowed.
  void check_liveness();
  // Key rotation (docs/lifecycle.md, "Key rotation").
  void schedule_switch();
  void switch_key();
  void schedule_rotation_watch();
  // Peers whose pending key showed a handshake: they switched (rotation.h).
  bool standby_seen(const controlplane::NodeRecord& r) const;
  // Traffic through the mesh to every member (a UDP datagram to its mesh
  // address when there is no sync channel): WireGuard starts a handshake
  // under this node's new key with each.
  void kick_handshakes();

  // ---- The etcd datastore mode (cluster_member_etcd.cpp, docs/datastore.md) ----
  bool etcd_mode() const;
  void etcd_open();
  // The founder: the cluster marker, its parameters, its own claim and
  // record, in etcd before it counts as founded. Returns the cluster id
  // (another than params' when an earlier attempt of this node's founded it).
  Result<std::string> etcd_found(const controlplane::ClusterParams& params,
                                 const controlplane::SignedRecord& own);
  Result<IpPrefix> etcd_claim(const controlplane::JoinClaims& claims,
                              const std::optional<IpPrefix>& proposed, std::uint64_t admitted_at);
  void etcd_unclaim(const controlplane::JoinClaims& claims, const IpPrefix& cidr);
  // This node's record into etcd; retried on the tick while etcd is away.
  void etcd_publish_own();
  Result<void> etcd_publish_tombstone(const controlplane::SignedTombstone& t);
  // After become_member or load: the watch from the stored revision, or a listing.
  void etcd_start();
  void etcd_relist();
  void etcd_watch_from(std::int64_t revision);
  void etcd_on_watch(const datastore::WatchResponse& r);
  void etcd_schedule_rewatch();
  std::chrono::milliseconds etcd_watch_delay() const;  // before reopening an ended watch
  void etcd_tick();
  bool etcd_usable();                  // false while backing off after a failure
  std::chrono::milliseconds etcd_backoff() const;  // the current failure streak's wait
  void etcd_failed(const std::string& what, const Error& e);
  void etcd_succeeded();
  std::string etcd_scope() const;
  void etcd_check_settled();
  std::optional<Endpoint> advertised_endpoint() const;
  std::uint64_t now_ms() const;

  ClusterMemberOptions opts_;
  const config::Config& cfg_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<keys::IdentitySecretKey> identity_;
  std::unique_ptr<controlplane::SyncEngine> engine_;
  std::unique_ptr<store::TokenRepo> token_repo_;
  std::unique_ptr<controlplane::StoreJoinTokens> join_tokens_;
  std::unique_ptr<controlplane::JoinServer> join_server_;
  std::unique_ptr<controlplane::SyncChannel> sync_;
  boost::asio::steady_timer join_timer_, tick_timer_, readmit_timer_, probe_timer_;
  boost::asio::steady_timer switch_timer_, watch_timer_, farewell_timer_, self_removal_timer_;
  boost::asio::steady_timer announce_timer_;
  std::chrono::milliseconds probe_delay_{0};
  controlplane::Rng rng_;
  std::map<keys::IdentityPublicKey, std::uint64_t> persisted_;  // version stored per identity
  controlplane::TableHash persisted_hash_{};
  std::map<keys::IdentityPublicKey, Pending> pending_;
  std::map<std::string, std::uint64_t> join_outcomes_;
  std::optional<IpPrefix> own_cidr_;
  bool settled_ = false;
  unsigned join_failures_ = 0;
  controlplane::ReadmitNonces readmit_nonces_;
  bool readmit_scheduled_ = false;
  std::chrono::steady_clock::time_point unsettled_since_ = std::chrono::steady_clock::now();
  unsigned readmit_failures_ = 0;

  // Removal.
  std::optional<controlplane::SignedTombstone> removed_;  // this node's own tombstone
  std::set<keys::IdentityPublicKey> noticed_tombstones_;
  struct Farewell {  // a removed peer kept briefly so its tombstone reaches it
    dataplane::PeerSpec peer;
    std::chrono::steady_clock::time_point until;
  };
  std::map<keys::IdentityPublicKey, Farewell> farewells_;
  // Liveness.
  std::uint64_t started_ms_ = 0;
  std::map<keys::IdentityPublicKey, std::uint64_t> last_sync_ms_;  // last sync message from each member
  // The underlay announcement: the last sync message from anyone, when the
  // sync channel was bound, and the episode in progress (since when, how
  // many failed attempts, which target is next).
  std::uint64_t last_any_sync_ms_ = 0;
  std::uint64_t sync_up_ms_ = 0;
  bool announcing_ = false;
  bool announce_scheduled_ = false;
  std::uint64_t announce_since_ms_ = 0;
  unsigned announce_failures_ = 0;
  std::size_t announce_next_ = 0;
  std::set<keys::IdentityPublicKey> silent_;                       // reported silent
  // Rotation: this node's next key until it switches; the peers whose next
  // key showed a handshake (identity, next key); the next scheduled rotation.
  struct OwnPending {
    keys::PrivateKey key;
    std::uint64_t switch_at_ms = 0;
  };
  std::optional<OwnPending> next_key_;
  std::set<std::pair<keys::IdentityPublicKey, keys::PublicKey>> standby_seen_;
  bool kick_after_pass_ = false;
  bool watching_ = false;  // the rotation watch timer runs
  // The scheduled rotation counts from here: the start, or the last switch.
  std::chrono::steady_clock::time_point rotation_base_ = std::chrono::steady_clock::now();
  // Bytes received from each peer key, and when the count last grew.
  std::map<keys::PublicKey, std::pair<std::uint64_t, std::uint64_t>> rx_seen_;
  bool prune_refusal_logged_ = false;

  // The etcd datastore mode (after opts_: its timer is built from opts_.ioc).
  std::unique_ptr<datastore::EtcdOptions> etcd_options_;
  std::unique_ptr<datastore::EtcdClient> etcd_;
  std::unique_ptr<datastore::EtcdWatch> etcd_watch_;
  // Claims this member made for joins still in progress (to undo them).
  std::map<keys::IdentityPublicKey, std::string> etcd_claims_;
  boost::asio::steady_timer etcd_timer_;
  std::int64_t etcd_revision_ = 0;     // the last revision applied to the table
  std::string founding_id_;            // the cluster id this node founds under
  bool etcd_own_pending_ = false;      // this node's record still to be written
  unsigned etcd_failures_ = 0;
  unsigned etcd_watch_failures_ = 0;   // watches ended in a row, without a message
  std::chrono::steady_clock::time_point etcd_retry_at_{};
  std::chrono::steady_clock::time_point etcd_listed_at_{};
  std::chrono::steady_clock::time_point etcd_last_message_{};
  std::int64_t etcd_lease_ = 0;
  std::chrono::steady_clock::time_point etcd_lease_renewed_{};
  std::uint64_t etcd_refused_ = 0;     // values in etcd the table refused (tampered, invalid)
  std::uint64_t etcd_key_mismatch_ = 0;
  std::uint64_t etcd_relists_ = 0;     // successful full listings
  bool etcd_reached_ = false;          // a call to etcd succeeded since start
};

}  // namespace meshd::daemon
