#!/usr/bin/env bash
# scripts/demo.sh on kernel WireGuard: in the qemu guest (Debian's stock
# kernel, which has the module) `backend = "auto"` must pick the kernel on
# every node, and every pod must reach every other (--check); the host has no
# WireGuard module, so integration_demo covers only wireguard-go.
# Usage: demo_kernel.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=${1:?source dir}
build=${2:?build dir}
out=$(mktemp /tmp/meshd-vm-demo-XXXXXX)
trap 'rm -f "$out"' EXIT

rc=0
"$src/scripts/vm/run.sh" --timeout 500 --mem 1024 -- \
  "$src/scripts/demo.sh" --no-deps --no-build --build-dir "$build" --check --out /tmp/meshd-demo-vm \
  >"$out" 2>&1 || rc=$?
fail() { printf 'FAIL: %s\n--- output ---\n' "$*" >&2; cat "$out" >&2; exit 1; }
((rc == 0)) || fail "the demo in the guest exited $rc"
n=$(grep -c 'WireGuard backend kernel (auto: kernel WireGuard is available)' "$out" || true)
((n == 3)) || fail "$n of 3 nodes on the kernel backend"
grep -q 'all 30 pod pairs reach each other' "$out" || fail "not every pod pair reached"
grep -q '^demo: check passed' "$out" || fail "the check did not pass"
grep -q '^demo: down' "$out" || fail "the demo did not tear down"
echo PASS
