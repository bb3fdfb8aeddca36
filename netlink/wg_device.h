// The one model of a WireGuard device that every transport reads and writes:
// the "wireguard" generic-netlink family (kernel) and the cross-platform UAPI
// text protocol (wireguard-go and friends). A partial update is the same model
// with flags set, exactly as both wire protocols express it.
#pragma once

#include "common/ip.h"
#include "keys/wg_key.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meshd::wg {

struct WgPeer {
  keys::PublicKey public_key;
  std::optional<keys::PresharedKey> preshared_key;  // set: write it; all-zero removes
  std::optional<Endpoint> endpoint;
  std::optional<std::uint16_t> persistent_keepalive;  // seconds; 0 = off
  std::vector<IpPrefix> allowed_ips;

  // Update flags (SET only). WGPEER_F_REMOVE_ME / remove=true,
  // WGPEER_F_REPLACE_ALLOWEDIPS / replace_allowed_ips=true,
  // WGPEER_F_UPDATE_ONLY / update_only=true.
  bool remove = false;
  bool replace_allowed_ips = false;
  bool update_only = false;

  // Observed only (GET): never sent.
  std::int64_t last_handshake_sec = 0;  // unix time; 0 = never
  std::int64_t last_handshake_nsec = 0;  // nanoseconds part of the same instant
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
  int protocol_version = 0;  // WireGuard protocol the peer speaks (1 today); 0 = unreported

  WgPeer clone() const;
};

struct WgDevice {
  std::string name;  // interface name
  std::optional<keys::PrivateKey> private_key;
  std::optional<std::uint16_t> listen_port;
  std::optional<std::uint32_t> fwmark;
  bool replace_peers = false;  // SET only; meshd itself never sets it (resets sessions)
  std::vector<WgPeer> peers;

  // Observed only.
  keys::PublicKey public_key;
  int ifindex = 0;

  WgDevice clone() const;
};

}  // namespace meshd::wg
