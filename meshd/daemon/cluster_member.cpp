#include "meshd/daemon/cluster_member.h"

#include "common/pod_network.h"
#include "common/secret_file.h"
#include "meshd/controlplane/join_client.h"
#include "meshd/controlplane/join_server.h"
#include "meshd/controlplane/sync_channel.h"
#include "meshd/controlplane/token_store_adapter.h"
#include "meshd/datastore/etcd_client.h"
#include "meshd/logging/fields.h"
#include "store/cluster.h"
#include "store/database.h"
#include "store/events.h"
#include "store/local_node.h"
#include "store/records.h"
#include "store/tokens.h"

#include <boost/asio/post.hpp>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace meshd::daemon {

namespace asio = boost::asio;
using namespace std::chrono_literals;
namespace cp = controlplane;

namespace {

// How long a member keeps a node it admitted as a peer before that node's
// own record arrives: long enough for a slow first handshake and sync.
constexpr auto kPendingFor = 10min;
// A pending node this member routes to that has not completed one WireGuard
// handshake with it after this long is taken for gone (it got its reply and
// died, or never meant to come): its entry would otherwise keep the member
// silent towards a node another member gave the same CIDR, for kPendingFor.
// A live joiner's first handshake comes within seconds of its admission.
constexpr auto kPendingSilence = 30s;
constexpr auto kJoinTimeout = 10s;
constexpr auto kFirstProbe = 100ms;
constexpr std::size_t kMaxProbed = 32;
// A re-admission's round trip blocks the event loop (the node serves no
// pods meanwhile, but the API and the data plane wait): kept short.
constexpr auto kReadmitTimeout = 3s;
// A member that removes a node keeps it as a peer this long, so the
// tombstone it sends reaches the removed node (which then tears its mesh
// down) before WireGuard stops carrying anything between them.
constexpr auto kFarewellFor = 1s;
// A rotation's watch: from this long before a member's announced switch,
// the device is read every kWatchEvery for a handshake under its next key.
constexpr std::uint64_t kWatchBefore = 1000;
constexpr auto kWatchEvery = 20ms;
// The underlay announcement's round trip blocks the event loop like a
// re-admission's: short, one target per attempt. Attempts back off from
// 1 s to kAnnounceMaxDelay while the node stays cut off.
constexpr auto kAnnounceTimeout = 2s;
constexpr auto kAnnounceMaxDelay = 30s;
constexpr auto kAnnounceMinQuiet = 10s;

std::shared_ptr<spdlog::logger> cluster_logger() {
  auto l = spdlog::get("cluster");
  if (!l) {
    l = spdlog::default_logger()->clone("cluster");
    spdlog::register_logger(l);
  }
  return l;
}

std::string random_cluster_id() {
  std::array<std::uint8_t, 8> b{};
  ::randombytes_buf(b.data(), b.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s.push_back(kHex[x >> 4]);
    s.push_back(kHex[x & 15]);
  }
  return s;
}

// The source address the kernel would choose towards `dst` (a connected UDP
// socket sends nothing; it only resolves the route).
std::optional<IpAddress> source_towards(const IpAddress& dst) {
  Endpoint e{dst, 9};
  sockaddr_storage ss{};
  socklen_t len = static_cast<socklen_t>(e.to_sockaddr(ss));
  int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  std::optional<IpAddress> out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    sockaddr_storage local{};
    socklen_t ll = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) == 0)
      if (auto ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&local), ll); ep)
        out = ep->address;
  }
  ::close(fd);
  return out;
}

// Records come in any order (by identity from the store, in the member's
// order in a join reply), but one is accepted only once its admitter's record
// is in the table: merge in passes until a pass accepts nothing more.
// Returns how many were refused in the end.
template <class Item, class Merge>
std::size_t merge_in_passes(const std::vector<Item>& items, Merge merge) {
  std::vector<const Item*> left;
  for (const auto& i : items) left.push_back(&i);
  for (;;) {
    std::vector<const Item*> refused;
    for (const Item* i : left)
      if (auto o = merge(*i); !cp::accepted(o) && o != cp::MergeOutcome::kStale) refused.push_back(i);
    if (refused.empty() || refused.size() == left.size()) return refused.size();
    left = std::move(refused);
  }
}

bool unspecified(const IpAddress& a) {
  return std::all_of(a.bytes.begin(), a.bytes.end(), [](std::uint8_t b) { return b == 0; });
}

store::SignedRow row_of(const cp::SignedRecord& r) {
  store::SignedRow row;
  row.identity = r.record.identity.bytes();
  row.version = r.record.version;
  row.body = r.body;
  row.signature = r.signature;
  return row;
}

store::SignedRow row_of(const cp::SignedTombstone& t) {
  store::SignedRow row;
  row.identity = t.tombstone.removed.bytes();
  row.tombstone = true;
  row.version = cp::kTombstoneVersion;
  row.body = t.body;
  row.signature = t.signature;
  return row;
}

std::string refusal_text(cp::JoinRefusal r) {
  switch (r) {
    case cp::JoinRefusal::kExpired: return "token expired";
    case cp::JoinRefusal::kRevoked: return "token revoked";
    case cp::JoinRefusal::kUsedUp: return "token used up";
    case cp::JoinRefusal::kNameHeld: return "name held by another node";
    case cp::JoinRefusal::kCidrFull: return "cluster CIDR full";
    case cp::JoinRefusal::kClockSkew: return "clock skew";
    case cp::JoinRefusal::kReplayed: return "join request replayed";
    case cp::JoinRefusal::kRemoved: return "this identity was removed from the cluster";
    case cp::JoinRefusal::kInvalidName: return "invalid node name";
    case cp::JoinRefusal::kUnavailable: return "the member cannot reach its datastore";
  }
  return "refused";
}

// A tombstone's reason comes from another member: control characters are
// shown as '?' so that it cannot forge lines in this node's log.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

}  // namespace

ClusterMember::ClusterMember(ClusterMemberOptions opts)
    : opts_(std::move(opts)),
      cfg_(*opts_.config),
      log_(cluster_logger()),
      join_timer_(*opts_.ioc),
      tick_timer_(*opts_.ioc),
      readmit_timer_(*opts_.ioc),
      probe_timer_(*opts_.ioc),
      switch_timer_(*opts_.ioc),
      watch_timer_(*opts_.ioc),
      farewell_timer_(*opts_.ioc),
      self_removal_timer_(*opts_.ioc),
      announce_timer_(*opts_.ioc),
      rng_(std::random_device{}()),
      etcd_timer_(*opts_.ioc) {}

ClusterMember::~ClusterMember() = default;

void ClusterMember::stop() {
  join_timer_.cancel();
  tick_timer_.cancel();
  readmit_timer_.cancel();
  probe_timer_.cancel();
  switch_timer_.cancel();
  watch_timer_.cancel();
  farewell_timer_.cancel();
  self_removal_timer_.cancel();
  announce_timer_.cancel();
  etcd_timer_.cancel();
  if (etcd_watch_) etcd_watch_->cancel();
  if (join_server_) join_server_->close();
  if (sync_) sync_->close();
}

std::uint64_t ClusterMember::now_ms() const {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

void ClusterMember::start() {
  started_ms_ = now_ms();
  if (!cp::valid_node_name(opts_.node_name))
    throw ErrorException(fail(EINVAL, "node name \"" + opts_.node_name +
                                          "\": a cluster node's name must be 1-63 characters of "
                                          "[a-z0-9.-], starting and ending with a letter or digit; "
                                          "set [node] name"));
  store::LocalNodeRepo local(*opts_.db);
  // The identity outlives restarts like the WireGuard key: generated once,
  // before the first join attempt, so a retried join is the same node.
  auto stored = local.identity_key();
  if (!stored) throw ErrorException(stored.error());
  if (*stored) {
    identity_ = std::move(**stored);
  } else {
    identity_ = keys::IdentitySecretKey::generate();
    if (auto r = local.set_identity_key(*identity_); !r) throw ErrorException(r.error());
    log_->info("generated this node's identity key (public {})", identity_->public_key().short_id());
  }
  if (etcd_mode()) etcd_open();
  token_repo_ = std::make_unique<store::TokenRepo>(*opts_.db);
  join_tokens_ = std::make_unique<cp::StoreJoinTokens>(*token_repo_);

  store::ClusterRepo clusters(*opts_.db);
  auto info = clusters.get();
  if (!info) throw ErrorException(info.error());
  if (*info) {
    cp::ClusterParams params;
    params.cluster_id = (*info)->id;
    params.cluster_cidr = (*info)->cidr;
    params.node_prefix_length = (*info)->node_prefix_length;
    params.founder = keys::IdentityPublicKey((*info)->founder);
    load(params);
    return;
  }
  if (cfg_.join_target) {
    log_->info("joining the cluster through {}", cfg_.join_target->to_string());
    join_timer_.expires_after(0ms);
    join_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) join_attempt();
    });
    return;
  }
  found();
}

