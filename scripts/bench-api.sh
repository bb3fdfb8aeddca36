#!/usr/bin/env bash
# The API under load: wrk against GET /v1/nodes (1000 nodes in the table) on
# 127.0.0.1 with a bearer token, served by tests/bench/api/bench_api_server
# on one io_context thread as the daemon does. Three scenarios:
#   quiet    wrk alone;
#   stalled  beside 200 clients that send half a request line and then nothing
#            (reopened 1 s after the server closes one), at max_connections 64;
#   busy     beside a handler on the server's loop that spins BUSY_MS of CPU
#            every EVERY_MS (a reconcile pass occupying the loop).
# Prints requests/s, p50 and p99 per scenario and the server's counters.
# Prints figures; asserts nothing. Builds nothing: build first with
#   cmake --build build --target bench_api_server
# Usage: scripts/bench-api.sh [BUILD_DIR]
#   env: DURATION (10s), CONNECTIONS (16), STALLED (200), MAX_CONNECTIONS (64),
#        BUSY_MS (150), EVERY_MS (1000), NODES (1000)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$(realpath "$build/bin/bench_api_server" 2>/dev/null || true)
[[ -x $bin ]] || { echo "bench-api: build $build/bin/bench_api_server first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench-api: wrk missing (scripts/install-deps.sh)" >&2; exit 1; }

duration=${DURATION:-10s}
conns=${CONNECTIONS:-16}
stalled=${STALLED:-200}
maxc=${MAX_CONNECTIONS:-64}
busy_ms=${BUSY_MS:-150}
every_ms=${EVERY_MS:-1000}
nodes=${NODES:-1000}

work=$(mktemp -d /tmp/meshd-bench-api-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
(umask 077 && printf '%s\n' "$token" > "$work/token")

# Waits until FILE has a line starting with WORD (at most 10 s).
wait_for() {
  for _ in $(seq 100); do grep -q "^$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench-api: no '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

summary=()
# scenario NAME [server args...]: runs the server, the scenario's extra load, wrk.
scenario() {
  local name=$1; shift
  local out=$work/$name.server
  "$bin" --token-file "$work/token" --nodes "$nodes" --max-connections "$maxc" "$@" >"$out" 2>&1 &
  local server=$!
  pids+=("$server")
  wait_for "$out" listening
  local port
  port=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
  local staller=
  if [[ $name == stalled ]]; then
    "$bin" --stall "$stalled" --port "$port" >"$work/stall.out" 2>&1 &
    staller=$!
    pids+=("$staller")
    wait_for "$work/stall.out" stalling
  fi
  echo "== $name: $(head -1 "$out")${staller:+, $stalled stalled clients}"
  wrk -t2 -c"$conns" -d"$duration" --latency -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/v1/nodes" | tee "$work/$name.wrk"
  if [[ -n $staller ]]; then
    kill "$staller"; wait "$staller" || true
    cat "$work/stall.out" | grep -v '^stalling'
  fi
  kill "$server"; wait "$server" || true
  grep '^counters' "$out"
  local rps p50 p99 errors non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/$name.wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$work/$name.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$name.wrk")
  errors=$(sed -n 's/^ *Socket errors: *//p' "$work/$name.wrk")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$name.wrk")
  summary+=("$(printf '%-8s %10s %10s %10s  %s' "$name" "$rps" "$p50" "$p99" \
    "${errors:+socket errors: $errors }${non2xx:+non-2xx: $non2xx }$(sed -n 's/^counters: //p' "$out")")")
}

echo "bench-api: $(nproc) cores, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), wrk -t2 -c$conns -d$duration"
scenario quiet
scenario stalled
scenario busy --busy-ms "$busy_ms" --every-ms "$every_ms"

echo
printf '%-8s %10s %10s %10s  %s\n' scenario 'req/s' p50 p99 'server counters'
printf '%s\n' "${summary[@]}"
