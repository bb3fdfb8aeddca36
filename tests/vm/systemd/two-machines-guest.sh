#!/usr/bin/env bash
# The guest half of vm_two_machines (two-machines.sh): runs in each of two
# qemu guests, each with systemd 252 as PID 1 and Debian's kernel, joined by
# one private qemu link (eth0, 192.168.77.0/24). Each installs the .deb and
# runs meshd through its unit, on kernel WireGuard. Guest a founds the
# cluster and makes a one-use token with `meshctl token create`; the token
# reaches guest b through the host's output folder (the writable 9p share,
# 0600); b joins over the link. On each, a pod (a network namespace) gets its
# interface and address from the real meshd-cni, fed the conflist meshd
# wrote; each pod pings the other's over WireGuard.
# The two guests meet only through files in $MESHD_VM_OUT (written whole,
# then renamed) and the link.
# Usage (in the guest): two-machines-guest.sh a|b DEB
set -euo pipefail
role=${1:?usage: two-machines-guest.sh a|b DEB}
deb=${2:?usage: two-machines-guest.sh a|b DEB}
# shellcheck source=tests/vm/systemd/guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"
out=${MESHD_VM_OUT:?run me through scripts/vm/run.sh --systemd}
case $role in
  a) me=1 other=b ;;
  b) me=2 other=a ;;
  *) echo "role must be a or b" >&2; exit 2 ;;
esac
[[ $(cat /proc/1/comm) == systemd ]] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
hostnamectl set-hostname "vm-$role" 2>/dev/null || hostname "vm-$role"

# publish NAME VALUE: a file the other guest waits for (renamed in whole).
publish() { (umask 077 && printf '%s\n' "$2" >"$out/$1.tmp-$role" && mv "$out/$1.tmp-$role" "$out/$1"); }
# await NAME SECONDS: the other guest's file (it boots at the same time, under
# emulation on shared cores: generous bounds).
await() {
  local t
  for ((t = 0; t < $2 * 2; t++)); do
    [[ -s $out/$1 ]] && { cat "$out/$1"; return 0; }
    [[ -s $out/failed-$other ]] && fail "guest $other failed: $(cat "$out/failed-$other")"
    sleep 0.5
  done
  fail "no $1 from guest $other within $2 s"
}
# A failure here tells the other guest at once instead of letting it wait.
on_exit() { local rc=$?; ((rc == 0)) || publish "failed-$role" "exit $rc"; }
trap on_exit EXIT

step "guest $role: eth0 on the private link"
modprobe virtio_net
wait_for 20 "eth0" test -e /sys/class/net/eth0
ip addr add "192.168.77.$me/24" dev eth0
ip link set eth0 up
# A default route as a real host has (meshd advertises the address of it); nothing is behind .254.
ip route add default via 192.168.77.254 dev eth0
peer_addr=192.168.77.$((3 - me))
wait_for 60 "the other guest on the link ($peer_addr)" ping -c 1 -W 1 "$peer_addr"
ok "192.168.77.$me/24 on eth0; $peer_addr answers"

step "guest $role: dpkg -i $(basename "$deb")"
dpkg -i "$deb" >"/tmp/dpkg.log" 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i failed"; }
{
  printf '[node]\nname = "vm-%s"\n' "$role"
  printf '[wireguard]\ninterface = "meshd0"\nlisten_port = 51820\nbackend = "kernel"\n'
  if [[ $role == a ]]; then
    printf '[cluster]\ncidr = "10.244.0.0/16"\njoin_listen = "0.0.0.0:51821"\n'
  else
    printf '[join]\ntarget = "192.168.77.1:51821"\ntoken_file = "/etc/meshd/join-token"\n'
  fi
} >/etc/meshd/meshd.toml

if [[ $role == a ]]; then
  step "guest a: systemctl enable --now meshd (founds the cluster)"
  systemctl enable --now meshd || fail "enable --now failed"
  wait_for 60 "settled pod CIDR" bash -c 'meshctl --json status | jq -e .pod_cidr_settled'
  token=$(meshctl --json token create --uses 1 --ttl 30m --description "vm-b" | jq -r .token)
  [[ -n $token && $token != null ]] || fail "meshctl token create printed no token"
  publish token "$token"
  unset token
  ok "founded; a one-use token for vm-b is in the shared folder (0600)"
else
  step "guest b: waiting for the token from guest a"
  (umask 077 && await token 400 >/etc/meshd/join-token)
  [[ $(stat -c %a /etc/meshd/join-token) == 600 ]] || fail "join-token is not 0600"
  step "guest b: systemctl enable --now meshd (joins through 192.168.77.1:51821)"
  systemctl enable --now meshd || fail "enable --now failed"
fi

wait_for 120 "'mesh in sync: 1 peers' status" bash -c 'systemctl show -p StatusText --value meshd | grep -Eq "^mesh in sync: 1 peers?;"'
systemctl status meshd --no-pager | sed -n '1,6p'
ip -d link show meshd0 | grep -q wireguard || fail "meshd0 is not a kernel WireGuard device"
endpoint=$(wg show meshd0 endpoints | awk '{print $2}')
[[ $endpoint == "$peer_addr:51820" ]] || fail "the peer's endpoint is '$endpoint', not $peer_addr:51820 (the link)"
ok "joined: one WireGuard peer at $endpoint"

step "guest $role: a pod by meshd-cni ADD"
conflist=/etc/cni/net.d/05-meshd.conflist
wait_for 30 "the CNI conflist" test -s "$conflist"
config=$(jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "$conflist")
ip netns add pod
result=$(env -i PATH="$PATH" CNI_COMMAND=ADD CNI_CONTAINERID="vm-$role-pod" CNI_NETNS=/var/run/netns/pod \
  CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin /opt/cni/bin/meshd-cni <<<"$config") ||
  fail "meshd-cni ADD failed: $result"
pod_ip=$(jq -r '.ips[0].address' <<<"$result")
pod_ip=${pod_ip%/*}
ok "pod at $pod_ip"
publish "pod-$role" "$pod_ip"
other_ip=$(await "pod-$other" 300)

step "guest $role: pod $pod_ip pings pod $other_ip (vm-$other) through kernel WireGuard"
# The first packet may wait for the handshake: retry, then a measured run.
for ((t = 0; t < 30; t++)); do
  ip netns exec pod ping -n -c 1 -W 1 "$other_ip" >/dev/null 2>&1 && break
done
ip netns exec pod ping -n -c 3 -i 0.3 -W 2 "$other_ip" || fail "pod $pod_ip does not reach pod $other_ip"
hs=$(wg show meshd0 latest-handshakes | awk '{print $2}')
((hs > 0)) || fail "no WireGuard handshake recorded on meshd0"
rx=$(wg show meshd0 transfer | awk '{print $2}')
((rx > 0)) || fail "nothing received through meshd0"
ok "pod-to-pod over meshd0 (handshake at $hs, $rx bytes received)"

# Stay up until the other guest has pinged too.
publish "done-$role" ok
await "done-$other" 300 >/dev/null
echo "PASS $(elapsed)" >"$out/result-$role"
step "guest $role: all checks passed"