// A restart: the store holds the cluster, the table and this node's record.
void ClusterMember::load(const cp::ClusterParams& params) {
  cp::NodeTable table(params);
  store::RecordRepo repo(*opts_.db);
  auto rows = repo.load_all();
  if (!rows) throw ErrorException(rows.error());
  std::size_t refused = merge_in_passes(*rows, [&](const store::SignedRow& row) {
    keys::Signature sig = row.signature;
    return row.tombstone ? table.merge_tombstone_bytes(row.body, sig)
                         : table.merge_record_bytes(row.body, sig);
  });
  for (const auto& row : *rows) persisted_[keys::IdentityPublicKey(row.identity)] = row.version;
  if (refused) log_->warn("{} stored records no longer accepted", refused);
  for (const auto& e : table.digest())
    if (e.version == cp::kTombstoneVersion) noticed_tombstones_.insert(e.identity);
  if (const auto* t = table.tombstone(identity_->public_key())) {
    cp::SignedTombstone mine = *t;
    engine_ = std::make_unique<cp::SyncEngine>(identity_->public_key(), std::move(table));
    persisted_hash_ = engine_->table().hash();
    become_removed(mine);
    return;
  }
  const auto* own = table.find(identity_->public_key());
  if (!own)
    throw ErrorException(fail(ENOENT, "the store holds cluster " + params.cluster_id +
                                          " but not this node's record: remove " + cfg_.database +
                                          " to join again with a new token"));
  own_cidr_ = own->record.pod_cidr;
  engine_ = std::make_unique<cp::SyncEngine>(identity_->public_key(), std::move(table));
  persisted_hash_ = engine_->table().hash();
  log_->info("member of cluster {} (from the store): pod CIDR {}, {} records", params.cluster_id,
             own_cidr_->to_string(), engine_->table().record_count());
  // An allocation the members acknowledged before the restart stays
  // settled (pods keep being served across a restart); anything else waits
  // for the acknowledgements again.
  auto stored = store::LocalNodeRepo(*opts_.db).get();
  if (!stored) throw ErrorException(stored.error());
  const auto* mine = engine_->table().find(identity_->public_key());
  settled_ = stored->pod_cidr == own_cidr_ && stored->pod_cidr_settled &&
             engine_->table().in_effect(mine->record);
  if (auto r = store::LocalNodeRepo(*opts_.db).set_pod_cidr(*own_cidr_, settled_); !r)
    throw ErrorException(r.error());
  // A rotation stored before the restart: finished if its time has come,
  // else it goes on as announced.
  auto next = store::LocalNodeRepo(*opts_.db).pending_wg_key();
  if (!next) throw ErrorException(next.error());
  if (*next) {
    next_key_ = OwnPending{std::move((*next)->key), (*next)->switch_at_ms};
    log_->info("key rotation in progress (from the store): switching to {} at {} ms",
               next_key_->key.public_key().short_id(), next_key_->switch_at_ms);
    if (next_key_->switch_at_ms <= now_ms())
      switch_key();
    else
      schedule_switch();
  }
  start_join_server();
  start_timers();
  refresh_own_record();
  if (etcd_mode()) etcd_start();
  if (opts_.on_change) opts_.on_change();
}

std::optional<Endpoint> ClusterMember::advertised_endpoint() const {
  if (cfg_.advertise_endpoint) return cfg_.advertise_endpoint;
  std::optional<IpAddress> addr;
  if (cfg_.join_target) addr = source_towards(cfg_.join_target->address);
  if (!addr && !cfg_.join_listen.address.empty() && !unspecified(cfg_.join_listen.address))
    addr = cfg_.join_listen.address;
  if (!addr) addr = source_towards(IpAddress::parse("192.0.2.1").value());  // the default route's source
  if (!addr) return std::nullopt;
  return Endpoint{*addr, cfg_.listen_port};
}

void ClusterMember::found() {
  cp::ClusterParams params;
  // One id for every attempt: a retry after a lost answer from etcd finds
  // its own cluster there instead of founding a second one.
  if (founding_id_.empty()) founding_id_ = random_cluster_id();
  params.cluster_id = founding_id_;
  params.cluster_cidr = cfg_.cluster_cidr;
  params.node_prefix_length = cfg_.node_prefix_length;
  params.founder = identity_->public_key();
  cp::NodeTable empty(params);
  auto cidr = cp::lowest_free_cidr(empty);
  if (!cidr) throw ErrorException(fail(EINVAL, "cluster CIDR holds no node prefix"));
  std::uint64_t now = now_ms();
  cp::NodeRecord r;
  r.cluster_id = params.cluster_id;
  r.name = opts_.node_name;
  r.wg_public_key = opts_.wg_key->public_key();
  r.identity = identity_->public_key();
  if (auto ep = advertised_endpoint()) r.endpoints.push_back(*ep);
  r.pod_cidr = *cidr;
  r.version = now;
  r.admission = cp::admit(*identity_, params.cluster_id, r.name, r.identity, *cidr, now);
  auto own = cp::sign_record(r, *identity_);
  if (etcd_mode()) {
    // Founded once etcd holds the cluster: its marker, parameters, this
    // node's claim and record, in one transaction.
    auto f = etcd_found(params, own);
    if (!f) {
      if (f.error().is(EEXIST)) {
        opts_.on_fatal(1, f.error().message);
        return;
      }
      etcd_failed("founding the cluster", f.error());
      auto delay = std::max<std::chrono::milliseconds>(etcd_backoff(), 1000ms);
      log_->warn("founding waits for etcd: {}; retrying in {} ms", f.error().message, delay.count());
      join_timer_.expires_after(delay);
      join_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) found();
      });
      return;
    }
    etcd_succeeded();
  }
  become_member(params, {}, own);
  log_->info("founded cluster {}: pod CIDR {}", params.cluster_id, cidr->to_string());
  event("cluster-founded", opts_.node_name, "founded cluster " + params.cluster_id);
}

void ClusterMember::join_attempt() {
  auto retry = [this](const std::string& why) {
    join_failures_ = std::min(join_failures_ + 1, 5u);
    auto delay = std::chrono::seconds(1 << (join_failures_ - 1));  // 1 .. 16 s
    log_->warn("join through {} failed: {}; retrying in {}s", cfg_.join_target->to_string(), why,
               delay.count());
    join_timer_.expires_after(delay);
    join_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) join_attempt();
    });
  };
  const std::string target = cfg_.join_target->to_string();
  auto text = read_secret_file(cfg_.join_token_file);
  if (!text) {
    opts_.on_fatal(1, "join token file: " + text.error().message);
    return;
  }
  auto token = keys::Token::parse(*text);
  sodium_memzero(text->data(), text->size());
  if (!token) {
    opts_.on_fatal(1, "join token file " + cfg_.join_token_file + ": " + token.error().message);
    return;
  }
  cp::JoinClaims claims;
  claims.name = opts_.node_name;
  claims.wg_public_key = opts_.wg_key->public_key();
  claims.identity = identity_->public_key();
  if (auto ep = advertised_endpoint()) claims.endpoints.push_back(*ep);
  claims.timestamp = now_ms();
  cp::JoinNonce nonce{};
  ::randombytes_buf(nonce.data(), nonce.size());
  auto request = cp::make_join_request(*token, claims, nonce);
  auto reply = cp::join_roundtrip(*cfg_.join_target, request, kJoinTimeout);
  if (!reply) return retry(reply.error().message);
  auto outcome = cp::open_join_reply(*reply, *token, claims, nonce);
  if (!outcome) return retry("the reply does not verify: " + outcome.error().message);
  if (auto* refused = std::get_if<cp::JoinRefused>(&*outcome)) {
    std::string reason = refused->reason ? refusal_text(*refused->reason) : "bootstrap token refused";
    // Nothing was spent: the member's datastore is down, the join waits.
    if (refused->reason == cp::JoinRefusal::kUnavailable) return retry(reason);
    if (refused->reason == cp::JoinRefusal::kClockSkew) {
      auto skew = static_cast<std::int64_t>(refused->member_time) -
                  static_cast<std::int64_t>(claims.timestamp);
      reason += ": this node's clock is " + std::to_string(std::llabs(skew) / 1000) + " s " +
                (skew > 0 ? "behind" : "ahead of") + " the member's; allowed: " +
                std::to_string(cp::kJoinWindowMs / 1000) + " s";
    }
    opts_.on_fatal(kExitJoinRefused, "join refused by " + target + ": " + reason);
    return;
  }
  auto& admitted = std::get<cp::JoinAdmitted>(*outcome);
  cp::NodeRecord r;
  r.cluster_id = admitted.cluster.cluster_id;
  r.name = claims.name;
  r.wg_public_key = claims.wg_public_key;
  r.identity = claims.identity;
  r.endpoints = claims.endpoints;
  r.pod_cidr = admitted.pod_cidr;
  r.version = now_ms();
  r.admission = admitted.admission;
  auto own = cp::sign_record(r, *identity_);
  auto cluster_id = admitted.cluster.cluster_id;
  auto cidr = admitted.pod_cidr;
  become_member(std::move(admitted.cluster), std::move(admitted.records), own);
  log_->info("joined cluster {} through {}: pod CIDR {}", cluster_id, target, cidr.to_string());
  event("cluster-joined", opts_.node_name, "joined through " + target);
}

void ClusterMember::become_member(cp::ClusterParams params, std::vector<cp::SignedRecord> records,
                                  const cp::SignedRecord& own) {
  cp::NodeTable table(params);
  if (auto refused = merge_in_passes(records, [&](const cp::SignedRecord& r) { return table.merge(r); }))
    log_->warn("{} of the member's records were refused", refused);
  // A node re-admitted after losing its reply may find an older record of
  // its own in the table; its new version must be above it.
  cp::SignedRecord mine = own;
  if (const auto* old = table.find(identity_->public_key());
      old && old->record.version >= own.record.version) {
    cp::NodeRecord r = own.record;
    r.version = old->record.version + 1;
    mine = cp::sign_record(r, *identity_);
  }
  engine_ = std::make_unique<cp::SyncEngine>(identity_->public_key(), std::move(table));
  own_cidr_ = mine.record.pod_cidr;
  cp::Rng rng(rng_());
  engine_->publish(mine, rng);  // nobody reachable yet: pushed again once the mesh is up

  // The cluster and the table in the store before anything depends on them:
  // a restart from here on never founds or joins again.
  store::ClusterInfo info;
  info.id = params.cluster_id;
  info.cidr = params.cluster_cidr;
  info.node_prefix_length = params.node_prefix_length;
  info.founder = params.founder.bytes();
  info.created_at = static_cast<std::int64_t>(now_ms() / 1000);
  persist_new();
  if (auto r = store::ClusterRepo(*opts_.db).set(info); !r) throw ErrorException(r.error());
  bool founder = params.founder == identity_->public_key();
  settled_ = founder;  // a founder has nobody to ask (in etcd mode: it claimed its CIDR there)
  unsettled_since_ = std::chrono::steady_clock::now();
  if (auto r = store::LocalNodeRepo(*opts_.db).set_pod_cidr(*own_cidr_, settled_); !r)
    throw ErrorException(r.error());
  start_join_server();
  start_timers();
  if (etcd_mode()) {
    etcd_publish_own();
    etcd_start();
  }
  after_table_change();
}

