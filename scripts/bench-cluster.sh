#!/usr/bin/env bash
# Control-plane figures with real nodes (issue 10): meshd processes in network
# namespaces on a bridge underlay, cluster mode, userspace backend (Debian's
# wireguard-go), pods made by meshd-cni. Prints, asserts nothing:
#   join     for N = 2..NODES: process start of the Nth node -> admitted ->
#            settled (conflist) -> its pod made -> every other node's pod
#            gets a reply from it (continuous ping, 20 ms apart);
#   change   a node restarts with another listen port (a new endpoint in its
#            record): until every node's GET /v1/nodes shows the new version;
#   idle     each meshd's and wireguard-go's RSS and CPU over IDLE seconds;
#   records  a founder alone, then with RECORDS records crafted into its
#            store: RSS (anonymous vs file-backed, by mapping) and CPU.
# --datastore embedded|etcd|both (default both): join, change and idle run in
# the default mode, then again in the etcd mode ([datastore] kind = "etcd",
# a real 3-member etcd 3.4 on an underlay host, each node's client starting at
# another member; idle adds the members' CPU and RSS), and the two modes'
# join figures are printed side by side with their medians. records runs in
# the default mode only.
# The daemons use the production timings (anti-entropy 1000 ms, resync
# 2000 ms, keepalive 25 s; keepalive off for the records part; in the etcd
# mode [datastore]'s defaults), at log level info. On a machine shared with
# other work, read the load average printed beside each figure. The 1000-node simulation is a unit test:
#   build/bin/unit_controlplane --gtest_filter='SyncSim.*'
# Builds nothing: build first with
#   cmake --build build --target bench_cluster
# Usage: scripts/bench-cluster.sh [BUILD_DIR] [bench_cluster options...]   (root)
#   env: NODES (10), IDLE (30), RECORDS (1000), CHANGES (3)
#   e.g. scripts/bench-cluster.sh build --part records
#        scripts/bench-cluster.sh build --part join --datastore both
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
bin=$(realpath "$build/bin/bench_cluster" 2>/dev/null || true)
[[ -x $bin ]] || { echo "bench-cluster: build $build/bin/bench_cluster first" >&2; exit 1; }
for b in meshd meshctl meshd-cni; do
  [[ -x $build/bin/$b ]] || { echo "bench-cluster: $build/bin/$b missing (build target $b)" >&2; exit 1; }
done
command -v wireguard-go >/dev/null || { echo "bench-cluster: wireguard-go missing (scripts/install-deps.sh)" >&2; exit 1; }
# The etcd mode (part of the default run) needs etcd and the harness's tools.
if [[ " $* " != *" --datastore embedded "* ]]; then
  for tool in /usr/bin/etcd /usr/bin/curl /usr/bin/openssl /usr/bin/setpriv; do
    [[ -x $tool ]] || { echo "bench-cluster: $tool missing for the etcd mode (scripts/install-deps.sh; or --datastore embedded)" >&2; exit 1; }
  done
fi
[[ $(id -u) == 0 ]] || { echo "bench-cluster: needs root (network namespaces)" >&2; exit 1; }

exec "$bin" --nodes "${NODES:-10}" --idle-seconds "${IDLE:-30}" --records "${RECORDS:-1000}" \
  --changes "${CHANGES:-3}" "$@"
