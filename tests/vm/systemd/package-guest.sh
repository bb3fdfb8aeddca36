#!/usr/bin/env bash
# The guest half of vm_systemd_package (package.sh): runs in the qemu guest as
# a unit under systemd 252 as PID 1, with Debian's kernel (WireGuard module).
# One boot proves the package and the unit as an operator uses them:
#   dpkg -i; the unit installed disabled; a founding config; enable --now
#   through the notify handshake; the Status: line; reload applying a changed
#   listen port; stop leaving device and routes, start adopting them (same
#   ifindex) -- kernel backend; a SIGSTOPped meshd killed by the watchdog and
#   restarted; the journal's fields; an upgrade (dpkg -i of a higher version)
#   while meshd runs: restarted on the new binary, device, routes, identity,
#   an edited conffile and the enablement kept; one while it is stopped and
#   disabled: it stays so; the same stop/start with the userspace
#   backend (wireguard-go outlives meshd, its socket stays in /run/wireguard);
#   dpkg -r (stops the unit, prints the teardown, leaves the mesh); dpkg -P
#   (tears the mesh down, deletes /etc/meshd and /var/lib/meshd).
# Usage (in the guest): package-guest.sh DEB DEB2 DEB3 (DEB2 and DEB3: higher
# versions of DEB, in that order)
# The guest is thrown away: nothing here is cleaned up on failure.
set -euo pipefail
deb=${1:?usage: package-guest.sh DEB DEB2 DEB3}
deb2=${2:?usage: package-guest.sh DEB DEB2 DEB3}
deb3=${3:?usage: package-guest.sh DEB DEB2 DEB3}
# shellcheck source=tests/vm/systemd/guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"
out=${MESHD_VM_OUT:?run me through scripts/vm/run.sh --systemd}
[[ $(cat /proc/1/comm) == systemd ]] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
for d in "$deb" "$deb2" "$deb3"; do [[ -f $d ]] || fail "no package at $d"; done

# An underlay as a real host has: an address and a default route (meshd picks
# its MTU and advertised address from it). A veth pair: nothing is behind it.
ip link add ul0 type veth peer name ul1
ip addr add 192.168.90.1/24 dev ul0
ip link set ul1 up
ip link set ul0 up
ip route add default via 192.168.90.254 dev ul0

step "dpkg -i $(basename "$deb")"
# Its dependencies (wireguard-tools, the shared libraries) are installed on
# the host, whose dpkg database is the guest's (read-only under the overlay):
# dpkg sees them installed and needs nothing fetched.
dpkg -i "$deb" >"$out/dpkg-install.log" 2>&1 || { cat "$out/dpkg-install.log"; fail "dpkg -i failed"; }
cat "$out/dpkg-install.log"
dpkg-query -W -f '${Status}\n' meshd | grep -qx 'install ok installed' || fail "meshd not installed"
state=$(systemctl is-enabled meshd 2>&1 || true)
[[ $state == disabled ]] || fail "the unit is '$state' after install, expected disabled"
is_state meshd inactive || fail "meshd runs right after install"
ok "installed; unit disabled and inactive"
grep -q 'systemctl enable --now meshd' "$out/dpkg-install.log" || fail "postinst did not say how to enable"
meshd --config /etc/meshd/meshd.toml --check-config >/dev/null || fail "the shipped config does not load"

# A founding node with the kernel backend and one static peer (an outside
# machine): its allowed IP gives a route of meshd's own (protocol 77).
outside_pub=$(wg genkey | wg pubkey)
write_config() { # write_config BACKEND INTERFACE LISTEN_PORT
  cat >/etc/meshd/meshd.toml <<CONF
[node]
name = "vm-founder"
[wireguard]
interface = "$2"
listen_port = $3
backend = "$1"
[cluster]
cidr = "10.244.0.0/16"
join_listen = "0.0.0.0:51821"
[[peers]]
name = "outside"
public_key = "$outside_pub"
endpoint = "192.168.90.20:51820"
allowed_ips = ["10.99.0.2/32"]
CONF
}
write_config kernel meshd0 51820
meshd --config /etc/meshd/meshd.toml --check-config >/dev/null || fail "the founding config does not load"

