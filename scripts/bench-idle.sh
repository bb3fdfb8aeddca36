#!/usr/bin/env bash
# Idle cost of a quiet node: CPU (meshd and wireguard-go separately, as % of one
# core) and resident memory, with 10, 100 and 1000 static peers on the
# userspace backend, keepalive off, measured over 10 s starting 5 s after
# meshd's first in-sync pass. Prints figures; asserts nothing.
#
# Everything runs in a network namespace of its own: a veth pair inside it
# carries the underlay address, peers' endpoints are addresses in
# 198.18.0.0/15 on that pair (benchmark range, never leaves the namespace),
# and with keepalive off no packet is sent anyway.
# Usage: scripts/bench-idle.sh [BUILD_DIR] [PEER COUNTS...]   (root)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
counts=("$@")
((${#counts[@]})) || counts=(10 100 1000)
meshd=$(realpath "$build/bin/meshd")
[[ -x $meshd ]] || { echo "bench-idle: build $meshd first" >&2; exit 1; }
tick=$(getconf CLK_TCK)

ns=meshd-idle-$$
work=$(mktemp -d /tmp/meshd-idle-XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

printf '%-6s %14s %18s %12s %12s %14s\n' peers "meshd CPU %" "wireguard-go CPU %" "total %" "meshd RSS" "wg-go RSS"
for n in "${counts[@]}"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add ul0 type veth peer name ul1
  ip -n "$ns" addr add 198.18.0.1/15 dev ul0
  ip -n "$ns" link set ul0 up
  ip -n "$ns" link set ul1 up
  dir=$work/n$n
  mkdir -p "$dir"
  chmod 700 "$dir"
  {
    printf '[node]\nname = "idle"\npod_cidr = "10.96.0.0/24"\n'
    printf '[wireguard]\ninterface = "meshd0"\nlisten_port = 51820\nbackend = "userspace"\npersistent_keepalive = 0\n'
    printf '[userspace]\nsocket_dir = "%s/wg"\n' "$dir"
    printf '[state]\ndatabase = "%s/meshd.db"\nruntime_dir = "%s/run"\n' "$dir" "$dir"
    printf '[cni]\nconf_dir = ""\n'
    for ((i = 0; i < n; i++)); do
      pub=$(wg genkey | wg pubkey)
      # Peer i: endpoint 198.18.x.y, pod CIDR 10.(100 + i/256).(i%256).0/24.
      printf '[[peers]]\nname = "p%d"\npublic_key = "%s"\nendpoint = "198.18.%d.%d:51820"\nallowed_ips = ["10.%d.%d.0/24"]\n' \
        "$i" "$pub" $(((i + 2) / 256)) $(((i + 2) % 256)) $((100 + i / 256)) $((i % 256))
    done
  } >"$dir/meshd.toml"
  ip netns exec "$ns" "$meshd" --config "$dir/meshd.toml" >"$dir/log" 2>&1 &
  pid=$!
  for ((t = 0; t < 600; t++)); do
    curl -s --unix-socket "$dir/run/meshd.sock" http://meshd/v1/status 2>/dev/null | grep -q '"in_sync":true' && break
    sleep 0.1
  done
  curl -s --unix-socket "$dir/run/meshd.sock" http://meshd/v1/status 2>/dev/null | grep -q '"in_sync":true' || {
    echo "bench-idle: meshd with $n peers never reached in_sync; log:" >&2
    tail -20 "$dir/log" >&2
    exit 1
  }
  sleep 5
  wgpid=$(ip netns pids "$ns" | grep -vx "$pid" | head -1)
  m0=$(cpu_ticks "$pid"); w0=$(cpu_ticks "$wgpid"); t0=$(date +%s.%N)
  sleep 10
  m1=$(cpu_ticks "$pid"); w1=$(cpu_ticks "$wgpid"); t1=$(date +%s.%N)
  awk -v n="$n" -v m=$((m1 - m0)) -v w=$((w1 - w0)) -v t0="$t0" -v t1="$t1" -v hz="$tick" \
    -v mr="$(rss_kb "$pid")" -v wr="$(rss_kb "$wgpid")" 'BEGIN {
      s = t1 - t0; mp = 100 * m / hz / s; wp = 100 * w / hz / s
      printf "%-6d %14.2f %18.2f %12.2f %9.1f MB %11.1f MB\n", n, mp, wp, mp + wp, mr / 1024, wr / 1024 }'
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  # meshd leaves the data plane up on exit (by design): end this run's
  # wireguard-go by PID, then drop the namespace.
  kill "$wgpid" 2>/dev/null || true
  ip netns del "$ns"
done
echo "goal: total <= 1 % of one core at 1000 peers; meshd RSS <= 8 MB (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
