#!/usr/bin/env bash
# A change reaching 1000 watchers in the etcd mode (issue 13): a real
# 3-member etcd 3.4 (Debian's etcd-server) in a network namespace of its own,
# and WATCHERS simulated nodes, each one EtcdWatch (the client meshd runs) on
# a cluster's prefix, all on one io_context, spread over the three members.
# Prints, asserts nothing:
#   open     the time until every watch is created;
#   idle     each member's CPU and RSS with no watch, then with all open;
#   puts     PUTS puts of one record-sized value (VALUE bytes): the time until
#            the first and the last watcher got it (p50/p90/max), and each
#            member's CPU and RSS over the puts.
# The watchers' times include this process's own work (one thread parses
# every watcher's copy); its CPU is printed beside etcd's. On a machine shared
# with other work, read the load average printed beside each figure.
# Builds nothing: build first with
#   cmake --build build --target bench_etcd_watch
# Usage: scripts/bench-etcd.sh [BUILD_DIR] [bench_etcd_watch options...]   (root)
#   env: WATCHERS (1000), PUTS (10), VALUE (400), IDLE (10)
#   e.g. WATCHERS=3000 scripts/bench-etcd.sh build
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
bin=$(realpath "$build/bin/bench_etcd_watch" 2>/dev/null || true)
[[ -x $bin ]] || { echo "bench-etcd: build $build/bin/bench_etcd_watch first" >&2; exit 1; }
for tool in /usr/bin/etcd /usr/bin/curl /usr/bin/openssl /usr/bin/setpriv; do
  [[ -x $tool ]] || { echo "bench-etcd: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "bench-etcd: needs root (network namespaces)" >&2; exit 1; }

exec "$bin" --watchers "${WATCHERS:-1000}" --puts "${PUTS:-10}" --value-bytes "${VALUE:-400}" \
  --idle-seconds "${IDLE:-10}" "$@"