step "systemctl enable --now meshd (kernel backend)"
# Type=notify: this returns once meshd sent READY=1, or fails.
systemctl enable --now meshd || fail "enable --now failed"
[[ $(systemctl is-enabled meshd) == enabled ]] || fail "not enabled"
[[ $(prop meshd SubState) == running ]] || fail "SubState $(prop meshd SubState) after enable --now"
ip -d link show meshd0 | grep -q wireguard || fail "meshd0 is not a kernel WireGuard device"
wait_for 60 "'mesh in sync' status" bash -c 'systemctl show -p StatusText --value meshd | grep -Eq "^mesh in sync: 1 peers?;"'
status=$(systemctl status meshd --no-pager -l)
echo "$status" | sed -n '1,8p'
grep -q 'Active: active (running)' <<<"$status" || fail "systemctl status is not active (running)"
grep -Eq 'Status: "mesh in sync: 1 peers?; pod CIDR 10\.244\.' <<<"$status" || fail "no STATUS line in systemctl status"
ok "active (running) through the notify handshake, Status: line shown"
ip route show proto 77 | grep -q '^10.99.0.2 dev meshd0' || fail "no route of meshd's to the static peer"
wg show meshd0 peers | grep -qx "$outside_pub" || fail "the static peer is not on meshd0"
idx=$(ifindex meshd0)

step "systemctl reload meshd (listen_port 51820 -> 51830)"
pid=$(prop meshd MainPID)
sed -i 's/^listen_port = 51820$/listen_port = 51830/' /etc/meshd/meshd.toml
systemctl reload meshd || fail "reload failed"
wait_for 30 "listen port 51830 after the reload" bash -c '[[ $(wg show meshd0 listen-port) == 51830 ]]'
wait_for 10 "the reload's log line" bash -c 'journalctl -u meshd -b --no-pager -o cat | grep -q "configuration reloaded from /etc/meshd/meshd.toml"'
[[ $(prop meshd MainPID) == "$pid" ]] || fail "the reload restarted meshd"
[[ $(ifindex meshd0) == "$idx" ]] || fail "the reload recreated meshd0"
ok "reload applied the listen port in place (same PID $pid, same ifindex $idx)"

step "systemctl stop meshd: the data plane stays (kernel backend)"
routes=$(ip route show proto 77)
systemctl stop meshd
is_state meshd inactive || fail "meshd not inactive after stop"
[[ $(ifindex meshd0) == "$idx" ]] || fail "meshd0 gone or recreated after stop"
[[ $(ip route show proto 77) == "$routes" ]] || fail "routes changed on stop: $(ip route show proto 77)"
wg show meshd0 peers | grep -qx "$outside_pub" || fail "the peer left meshd0 on stop"
ok "stopped; meshd0 (ifindex $idx), its peer and routes in place"
step "systemctl start meshd: adopts the device"
systemctl start meshd || fail "start failed"
[[ $(prop meshd SubState) == running ]] || fail "not running after start"
[[ $(ifindex meshd0) == "$idx" ]] || fail "meshd0 recreated on start (ifindex $(ifindex meshd0), was $idx)"
[[ $(ip route show proto 77) == "$routes" ]] || fail "routes changed on start"
ok "adopted: same ifindex $idx, same routes"

step "watchdog: a SIGSTOPped meshd is killed and restarted"
# The unit's WatchdogSec=30 would make this step wait 30 s; a drop-in
# shortens it (5 s: shorter ones risk false alarms under emulation).
mkdir -p /etc/systemd/system/meshd.service.d
printf '[Service]\nWatchdogSec=5\n' >/etc/systemd/system/meshd.service.d/10-vm-watchdog.conf
systemctl daemon-reload
systemctl restart meshd || fail "restart with WatchdogSec=5 failed"
[[ $(prop meshd WatchdogUSec) == 5s ]] || fail "WatchdogUSec is $(prop meshd WatchdogUSec)"
pid=$(prop meshd MainPID)
restarts=$(prop meshd NRestarts)
kill -STOP "$pid"
# Result=watchdog holds while the unit waits RestartSec (5 s) to restart.
# (PID 1 logs "Watchdog timeout" to the console here, not the journal: the
# guest starts it with --log-target=console.)
wait_for 60 "Result=watchdog" bash -c '[[ $(systemctl show -p Result --value meshd) == watchdog ]]'
ok "Result: watchdog"
wait_for 60 "watchdog restart" bash -c "[[ \$(systemctl show -p NRestarts --value meshd) -gt $restarts &&
  \$(systemctl show -p SubState --value meshd) == running && \$(systemctl show -p MainPID --value meshd) != $pid ]]"