void ClusterMember::start_join_server() {
  if (join_server_) return;
  cp::JoinServerOptions o;
  o.listen = cfg_.join_listen;
  join_server_ = std::make_unique<cp::JoinServer>(
      *opts_.ioc, o, [this](std::span<const std::uint8_t> frame, const IpAddress& source) {
        cp::JoinAnswerResult res;
        // The listener passes only join ("MJRQ"), re-admission ("MJRA") and
        // announcement ("MJRN") frames.
        if (frame.size() >= 4 && std::memcmp(frame.data(), cp::kReadmitRequestMagic.data(), 4) == 0)
          res.reply = answer_readmit(frame, source, res.failure);
        else if (frame.size() >= 4 && std::memcmp(frame.data(), cp::kAnnounceRequestMagic.data(), 4) == 0)
          res.reply = answer_announce(frame, source, res.failure);
        else
          res.reply = answer_join(frame, source, res.failure);
        return res;
      });
  log_->info("answering joins on {}", join_server_->local_endpoint().to_string());
}

std::vector<std::uint8_t> ClusterMember::answer_join(std::span<const std::uint8_t> frame,
                                                     const IpAddress& source, bool& failure) {
  expire_pending();
  std::vector<IpPrefix> reserved = engine_->unreleased_cidrs();
  for (const auto& [id, p] : pending_) reserved.push_back(p.pod_cidr);
  cp::JoinMemberContext ctx{*identity_, engine_->table(), reserved};
  if (etcd_mode()) {
    ctx.claim = [this](const cp::JoinClaims& c, const std::optional<IpPrefix>& proposed, std::uint64_t at) {
      return etcd_claim(c, proposed, at);
    };
    ctx.unclaim = [this](const cp::JoinClaims& c, const IpPrefix& cidr) { etcd_unclaim(c, cidr); };
  }
  cp::JoinNonce nonce{};
  ::randombytes_buf(nonce.data(), nonce.size());
  auto a = cp::answer_join(frame, now_ms(), *join_tokens_, ctx, nonce);
  if (!a) {
    log_->error("join from {}: {}", source.to_string(), a.error().message);
    ++join_outcomes_["error"];
    failure = true;
    return cp::uniform_refusal();
  }
  if (a->admitted) {
    ++join_outcomes_["admitted"];
    Pending p{*a->admitted, *a->pod_cidr, std::chrono::steady_clock::now() + kPendingFor,
              *a->admission};
    {
      logging::PeerField peer(p.claims.name);
      log_->info("admitted {} ({}) from {}: pod CIDR {}", p.claims.name, p.claims.identity.short_id(),
                 source.to_string(), p.pod_cidr.to_string());
    }
    event("node-admitted", p.claims.name,
          "admitted from " + source.to_string() + " with pod CIDR " + p.pod_cidr.to_string());
    pending_[p.claims.identity] = std::move(p);
    if (opts_.on_change) opts_.on_change();
  } else if (a->refusal) {
    std::string why(cp::to_string(*a->refusal));
    ++join_outcomes_["refused_" + why];
    failure = true;
    log_->warn("join from {} refused: {}", source.to_string(), refusal_text(*a->refusal));
    event("join-refused", "", "from " + source.to_string() + ": " + refusal_text(*a->refusal));
  } else {
    ++join_outcomes_["unproven"];
    failure = true;
    log_->warn("join from {} refused: bootstrap token refused", source.to_string());
  }
  return std::move(a->reply);
}

// A node whose record lost its pod CIDR asks for another (readmit.h). The
// new CIDR is pending here like a join's: this member routes it to the node
// and skips it in allocations until the node's record holding it arrives.
std::vector<std::uint8_t> ClusterMember::answer_readmit(std::span<const std::uint8_t> frame,
                                                        const IpAddress& source, bool& failure) {
  expire_pending();
  // The requester's own earlier reservation (a retry whose reply was lost)
  // is not held against it; the decode below happens again in
  // cp::answer_readmit, this one only finds whose it is.
  std::optional<keys::IdentityPublicKey> requester;
  if (auto req = cp::decode_readmit_request(frame)) requester = req->identity;
  std::vector<IpPrefix> reserved = engine_->unreleased_cidrs();
  std::vector<cp::NodeRecord> pending;
  for (const auto& [id, p] : pending_) {
    if (id != requester) reserved.push_back(p.pod_cidr);
    if (arrived(id, p)) continue;
    cp::NodeRecord r;
    r.cluster_id = engine_->table().params().cluster_id;
    r.name = p.claims.name;
    r.identity = id;
    r.pod_cidr = p.pod_cidr;
    r.admission = p.admission;
    pending.push_back(std::move(r));
  }
  cp::ReadmitMemberContext ctx{*identity_, engine_->table(), reserved, pending};
  auto a = cp::answer_readmit(frame, now_ms(), ctx, readmit_nonces_);
  if (a.refusal == cp::ReadmitRefusal::kInEffect) {
    // An unsettled node asking whether its claim lost: the usual answer.
    log_->debug("re-admission from {}: {}", source.to_string(), cp::to_string(*a.refusal));
    return std::move(a.reply);
  }
  if (a.refusal) {
    std::string why(cp::to_string(*a.refusal));
    ++join_outcomes_["readmit_refused"];
    // Only what no honest node sends counts toward the source's limit: a
    // node whose view lags the member's (in effect here) asks again later.
    failure = *a.refusal == cp::ReadmitRefusal::kMalformed ||
              *a.refusal == cp::ReadmitRefusal::kReplayed ||
              *a.refusal == cp::ReadmitRefusal::kWrongCluster;
    std::string who = a.request ? a.request->name + " (" + a.request->identity.short_id() + ")"
                                : std::string("a node");
    log_->warn("re-admission of {} from {} refused: {}", who, source.to_string(), why);
    event("readmit-refused", a.request ? a.request->name : "", "from " + source.to_string() + ": " + why);
    return std::move(a.reply);
  }
  ++join_outcomes_["readmitted"];
  cp::JoinClaims claims;
  if (const auto* rec = engine_->table().find(a.request->identity)) {
    claims.name = rec->record.name;
    claims.wg_public_key = rec->record.wg_public_key;
    claims.identity = rec->record.identity;
    claims.endpoints = rec->record.endpoints;
  } else {
    claims = pending_.at(a.request->identity).claims;  // admitted here, record never arrived
  }
  claims.timestamp = a.request->timestamp;
  Pending p{claims, *a.pod_cidr, std::chrono::steady_clock::now() + kPendingFor, *a.admission};
  {
    logging::PeerField peer(claims.name);
    log_->info("re-admitted {} ({}) from {}: pod CIDR {} (its {} lost to an earlier admission)",
               claims.name, claims.identity.short_id(), source.to_string(), a.pod_cidr->to_string(),
               a.lost_cidr->to_string());
  }
  event("node-readmitted", claims.name,
        "re-admitted from " + source.to_string() + " with pod CIDR " + a.pod_cidr->to_string() +
            " (lost " + a.lost_cidr->to_string() + ")");
  pending_[claims.identity] = std::move(p);
  if (opts_.on_change) opts_.on_change();
  return std::move(a.reply);
}

void ClusterMember::schedule_readmit(std::chrono::milliseconds delay) {
  if (readmit_scheduled_) return;
  readmit_scheduled_ = true;
  readmit_timer_.expires_after(delay);
  readmit_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) readmit_attempt();
  });
}

void ClusterMember::readmit_attempt() {
  readmit_scheduled_ = false;
  const auto* own = engine_->table().find(identity_->public_key());
  const auto loss = own ? cp::claim_state(engine_->table(), own->record).loss : cp::ClaimLoss::kNameHeld;
  // Asked when this node's table says its CIDR lost, and also while it stays
  // unsettled: a node whose record never reached anyone (its admitter
  // routes its CIDR to the record that beat it) hears nothing through the
  // mesh, and its admitter knows the answer.
  if (loss == cp::ClaimLoss::kNameHeld || (loss == cp::ClaimLoss::kNone && settled_)) {
    readmit_failures_ = 0;  // settled (or a name conflict: the operator's)
    return;
  }
  const std::string target = cfg_.join_target->to_string();
  if (loss == cp::ClaimLoss::kNone && readmit_failures_ == 0)
    log_->info("pod CIDR {} not settled; asking {} whether its claim lost", own_cidr_->to_string(),
               target);
  auto retry = [&](const std::string& why, bool in_effect = false) {
    readmit_failures_ = std::min(readmit_failures_ + 1, 5u);
    auto delay = std::chrono::seconds(1 << (readmit_failures_ - 1));  // 1 .. 16 s
    if (in_effect)  // not lost there: still waiting for acknowledgements
      log_->info("{} holds this node's claim on {} in effect; asking again in {}s if still unsettled",
                 target, own_cidr_->to_string(), delay.count());
    else
      log_->warn("re-admission through {} failed: {}; retrying in {}s", target, why, delay.count());
    schedule_readmit(delay);
  };
  const cp::ClusterParams& params = engine_->table().params();
  const std::string name = own->record.name;
  std::uint64_t sent_at = now_ms();
  cp::JoinNonce nonce{};
  ::randombytes_buf(nonce.data(), nonce.size());
  auto request = cp::make_readmit_request(*identity_, params.cluster_id, name, sent_at, nonce);
  auto reply = cp::join_roundtrip(*cfg_.join_target, request, kReadmitTimeout);
  if (!reply) return retry(reply.error().message);
  auto outcome = cp::open_readmit_reply(*reply, params, name, identity_->public_key(), nonce);
  if (!outcome) return retry("the reply does not verify: " + outcome.error().message);
  if (auto* refused = std::get_if<cp::ReadmitRefused>(&*outcome)) {
    std::string reason(cp::to_string(refused->reason));
    if (refused->reason == cp::ReadmitRefusal::kClockSkew) {
      auto skew = static_cast<std::int64_t>(refused->member_time) - static_cast<std::int64_t>(sent_at);
      reason += ": this node's clock is " + std::to_string(std::llabs(skew) / 1000) + " s " +
                (skew > 0 ? "behind" : "ahead of") + " the member's";
    }
    return retry("refused: " + reason, refused->reason == cp::ReadmitRefusal::kInEffect);
  }
  auto& readmitted = std::get<cp::Readmitted>(*outcome);
  const auto& admitter = readmitted.admission.admitter;
  if (admitter != params.founder && !engine_->table().find(admitter))
    return retry("the admitter " + admitter.short_id() + " is not a member this node knows");
  const IpPrefix lost = own->record.pod_cidr;
  cp::NodeRecord r = own->record;
  r.pod_cidr = readmitted.pod_cidr;
  r.admission = readmitted.admission;
  r.version = std::max(own->record.version + 1, now_ms());
  auto next = cp::sign_record(r, *identity_);
  send(engine_->publish(next, rng_));
  readmit_failures_ = 0;
  own_cidr_ = readmitted.pod_cidr;
  settled_ = false;  // the settle rule runs again for the new CIDR
  unsettled_since_ = std::chrono::steady_clock::now();
  if (auto s = store::LocalNodeRepo(*opts_.db).set_pod_cidr(*own_cidr_, false); !s)
    log_->error("{}", s.error().message);
  // The sync channel is bound to the old mesh address: bound again on the
  // new one after the next data-plane pass (data_plane_ready).
  sync_.reset();
  log_->info("re-admitted by {}: pod CIDR {} (was {})", target, own_cidr_->to_string(), lost.to_string());
  event("node-readmitted", opts_.node_name,
        "re-admitted by " + target + " with pod CIDR " + own_cidr_->to_string() + " (lost " +
            lost.to_string() + ")");
  after_table_change();
  if (opts_.on_change) opts_.on_change();
}

