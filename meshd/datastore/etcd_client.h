// meshd's client of etcd 3.4's v3 JSON gateway: HTTP/1.1 over Beast, plain or
// TLS, with token auth and endpoint failover (no gRPC; docs/datastore.md,
// "etcd client"). The codec is etcd_json.h.
//
// Errors are Result<> with an errno code and a sentence naming the endpoint
// and the operation (never a password or a token):
//   ETIMEDOUT     no answer within `timeout`, or the connection broke after a
//                 write was sent, or etcd said the proposal timed out: the
//                 OUTCOME IS UNKNOWN. etcd may still apply the write later
//                 (measured: a put that timed out while quorum was lost was
//                 applied once quorum returned), so the caller must re-read
//                 the key before deciding to write again, never blindly retry.
//   ECONNREFUSED, EHOSTUNREACH, ENETUNREACH...  no endpoint could be reached
//                 (the last endpoint's reason; the message lists them all).
//   EAGAIN        etcd has no leader (HTTP 503; calls carry
//                 `Grpc-Metadata-hasleader: true` so they fail fast).
//   EACCES        authentication failed or permission denied.
//   ENOENT        the lease does not exist (expired).
//   ERANGE        the revision asked for was compacted (or is in the future).
//   EPROTO        the TLS handshake failed (certificate not trusted...).
//   EINVAL        a malformed answer or a request etcd refused as invalid.
//
// Failover: endpoints are tried in order starting with the one that worked
// last; the next one is tried when connecting fails, when etcd has no leader,
// and, for reads and lease renewals only, when the answer does not come in
// time. A write whose request has been sent is never re-sent elsewhere (see
// ETIMEDOUT). When every endpoint failed, the code is EAGAIN if a member
// answered "no leader", else ETIMEDOUT if one timed out, else the
// connection error; the message lists each endpoint's reason.
#pragma once

#include "common/result.h"
#include "meshd/datastore/etcd_json.h"
#include "meshd/datastore/etcd_types.h"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace meshd::datastore {

struct EtcdOptions {
  // "http://127.0.0.1:2379", "https://etcd-1.example:2379", "https://[fd00::1]:2379".
  // All http or all https.
  std::vector<std::string> endpoints;
  // TLS (https endpoints): ca_file verifies the server (its certificate must
  // name the endpoint's host: a DNS SAN, or an IP SAN for an address);
  // "" = the system's CAs. cert_file + key_file: the client certificate, when
  // etcd asks for one (--client-cert-auth). With RBAC on, the gateway refuses
  // client certificates that carry a CommonName (issue 13): use CN-less ones
  // plus username/password.
  std::string ca_file, cert_file, key_file;
  // Token auth when username is set: /v3/auth/authenticate, then the token
  // in the Authorization header of every call; a token etcd no longer
  // accepts is replaced once per call.
  std::string username, password;
  // Per request and endpoint try: connecting (resolving and TLS included),
  // sending and reading the answer.
  std::chrono::milliseconds timeout{2000};
};

// One endpoint, parsed. EINVAL naming the form for anything else.
struct EtcdEndpoint {
  bool tls = false;
  std::string host;  // without brackets
  std::uint16_t port = 0;
  std::string host_header;  // "host:port", brackets kept
  std::string url;          // as given, for messages
};
Result<EtcdEndpoint> parse_etcd_endpoint(std::string_view url);

// Synchronous: each call blocks up to `timeout` per endpoint it tries. Keeps
// one connection to the current endpoint open between calls. Not thread
// safe: one caller at a time (the daemon runs it on its own thread).
class EtcdClient {
 public:
  // Check options with `validate` first: the constructor keeps what it is
  // given and every call fails with its EINVAL otherwise.
  explicit EtcdClient(EtcdOptions opts);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // EINVAL naming what is wrong: no endpoint, a malformed one, mixed
  // http/https, TLS files on http, a key without a certificate, unreadable
  // TLS files, a password without a user, a timeout <= 0.
  static Result<void> validate(const EtcdOptions& opts);

  Result<RangeResult> range(const RangeRequest& r);
  // The store's revision after the write.
  Result<Revision> put(std::string key, std::string value, LeaseId lease = 0);
  // `range_end` "" deletes the single key. The revision after the delete.
  Result<Revision> del(std::string key, std::string range_end = "");
  Result<TxnResult> txn(const Txn& t);
  // A lease of `ttl` (etcd raises it to its minimum, measured 2 s on 3.4); a
  // ttl under 1 s is EINVAL.
  Result<LeaseId> lease_grant(std::chrono::seconds ttl);
  // Renews once; the TTL remaining as etcd says. ENOENT if the lease expired
  // (its keys are gone: grant a new one and write them again).
  Result<std::chrono::seconds> lease_keepalive(LeaseId id);
  // Ends the lease now (its keys go); ENOENT if it was gone already.
  Result<void> lease_revoke(LeaseId id);
  // Compacts history up to `rev` (tests and operators). ERANGE if `rev` is
  // in the future or compacted already.
  Result<void> compact(Revision rev);

  // The URL of the endpoint the last call used (or will try first).
  const std::string& current_endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A watch on the caller's io_context: POST /v3/watch with a create_request
// {key, range_end, start_revision, prev_kv: true, progress_notify: true},
// then each newline-delimited {"result":{...}} of the chunked answer becomes
// a WatchResponse (the first one has created == true; progress
// notifications have no events). The first endpoint that accepts the watch
// serves it (`timeout` bounds reaching its `created` message); there is no
// failover within a watch. on_end is called once, with the reason, when the
// stream ends or fails (its errno), or etcd cancels it: the canceled message
// goes to on_response first; with compact_revision set (the start revision
// was compacted away) the error is ERANGE and the caller lists again and
// watches from the listing's revision + 1; a cancel for auth is EACCES.
// Then the caller opens a new EtcdWatch (from the last revision it applied
// + 1). A silent stream is not detected here: the caller's watchdog (with
// progress notifications) decides.
//
// Callbacks run on the io_context's thread. cancel() and the destructor,
// called on that thread, guarantee that no callback runs after they return
// (on_end included): a callback may destroy its EtcdWatch.
class EtcdWatch {
 public:
  using OnResponse = std::function<void(const WatchResponse&)>;
  using OnEnd = std::function<void(const Error&)>;
  EtcdWatch(boost::asio::io_context& ioc, EtcdOptions opts, std::string key,
            std::string range_end, Revision start_revision, OnResponse on_response,
            OnEnd on_end);
  ~EtcdWatch();
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

  // Closes the stream; no callback runs after it returns.
  void cancel();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace meshd::datastore