kill -0 "$pid" 2>/dev/null && fail "the hung meshd ($pid) is still there"
[[ $(ifindex meshd0) == "$idx" ]] || fail "meshd0 recreated across the watchdog restart"
ok "restarted as PID $(prop meshd MainPID) (was $pid); meshd0 kept (ifindex $idx)"
rm /etc/systemd/system/meshd.service.d/10-vm-watchdog.conf
systemctl daemon-reload

step "the journal"
journalctl -u meshd -b -o json --no-pager >"$out/journal.json"
jq -e -s 'map(select(.SYSLOG_IDENTIFIER == "meshd" and ._SYSTEMD_UNIT == "meshd.service")) | length > 0' \
  "$out/journal.json" >/dev/null || fail "no journal entries of meshd.service with SYSLOG_IDENTIFIER=meshd"
jq -e -s 'map(select(._SYSTEMD_UNIT == "meshd.service" and (.MESSAGE | type == "string") and (.MESSAGE | test("starting")))) | length >= 2' \
  "$out/journal.json" >/dev/null || fail "the journal lacks meshd's start messages"
# meshd writes structured entries (docs/logging.md): its own fields on
# every line, the static peer's name on the lines about it.
fields=$(jq -r -s 'map(select(._SYSTEMD_UNIT == "meshd.service") | keys[] | select(startswith("MESHD_"))) | unique | join(" ")' "$out/journal.json")
for f in MESHD_COMPONENT MESHD_NODE MESHD_PEER; do
  [[ " $fields " == *" $f "* ]] || fail "meshd's journal entries lack $f (they have: ${fields:-none})"
done
jq -e -s 'map(select(._SYSTEMD_UNIT == "meshd.service" and .MESHD_NODE == "vm-founder" and .MESHD_COMPONENT == "reconcile"
  and (.MESSAGE | type == "string") and (.MESSAGE | test("add route 10.99.0.2/32")))) | length > 0' \
  "$out/journal.json" >/dev/null || fail "no entry MESHD_NODE=vm-founder MESHD_COMPONENT=reconcile for the route to the static peer"
jq -e -s 'map(select(._SYSTEMD_UNIT == "meshd.service" and .MESHD_PEER == "outside")) | length > 0' \
  "$out/journal.json" >/dev/null || fail "no entry with MESHD_PEER=outside (the static peer)"
journalctl -u meshd -b --no-pager -o verbose MESHD_COMPONENT=reconcile -n 1 | grep -E '^\s+(MESSAGE|MESHD_|SYSLOG_IDENTIFIER|PRIORITY)=' | sed 's/^ */   /'
ok "SYSLOG_IDENTIFIER=meshd, _SYSTEMD_UNIT=meshd.service; fields $fields"