// A member's own record over the underlay (announce.h). The same rules as a
// record that came by sync: the table checks the owner's signature, the
// admission, the version and the tombstones; a new one goes into the data
// plane and on to the fanout by sync.
std::vector<std::uint8_t> ClusterMember::answer_announce(std::span<const std::uint8_t> frame,
                                                         const IpAddress& source, bool& failure) {
  if (etcd_mode()) {
    // etcd carries the records: a record merged here and not there would
    // make this member's table differ from etcd's.
    return cp::make_announce_reply(cp::AnnounceReply{cp::AnnounceStatus::kRefused, {}, {}});
  }
  auto a = cp::answer_announce(frame, *engine_, rng_);
  const std::string name = a.request ? a.request->record.record.name : std::string();
  const std::string who = a.request ? name + " (" + a.request->record.record.identity.short_id() + ")"
                                    : std::string("a node");
  switch (a.status) {
    case cp::AnnounceStatus::kMerged: {
      ++join_outcomes_["announce_merged"];
      {
        logging::PeerField peer(name);
        log_->info("record of {} (version {}) received over the underlay from {}", name,
                   a.request->record.record.version, source.to_string());
      }
      event("node-announced", name,
            "record version " + std::to_string(a.request->record.record.version) +
                " received over the underlay from " + source.to_string());
      send(std::move(a.out));
      after_table_change();
      break;
    }
    case cp::AnnounceStatus::kStale: {
      // A retry after an earlier attempt merged, or a replay: nothing to do.
      ++join_outcomes_["announce_stale"];
      logging::PeerField peer(name);
      log_->debug("record of {} (version {}) from {} over the underlay: {}", who,
                  a.request->record.record.version, source.to_string(), cp::to_string(a.status));
      break;
    }
    case cp::AnnounceStatus::kRemoved: {
      // An honest node restored after its removal: it learns it from the
      // tombstone in the reply.
      ++join_outcomes_["announce_removed"];
      logging::PeerField peer(name);
      log_->warn("record of {} from {} over the underlay refused: {}", who, source.to_string(),
                 cp::to_string(a.status));
      break;
    }
    default: {
      // What no honest member sends counts toward the source's limit.
      ++join_outcomes_["announce_refused"];
      failure = true;
      std::string why(cp::to_string(a.status));
      if (a.status == cp::AnnounceStatus::kRefused) why += ": " + std::string(cp::to_string(a.outcome));
      logging::PeerField peer(name);
      log_->warn("record of {} from {} over the underlay refused: {}", who, source.to_string(), why);
      break;
    }
  }
  return std::move(a.reply);
}

std::chrono::milliseconds ClusterMember::announce_quiet() const {
  return std::max<std::chrono::milliseconds>(kAnnounceMinQuiet,
                                             5 * std::chrono::milliseconds(cfg_.anti_entropy_interval_ms));
}

std::vector<Endpoint> ClusterMember::announce_targets() const {
  std::vector<Endpoint> out;
  if (cfg_.join_target) out.push_back(*cfg_.join_target);
  // Records carry WireGuard endpoints, not join listeners: a member's join
  // listener is taken to be on the address of its endpoint, at the port this
  // node's own listener uses (one port across the cluster, as the shipped
  // configuration has it).
  for (const auto& r : engine_->table().view()) {
    if (r->record.identity == identity_->public_key() || r->record.endpoints.empty()) continue;
    Endpoint e{r->record.endpoints.front().address, cfg_.join_listen.port};
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  return out;
}

// On every tick: a member with the sync channel up, others in effect in its
// table, and no sync message from any of them for announce_quiet() is cut
// off from the mesh. Most often the others route its CIDR to a WireGuard key
// it no longer holds (restored from a backup taken before a rotation): only
// its record, handed over outside the mesh, can tell them its key.
void ClusterMember::maybe_announce() {
  if (announcing_ || removed_ || etcd_mode() || !sync_ || !engine_ || !sync_up_ms_) return;
  const auto* own = engine_->table().find(identity_->public_key());
  if (!own) return;
  bool others = false;
  for (const auto& r : engine_->table().view())
    if (r->record.identity != identity_->public_key()) others = true;
  if (!others) return;
  const std::uint64_t now = now_ms();
  const std::uint64_t since = std::max(last_any_sync_ms_, sync_up_ms_);
  if (now < since || std::chrono::milliseconds(now - since) < announce_quiet()) return;
  auto targets = announce_targets();
  if (targets.empty()) return;
  std::string list;
  for (const auto& t : targets) list += (list.empty() ? "" : ", ") + t.to_string();
  log_->info("no sync from any member for {} s: announcing this node's record over the underlay to {}",
             (now - since) / 1000, list);
  event("announcing", opts_.node_name, "no sync for " + std::to_string((now - since) / 1000) + " s");
  announcing_ = true;
  announce_since_ms_ = now;
  announce_failures_ = 0;
  announce_next_ = 0;
  // A new version even when nothing changed: the others may hold a newer
  // one of this identity, with another key, that this node does not know.
  refresh_own_record(false, true);
  schedule_announce(0ms);
}

void ClusterMember::schedule_announce(std::chrono::milliseconds delay) {
  if (announce_scheduled_) return;
  announce_scheduled_ = true;
  announce_timer_.expires_after(delay);
  announce_timer_.async_wait([this](boost::system::error_code ec) {
    announce_scheduled_ = false;
    if (!ec) announce_attempt();
  });
}

void ClusterMember::announce_attempt() {
  if (!announcing_) return;
  if (removed_ || !engine_ || !sync_) {
    announcing_ = false;
    return;
  }
  if (last_any_sync_ms_ > announce_since_ms_) {
    announcing_ = false;
    log_->info("sync from the members again: stopped announcing over the underlay");
    return;
  }
  auto again = [this](const std::string& why) {
    announce_failures_ = std::min(announce_failures_ + 1, 6u);
    auto delay = std::min<std::chrono::milliseconds>(
        std::chrono::seconds(1 << (announce_failures_ - 1)), kAnnounceMaxDelay);  // 1, 2, 4 .. 30 s
    log_->debug("underlay announcement: {}; next in {} ms", why, delay.count());
    schedule_announce(delay);
  };
  auto targets = announce_targets();
  const auto* own = engine_->table().find(identity_->public_key());
  if (targets.empty() || !own) return again("no member to announce to");
  const Endpoint target = targets[announce_next_++ % targets.size()];
  const cp::SignedRecord mine = *own;
  auto request = cp::make_announce_request(engine_->table().params().cluster_id, mine);
  auto reply = cp::join_roundtrip(target, request, kAnnounceTimeout);
  if (!reply) return again(reply.error().message);
  auto answer = cp::decode_announce_reply(*reply);
  if (!answer) return again(target.to_string() + ": " + answer.error().message);
  switch (answer->status) {
    case cp::AnnounceStatus::kMerged:
      return again(target.to_string() + " merged version " + std::to_string(mine.record.version));
    case cp::AnnounceStatus::kStale: {
      const std::uint64_t held = *answer->held_version;
      if (held <= mine.record.version)
        return again(target.to_string() + " holds version " + std::to_string(mine.record.version) + " already");
      // The member holds a newer version of this identity than this node
      // knows (its clock went back): signed above it. The reply is not
      // authenticated, so a version far in the future is not followed.
      if (held >= cp::kTombstoneVersion - 1 || held > now_ms() + 24ull * 3600 * 1000)
        return again(target.to_string() + " claims to hold version " + std::to_string(held) +
                     ", too far ahead of this node's clock");
      log_->info("{} holds version {} of this node's record, above this node's {}: signing above it",
                 target.to_string(), held, mine.record.version);
      refresh_own_record(false, true, held);
      announce_next_--;  // the same member, at once
      return schedule_announce(0ms);
    }
    case cp::AnnounceStatus::kRemoved:
      if (answer->tombstone) {
        // Signed by its remover: the table checks it like a synced one.
        (void)engine_->publish(*answer->tombstone, rng_);
        after_table_change();
        if (removed_) return;
      }
      return again(target.to_string() + ": " + std::string(cp::to_string(answer->status)));
    default:
      return again(target.to_string() + " refused: " + std::string(cp::to_string(answer->status)));
  }
}

void ClusterMember::start_timers() {
  tick_timer_.expires_after(std::chrono::milliseconds(cfg_.anti_entropy_interval_ms));
  tick_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || removed_) return;
    expire_pending();
    if (sync_) {
      send(engine_->tick(rng_));
      if (!engine_->settled()) send_probe();
      // A removed node's CIDR is handed out again only once every member
      // showed it holds the tombstone: ask those that have not.
      if (engine_->has_unreleased()) {
        auto out = engine_->release_probe();
        if (out.size() > kMaxProbed) {
          std::shuffle(out.begin(), out.end(), rng_);
          out.resize(kMaxProbed);
        }
        send(std::move(out));
      }
    }
    if (etcd_mode()) etcd_tick();
    after_table_change();
    if (removed_) return;
    maybe_announce();
    check_liveness();
    if (removed_) return;
    if (cfg_.rotation_interval_s && !next_key_ &&
        std::chrono::steady_clock::now() - rotation_base_ >= std::chrono::seconds(cfg_.rotation_interval_s)) {
      if (auto r = rotate_key(); !r) log_->warn("scheduled key rotation: {}", r.error().message);
    }
    const auto probe_after = std::max<std::chrono::milliseconds>(
        5s, 10 * std::chrono::milliseconds(cfg_.anti_entropy_interval_ms));
    if (!settled_ && cfg_.join_target && !readmit_scheduled_ && !etcd_mode() &&
        engine_->table().params().founder != identity_->public_key() &&
        std::chrono::steady_clock::now() - unsettled_since_ >= probe_after)
      schedule_readmit(std::chrono::milliseconds(0));
    start_timers();
  });
}

