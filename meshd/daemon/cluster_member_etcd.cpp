// The etcd datastore mode of ClusterMember (docs/datastore.md): the node
// table and the CIDR claims live in etcd; etcd replaces sync and the settle
// rule, not the join. Records stay signed by their owners and every value
// read from etcd goes through the same NodeTable rules as a synced one
// (meshd/datastore/etcd_layout.h); the table and the data plane keep
// working from SQLite while etcd is away.
//
// The client is synchronous with a per-request timeout (etcd_client.h), on
// the daemon's one thread like SQLite: a failure opens a breaker (1, 2, 4 ...
// 30 s) during which nothing waits on etcd, so an unreachable etcd costs the
// loop one timeout per backoff period, not one per tick. The watch is
// asynchronous on the same loop.
#include "meshd/daemon/cluster_member.h"

#include "common/pod_network.h"
#include "common/secret_file.h"
#include "meshd/datastore/etcd_client.h"
#include "meshd/datastore/etcd_layout.h"
#include "store/datastore_state.h"
#include "store/local_node.h"

#include <boost/asio/post.hpp>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace meshd::daemon {

namespace asio = boost::asio;
namespace cp = controlplane;
namespace ds = datastore;
using namespace std::chrono_literals;

namespace {

constexpr auto kEtcdMaxBackoff = 30s;
constexpr int kClaimAttempts = 8;

// Which cluster the prefix holds: written once, by the founder, so that a
// second node founding under the same prefix is refused instead of making a
// second cluster beside the first.
std::string marker_key(const std::string& prefix) { return prefix + "cluster"; }

std::chrono::milliseconds backoff(unsigned failures) {
  if (failures == 0) return 0ms;
  auto d = std::chrono::milliseconds(1000) * (1u << std::min(failures - 1, 5u));
  return std::min<std::chrono::milliseconds>(d, kEtcdMaxBackoff);
}

}  // namespace

bool ClusterMember::etcd_mode() const { return cfg_.datastore_kind == config::DatastoreKind::kEtcd; }

void ClusterMember::etcd_open() {
  ds::EtcdOptions o;
  o.endpoints = cfg_.etcd_endpoints;
  o.ca_file = cfg_.etcd_ca_file;
  o.cert_file = cfg_.etcd_cert_file;
  o.key_file = cfg_.etcd_key_file;
  o.username = cfg_.etcd_username;
  if (!cfg_.etcd_password_file.empty()) {
    auto pw = read_secret_file(cfg_.etcd_password_file);
    if (!pw)
      throw ErrorException(fail(pw.error().value(), "[datastore] password_file: " + pw.error().message));
    o.password = std::move(*pw);
  }
  o.timeout = std::chrono::milliseconds(cfg_.etcd_timeout_ms);
  // The local half only (endpoints, TLS files, the key's owner and mode):
  // start-up never waits for etcd, but a file that can never work is the
  // operator's to fix now, not a retry every backoff period.
  if (auto v = ds::EtcdClient::validate(o); !v)
    throw ErrorException(fail(v.error().value(), "[datastore] " + v.error().message));
  etcd_options_ = std::make_unique<ds::EtcdOptions>(o);
  etcd_ = std::make_unique<ds::EtcdClient>(std::move(o));
  std::string list;
  for (const auto& e : cfg_.etcd_endpoints) list += (list.empty() ? "" : ", ") + e;
  log_->info("datastore: etcd at {} (prefix {})", list, cfg_.etcd_prefix);
}

std::string ClusterMember::etcd_scope() const {
  return "etcd:" + cfg_.etcd_prefix + engine_->table().params().cluster_id;
}

std::chrono::milliseconds ClusterMember::etcd_backoff() const { return backoff(etcd_failures_); }

bool ClusterMember::etcd_usable() { return std::chrono::steady_clock::now() >= etcd_retry_at_; }

void ClusterMember::etcd_failed(const std::string& what, const Error& e) {
  if (etcd_failures_ == 0)
    log_->warn("etcd unreachable ({}: {}); the data plane keeps running from the store, joins wait",
               what, e.message);
  else
    log_->debug("etcd still unreachable ({}: {})", what, e.message);
  etcd_failures_ = std::min(etcd_failures_ + 1, 10u);
  etcd_retry_at_ = std::chrono::steady_clock::now() + backoff(etcd_failures_);
}

void ClusterMember::etcd_succeeded() {
  if (etcd_failures_ > 0) log_->info("etcd reachable again through {}", etcd_->current_endpoint());
  etcd_failures_ = 0;
  etcd_retry_at_ = {};
  etcd_reached_ = true;
}

