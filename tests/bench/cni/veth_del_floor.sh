#!/bin/bash
# The kernel's floor under a burst of CNI DELs: N veth pairs (host end in a
# throwaway node namespace, peer in one pod namespace each) deleted with a
# bare `ip link del`, all at once and then one after another, from the host
# end (as meshd-cni does) or from the pod end (as bridge does). No plugin, no
# database: what any CNI plugin that deletes a veth pays. Prints wall times.
# Usage (root): tests/bench/cni/veth_del_floor.sh [N]   (default 100)
set -eu
n=${1:-100}
tag=vdf$$
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$tag-" || true); do ip netns del "$ns"; done
}
trap cleanup EXIT
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
run() {  # side mode
  ip netns add "$tag-node"
  for i in $(seq 1 "$n"); do
    ip netns add "$tag-p$i"
    ip -n "$tag-node" link add "v$i" type veth peer name eth0 netns "$tag-p$i"
  done
  local t0
  t0=$(ms_now)
  for i in $(seq 1 "$n"); do
    if [ "$1" = host ]; then set -- "$1" "$2" ip -n "$tag-node" link del "v$i"
    else set -- "$1" "$2" ip -n "$tag-p$i" link del eth0; fi
    if [ "$2" = parallel ]; then "${@:3}" & else "${@:3}"; fi
    set -- "$1" "$2"
  done
  wait
  echo "$n veths deleted from the $1 end, $2: $(( $(ms_now) - t0 )) ms"
  cleanup
}
echo "load average: $(cat /proc/loadavg)"
for side in host pod; do
  for mode in parallel sequential; do run "$side" "$mode"; done
done
