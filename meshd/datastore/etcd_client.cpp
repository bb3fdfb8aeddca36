#include "meshd/datastore/etcd_client.h"

namespace meshd::datastore {

struct EtcdClient::Impl {
  EtcdOptions opts;
  std::string current;
};

EtcdClient::EtcdClient(EtcdOptions opts) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(opts);
  if (!impl_->opts.endpoints.empty()) impl_->current = impl_->opts.endpoints.front();
}
EtcdClient::~EtcdClient() = default;

namespace {
Error todo() { return fail(ENOSYS, "etcd client: not implemented yet"); }
}  // namespace

Result<EtcdEndpoint> parse_etcd_endpoint(std::string_view) { return todo(); }
Result<void> EtcdClient::validate(const EtcdOptions&) { return todo(); }
Result<RangeResult> EtcdClient::range(const RangeRequest&) { return todo(); }
Result<Revision> EtcdClient::put(std::string, std::string, LeaseId) { return todo(); }
Result<Revision> EtcdClient::del(std::string, std::string) { return todo(); }
Result<TxnResult> EtcdClient::txn(const Txn&) { return todo(); }
Result<LeaseId> EtcdClient::lease_grant(std::chrono::seconds) { return todo(); }
Result<std::chrono::seconds> EtcdClient::lease_keepalive(LeaseId) { return todo(); }
Result<void> EtcdClient::lease_revoke(LeaseId) { return todo(); }
Result<void> EtcdClient::compact(Revision) { return todo(); }
const std::string& EtcdClient::current_endpoint() const { return impl_->current; }

struct EtcdWatch::State {};
EtcdWatch::EtcdWatch(boost::asio::io_context&, EtcdOptions, std::string, std::string, Revision,
                     OnResponse, OnEnd on_end) : state_(std::make_shared<State>()) {
  (void)on_end;
}
EtcdWatch::~EtcdWatch() = default;
void EtcdWatch::cancel() {}

}  // namespace meshd::datastore