Result<std::string> ClusterMember::etcd_found(const cp::ClusterParams& params, const cp::SignedRecord& own) {
  const std::string& p = cfg_.etcd_prefix;
  const std::string& c = params.cluster_id;
  ds::Txn t;
  t.compare.push_back({marker_key(p), ds::Compare::Target::kCreateRevision, ds::Compare::Result::kEqual, 0, {}});
  auto put = [](std::string key, std::string value) {
    ds::RequestOp op;
    op.kind = ds::RequestOp::Kind::kPut;
    op.key = std::move(key);
    op.value = std::move(value);
    return op;
  };
  t.success.push_back(put(marker_key(p), c));
  t.success.push_back(put(ds::params_key(p, c), ds::encode_params(params)));
  t.success.push_back(put(ds::subnet_key(p, c, own.record.pod_cidr), ds::encode_claim(ds::claim_of(own.record))));
  t.success.push_back(put(ds::record_key(p, c, own.record.identity), ds::record_value(own)));
  ds::RequestOp read;
  read.kind = ds::RequestOp::Kind::kRange;
  read.key = marker_key(p);
  t.failure.push_back(read);
  std::string holder;
  auto r = etcd_->txn(t);
  if (!r && !r.error().is(ETIMEDOUT)) return r.error();
  if (r && r->succeeded) return c;
  if (r) {
    if (!r->responses.empty() && !r->responses[0].kvs.empty()) holder = r->responses[0].kvs[0].value;
  } else {
    // A timed-out transaction may have been applied: read, never resend.
    auto m = etcd_->range({marker_key(p)});
    if (!m) return m.error();
    if (!m->kvs.empty()) holder = m->kvs[0].value;
    if (holder.empty()) return fail(ETIMEDOUT, "etcd: founding timed out and was not applied");
  }
  // This node's own earlier attempt (its answer was lost): founded already.
  if (holder == c) return c;
  return fail(EEXIST, "etcd prefix " + p + " already holds cluster " + holder +
                          ": join it ([join] with a token from one of its members), or use another "
                          "[datastore] prefix");
}

Result<IpPrefix> ClusterMember::etcd_claim(const cp::JoinClaims& claims, const std::optional<IpPrefix>&,
                                           std::uint64_t admitted_at) {
  if (!etcd_usable()) return fail(EAGAIN, "etcd unreachable (retrying later)");
  const auto& params = engine_->table().params();
  const std::string& p = cfg_.etcd_prefix;
  const std::string& c = params.cluster_id;
  const std::string subnets = ds::family_prefix(p, c, ds::KeyFamily::kSubnet);
  for (int attempt = 0; attempt < kClaimAttempts; ++attempt) {
    auto listing = etcd_->range({subnets, ds::prefix_end(subnets)});
    if (!listing) {
      etcd_failed("listing CIDR claims", listing.error());
      return listing.error();
    }
    std::optional<IpPrefix> cidr = ds::reuse(p, params, *listing, claims.identity);
    std::optional<std::string> expected;  // the claim a reuse replaces
    if (cidr) {
      for (const auto& kv : listing->kvs)
        if (kv.key == ds::subnet_key(p, c, *cidr)) expected = kv.value;
    } else {
      // Not the sync engine's unreleased CIDRs: that release needs members'
      // digests, which the etcd mode never exchanges, so they would stay
      // reserved forever. Here a removed node's claim leaves etcd only after
      // its tombstone, so every watcher applies the tombstone before any new
      // record on that CIDR (docs/datastore.md, "Allocation").
      std::vector<IpPrefix> reserved;
      for (const auto& [id, pend] : pending_) reserved.push_back(pend.pod_cidr);
      cidr = ds::next_candidate(engine_->table(), ds::claimed_cidrs(p, c, *listing), reserved);
      if (!cidr) return fail(ENOSPC, "no free pod CIDR in " + params.cluster_cidr.to_string());
    }
    ds::SubnetClaim claim{claims.identity, claims.name,
                          cp::admit(*identity_, c, claims.name, claims.identity, *cidr, admitted_at)};
    const std::string value = ds::encode_claim(claim);
    ds::Txn t;
    if (expected) {
      // A retried join keeps its CIDR; the claim takes the new admission
      // (the one the node's record will carry), if nobody changed it since.
      t.compare.push_back({ds::subnet_key(p, c, *cidr), ds::Compare::Target::kValue,
                           ds::Compare::Result::kEqual, 0, *expected});
      ds::RequestOp put;
      put.kind = ds::RequestOp::Kind::kPut;
      put.key = ds::subnet_key(p, c, *cidr);
      put.value = value;
      t.success.push_back(put);
    } else {
      t = ds::claim_txn(p, params, *cidr, claim);
    }
    auto r = etcd_->txn(t);
    if (!r && r.error().is(ETIMEDOUT)) {
      // It may have been applied: read the key before anything else.
      auto now = etcd_->range({ds::subnet_key(p, c, *cidr)});
      if (!now) {
        etcd_failed("reading a claim after a timeout", now.error());
        return now.error();
      }
      if (!now->kvs.empty() && now->kvs[0].value == value) {
        etcd_claims_[claims.identity] = value;
        return *cidr;
      }
      continue;
    }
    if (!r) {
      etcd_failed("claiming a CIDR", r.error());
      return r.error();
    }
    etcd_succeeded();
    if (r->succeeded) {
      etcd_claims_[claims.identity] = value;
      log_->info("claimed {} in etcd for {}", cidr->to_string(), claims.name);
      return *cidr;
    }
    log_->debug("{} was claimed meanwhile; listing the claims again", cidr->to_string());
  }
  return fail(EAGAIN, "etcd: the CIDR claims kept changing under " + std::to_string(kClaimAttempts) +
                          " attempts");
}