# The node's identity as meshd reports it: its Ed25519 identity, WireGuard
# public key and pod CIDR (its own record) and the cluster it belongs to. The
# database file's checksum is no use here: a running meshd writes to it.
node_facts() {
  local status nodes
  status=$(meshctl --json status) && nodes=$(meshctl --json nodes) || return 1
  jq -n -e -r --argjson s "$status" --argjson n "$nodes" '
    ($n.nodes | map(select(.self))[0]) as $me
    | select($me != null and $s.cluster_id != null and $me.public_key == $s.public_key)
    | "identity=\($me.identity) public_key=\($s.public_key) cluster_id=\($s.cluster_id) pod_cidr=\($s.pod_cidr)"'
}
conffile_leftovers() { find /etc/meshd -name '*.dpkg-*' -o -name '*.ucf-*'; }
# upgrade_to DEB LOG: dpkg -i with no terminal to answer a conffile prompt
# (stdin /dev/null: a prompt would fail the configure), checked to have
# installed DEB's version.
upgrade_to() {
  local v
  v=$(dpkg-deb -f "$1" Version)
  dpkg -i "$1" </dev/null >"$2" 2>&1 || { cat "$2"; fail "dpkg -i $(basename "$1") failed"; }
  cat "$2"
  [[ $(dpkg-query -W -f '${Version} ${Status}' meshd) == "$v install ok installed" ]] ||
    fail "after the upgrade dpkg lists meshd as '$(dpkg-query -W -f '${Version} ${Status}' meshd)', expected $v installed"
  ! grep -Eqi 'config(uration)? file' "$2" || fail "dpkg spoke of a configuration file"
  # The maintainer scripts took their upgrade branches, not those of a
  # removal (prerm stops and disables) or a first install (postinst's hint).
  ! grep -q 'The mesh stays up' "$2" || fail "prerm ran its removal branch on an upgrade"
  ! grep -q 'enable --now' "$2" || fail "postinst printed its first-install hint on an upgrade"
  [[ -z $(conffile_leftovers) ]] || fail "dpkg left $(conffile_leftovers)"
}

step "upgrade $(dpkg-query -W -f '${Version}' meshd) -> $(dpkg-deb -f "$deb2" Version) while meshd runs (dpkg -i)"
# An operator's edit beside what the test wrote: dpkg must see a changed
# conffile (the file differs from the one it installed) and, the package's
# copy being unchanged, keep it without asking.
sed -i '1i # the operator: founding node of the vm test cluster' /etc/meshd/meshd.toml
shipped_md5=$(dpkg-query -W -f '${Conffiles}\n' meshd | awk '$1 == "/etc/meshd/meshd.toml" { print $2 }')
[[ -n $shipped_md5 ]] || fail "dpkg lists no conffile /etc/meshd/meshd.toml"
[[ $(md5sum </etc/meshd/meshd.toml | cut -d' ' -f1) != "$shipped_md5" ]] || fail "the config is the shipped one: nothing to keep"
conf_sum=$(sha256sum </etc/meshd/meshd.toml)
wait_for 60 "'mesh in sync' status before the upgrade" bash -c 'systemctl show -p StatusText --value meshd | grep -Eq "^mesh in sync: 1 peers?;"'
facts=$(node_facts) || fail "meshctl cannot tell this node's identity and cluster"
echo "   before: $facts"
pid=$(prop meshd MainPID)
started=$(prop meshd ExecMainStartTimestampMonotonic)
exe_inode=$(stat -c %i /usr/bin/meshd)
routes=$(ip route show proto 77)
port=$(wg show meshd0 listen-port)
upgrade_to "$deb2" "$out/dpkg-upgrade-running.log"
# postinst's try-restart is a job systemctl waits for: Type=notify makes
# the unit active only once the new meshd sent READY=1.
[[ $(prop meshd ActiveState)/$(prop meshd SubState) == active/running ]] ||
  fail "meshd is $(prop meshd ActiveState)/$(prop meshd SubState) after the upgrade"
newpid=$(prop meshd MainPID)
[[ $newpid != "$pid" ]] || fail "the upgrade did not restart meshd (MainPID still $pid)"
kill -0 "$pid" 2>/dev/null && fail "the old meshd ($pid) still runs"
[[ $(prop meshd ExecMainStartTimestampMonotonic) -gt $started ]] || fail "no new start of meshd"
# A restart job resets the counter; an automatic restart (the new meshd
# failing) would count 1.
[[ $(prop meshd NRestarts) == 0 ]] || fail "meshd failed and was restarted by systemd (NRestarts $(prop meshd NRestarts))"
# dpkg installs a file under a new inode: the new meshd runs the upgraded
# binary, not the one the old process had open.
[[ $(stat -c %i /usr/bin/meshd) != "$exe_inode" ]] || fail "dpkg did not replace /usr/bin/meshd"
[[ $(stat -L -c %i "/proc/$newpid/exe") == "$(stat -c %i /usr/bin/meshd)" ]] ||
  fail "meshd ($newpid) does not run the installed /usr/bin/meshd ($(readlink "/proc/$newpid/exe"))"
