// The config file is outside input: any bytes must give a Config or an
// ErrorException with a message, never a crash; a parsed config's static
// peers then go through validation, which must reject bad ones by name.
#include "meshd/config/config.h"
#include "meshd/dataplane/desired_state.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  meshd::config::Config c;
  try {
    c = meshd::config::parse_config(text, "fuzz.toml");
  } catch (const meshd::ErrorException& e) {
    std::string_view what(e.what());
    if (what.find("fuzz.toml") == std::string_view::npos) std::abort();
    // An etcd endpoint with user information ("https://u:secret@host") is
    // never quoted: no '@' but the one the message names.
    if (what.find("datastore.endpoints") != std::string_view::npos) {
      std::string rest(what);
      for (auto at = rest.find("'@'"); at != std::string::npos; at = rest.find("'@'")) rest.erase(at, 3);
      if (rest.find('@') != std::string::npos) std::abort();
    }
    return 0;
  }
  // What the daemon relies on without checking again: the cross-key rules.
  if (c.liveness_silent_after_s == 0) std::abort();
  if (c.liveness_prune_after_s != 0 && c.liveness_prune_after_s <= c.liveness_silent_after_s) std::abort();
  if (c.rotation_lead_ms < 100 || c.rotation_grace_ms > 600000) std::abort();
  if (c.rotation_interval_s != 0 &&
      std::uint64_t{c.rotation_interval_s} * 1000 <= std::uint64_t{c.rotation_lead_ms} + c.rotation_grace_ms)
    std::abort();
  using meshd::config::DatastoreKind;
  if (c.datastore_kind == DatastoreKind::kEtcd) {
    if (!c.cluster_mode || c.etcd_endpoints.empty()) std::abort();
    bool tls = false, plain = false;
    for (const auto& text : c.etcd_endpoints) {
      auto e = meshd::config::parse_etcd_endpoint(text);
      if (!e || e->port == 0 || e->host.empty()) std::abort();
      (e->tls ? tls : plain) = true;
    }
    if ((tls && plain) || (tls && c.etcd_ca_file.empty()) || (!tls && !c.etcd_ca_file.empty())) std::abort();
    if (c.etcd_cert_file.empty() != c.etcd_key_file.empty()) std::abort();
    if (c.etcd_username.empty() != c.etcd_password_file.empty()) std::abort();
    const auto& p = c.etcd_prefix;
    if (p.empty() || p.size() > 128 || p.front() != '/' || p.back() != '/') std::abort();
    for (char ch : p)
      if (static_cast<unsigned char>(ch) < 0x21 || static_cast<unsigned char>(ch) > 0x7e) std::abort();
    if (std::uint64_t{c.etcd_timeout_ms} * 3 > std::uint64_t{c.etcd_lease_ttl_s} * 1000) std::abort();
  } else {
    // The etcd keys are refused, not ignored, in the embedded mode.
    if (!meshd::config::datastore_keys_changed(meshd::config::Config{}, c).empty()) std::abort();
  }
  meshd::dataplane::LocalSpec local;
  local.interface = c.interface;
  local.pod_cidr = c.pod_cidr;
  std::vector<meshd::dataplane::Rejection> rejected;
  auto peers = meshd::dataplane::validate_static_peers(c.peers, local, c.persistent_keepalive, rejected);
  if (peers.size() + rejected.size() != c.peers.size()) std::abort();
  for (const auto& r : rejected)
    if (r.reason.empty()) std::abort();
  // A rejected key's text is never echoed (it may be a private key): each
  // peer alone, so that a reason can only be about that peer.
  for (const auto& sp : c.peers) {
    if (sp.public_key.size() < 8) continue;
    std::vector<meshd::dataplane::Rejection> one;
    meshd::dataplane::validate_static_peers({sp}, local, c.persistent_keepalive, one);
    if (!one.empty() && one[0].reason.rfind("public_key", 0) == 0 &&
        one[0].reason.find(sp.public_key) != std::string::npos)
      std::abort();
  }
  auto desired = meshd::dataplane::compute_desired(local, peers);
  if (desired.device.peers.size() != peers.size()) std::abort();
  return 0;
}