void ClusterMember::etcd_unclaim(const cp::JoinClaims& claims, const IpPrefix& cidr) {
  auto it = etcd_claims_.find(claims.identity);
  if (it == etcd_claims_.end()) return;
  const auto& c = engine_->table().params().cluster_id;
  auto r = etcd_->txn(ds::release_txn(cfg_.etcd_prefix, c, cidr, it->second));
  if (!r) log_->warn("could not undo the claim of {} in etcd: {}", cidr.to_string(), r.error().message);
  etcd_claims_.erase(it);
}

void ClusterMember::etcd_publish_own() {
  etcd_own_pending_ = true;
  if (!etcd_usable() || removed_) return;
  const auto* own = engine_->table().find(identity_->public_key());
  if (!own) return;
  const auto& c = engine_->table().params().cluster_id;
  auto r = etcd_->put(ds::record_key(cfg_.etcd_prefix, c, own->record.identity), ds::record_value(*own));
  if (!r) {
    etcd_failed("writing this node's record", r.error());
    return;
  }
  etcd_succeeded();
  etcd_own_pending_ = false;
  log_->debug("this node's record version {} is in etcd", own->record.version);
  etcd_check_settled();
}

// Settled in etcd mode: this node's record is in etcd and the claim on its
// CIDR is its own. etcd's transactions decide allocations, so no member's
// acknowledgement is needed.
void ClusterMember::etcd_check_settled() {
  if (settled_ || !own_cidr_ || etcd_own_pending_ || removed_ || !etcd_usable()) return;
  const auto& params = engine_->table().params();
  const std::string key = ds::subnet_key(cfg_.etcd_prefix, params.cluster_id, *own_cidr_);
  auto r = etcd_->range({key});
  if (!r) {
    etcd_failed("reading this node's claim", r.error());
    return;
  }
  const auto* own = engine_->table().find(identity_->public_key());
  if (!own) return;
  if (r->kvs.empty()) {
    // No claim (a cluster moved into etcd whose claims were not written):
    // this node claims its own CIDR now.
    auto t = ds::claim_txn(cfg_.etcd_prefix, params, *own_cidr_, ds::claim_of(own->record));
    auto w = etcd_->txn(t);
    if (!w) {
      etcd_failed("claiming this node's CIDR", w.error());
      return;
    }
    if (!w->succeeded) return;  // someone else's now: read again on the next tick
  } else {
    auto claim = ds::decode_claim(r->kvs[0].value);
    if (!claim || claim->identity != identity_->public_key()) {
      log_->error("etcd holds another node's claim on this node's pod CIDR {}; it serves no pods",
                  own_cidr_->to_string());
      return;
    }
  }
  settled_ = true;
  if (auto s = store::LocalNodeRepo(*opts_.db).set_pod_cidr(*own_cidr_, true); !s)
    log_->error("{}", s.error().message);
  log_->info("pod CIDR {} settled: its claim in etcd is this node's", own_cidr_->to_string());
  if (opts_.on_change) opts_.on_change();
}