wait_for 60 "'mesh in sync' status after the upgrade" bash -c 'systemctl show -p StatusText --value meshd | grep -Eq "^mesh in sync: 1 peers?;"'
ok "restarted on the new binary: PID $pid -> $newpid, active (running), Status: $(prop meshd StatusText)"
[[ $(sha256sum </etc/meshd/meshd.toml) == "$conf_sum" ]] || fail "the upgrade changed /etc/meshd/meshd.toml"
ok "the edited conffile kept as it was, no prompt (stdin /dev/null), no .dpkg-* beside it"
[[ $(systemctl is-enabled meshd) == enabled ]] || fail "the unit is '$(systemctl is-enabled meshd)' after the upgrade, was enabled"
[[ $(ifindex meshd0) == "$idx" ]] || fail "meshd0 recreated across the upgrade (ifindex $(ifindex meshd0), was $idx)"
[[ $(ip route show proto 77) == "$routes" ]] || fail "routes changed across the upgrade: $(ip route show proto 77)"
wg show meshd0 peers | grep -qx "$outside_pub" || fail "the peer left meshd0 across the upgrade"
[[ $(wg show meshd0 listen-port) == "$port" ]] || fail "listen port $(wg show meshd0 listen-port) after the upgrade, was $port"
after=$(node_facts) || fail "meshctl cannot tell this node's identity and cluster after the upgrade"
[[ $after == "$facts" ]] || fail "the node's identity changed across the upgrade: $after"
ok "still enabled; meshd0 kept (ifindex $idx), its peer, port $port and routes; same identity, key, cluster and pod CIDR"

step "upgrade $(dpkg-query -W -f '${Version}' meshd) -> $(dpkg-deb -f "$deb3" Version) with meshd stopped and disabled"
# The other branch of postinst's try-restart, and of "installed disabled":
# an upgrade neither starts a stopped meshd nor enables a disabled unit.
systemctl disable --now meshd || fail "disable --now failed"
is_state meshd inactive || fail "meshd not inactive after disable --now"
upgrade_to "$deb3" "$out/dpkg-upgrade-stopped.log"
is_state meshd inactive || fail "the upgrade started a stopped meshd ($(systemctl is-active meshd))"
state=$(systemctl is-enabled meshd 2>&1 || true)
[[ $state == disabled ]] || fail "the unit is '$state' after the upgrade, was disabled"
[[ $(ifindex meshd0) == "$idx" ]] || fail "meshd0 gone or recreated across the upgrade"
[[ $(sha256sum </etc/meshd/meshd.toml) == "$conf_sum" ]] || fail "the upgrade changed /etc/meshd/meshd.toml"
ok "still inactive and disabled, meshd0 (ifindex $idx) and the config untouched"
# Enabled again (not started): dpkg -r below checks that it disables it.
systemctl enable meshd || fail "enable failed"

