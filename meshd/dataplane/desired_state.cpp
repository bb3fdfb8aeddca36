#include "meshd/dataplane/desired_state.h"

#include "common/pod_network.h"

#include <algorithm>
#include <set>

namespace meshd::dataplane {

std::vector<PeerSpec> validate_static_peers(const std::vector<config::StaticPeer>& peers,
                                            const LocalSpec& local, std::uint16_t default_keepalive,
                                            std::vector<Rejection>& rejected) {
  std::vector<PeerSpec> out;
  std::set<keys::PublicKey> seen_keys;
  std::vector<std::pair<IpPrefix, std::string>> claimed;  // allowed IP -> owner

  for (const auto& sp : peers) {
    auto reject = [&](std::string why) { rejected.push_back({sp.name, std::move(why)}); };

    // The key error names the length and the expected form, never the text.
    auto key = keys::PublicKey::from_base64(sp.public_key);
    if (!key) {
      reject("public_key: " + key.error().message);
      continue;
    }
    if (key->is_zero()) {
      reject("public_key is all zeros");
      continue;
    }
    if (local.private_key && keys::SecretKey(key->bytes()) == *local.private_key) {
      reject("public_key is this node's PRIVATE key: configure the peer's public key "
             "(`wg pubkey` prints it) and treat this private key as exposed");
      continue;
    }
    if (*key == local.public_key) {
      reject("public_key " + key->short_id() + " is this node's own key");
      continue;
    }
    if (seen_keys.count(*key)) {
      reject("public_key " + key->short_id() + " is already used by an earlier peer");
      continue;
    }

    PeerSpec p;
    p.name = sp.name;
    p.public_key = *key;
    p.persistent_keepalive = sp.persistent_keepalive.value_or(default_keepalive);
    if (!sp.endpoint.empty()) {
      auto ep = Endpoint::parse(sp.endpoint);
      if (!ep) {
        reject("endpoint: " + ep.error().message);
        continue;
      }
      if (ep->port == 0) {
        reject("endpoint \"" + sp.endpoint + "\": port 0 is not a valid destination");
        continue;
      }
      p.endpoint = *ep;
    }

    std::string problem;
    for (const auto& text : sp.allowed_ips) {
      auto pre = IpPrefix::parse(text);
      if (!pre) {
        problem = "allowed_ips: " + pre.error().message;
        break;
      }
      IpPrefix n = pre->network();
      if (local.pod_cidr && n.overlaps(*local.pod_cidr)) {
        problem = "allowed_ips: " + text + " overlaps this node's pod CIDR " +
                  local.pod_cidr->to_string();
        break;
      }
      auto clash = std::find_if(claimed.begin(), claimed.end(),
                                [&](const auto& c) { return c.first.overlaps(n); });
      if (clash != claimed.end()) {
        problem = "allowed_ips: " + text + " overlaps " + clash->first.to_string() +
                  " of peer " + clash->second;
        break;
      }
      if (std::find(p.allowed_ips.begin(), p.allowed_ips.end(), n) == p.allowed_ips.end())
        p.allowed_ips.push_back(n);
    }
    if (!problem.empty()) {
      reject(problem);
      continue;
    }
    for (const auto& a : p.allowed_ips) claimed.emplace_back(a, p.name);
    seen_keys.insert(p.public_key);
    out.push_back(std::move(p));
  }
  return out;
}

nl::Route kernel_route_form(nl::Route r) {
  if (r.dst.address.is_v6()) {
    r.scope = 0;                  // RT_SCOPE_UNIVERSE
    if (r.metric == 0) r.metric = 1024;  // IP6_RT_PRIO_USER
  }
  return r;
}

unsigned wireguard_overhead(bool v6_underlay) { return v6_underlay ? 80 : 60; }

MeshMtu mesh_mtu_for_underlay(unsigned underlay_mtu, bool v6_underlay, const std::string& source) {
  const unsigned overhead = wireguard_overhead(v6_underlay);
  const std::string how = source + " " + std::to_string(underlay_mtu) + " - " + std::to_string(overhead);
  if (underlay_mtu < overhead + kMinMeshMtu)
    return {kMinMeshMtu, "mtu " + std::to_string(kMinMeshMtu) + " (" + how +
                             " is below 1280, the IPv6 minimum; using 1280: the underlay will "
                             "fragment the largest packets)",
            true};
  return {underlay_mtu - overhead, "mtu " + std::to_string(underlay_mtu - overhead) + " (" + how + ")"};
}

DesiredState compute_desired(const LocalSpec& local, const std::vector<PeerSpec>& peers) {
  DesiredState s;
  s.device.name = local.interface;
  s.device.listen_port = local.listen_port;
  s.device.public_key = local.public_key;
  s.mtu = local.mtu;

  // The configuration refuses a pod CIDR without a gateway (the same rule).
  std::optional<IpAddress> src;
  if (local.pod_cidr)
    if (auto gw = pod_gateway(*local.pod_cidr)) {
      src = *gw;
      s.addresses.push_back(IpPrefix{*src, 32});
    }

  for (const auto& p : peers) {
    wg::WgPeer w;
    w.public_key = p.public_key;
    w.endpoint = p.endpoint;
    w.persistent_keepalive = p.persistent_keepalive;
    w.allowed_ips = p.allowed_ips;
    std::sort(w.allowed_ips.begin(), w.allowed_ips.end());
    s.device.peers.push_back(std::move(w));

    for (const auto& a : p.allowed_ips) {
      nl::Route r;
      r.dst = a;
      r.protocol = nl::kMeshdRouteProtocol;
      r.scope = 253;  // RT_SCOPE_LINK: the peer is reached directly on the tunnel
      if (src && src->family == a.address.family) r.prefsrc = *src;
      s.routes.push_back(kernel_route_form(r));
    }
  }
  if (local.cluster_cidr) {
    nl::Route r;
    r.dst = local.cluster_cidr->network();
    r.protocol = nl::kMeshdRouteProtocol;
    r.scope = 253;
    if (src && src->family == r.dst.address.family) r.prefsrc = *src;
    r = kernel_route_form(r);
    // A static peer may already route exactly this prefix.
    if (std::none_of(s.routes.begin(), s.routes.end(), [&](const nl::Route& o) { return o.dst == r.dst; }))
      s.routes.push_back(r);
  }
  s.egress = egress_for(local.pod_cidr, local.cluster_cidr, local.interface, local.masquerade_egress);
  std::sort(s.device.peers.begin(), s.device.peers.end(),
            [](const wg::WgPeer& a, const wg::WgPeer& b) { return a.public_key < b.public_key; });
  std::sort(s.routes.begin(), s.routes.end());
  return s;
}

}  // namespace meshd::dataplane