Result<void> ClusterMember::etcd_publish_tombstone(const cp::SignedTombstone& t) {
  // ENOTCONN whatever etcd's reason: the caller (REST) tells "etcd is away,
  // retry" apart from "this node is not a member" (EAGAIN).
  if (!etcd_usable()) return fail(ENOTCONN, "etcd unreachable: the removal waits for it");
  const std::string& p = cfg_.etcd_prefix;
  const auto& c = engine_->table().params().cluster_id;
  auto r = etcd_->put(ds::tombstone_key(p, c, t.tombstone.removed), ds::tombstone_value(t));
  if (!r) {
    etcd_failed("writing a tombstone", r.error());
    return fail(ENOTCONN, "etcd: " + r.error().message);
  }
  etcd_succeeded();
  // The CIDR is free again only after the tombstone (an earlier revision):
  // every watcher drops the removed record before it can see a new claim.
  if (const IpPrefix& cidr = t.tombstone.pod_cidr; cidr.length) {
    auto cur = etcd_->range({ds::subnet_key(p, c, cidr)});
    if (cur && !cur->kvs.empty())
      if (auto claim = ds::decode_claim(cur->kvs[0].value); claim && claim->identity == t.tombstone.removed)
        if (auto d = etcd_->txn(ds::release_txn(p, c, cidr, cur->kvs[0].value)); !d)
          log_->warn("the claim on {} stays in etcd: {}", cidr.to_string(), d.error().message);
  }
  // The removed node's record and liveness key are garbage now: the
  // tombstone outranks the record in every table, and a delete is never
  // read as a removal (etcd_layout.h), so these only keep etcd from growing
  // with every node ever removed. Best effort: a key left behind is inert.
  for (const auto& key : {ds::record_key(p, c, t.tombstone.removed), ds::alive_key(p, c, t.tombstone.removed)})
    if (auto d = etcd_->del(key); !d) log_->debug("{} stays in etcd: {}", key, d.error().message);
  return {};
}

void ClusterMember::etcd_start() {
  auto stored = store::DatastoreStateRepo(*opts_.db).revision(etcd_scope());
  if (stored && *stored) {
    etcd_revision_ = **stored;
    log_->info("etcd: resuming the watch after revision {}", etcd_revision_);
    etcd_watch_from(etcd_revision_ + 1);
    etcd_listed_at_ = std::chrono::steady_clock::now();
  } else {
    if (!stored) log_->warn("{}", stored.error().message);
    etcd_relist();
  }
}

void ClusterMember::etcd_relist() {
  if (removed_) return;
  if (!etcd_usable()) {
    etcd_schedule_rewatch();
    return;
  }
  const auto& params = engine_->table().params();
  const std::string all = ds::cluster_prefix(cfg_.etcd_prefix, params.cluster_id);
  auto listing = etcd_->range({all, ds::prefix_end(all)});
  if (!listing) {
    etcd_failed("listing the cluster", listing.error());
    etcd_schedule_rewatch();
    return;
  }
  etcd_succeeded();
  ++etcd_relists_;
  auto report = engine_->apply_external(
      [&](cp::NodeTable& t) { return ds::apply_listing(t, *listing, cfg_.etcd_prefix, params.cluster_id); });
  etcd_refused_ += report.refused;
  etcd_key_mismatch_ += report.key_mismatch;
  if (report.refused)
    log_->warn("etcd listing: {} values refused ({} under another identity's key)", report.refused,
               report.key_mismatch);
  log_->info("etcd: listed the cluster at revision {} ({} new, {} refused)", listing->revision, report.merged,
             report.refused);
  etcd_revision_ = listing->revision;
  if (auto s = store::DatastoreStateRepo(*opts_.db).set_revision(etcd_scope(), etcd_revision_); !s)
    log_->warn("{}", s.error().message);
  etcd_listed_at_ = std::chrono::steady_clock::now();
  if (std::find(report.behind.begin(), report.behind.end(), identity_->public_key()) != report.behind.end())
    etcd_publish_own();
  after_table_change();
  etcd_watch_from(etcd_revision_ + 1);
}

void ClusterMember::etcd_watch_from(std::int64_t revision) {
  if (removed_) return;
  if (etcd_watch_) etcd_watch_->cancel();
  const std::string all = ds::cluster_prefix(cfg_.etcd_prefix, engine_->table().params().cluster_id);
  etcd_last_message_ = std::chrono::steady_clock::now();
  etcd_watch_ = std::make_unique<ds::EtcdWatch>(
      *opts_.ioc, *etcd_options_, all, ds::prefix_end(all), revision,
      [this](const ds::WatchResponse& r) { etcd_on_watch(r); },
      [this](const Error& e) {
        // Backs off like the calls (0.2, 1, 2, 4 ... 30 s) but on its own
        // count: one member's stream ending is no reason to hold back the
        // calls, which fail over to the other members by themselves.
        etcd_watch_failures_ = std::min(etcd_watch_failures_ + 1, 10u);
        if (etcd_watch_failures_ == 1)
          log_->info("etcd watch ended ({}); reopening it", e.message);
        else
          log_->debug("etcd watch ended again ({}); reopening it in {} ms", e.message,
                      etcd_watch_delay().count());
        asio::post(*opts_.ioc, [this] { etcd_schedule_rewatch(); });
      });
}