step "switch to the userspace backend (wireguard-go)"
systemctl stop meshd
meshd --config /etc/meshd/meshd.toml --teardown || fail "meshd --teardown failed"
[[ ! -e /sys/class/net/meshd0 ]] || fail "meshd0 survived --teardown"
rm -rf /var/lib/meshd/*
write_config userspace meshd1 51820
systemctl start meshd || fail "start with the userspace backend failed"
ip -d link show meshd1 | grep -q 'tun ' || fail "meshd1 is not a TUN device"
wait_for 60 "'mesh in sync' status (userspace)" bash -c 'systemctl show -p StatusText --value meshd | grep -Eq "^mesh in sync: 1 peers?;"'
[[ -S /run/wireguard/meshd1.sock ]] || fail "no wireguard-go socket in /run/wireguard"
wg show meshd1 peers | grep -qx "$outside_pub" || fail "wg show meshd1 lacks the peer"
cgroup=/sys/fs/cgroup$(prop meshd ControlGroup)
mainpid=$(prop meshd MainPID)
wgpid=""
while read -r p; do
  [[ $p != "$mainpid" && $(cat "/proc/$p/comm" 2>/dev/null) == wireguard-go ]] && wgpid=$p
done <"$cgroup/cgroup.procs"
[[ -n $wgpid ]] || fail "no wireguard-go in meshd's cgroup"
idx=$(ifindex meshd1)
routes=$(ip route show proto 77)
ok "wireguard-go PID $wgpid in meshd's cgroup, socket /run/wireguard/meshd1.sock"

step "systemctl stop meshd: wireguard-go keeps running (KillMode=process)"
systemctl stop meshd
is_state meshd inactive || fail "meshd not inactive after stop"
kill -0 "$wgpid" 2>/dev/null || fail "wireguard-go ended with meshd"
[[ -S /run/wireguard/meshd1.sock ]] || fail "the socket went with the stop"
wg show meshd1 peers | grep -qx "$outside_pub" || fail "wg show cannot reach wireguard-go after the stop"
[[ $(ifindex meshd1) == "$idx" ]] || fail "meshd1 gone after stop"
[[ $(ip route show proto 77) == "$routes" ]] || fail "routes changed on stop"
ok "stopped; wireguard-go $wgpid answers on its socket, meshd1 and routes in place"
step "systemctl start meshd: adopts wireguard-go"
systemctl start meshd || fail "start failed"
[[ $(prop meshd SubState) == running ]] || fail "not running after start"
kill -0 "$wgpid" 2>/dev/null || fail "wireguard-go replaced on start"
[[ $(ifindex meshd1) == "$idx" ]] || fail "meshd1 recreated on start"
[[ $(ip route show proto 77) == "$routes" ]] || fail "routes changed on start"
n=0
while read -r p; do [[ $(cat "/proc/$p/comm" 2>/dev/null) == wireguard-go ]] && n=$((n + 1)); done <"$cgroup/cgroup.procs"
((n == 1)) || fail "$n wireguard-go processes in the cgroup after start"
ok "adopted: wireguard-go $wgpid, ifindex $idx"

step "dpkg -r meshd"
dpkg -r meshd >"$out/dpkg-remove.log" 2>&1 || { cat "$out/dpkg-remove.log"; fail "dpkg -r failed"; }
cat "$out/dpkg-remove.log"
is_state meshd inactive || fail "meshd still runs after dpkg -r"
grep -q 'The mesh stays up' "$out/dpkg-remove.log" || fail "prerm did not say the mesh stays up"
grep -q 'ip link del meshd1' "$out/dpkg-remove.log" || fail "prerm did not print the teardown for meshd1"
[[ ! -e /lib/systemd/system/meshd.service && ! -e /usr/lib/systemd/system/meshd.service ]] || fail "the unit file is still installed"
[[ ! -e /etc/systemd/system/multi-user.target.wants/meshd.service ]] || fail "the unit is still enabled"
[[ $(ifindex meshd1) == "$idx" ]] || fail "dpkg -r removed the mesh"
kill -0 "$wgpid" 2>/dev/null || fail "dpkg -r ended wireguard-go"
[[ -f /etc/meshd/meshd.toml && -d /var/lib/meshd ]] || fail "dpkg -r removed the config or the state"
ok "stopped and disabled; meshd1, wireguard-go, /etc/meshd and /var/lib/meshd remain"

step "dpkg -P meshd"
dpkg -P meshd >"$out/dpkg-purge.log" 2>&1 || { cat "$out/dpkg-purge.log"; fail "dpkg -P failed"; }
cat "$out/dpkg-purge.log"
[[ ! -e /sys/class/net/meshd1 ]] || fail "meshd1 survived the purge"
[[ -z $(ip route show proto 77) ]] || fail "meshd's routes survived the purge: $(ip route show proto 77)"
wait_for 10 "wireguard-go's exit" bash -c "! kill -0 $wgpid"
[[ ! -e /etc/meshd && ! -e /var/lib/meshd ]] || fail "/etc/meshd or /var/lib/meshd survived the purge"
[[ ! -e /run/wireguard/meshd1.sock ]] || fail "the wireguard-go socket survived the purge"
! dpkg-query -W -f '${Status}' meshd 2>/dev/null | grep -q 'ok installed' || fail "dpkg still lists meshd"
ok "mesh torn down, /etc/meshd and /var/lib/meshd deleted"

echo "PASS $(elapsed)" >"$out/result"
step "all checks passed"
