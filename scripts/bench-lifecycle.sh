#!/usr/bin/env bash
# Lifecycle figures with real nodes (issue 12): meshd processes in network
# namespaces on a bridge underlay, cluster mode, userspace backend (Debian's
# wireguard-go), pods made by meshd-cni. Prints, asserts nothing:
#   rotation  POST /v1/key/rotate on node 2 under a 100/s pod-to-pod ping
#             from node 1, ROTATIONS runs: the largest gap between replies
#             and the loss per run, median and worst;
#   removal   DELETE /v1/nodes/{name} at the founder for the last node, then
#             the one before, REMOVALS times: from the DELETE's answer until
#             the removed key has left every other node's WireGuard device
#             (and its CIDR every route table), median and worst.
# The daemons use the production timings (anti-entropy 1000 ms, resync
# 2000 ms, keepalive 25 s, rotation lead 3000 ms and grace 2000 ms; see
# --lead-ms / --grace-ms), at log level info. On a machine shared with other
# work, read the load average printed beside each figure.
# Builds nothing: build first with
#   cmake --build build --target bench_lifecycle
# Usage: scripts/bench-lifecycle.sh [BUILD_DIR] [bench_lifecycle options...]   (root)
#   env: NODES (10), REMOVALS (3), ROTATIONS (10)
#   e.g. scripts/bench-lifecycle.sh build --part rotation
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
bin=$(realpath "$build/bin/bench_lifecycle" 2>/dev/null || true)
[[ -x $bin ]] || { echo "bench-lifecycle: build $build/bin/bench_lifecycle first" >&2; exit 1; }
for b in meshd meshctl meshd-cni; do
  [[ -x $build/bin/$b ]] || { echo "bench-lifecycle: $build/bin/$b missing (build target $b)" >&2; exit 1; }
done
command -v wireguard-go >/dev/null || { echo "bench-lifecycle: wireguard-go missing (scripts/install-deps.sh)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "bench-lifecycle: needs root (network namespaces)" >&2; exit 1; }

exec "$bin" --nodes "${NODES:-10}" --removals "${REMOVALS:-3}" --rotations "${ROTATIONS:-10}" "$@"
