#include "netlink/wg_device.h"

namespace meshd::wg {

WgPeer WgPeer::clone() const {
  WgPeer p;
  p.public_key = public_key;
  if (preshared_key) p.preshared_key = preshared_key->clone();
  p.endpoint = endpoint;
  p.persistent_keepalive = persistent_keepalive;
  p.allowed_ips = allowed_ips;
  p.remove = remove;
  p.replace_allowed_ips = replace_allowed_ips;
  p.update_only = update_only;
  p.last_handshake_sec = last_handshake_sec;
  p.last_handshake_nsec = last_handshake_nsec;
  p.rx_bytes = rx_bytes;
  p.tx_bytes = tx_bytes;
  p.protocol_version = protocol_version;
  return p;
}

WgDevice WgDevice::clone() const {
  WgDevice d;
  d.name = name;
  if (private_key) d.private_key = private_key->clone();
  d.listen_port = listen_port;
  d.fwmark = fwmark;
  d.replace_peers = replace_peers;
  d.peers.reserve(peers.size());
  for (const auto& p : peers) d.peers.push_back(p.clone());
  d.public_key = public_key;
  d.ifindex = ifindex;
  return d;
}

}  // namespace meshd::wg
