#include "meshd/daemon/migrate.h"

#include "common/secret_file.h"
#include "meshd/controlplane/node_table.h"
#include "meshd/datastore/etcd_client.h"
#include "meshd/datastore/etcd_layout.h"
#include "store/cluster.h"
#include "store/database.h"
#include "store/records.h"

#include <string>
#include <vector>

namespace meshd::daemon {

namespace cp = controlplane;
namespace ds = datastore;

namespace {

// Records are accepted once their admitter's record is in the table: merge
// in passes until a pass takes nothing more.
void load_table(cp::NodeTable& table, const std::vector<store::SignedRow>& rows) {
  std::vector<const store::SignedRow*> left;
  for (const auto& r : rows) left.push_back(&r);
  for (;;) {
    std::vector<const store::SignedRow*> refused;
    for (const auto* row : left) {
      keys::Signature sig = row->signature;
      auto o = row->tombstone ? table.merge_tombstone_bytes(row->body, sig)
                              : table.merge_record_bytes(row->body, sig);
      if (!cp::accepted(o) && o != cp::MergeOutcome::kStale) refused.push_back(row);
    }
    if (refused.empty() || refused.size() == left.size()) return;
    left = std::move(refused);
  }
}

int refuse(const std::string& why) {
  std::fprintf(stderr, "meshd: moving the cluster to etcd: %s\n", why.c_str());
  return 1;
}

}  // namespace

int migrate_to_etcd(const config::Config& cfg, std::FILE* out) {
  if (cfg.datastore_kind != config::DatastoreKind::kEtcd)
    return refuse("the configuration's [datastore] kind is not \"etcd\": set it (endpoints, "
                  "credentials) before moving the cluster there");
  store::Database db(store::DatabaseOptions{cfg.database});
  auto info = store::ClusterRepo(db).get();
  if (!info) return refuse(info.error().message);
  if (!*info) return refuse("the store " + cfg.database + " holds no cluster");
  cp::ClusterParams params;
  params.cluster_id = (*info)->id;
  params.cluster_cidr = (*info)->cidr;
  params.node_prefix_length = (*info)->node_prefix_length;
  params.founder = keys::IdentityPublicKey((*info)->founder);
  cp::NodeTable table(params);
  auto rows = store::RecordRepo(db).load_all();
  if (!rows) return refuse(rows.error().message);
  load_table(table, *rows);

  ds::EtcdOptions o;
  o.endpoints = cfg.etcd_endpoints;
  o.ca_file = cfg.etcd_ca_file;
  o.cert_file = cfg.etcd_cert_file;
  o.key_file = cfg.etcd_key_file;
  o.username = cfg.etcd_username;
  if (!cfg.etcd_password_file.empty()) {
    auto pw = read_secret_file(cfg.etcd_password_file);
    if (!pw) return refuse("[datastore] password_file: " + pw.error().message);
    o.password = std::move(*pw);
  }
  o.timeout = std::chrono::milliseconds(cfg.etcd_timeout_ms);
  ds::EtcdClient etcd(std::move(o));
  const std::string& p = cfg.etcd_prefix;
  const std::string& c = params.cluster_id;

  // The marker and the parameters, unless this cluster is there already.
  const std::string marker = p + "cluster";
  ds::Txn t;
  t.compare.push_back({marker, ds::Compare::Target::kCreateRevision, ds::Compare::Result::kEqual, 0, {}});
  ds::RequestOp put_marker;
  put_marker.key = marker;
  put_marker.value = c;
  ds::RequestOp put_params;
  put_params.key = ds::params_key(p, c);
  put_params.value = ds::encode_params(params);
  t.success = {put_marker, put_params};
  ds::RequestOp read;
  read.kind = ds::RequestOp::Kind::kRange;
  read.key = marker;
  t.failure = {read};
  auto founded = etcd.txn(t);
  if (!founded) return refuse("etcd: " + founded.error().message);
  if (!founded->succeeded) {
    std::string holder;
    if (!founded->responses.empty() && !founded->responses[0].kvs.empty())
      holder = founded->responses[0].kvs[0].value;
    if (holder != c)
      return refuse("etcd prefix " + p + " already holds cluster " + holder + ", not " + c +
                    ": use another [datastore] prefix");
    std::fprintf(out, "cluster %s is in etcd already under %s: finishing the copy\n", c.c_str(), p.c_str());
  }

  std::size_t records = 0, tombstones = 0, claims = 0, kept = 0;
  for (const auto& e : table.digest()) {
    if (e.version == cp::kTombstoneVersion) {
      const auto* ts = table.tombstone(e.identity);
      if (auto r = etcd.put(ds::tombstone_key(p, c, e.identity), ds::tombstone_value(*ts)); !r)
        return refuse("etcd: " + r.error().message);
      ++tombstones;
      continue;
    }
    const auto* rec = table.find(e.identity);
    // A newer version written since (a node already in etcd mode) stays.
    auto held = etcd.range({ds::record_key(p, c, e.identity)});
    if (!held) return refuse("etcd: " + held.error().message);
    bool newer_there = false;
    if (!held->kvs.empty())
      if (auto v = ds::decode_signed_value(held->kvs[0].value); v)
        if (auto there = cp::decode_record(v->body, v->signature); there)
          newer_there = there->record.version >= rec->record.version;
    if (newer_there) {
      ++kept;
    } else {
      if (auto r = etcd.put(ds::record_key(p, c, e.identity), ds::record_value(*rec)); !r)
        return refuse("etcd: " + r.error().message);
      ++records;
    }
    if (!table.in_effect(rec->record)) continue;
    // The claim: made unless this node's claim is there already.
    auto claim_t = ds::claim_txn(p, params, rec->record.pod_cidr, ds::claim_of(rec->record));
    auto claimed = etcd.txn(claim_t);
    if (!claimed) return refuse("etcd: " + claimed.error().message);
    if (!claimed->succeeded) {
      std::optional<ds::SubnetClaim> there;
      if (!claimed->responses.empty() && !claimed->responses[0].kvs.empty())
        if (auto cl = ds::decode_claim(claimed->responses[0].kvs[0].value); cl) there = *cl;
      if (!there || there->identity != rec->record.identity)
        return refuse("etcd holds another claim on " + rec->record.pod_cidr.to_string() + " (of " +
                      rec->record.name + "): the cluster in etcd and this store disagree");
    } else {
      ++claims;
    }
  }
  std::fprintf(out,
               "copied cluster %s to etcd prefix %s: %zu records (%zu newer ones kept), %zu tombstones, "
               "%zu CIDR claims\n"
               "now start meshd on every node with [datastore] kind = \"etcd\"\n",
               c.c_str(), p.c_str(), records, kept, tombstones, claims);
  return 0;
}

}  // namespace meshd::daemon
