#!/bin/sh
# ADD/DEL medians of meshd-cni against the reference bridge + host-local
# plugins, side by side, inside a throwaway node namespace (never the host's);
# then bursts of N concurrent ADDs and N concurrent DELs.
# Usage: scripts/bench-cni.sh [RUNS] [BUILD_DIR] [BURSTS] [BURST_RUNS]
#   (root; RUNS defaults to 50, BURSTS to 20,100, BURST_RUNS to 3)
set -eu
runs=${1:-50}
build=${2:-build}
cd "$(dirname "$0")/.."
[ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja >/dev/null
cmake --build "$build" --target bench_cni meshd-cni -j2 >/dev/null
exec "$build/bin/bench_cni" "$runs" /usr/lib/cni "${3:-20,100}" "${4:-3}"