std::chrono::milliseconds ClusterMember::etcd_watch_delay() const {
  auto own = etcd_watch_failures_ <= 1 ? 200ms : backoff(etcd_watch_failures_ - 1);
  return std::max<std::chrono::milliseconds>(etcd_backoff(), own);
}

void ClusterMember::etcd_schedule_rewatch() {
  if (removed_) return;
  etcd_timer_.expires_after(etcd_watch_delay());
  etcd_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || removed_) return;
    if (etcd_revision_ == 0)
      etcd_relist();
    else
      etcd_watch_from(etcd_revision_ + 1);
  });
}

void ClusterMember::etcd_on_watch(const ds::WatchResponse& r) {
  if (removed_) return;
  etcd_last_message_ = std::chrono::steady_clock::now();
  if (r.compact_revision) {
    log_->warn("etcd compacted its history past revision {}: listing the cluster again", etcd_revision_ + 1);
    asio::post(*opts_.ioc, [this] { etcd_relist(); });
    return;
  }
  if (r.canceled) {
    log_->warn("etcd canceled the watch ({}); reopening it", r.cancel_reason);
    asio::post(*opts_.ioc, [this] { etcd_schedule_rewatch(); });
    return;
  }
  etcd_watch_failures_ = 0;
  const auto& cluster = engine_->table().params().cluster_id;
  if (!r.events.empty()) {
    auto report = engine_->apply_external(
        [&](cp::NodeTable& t) { return ds::apply_events(t, r.events, cfg_.etcd_prefix, cluster); });
    etcd_refused_ += report.refused;
    etcd_key_mismatch_ += report.key_mismatch;
    if (report.refused)
      log_->warn("etcd: {} values refused ({} under another identity's key)", report.refused,
                 report.key_mismatch);
  }
  // Not the header's revision: it runs ahead of the events while the watch
  // catches up, and storing it lost the events in between on a restart.
  const std::int64_t applied = r.applied_through();
  if (applied > etcd_revision_) {
    etcd_revision_ = applied;
    if (auto s = store::DatastoreStateRepo(*opts_.db).set_revision(etcd_scope(), etcd_revision_); !s)
      log_->warn("{}", s.error().message);
  }
  if (!r.events.empty()) after_table_change();
}

void ClusterMember::etcd_tick() {
  if (removed_) return;
  if (etcd_own_pending_)
    etcd_publish_own();
  else if (!settled_)
    etcd_check_settled();
  auto now = std::chrono::steady_clock::now();
  // The periodic full resync, which also reopens a watch that went quiet
  // without ending (a member stopped, a connection a middlebox dropped).
  if (etcd_usable() && now - etcd_listed_at_ >= std::chrono::seconds(cfg_.etcd_resync_interval_s)) {
    etcd_relist();
    now = std::chrono::steady_clock::now();
  }
  // Liveness: a key on a lease; a node whose lease expired is down as etcd
  // sees it. Its CIDR claim has no lease: it is never freed by silence.
  const auto ttl = std::chrono::seconds(cfg_.etcd_lease_ttl_s);
  if (!etcd_usable() || now - etcd_lease_renewed_ < ttl / 3) return;
  const auto& c = engine_->table().params().cluster_id;
  if (etcd_lease_) {
    auto k = etcd_->lease_keepalive(etcd_lease_);
    if (k) {
      etcd_lease_renewed_ = now;
      return;
    }
    if (!k.error().is(ENOENT)) {
      etcd_failed("renewing the liveness lease", k.error());
      return;
    }
    etcd_lease_ = 0;  // expired while etcd was away: a new one
  }
  auto lease = etcd_->lease_grant(ttl);
  if (!lease) {
    etcd_failed("granting the liveness lease", lease.error());
    return;
  }
  auto put = etcd_->put(ds::alive_key(cfg_.etcd_prefix, c, identity_->public_key()), ds::alive_value(now_ms()),
                        *lease);
  if (!put) {
    etcd_failed("writing the liveness key", put.error());
    return;
  }
  etcd_lease_ = *lease;
  etcd_lease_renewed_ = now;
}

}  // namespace meshd::daemon