// The settle probe asks the members that have not acknowledged this node's
// CIDR yet. Right after a join most of them cannot answer: the node's record
// reaches them a push or two after its first probe, and only then do they
// route to it. So an unsettled node probes again 100, 200, 400 ... ms later,
// up to the anti-entropy period, instead of waiting a whole period.
void ClusterMember::schedule_fast_probe() {
  if (probe_delay_ >= std::chrono::milliseconds(cfg_.anti_entropy_interval_ms)) return;
  probe_timer_.expires_after(probe_delay_);
  probe_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !engine_ || engine_->settled()) return;
    send_probe();
    after_table_change();
    probe_delay_ *= 2;
    schedule_fast_probe();
  });
}

// At most kMaxProbed members per probe, chosen at random: in a large cluster
// a newcomer that asked all of them every period spent its time signing and
// connecting; the rest are asked in later periods.
void ClusterMember::send_probe() {
  auto out = engine_->settle_probe();
  if (out.size() > kMaxProbed) {
    std::shuffle(out.begin(), out.end(), rng_);
    out.resize(kMaxProbed);
  }
  send(std::move(out));
}

void ClusterMember::data_plane_ready() {
  if (removed_) return;
  if (kick_after_pass_ && engine_) {
    // The device has switched to the new key (rotation.h, step 3).
    kick_after_pass_ = false;
    kick_handshakes();
  }
  // etcd mode: no sync channel; the watch brings the records.
  if (sync_ || !engine_ || etcd_mode()) return;
  auto addr = mesh_address();
  if (!addr) return;
  cp::SyncChannelOptions o;
  o.bind_address = *addr;
  o.port = cfg_.sync_port;
  o.device = cfg_.interface;
  try {
    sync_ = std::make_unique<cp::SyncChannel>(
        *opts_.ioc, o, *identity_,
        [this](const IpAddress& source) { return member_at(source); },
        [this](const keys::IdentityPublicKey& from, std::span<const std::uint8_t> payload) {
          deliver(from, payload);
        },
        [this] { return now_ms(); });
  } catch (const std::exception& e) {
    log_->warn("sync channel on {}: {}; retrying after the next pass", addr->to_string(), e.what());
    return;
  }
  log_->info("sync on {}:{}", addr->to_string(), sync_->port());
  // The quiet that starts an underlay announcement counts from here: before
  // it, nothing could arrive.
  if (!sync_up_ms_) sync_up_ms_ = now_ms();
  // Tell every member this node's record at once (the admitter first: it is
  // the only one that already has this node as a peer).
  if (const auto* own = engine_->table().find(identity_->public_key())) {
    cp::SyncMessage m;
    m.type = cp::MessageType::kPush;
    m.records.push_back({own->body, own->signature});
    auto bytes = cp::encode_message(m);
    std::vector<cp::Outgoing> out;
    const auto& admitter = own->record.admission.admitter;
    if (admitter != identity_->public_key()) out.push_back({admitter, bytes});
    send(std::move(out));
  }
  probe_delay_ = kFirstProbe;
  send_probe();
  schedule_fast_probe();
}

void ClusterMember::deliver(const keys::IdentityPublicKey& from, std::span<const std::uint8_t> payload) {
  if (removed_) return;
  last_sync_ms_[from] = now_ms();
  last_any_sync_ms_ = last_sync_ms_[from];
  send(engine_->receive(from, payload, rng_));
  after_table_change();
}

// A member that handed a CIDR to a node whose record has not arrived yet
// does not yet hold the claim in its table, so it could acknowledge another
// node that a second member admitted to the same CIDR meanwhile. It says
// nothing at all to such a node (any equal Summary counts as an
// acknowledgement) until the pending record arrives (then the node learns it
// lost) or expires (then the CIDR was never taken).
//
// Only a pending node of higher precedence can take the CIDR away, so only
// such an entry (routed()) withholds; acknowledging a record that a pending
// node would lose to costs nothing.
bool ClusterMember::withheld(const keys::IdentityPublicKey& to) const {
  if (pending_.empty()) return false;
  const auto* r = engine_->table().find(to);
  return r && displaced(r->record);
}

void ClusterMember::send(std::vector<cp::Outgoing> out) {
  if (!sync_) return;
  for (auto& o : out) {
    if (withheld(o.to)) {
      log_->debug("not answering {}: its pod CIDR was handed to a node whose record is pending",
                  o.to.short_id());
      continue;
    }
    auto addr = address_of(o.to);
    if (!addr) continue;
    sync_->send(o.to, *addr, std::move(o.bytes));
  }
}

std::optional<IpAddress> ClusterMember::address_of(const keys::IdentityPublicKey& id) const {
  // A re-admitted node is reached at its new CIDR before its record says so.
  if (auto it = pending_.find(id); it != pending_.end() && !arrived(id, it->second))
    if (auto gw = pod_gateway(it->second.pod_cidr)) return *gw;
  if (const auto* r = engine_->table().find(id)) {
    if (auto gw = pod_gateway(r->record.pod_cidr)) return *gw;
    return std::nullopt;
  }
  if (auto it = pending_.find(id); it != pending_.end())
    if (auto gw = pod_gateway(it->second.pod_cidr)) return *gw;
  return std::nullopt;
}

std::optional<keys::IdentityPublicKey> ClusterMember::member_at(const IpAddress& source) const {
  if (!engine_) return std::nullopt;
  // The same choice as peers(): WireGuard delivers a source address only
  // from the peer whose allowed IPs hold it.
  for (const auto& r : engine_->table().view()) {
    if (r->record.identity == identity_->public_key() || displaced(r->record)) continue;
    if (auto gw = pod_gateway(r->record.pod_cidr); gw && *gw == source) return r->record.identity;
  }
  for (const auto& [id, p] : pending_)
    if (!routed(id, p)) continue;
    else if (auto gw = pod_gateway(p.pod_cidr); gw && *gw == source) return id;
  return std::nullopt;
}

// A pending entry is done when the node's record holding the pending CIDR
// is in the table: a record that still holds another CIDR (a re-admitted
// node's lost one) does not count.
bool ClusterMember::arrived(const keys::IdentityPublicKey& id, const Pending& p) const {
  if (!engine_) return false;
  const auto* r = engine_->table().find(id);
  return r && r->record.pod_cidr == p.pod_cidr;
}

bool ClusterMember::routed(const keys::IdentityPublicKey& id, const Pending& p) const {
  if (arrived(id, p)) return false;
  cp::NodeRecord probe;
  probe.identity = id;
  probe.admission = p.admission;
  for (const auto& r : engine_->table().view())
    if (r->record.identity != id && r->record.pod_cidr.overlaps(p.pod_cidr) &&
        cp::precedes(r->record, probe))
      return false;
  return true;
}

bool ClusterMember::displaced(const cp::NodeRecord& r) const {
  for (const auto& [id, p] : pending_)
    if (id != r.identity && p.pod_cidr.overlaps(r.pod_cidr) && routed(id, p)) return true;
  return false;
}

