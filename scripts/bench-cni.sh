#!/bin/sh
# ADD/DEL medians of meshd-cni against the reference bridge + host-local
# plugins, side by side, inside a throwaway node namespace (never the host's).
# Usage: scripts/bench-cni.sh [RUNS] [BUILD_DIR]   (root; RUNS defaults to 50)
set -eu
runs=${1:-50}
build=${2:-build}
cd "$(dirname "$0")/.."
[ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja >/dev/null
cmake --build "$build" --target bench_cni meshd-cni -j2 >/dev/null
exec "$build/bin/bench_cni" "$runs" /usr/lib/cni
