#!/usr/bin/env bash
# Smoke check of the test guest itself, run inside it (scripts/vm/run.sh):
# kernel WireGuard is there, wg(8) drives it, and two network namespaces joined
# by a veth pair reach each other through WireGuard tunnels. If this fails,
# every vm_* result is suspect.
# Every address lives inside namespaces made here (documentation ranges).
set -euo pipefail

step() { echo "smoke: $*"; }
a=meshd-smoke-a b=meshd-smoke-b
cleanup() {
  ip link del wgsmoke 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT

step "ip link add wgsmoke type wireguard"
ip link add wgsmoke type wireguard
step "wg show wgsmoke"
wg show wgsmoke
[[ $(wg show wgsmoke listen-port) == 0 ]] || { echo "smoke: fresh device has a listen port" >&2; exit 1; }
ip link del wgsmoke

step "two namespaces joined by veth, each with a WireGuard device"
ip netns add "$a"
ip netns add "$b"
ip link add veth-a netns "$a" type veth peer name veth-b netns "$b"
key_a=$(wg genkey) key_b=$(wg genkey)
pub_a=$(wg pubkey <<<"$key_a") pub_b=$(wg pubkey <<<"$key_b")
setup() { # ns veth underlay-addr tunnel-addr key peer-pub peer-underlay peer-tunnel
  local ns=$1 veth=$2 under=$3 tun=$4 key=$5 peer=$6 peer_under=$7 peer_tun=$8
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$under/24" dev "$veth"
  ip -n "$ns" link set "$veth" up
  ip -n "$ns" link add wg0 type wireguard
  ip netns exec "$ns" wg set wg0 private-key <(echo "$key") listen-port 51820 \
    peer "$peer" endpoint "$peer_under:51820" allowed-ips "$peer_tun/32"
  ip -n "$ns" addr add "$tun/24" dev wg0
  ip -n "$ns" link set wg0 up
}
setup "$a" veth-a 192.0.2.1 198.51.100.1 "$key_a" "$pub_b" 192.0.2.2 198.51.100.2
setup "$b" veth-b 192.0.2.2 198.51.100.2 "$key_b" "$pub_a" 192.0.2.1 198.51.100.1

step "ping through kernel WireGuard"
ip netns exec "$a" ping -c 3 -i 0.2 -W 5 198.51.100.2
ip netns exec "$b" ping -c 1 -W 5 198.51.100.1

# The replies prove the tunnel, the handshake proves it was WireGuard's.
hs=$(ip netns exec "$a" wg show wg0 latest-handshakes | awk '{print $2}')
[[ $hs =~ ^[0-9]+$ && $hs -gt 0 ]] || { echo "smoke: no WireGuard handshake recorded" >&2; exit 1; }
ip netns exec "$a" wg show wg0
step "ok"