void ClusterMember::expire_pending() {
  auto now = std::chrono::steady_clock::now();
  bool changed = false;
  // Routed entries silent past kPendingSilence: read the device once.
  std::optional<std::map<keys::PublicKey, api::PeerStats>> stats;
  for (auto it = pending_.begin(); it != pending_.end();) {
    const Pending& p = it->second;
    if (opts_.peer_stats && now - p.since >= kPendingSilence && engine_ && routed(it->first, p)) {
      if (!stats) stats = opts_.peer_stats(false);
      auto st = stats->find(p.claims.wg_public_key);
      if (st == stats->end() || !st->second.last_handshake_age_seconds) {
        logging::PeerField peer(p.claims.name);
        log_->warn("{} was admitted {} s ago and never completed a WireGuard handshake; its pod CIDR "
                   "{} is free again",
                   p.claims.name,
                   std::chrono::duration_cast<std::chrono::seconds>(now - p.since).count(),
                   p.pod_cidr.to_string());
        it = pending_.erase(it);
        changed = true;
        continue;
      }
    }
    bool done = arrived(it->first, it->second);
    if (done || it->second.until < now) {
      if (!done) {
        logging::PeerField peer(it->second.claims.name);
        log_->warn("{} was admitted but its record never arrived; its pod CIDR {} is free again",
                   it->second.claims.name, it->second.pod_cidr.to_string());
      }
      it = pending_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed && opts_.on_change) opts_.on_change();
}

void ClusterMember::persist_new() {
  std::vector<store::SignedRow> rows;
  const auto& t = engine_->table();
  for (const auto& e : t.digest()) {
    auto it = persisted_.find(e.identity);
    if (it != persisted_.end() && it->second == e.version) continue;
    if (e.version == cp::kTombstoneVersion) {
      if (const auto* ts = t.tombstone(e.identity)) rows.push_back(row_of(*ts));
    } else if (const auto* r = t.find(e.identity)) {
      rows.push_back(row_of(*r));
    }
  }
  if (rows.empty()) return;
  if (auto r = store::RecordRepo(*opts_.db).put(rows); !r) {
    log_->error("cannot store {} node records: {}", rows.size(), r.error().message);
    return;
  }
  for (const auto& row : rows) persisted_[keys::IdentityPublicKey(row.identity)] = row.version;
}

// This node's record says what the node is now: its WireGuard key and its
// advertised endpoint. When they differ from the record in the table (a new
// endpoint or key after a restart), a new version is signed and pushed. The
// version is the wall clock in ms (above the last one): a node restored from
// an older backup, which does not know the version its peers hold, still
// signs one above it instead of a second, different record of an equal
// version that would never replace theirs.
void ClusterMember::refresh_own_record(bool to_all, bool force, std::uint64_t above) {
  const auto* own = engine_->table().find(identity_->public_key());
  if (!own || removed_) return;
  cp::NodeRecord want = own->record;
  want.wg_public_key = opts_.wg_key->public_key();
  want.endpoints.clear();
  if (auto ep = advertised_endpoint()) want.endpoints.push_back(*ep);
  want.protocol_version = cp::kProtocolVersion;
  want.pending_key.reset();
  if (next_key_) want.pending_key = cp::PendingKey{next_key_->key.public_key(), next_key_->switch_at_ms};
  if (want == own->record && !force) return;
  want.version = std::max({own->record.version + 1, now_ms(), above + 1});
  auto next = cp::sign_record(want, *identity_);
  auto out = engine_->publish(next, rng_);
  if (to_all) {
    cp::SyncMessage m;
    m.type = cp::MessageType::kPush;
    m.records.push_back({next.body, next.signature});
    push_to_all(cp::encode_message(m));
  } else {
    send(std::move(out));
  }
  if (etcd_mode()) etcd_publish_own();
  log_->info("published version {} of this node's record (endpoint {}{})", want.version,
             want.endpoints.empty() ? std::string("none") : want.endpoints.front().to_string(),
             want.pending_key ? ", next key " + want.pending_key->wg_public_key.short_id() : std::string());
  persist_new();
}

void ClusterMember::check_own_record() {
  const auto* own = engine_->table().find(identity_->public_key());
  if (!own) return;
  // A node restored from an older backup takes up the newest version of its
  // own record that the others hold.
  if (own->record.pod_cidr != *own_cidr_) {
    log_->warn("this node's record now holds pod CIDR {} (was {})", own->record.pod_cidr.to_string(),
               own_cidr_->to_string());
    own_cidr_ = own->record.pod_cidr;
  }
  if (!engine_->table().in_effect(own->record)) {
    auto state = cp::claim_state(engine_->table(), own->record);
    const bool founder = engine_->table().params().founder == identity_->public_key();
    if (state.loss == cp::ClaimLoss::kCidrHeld && cfg_.join_target && !founder && !etcd_mode()) {
      if (!readmit_scheduled_) {
        log_->warn("lost pod CIDR {} to {} (earlier admission); asking {} for another",
                   own_cidr_->to_string(), state.winner->record.name, cfg_.join_target->to_string());
        event("pod-cidr-lost", opts_.node_name,
              own_cidr_->to_string() + " lost to " + state.winner->record.name);
        schedule_readmit(std::chrono::milliseconds(0));
      }
    } else {
      log_->error("this node's claim on its name or pod CIDR {} lost to an earlier admission; "
                  "it serves no pods until it is removed and joins again",
                  own_cidr_->to_string());
    }
  }
  refresh_own_record();
}

void ClusterMember::after_table_change() {
  if (!engine_) return;
  // Settled latches for an allocation: once every member acknowledged this
  // node's CIDR, a member that joins later was admitted by one that already
  // held this record, so it cannot take the CIDR away; withdrawing the CNI
  // network at every join would stop new pods cluster-wide for nothing.
  // Only losing the claim (check_own_record) or a new CIDR unsettles it.
  const auto* own = engine_->table().find(identity_->public_key());
  bool in_effect = own && engine_->table().in_effect(own->record);
  bool settled = in_effect && (engine_->settled() || (settled_ && own->record.pod_cidr == *own_cidr_));
  bool changed = engine_->table().hash() != persisted_hash_;
  if (changed) {
    persist_new();
    persisted_hash_ = engine_->table().hash();
    notice_tombstones();
    if (removed_) return;
    check_own_record();
    expire_pending();
    // Forget handshakes seen on next keys that no record announces any more.
    for (auto it = standby_seen_.begin(); it != standby_seen_.end();) {
      const auto* r = engine_->table().find(it->first);
      if (!r || !r->record.pending_key || r->record.pending_key->wg_public_key != it->second)
        it = standby_seen_.erase(it);
      else
        ++it;
    }
    schedule_rotation_watch();
  }
  if (settled != settled_) {
    settled_ = settled;
    if (!settled_) unsettled_since_ = std::chrono::steady_clock::now();
    if (auto r = store::LocalNodeRepo(*opts_.db).set_pod_cidr(*own_cidr_, settled_); !r)
      log_->error("{}", r.error().message);
    log_->info("pod CIDR {} {}", own_cidr_->to_string(),
               settled_ ? "settled: every member acknowledged it" : "no longer settled");
    changed = true;
  }
  if (changed && opts_.on_change) opts_.on_change();
}

void ClusterMember::event(const std::string& kind, const std::string& node, const std::string& message) {
  auto at = static_cast<std::int64_t>(now_ms() / 1000);
  if (auto r = store::EventRepo(*opts_.db).append(at, kind, node, message); !r)
    log_->warn("cannot record event {}: {}", kind, r.error().message);
}

std::optional<IpPrefix> ClusterMember::pod_cidr() const { return own_cidr_; }

std::optional<IpPrefix> ClusterMember::cluster_cidr() const {
  if (!engine_) return std::nullopt;
  return engine_->table().params().cluster_cidr;
}

bool ClusterMember::settled() const { return settled_; }

std::optional<IpAddress> ClusterMember::mesh_address() const {
  if (!own_cidr_) return std::nullopt;
  auto gw = pod_gateway(*own_cidr_);
  if (!gw) return std::nullopt;
  return *gw;
}

std::vector<dataplane::PeerSpec> ClusterMember::peers(std::uint16_t keepalive) const {
  std::vector<dataplane::PeerSpec> out;
  if (!engine_ || removed_) return out;
  const std::uint64_t now = now_ms();
  // A record and a pending entry of this member's that claim one CIDR: the
  // one of higher precedence is the peer, so the pending node's record can
  // arrive (and the table decide) when it is the one that wins.
  for (const auto& r : engine_->table().view()) {
    if (r->record.identity == identity_->public_key() || displaced(r->record)) continue;
    // A member rotating its key: its next key as a second entry without
    // allowed IPs until it switches, then the only one (rotation.h).
    auto keys = cp::peer_keys(r->record, now, standby_seen(r->record), cfg_.rotation_grace_ms);
    dataplane::PeerSpec p;
    p.name = r->record.name;
    p.public_key = keys.routed;
    if (!r->record.endpoints.empty()) p.endpoint = r->record.endpoints.front();
    p.allowed_ips = {r->record.pod_cidr};
    p.persistent_keepalive = keepalive;
    if (keys.standby) {
      dataplane::PeerSpec next = p;
      next.name = p.name + " (next key)";
      next.public_key = *keys.standby;
      next.allowed_ips.clear();
      // No keepalive: it would start handshakes under the next key that the
      // member cannot answer before it switches.
      next.persistent_keepalive = 0;
      out.push_back(std::move(next));
    }
    out.push_back(std::move(p));
  }
  // Removed by this member a moment ago: kept until its tombstone reached it.
  for (const auto& [id, f] : farewells_) out.push_back(f.peer);
  for (const auto& [id, pend] : pending_) {
    if (!routed(id, pend)) continue;
    dataplane::PeerSpec p;
    p.name = pend.claims.name;
    p.public_key = pend.claims.wg_public_key;
    if (!pend.claims.endpoints.empty()) p.endpoint = pend.claims.endpoints.front();
    p.allowed_ips = {pend.pod_cidr};
    p.persistent_keepalive = keepalive;
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<api::ClusterSnapshot> ClusterMember::cluster() const {
  if (!engine_) return std::nullopt;
  const auto& p = engine_->table().params();
  api::ClusterSnapshot s;
  s.cluster_id = p.cluster_id;
  s.cidr = p.cluster_cidr.to_string();
  s.node_prefix_length = p.node_prefix_length;
  Endpoint target = cfg_.join_listen;
  if (target.address.empty() || unspecified(target.address))
    if (auto ep = advertised_endpoint()) target.address = ep->address;
  s.join_target = target.to_string();
  s.settled = settled_;
  static constexpr char kHex[] = "0123456789abcdef";
  for (auto b : engine_->table().hash()) {
    s.table_hash.push_back(kHex[b >> 4]);
    s.table_hash.push_back(kHex[b & 15]);
  }
  if (removed_) {
    s.removed = true;
    s.removed_by = name_of(removed_->tombstone.removed_by);
    s.removed_at_ms = static_cast<std::int64_t>(removed_->tombstone.removed_at);
    s.removal_reason = removed_->tombstone.reason;
  }
  return s;
}

std::vector<api::NodeSnapshot> ClusterMember::nodes() const {
  std::vector<api::NodeSnapshot> out;
  if (!engine_) return out;
  const auto& t = engine_->table();
  std::map<keys::PublicKey, api::PeerStats> stats;
  if (opts_.peer_stats) stats = opts_.peer_stats(false);
  const std::uint64_t now = now_ms();
  const auto policy = liveness_policy();
  for (const auto& id : t.members()) {
    const auto* r = t.find(id);
    if (!r) continue;
    api::NodeSnapshot n;
    n.name = r->record.name;
    n.identity = id.to_base64();
    n.public_key = r->record.wg_public_key.to_base64();
    for (const auto& e : r->record.endpoints) n.endpoints.push_back(e.to_string());
    n.pod_cidr = r->record.pod_cidr.to_string();
    n.version = r->record.version;
    n.admitted_at_ms = static_cast<std::int64_t>(r->record.admission.admitted_at);
    n.self = id == identity_->public_key();
    n.in_effect = t.in_effect(r->record);
    if (auto it = stats.find(r->record.wg_public_key); it != stats.end() && !n.self)
      n.stats = it->second;
    if (const auto& pk = r->record.pending_key) {
      n.pending_public_key = pk->wg_public_key.to_base64();
      n.switch_at_ms = static_cast<std::int64_t>(pk->switch_at);
    }
    if (n.self) {
      n.liveness = "self";
    } else {
      auto sn = seen(r->record, stats);
      n.liveness = std::string(cp::to_string(cp::liveness(sn, now, policy)));
      if (sn.last_seen_ms) n.last_seen_age_seconds = static_cast<double>(now - std::min(now, *sn.last_seen_ms)) / 1000.0;
    }
    out.push_back(std::move(n));
  }
  for (const auto& e : t.digest()) {
    if (e.version != cp::kTombstoneVersion) continue;
    const auto* ts = t.tombstone(e.identity);
    if (!ts) continue;
    api::NodeSnapshot n;
    n.name = ts->tombstone.name;
    n.identity = e.identity.to_base64();
    if (ts->tombstone.pod_cidr.length) n.pod_cidr = ts->tombstone.pod_cidr.to_string();
    n.self = e.identity == identity_->public_key();
    n.in_effect = false;
    n.liveness = "removed";
    n.removed = true;
    n.removed_by = name_of(ts->tombstone.removed_by);
    n.removed_at_ms = static_cast<std::int64_t>(ts->tombstone.removed_at);
    n.removal_reason = ts->tombstone.reason;
    // etcd mode: a tombstone is in this table only once it is in etcd,
    // ahead of any new claim on its CIDR: released (docs/datastore.md).
    n.released = etcd_mode() || engine_->released(e.identity);
    out.push_back(std::move(n));
  }
  return out;
}

// ---- Removal (docs/protocol.md, "Removal") ----

std::string ClusterMember::name_of(const keys::IdentityPublicKey& id) const {
  if (id == identity_->public_key()) return opts_.node_name;
  if (engine_) {
    if (const auto* r = engine_->table().find(id)) return r->record.name;
    if (const auto* t = engine_->table().tombstone(id); t && !t->tombstone.name.empty())
      return t->tombstone.name;
  }
  return id.to_base64();
}

Result<api::RemovalResult> ClusterMember::remove_node(const std::string& name_or_identity) {
  if (removed_) return fail(EAGAIN, "this node was removed from the cluster");
  if (!engine_) return fail(EAGAIN, "this node is not a member of a cluster yet");
  const auto& t = engine_->table();
  std::optional<keys::IdentityPublicKey> id;
  if (auto k = keys::IdentityPublicKey::from_base64(name_or_identity); k) {
    if (t.find(*k)) id = *k;
    else if (t.tombstone(*k)) return fail(EALREADY, "node " + name_or_identity + " was already removed");
  }
  if (!id) {
    // By name: the record in effect when two claim it (one lost its claim).
    for (const auto& m : t.members()) {
      const auto* r = t.find(m);
      if (!r || r->record.name != name_or_identity) continue;
      if (!id || t.in_effect(r->record)) id = m;
    }
  }
  if (!id) {
    for (const auto& e : t.digest())
      if (e.version == cp::kTombstoneVersion)
        if (const auto* ts = t.tombstone(e.identity); ts && ts->tombstone.name == name_or_identity)
          return fail(EALREADY, "node " + name_or_identity + " was already removed");
    return fail(ENOENT, "no node named " + name_or_identity + " in cluster " + t.params().cluster_id);
  }
  return remove(*id, "removed by the operator on " + opts_.node_name);
}

Result<api::RemovalResult> ClusterMember::remove(const keys::IdentityPublicKey& id, const std::string& reason) {
  const auto& t = engine_->table();
  const auto* r = t.find(id);
  const bool self = id == identity_->public_key();
  cp::Tombstone ts;
  ts.cluster_id = t.params().cluster_id;
  ts.removed = id;
  ts.removed_by = identity_->public_key();
  ts.removed_at = now_ms();
  if (r) {
    ts.name = r->record.name;
    ts.pod_cidr = r->record.pod_cidr;
  }
  ts.reason = reason.substr(0, cp::kMaxReasonLength);
  auto signed_ts = cp::sign_tombstone(ts, *identity_);
  // The removed node learns of its removal from this member, which keeps it
  // as a peer for a moment: every other member drops it on receipt.
  std::optional<dataplane::PeerSpec> farewell;
  if (r && !self)
    for (const auto& p : peers(cfg_.persistent_keepalive))
      if (p.public_key == r->record.wg_public_key) farewell = p;
  if (etcd_mode()) {
    // etcd carries it to every member (and to the removed node, which
    // watches too): written there before it counts here.
    if (auto w = etcd_publish_tombstone(signed_ts); !w) return w.error();
    farewell.reset();
  }
  (void)engine_->publish(signed_ts, rng_);  // pushed to every member below
  if (!engine_->table().tombstone(id))
    return fail(EIO, "the node table refused the tombstone of " + name_of(id));
  cp::SyncMessage m;
  m.type = cp::MessageType::kPush;
  m.tombstones.push_back({signed_ts.body, signed_ts.signature});
  auto bytes = cp::encode_message(m);
  push_to_all(bytes);
  if (farewell && sync_) {
    farewells_[id] = Farewell{*farewell, std::chrono::steady_clock::now() + kFarewellFor};
    if (auto gw = pod_gateway(ts.pod_cidr)) sync_->send(id, *gw, bytes);
    farewell_timer_.expires_after(kFarewellFor);
    farewell_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) expire_farewells();
    });
  }
  api::RemovalResult out;
  out.name = ts.name;
  out.identity = id.to_base64();
  if (ts.pod_cidr.length) out.pod_cidr = ts.pod_cidr.to_string();
  out.removed_at_ms = static_cast<std::int64_t>(ts.removed_at);
  {
    logging::PeerField peer(ts.name);
    log_->info("removed node {} ({}){}: {}", ts.name.empty() ? id.short_id() : ts.name, id.short_id(),
               ts.pod_cidr.length ? ", pod CIDR " + ts.pod_cidr.to_string() : std::string(), ts.reason);
  }
  event("node-removed", ts.name, ts.reason);
  after_table_change();
  return out;
}

