#!/usr/bin/env bash
# Data-plane apply benchmark: meshd's backend vs `wg setconf` / `wg set`, same
# device kind, same run. Prints figures; asserts nothing.
#   scripts/bench-dataplane.sh [BUILD_DIR]            userspace (wireguard-go), on this host
#   scripts/bench-dataplane.sh --kernel [BUILD_DIR]   kernel WireGuard, in the throwaway VM
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=0
if [[ ${1:-} == --kernel ]]; then kernel=1; shift; fi
build=${1:-build}
bin=$(realpath "$build/bin/bench_dataplane")
[[ -x $bin ]] || { echo "bench-dataplane: build $bin first (cmake --build $build --target bench_dataplane)" >&2; exit 1; }

# Everything runs in a namespace of its own; userspace also gets a private
# /var/run/wireguard so no other wireguard-go instance is visible or touched.
inner="mount --make-rprivate / && mkdir -p /var/run/wireguard && mount -t tmpfs none /var/run/wireguard && $bin"
if ((kernel)); then
  exec scripts/vm/run.sh --timeout 600 -- "ip netns add bench && ip netns exec bench unshare -m sh -c '$inner kernel 5'"
fi
ns=meshd-bench-$$
ip netns add "$ns"
trap 'ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns del "$ns"' EXIT
ip netns exec "$ns" unshare -m sh -c "$inner userspace 5"
