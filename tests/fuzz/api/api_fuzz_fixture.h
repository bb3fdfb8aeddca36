// Shared by the API's fuzz targets: the router over an in-memory token store
// (renewed now and then so the token table stays small), and the checks every
// answer must pass whatever the input:
//  - a status in 200..599; a JSON answer parses; an error answer is exactly
//    {"error": string, "message": string}; a 405 carries Allow;
//  - a 201 from POST /v1/tokens holds a token that parses, and that token's
//    secret never appears in any later answer.
#pragma once

#include "keys/token.h"
#include "meshd/api/routes.h"
#include "store/database.h"
#include "store/events.h"
#include "store/tokens.h"

#include <boost/json.hpp>

#include <cstdlib>
#include <memory>
#include <string>

namespace meshd::api::fuzz {

struct FixedStatus : StatusSource {
  bool ready() const override { return true; }
  StatusSnapshot status() const override {
    return StatusSnapshot{.backend = "kernel",
                          .interface = "meshd0",
                          .mtu = 1420,
                          .public_key = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
                          .pod_cidr = "10.244.1.0/24",
                          .pod_cidr_settled = true,
                          .peer_count = 2,
                          .reconcile = {.last_at_ms = 1'800'000'000'000,
                                        .last_duration_seconds = 0.01,
                                        .last_error = "x",
                                        .passes = 3,
                                        .failures = 1}};
  }
};

struct FixedCluster : ClusterSource {
  std::optional<ClusterSnapshot> cluster() const override {
    return ClusterSnapshot{.cluster_id = "c0ffee",
                           .cidr = "10.244.0.0/16",
                           .node_prefix_length = 24,
                           .join_target = "192.0.2.1:51821",
                           .settled = true};
  }
  std::vector<NodeSnapshot> nodes() const override {
    NodeSnapshot self{.name = "alpha", .pod_cidr = "10.244.1.0/24", .self = true};
    NodeSnapshot peer{.name = "beta", .endpoints = {"192.0.2.2:51820"}, .pod_cidr = "10.244.2.0/24"};
    peer.stats = {.last_handshake_age_seconds = 3, .rx_bytes = 1, .tx_bytes = 2, .reachable = true};
    return {self, peer};
  }
  ControlPlaneCounters counters() const override {
    return {.sync_messages_in = 1, .records_rejected = {{"stale", 1}}, .join_attempts = {{"admitted", 1}}};
  }
  // Each removal answer the route can meet, by name: beta removed, alpha
  // already removed, gamma not a member yet, anything else unknown. A rotation
  // always starts: an answer that depended on earlier inputs would make a
  // finding hard to reproduce.
  Result<RemovalResult> remove_node(const std::string& name) override {
    if (name == "beta") return RemovalResult{"beta", "aWQ=", "10.244.2.0/24", 1'800'000'000'000};
    if (name == "alpha") return fail(EALREADY, "remove node alpha");
    if (name == "gamma") return fail(EAGAIN, "remove node gamma");
    return fail(ENOENT, "remove node " + name);
  }
  Result<RotationResult> rotate_key() override {
    return RotationResult{"b2xk", "bmV3", 1'800'000'005'000};
  }
};

class Fixture {
 public:
  Response handle(const Request& req) {
    if (!router_ || ++calls_ % 256 == 0) renew();
    Response r = router_->handle(req);
    check(req, r);
    return r;
  }

 private:
  void renew() {
    router_.reset();
    events_.reset();
    repo_.reset();
    db_ = std::make_unique<store::Database>(store::DatabaseOptions{.path = ":memory:"});
    repo_ = std::make_unique<store::TokenRepo>(*db_);
    events_ = std::make_unique<store::EventRepo>(*db_);
    (void)events_->append(1'800'000'000, "node-joined", "beta", "joined");
    router_ = std::make_unique<Router>(make_router({.status = &status_,
                                                   .tokens = repo_.get(),
                                                   .cluster = &cluster_,
                                                   .events = events_.get(),
                                                   .now = [] { return std::int64_t{1'800'000'000}; }}));
  }

  static bool carries(const Request& req, const std::string& s) {
    if (req.target.find(s) != std::string::npos || req.body.find(s) != std::string::npos)
      return true;
    for (const auto& [k, v] : req.headers)
      if (k.find(s) != std::string::npos || v.find(s) != std::string::npos) return true;
    return false;
  }

  void check(const Request& req, const Response& r) {
    if (r.status < 200 || r.status > 599) std::abort();
    // Once a request carries the secret (e.g. as a description, which is
    // then listed) it is the client's own data and may come back.
    if (!secret_.empty() && carries(req, secret_)) secret_.clear();
    if (!secret_.empty()) {
      if (r.body.find(secret_) != std::string::npos) std::abort();
      for (const auto& [k, v] : r.headers)
        if (v.find(secret_) != std::string::npos) std::abort();
    }
    if (r.status == 405 && r.header("Allow").empty()) std::abort();
    if (r.content_type != kJsonContentType) return;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object()) std::abort();
    const auto& o = v.as_object();
    if (r.status >= 400) {
      if (o.size() != 2 || !o.contains("error") || !o.at("error").is_string() ||
          !o.contains("message") || !o.at("message").is_string())
        std::abort();
    }
    if (r.status == 201) {
      if (req.method != "POST" || !o.contains("token") || !o.at("token").is_string()) std::abort();
      std::string token(o.at("token").as_string());
      if (!keys::Token::parse(token)) std::abort();
      secret_ = token.substr(token.find('.') + 1);
    }
  }

  FixedStatus status_;
  FixedCluster cluster_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<store::TokenRepo> repo_;
  std::unique_ptr<store::EventRepo> events_;
  std::unique_ptr<Router> router_;
  unsigned calls_ = 0;
  std::string secret_;  // of the last token made
};

}  // namespace meshd::api::fuzz