void ClusterMember::expire_farewells() {
  auto now = std::chrono::steady_clock::now();
  bool changed = false;
  for (auto it = farewells_.begin(); it != farewells_.end();) {
    if (it->second.until <= now) {
      it = farewells_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (!farewells_.empty()) {
    farewell_timer_.expires_after(100ms);
    farewell_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) expire_farewells();
    });
  }
  if (changed && opts_.on_change) opts_.on_change();
}

void ClusterMember::push_to_all(const std::vector<std::uint8_t>& bytes, const keys::IdentityPublicKey* skip) {
  std::vector<cp::Outgoing> out;
  for (const auto& m : engine_->table().members())
    if (m != identity_->public_key() && (!skip || m != *skip)) out.push_back({m, bytes});
  send(std::move(out));
}

void ClusterMember::notice_tombstones() {
  const auto& t = engine_->table();
  if (t.tombstone_count() == noticed_tombstones_.size()) return;
  for (const auto& e : t.digest()) {
    if (e.version != cp::kTombstoneVersion || noticed_tombstones_.contains(e.identity)) continue;
    noticed_tombstones_.insert(e.identity);
    const auto* ts = t.tombstone(e.identity);
    if (!ts) continue;
    silent_.erase(e.identity);
    last_sync_ms_.erase(e.identity);
    if (e.identity != identity_->public_key()) {
      if (ts->tombstone.removed_by != identity_->public_key()) {
        logging::PeerField peer(ts->tombstone.name);
        log_->info("node {} ({}) was removed by {}: {}",
                   ts->tombstone.name.empty() ? e.identity.short_id() : ts->tombstone.name,
                   e.identity.short_id(), printable(name_of(ts->tombstone.removed_by)),
                   printable(ts->tombstone.reason));
      }
      continue;
    }
    cp::SignedTombstone mine = *ts;
    if (ts->tombstone.removed_by == identity_->public_key()) {
      // This node removed itself: its pushes leave first.
      self_removal_timer_.expires_after(kFarewellFor);
      self_removal_timer_.async_wait([this, mine](boost::system::error_code ec) {
        if (!ec) become_removed(mine);
      });
    } else {
      // Not from inside the sync handler that delivered it.
      asio::post(*opts_.ioc, [this, mine] { become_removed(mine); });
    }
  }
}

void ClusterMember::become_removed(const cp::SignedTombstone& t) {
  if (removed_) return;
  removed_ = t;
  const auto& ts = t.tombstone;
  log_->error("this node was removed from the cluster {} by {} ({}): {}; its mesh is torn down "
              "(WireGuard device, routes, CNI network). This identity can never come back: to join "
              "again, stop meshd, remove {} and start it with a new token in [join]",
              engine_->table().params().cluster_id, printable(name_of(ts.removed_by)), ts.removed_at,
              printable(ts.reason), cfg_.database);
  event("node-removed", opts_.node_name, "this node was removed by " + name_of(ts.removed_by) + ": " + ts.reason);
  join_timer_.cancel();
  tick_timer_.cancel();
  readmit_timer_.cancel();
  probe_timer_.cancel();
  switch_timer_.cancel();
  watch_timer_.cancel();
  farewell_timer_.cancel();
  announce_timer_.cancel();
  announcing_ = false;
  farewells_.clear();
  next_key_.reset();  // this node's rotation: nothing to switch any more
  pending_.clear();   // admissions: this node admits nobody any more
  if (join_server_) join_server_->close();
  if (sync_) sync_->close();
  settled_ = false;
  if (own_cidr_)
    if (auto r = store::LocalNodeRepo(*opts_.db).set_pod_cidr(*own_cidr_, false); !r)
      log_->error("{}", r.error().message);
  if (opts_.on_removed) opts_.on_removed();
}

// ---- Liveness (docs/lifecycle.md, "Liveness") ----

cp::LivenessPolicy ClusterMember::liveness_policy() const {
  cp::LivenessPolicy p;
  p.silent_after_ms = std::uint64_t{cfg_.liveness_silent_after_s} * 1000;
  p.prune_after_ms = std::uint64_t{cfg_.liveness_prune_after_s} * 1000;
  return p;
}

// A sign of life: a sync message, a WireGuard handshake, or bytes received
// from the member (its keepalives), whichever came last.
cp::MemberSeen ClusterMember::seen(const cp::NodeRecord& r,
                                   const std::map<keys::PublicKey, api::PeerStats>& stats) const {
  cp::MemberSeen s;
  s.watching_since_ms = std::max(started_ms_, r.admission.admitted_at);
  const std::uint64_t now = now_ms();
  auto later = [&](std::uint64_t at) {
    if (!s.last_seen_ms || at > *s.last_seen_ms) s.last_seen_ms = at;
  };
  if (auto it = last_sync_ms_.find(r.identity); it != last_sync_ms_.end()) later(it->second);
  std::vector<keys::PublicKey> keys{r.wg_public_key};
  if (r.pending_key) keys.push_back(r.pending_key->wg_public_key);
  for (const auto& k : keys) {
    if (auto it = stats.find(k); it != stats.end() && it->second.last_handshake_age_seconds) {
      auto age = static_cast<std::uint64_t>(*it->second.last_handshake_age_seconds * 1000);
      later(now - std::min(now, age));
    }
    if (auto it = rx_seen_.find(k); it != rx_seen_.end() && it->second.second) later(it->second.second);
  }
  return s;
}

void ClusterMember::check_liveness() {
  if (!engine_ || !opts_.peer_stats) return;
  auto stats = opts_.peer_stats(false);
  const std::uint64_t now = now_ms();
  for (const auto& [key, st] : stats) {
    auto& [rx, at] = rx_seen_[key];
    if (st.rx_bytes > rx) at = now;
    rx = st.rx_bytes;
  }
  const auto policy = liveness_policy();
  std::size_t others = 0, alive = 0;
  std::vector<std::pair<keys::IdentityPublicKey, std::uint64_t>> prunable;
  for (const auto& r : engine_->table().view()) {
    const auto& id = r->record.identity;
    if (id == identity_->public_key()) continue;
    ++others;
    auto sn = seen(r->record, stats);
    auto l = cp::liveness(sn, now, policy);
    if (l == cp::Liveness::kAlive) {
      ++alive;
      if (silent_.erase(id)) {
        logging::PeerField peer(r->record.name);
        log_->info("node {} is alive again", r->record.name);
        event("node-alive", r->record.name, "alive again");
      }
      continue;
    }
    auto silent_for = cp::silent_for_ms(sn, now);
    if (silent_.insert(id).second) {
      logging::PeerField peer(r->record.name);
      log_->warn("node {} silent for {} s: no WireGuard handshake, traffic or sync message from it",
                 r->record.name, silent_for / 1000);
      event("node-silent", r->record.name, "silent for " + std::to_string(silent_for / 1000) + " s");
    }
    if (l == cp::Liveness::kPrunable) prunable.emplace_back(id, silent_for);
  }
  if (prunable.empty()) {
    prune_refusal_logged_ = false;
    return;
  }
  if (!cp::may_prune(alive, others)) {
    if (!prune_refusal_logged_)
      log_->warn("not pruning {} silent node(s): this node sees only {} of the other {} members "
                 "alive, and may be the one cut off",
                 prunable.size(), alive, others);
    prune_refusal_logged_ = true;
    return;
  }
  for (const auto& [id, silent_for] : prunable) {
    if (!engine_->table().find(id)) continue;
    auto r = remove(id, "pruned by " + opts_.node_name + ": silent for " + std::to_string(silent_for / 1000) +
                            " s (prune_after_s = " + std::to_string(cfg_.liveness_prune_after_s) + ")");
    if (!r) {
      logging::PeerField peer(name_of(id));
      log_->warn("pruning {}: {}", name_of(id), r.error().message);
    }
    if (removed_) return;
  }
}

// ---- Key rotation (docs/lifecycle.md, "Key rotation") ----

Result<api::RotationResult> ClusterMember::rotate_key() {
  if (removed_) return fail(EAGAIN, "this node was removed from the cluster");
  if (!engine_ || !engine_->table().find(identity_->public_key()))
    return fail(EAGAIN, "this node is not a member of a cluster yet");
  if (next_key_)
    return fail(EBUSY, "a key rotation is in progress: switching to " + next_key_->key.public_key().short_id() +
                           " at " + std::to_string(next_key_->switch_at_ms) + " ms");
  keys::PrivateKey next = keys::PrivateKey::generate();
  const std::uint64_t at = cp::switch_time(now_ms(), cfg_.rotation_lead_ms);
  // Stored before it is announced: a restart finishes the rotation.
  if (auto r = store::LocalNodeRepo(*opts_.db).set_pending_wg_key(next, at); !r) return r.error();
  api::RotationResult out;
  out.previous_public_key = opts_.wg_key->public_key().to_base64();
  out.public_key = next.public_key().to_base64();
  out.switch_at_ms = static_cast<std::int64_t>(at);
  next_key_ = OwnPending{std::move(next), at};
  log_->info("key rotation: next key {} announced, switching at {} ms (in {} ms)",
             next_key_->key.public_key().short_id(), at, cfg_.rotation_lead_ms);
  event("key-rotation", opts_.node_name, "next key " + next_key_->key.public_key().short_id() + " announced");
  refresh_own_record(true);
  schedule_switch();
  return out;
}

void ClusterMember::schedule_switch() {
  if (!next_key_) return;
  const std::uint64_t now = now_ms();
  auto wait = std::chrono::milliseconds(next_key_->switch_at_ms > now ? next_key_->switch_at_ms - now : 0);
  switch_timer_.expires_after(wait);
  switch_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) switch_key();
  });
}

void ClusterMember::switch_key() {
  if (!next_key_ || removed_) return;
  if (auto r = store::LocalNodeRepo(*opts_.db).commit_pending_wg_key(); !r) {
    log_->error("key rotation: cannot store the new key: {}; retrying in 1 s", r.error().message);
    switch_timer_.expires_after(1s);
    switch_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) switch_key();
    });
    return;
  }
  keys::PrivateKey key = std::move(next_key_->key);
  next_key_.reset();
  auto pub = key.public_key();
  log_->info("key rotation: switched to {}", pub.short_id());
  event("key-rotated", opts_.node_name, "switched to " + pub.short_id());
  rotation_base_ = std::chrono::steady_clock::now();
  if (opts_.set_wg_key) opts_.set_wg_key(std::move(key));
  // The record follows (new key, nothing pending); every member hears it
  // once the device carries the key (data_plane_ready).
  kick_after_pass_ = true;
  if (engine_) refresh_own_record();
}

bool ClusterMember::standby_seen(const cp::NodeRecord& r) const {
  return r.pending_key && standby_seen_.contains({r.identity, r.pending_key->wg_public_key});
}

// While a member's switch is near, the device is read every kWatchEvery for
// a handshake on its next key: the proof that it switched, on which this
// node moves its allowed IPs at once (rotation.h, step 4). Before that
// window, and when nothing is pending, nothing is polled.
void ClusterMember::schedule_rotation_watch() {
  if (watching_ || removed_ || !engine_) return;
  const std::uint64_t now = now_ms();
  std::optional<std::uint64_t> wake;
  for (const auto& r : engine_->table().view()) {
    const auto& pk = r->record.pending_key;
    if (!pk || r->record.identity == identity_->public_key() || standby_seen(r->record)) continue;
    auto deadline = cp::peer_deadline(r->record, cfg_.rotation_grace_ms);
    if (!deadline) continue;
    if (now >= *deadline + kWatchEvery.count()) continue;  // moved by the deadline already
    std::uint64_t from = pk->switch_at > kWatchBefore ? pk->switch_at - kWatchBefore : 0;
    std::uint64_t at = std::max(now, from);
    if (!wake || at < *wake) wake = at;
  }
  if (!wake) return;
  watching_ = true;
  watch_timer_.expires_after(std::max(std::chrono::milliseconds(*wake - now), kWatchEvery));
  watch_timer_.async_wait([this](boost::system::error_code ec) {
    watching_ = false;
    if (ec || removed_) return;
    const std::uint64_t now = now_ms();
    std::optional<std::map<keys::PublicKey, api::PeerStats>> stats;
    bool changed = false;
    for (const auto& r : engine_->table().view()) {
      const auto& pk = r->record.pending_key;
      if (!pk || r->record.identity == identity_->public_key() || standby_seen(r->record)) continue;
      auto deadline = cp::peer_deadline(r->record, cfg_.rotation_grace_ms);
      if (deadline && now >= *deadline && now < *deadline + kWatchEvery.count()) changed = true;
      if (!stats && opts_.peer_stats) stats = opts_.peer_stats(true);
      if (!stats) continue;
      if (auto it = stats->find(pk->wg_public_key); it != stats->end() && it->second.last_handshake_age_seconds) {
        standby_seen_.insert({r->record.identity, pk->wg_public_key});
        logging::PeerField peer(r->record.name);
        log_->info("node {} switched to its next key {}", r->record.name, pk->wg_public_key.short_id());
        changed = true;
      }
    }
    if (changed && opts_.on_change) opts_.on_change();
    schedule_rotation_watch();
  });
}

void ClusterMember::kick_handshakes() {
  if (sync_) {
    if (const auto* own = engine_->table().find(identity_->public_key())) {
      cp::SyncMessage m;
      m.type = cp::MessageType::kPush;
      m.records.push_back({own->body, own->signature});
      push_to_all(cp::encode_message(m));
    }
    return;
  }
  // No sync channel (etcd mode): one datagram to each member's mesh address
  // is traffic enough for WireGuard to start a handshake.
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  for (const auto& m : engine_->table().members()) {
    if (m == identity_->public_key()) continue;
    auto addr = address_of(m);
    if (!addr || addr->is_v6()) continue;
    Endpoint e{*addr, cfg_.sync_port};
    sockaddr_storage ss{};
    socklen_t len = static_cast<socklen_t>(e.to_sockaddr(ss));
    static constexpr char kKick[] = "meshd: new key";
    (void)::sendto(fd, kKick, sizeof kKick - 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss), len);
  }
  ::close(fd);
}

api::ControlPlaneCounters ClusterMember::counters() const {
  api::ControlPlaneCounters c;
  if (sync_) {
    const auto& s = sync_->counters();
    c.sync_messages_in = s.received;
    c.sync_messages_out = s.sent;
    c.sync_bytes_in = s.bytes_in;
    c.sync_bytes_out = s.bytes_out;
  }
  if (engine_) {
    c.sync_dropped["malformed"] = engine_->counters().malformed_in;
    c.sync_dropped["unknown_type"] = engine_->counters().unknown_type_in;
    for (std::size_t i = 0; i < static_cast<std::size_t>(cp::MergeOutcome::kCount); ++i) {
      auto o = static_cast<cp::MergeOutcome>(i);
      if (cp::accepted(o)) continue;
      c.records_rejected[std::string(cp::to_string(o))] = engine_->table().count(o);
    }
  }
  if (etcd_mode()) {
    c.records_rejected["key_mismatch"] = etcd_key_mismatch_;
    c.datastore = api::ControlPlaneCounters::Datastore{
        .reachable = etcd_reached_ && etcd_failures_ == 0,
        .revision = etcd_revision_,
        .refused = etcd_refused_,
        .relists = etcd_relists_,
    };
  }
  c.join_attempts = join_outcomes_;
  if (join_server_) {
    const auto& j = join_server_->counters();
    c.join_attempts["rate_limited"] = j.rate_limited;
    c.join_attempts["shed"] = j.shed;
    c.join_attempts["timeout"] = j.timeouts;
    c.join_attempts["oversized"] = j.oversized;
  }
  return c;
}

}  // namespace meshd::daemon
