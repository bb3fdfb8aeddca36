#!/usr/bin/env bash
# The API under load: wrk against GET /v1/nodes (1000 nodes in the table) on
# 127.0.0.1 with a bearer token, served by tests/bench/api/bench_api_server
# on one io_context thread as the daemon does. Three scenarios:
#   quiet    wrk alone;
#   stalled  beside 200 clients that send half a request line and then nothing
#            (each reopened RECONNECT_MS after the server closes it), at max_connections 64;
#   busy     beside a handler on the server's loop that spins BUSY_MS of CPU
#            every EVERY_MS (a reconcile pass occupying the loop).
# Prints requests/s, p50 and p99 per scenario and the server's counters.
# Prints figures; asserts nothing. Builds nothing: build first with
#   cmake --build build --target bench_api_server
# The machine's load average is printed with each scenario: on a shared
# machine, compare only figures taken at similar load; ROUNDS > 1 interleaves
# the scenarios so that other work weighs on each alike.
# Usage: scripts/bench-api.sh [BUILD_DIR]
#   env: DURATION (10s), CONNECTIONS (16), STALLED (200), MAX_CONNECTIONS (64),
#        BUSY_MS (150), EVERY_MS (1000), NODES (1000), ROUNDS (1),
#        RECONNECT_MS (1000: how soon a stalled client the server closed comes back),
#        SCENARIOS ("quiet stalled busy")
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$(realpath "$build/bin/bench_api_server" 2>/dev/null || true)
[[ -x $bin ]] || { echo "bench-api: build $build/bin/bench_api_server first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench-api: wrk missing (scripts/install-deps.sh)" >&2; exit 1; }

duration=${DURATION:-10s}
conns=${CONNECTIONS:-16}
threads=$((conns < 2 ? conns : 2))
stalled=${STALLED:-200}
maxc=${MAX_CONNECTIONS:-64}
busy_ms=${BUSY_MS:-150}
every_ms=${EVERY_MS:-1000}
nodes=${NODES:-1000}
rounds=${ROUNDS:-1}
reconnect_ms=${RECONNECT_MS:-1000}
scenarios=${SCENARIOS:-quiet stalled busy}

work=$(mktemp -d /tmp/meshd-bench-api-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 20); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
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
  local out=$work/$name.$round.server
  "$bin" --token-file "$work/token" --nodes "$nodes" --max-connections "$maxc" "$@" >"$out" 2>&1 &
  local server=$!
  pids+=("$server")
  wait_for "$out" listening
  local port
  port=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
  local staller= load
  load=$(cut -d' ' -f1 /proc/loadavg)
  if [[ $name == stalled ]]; then
    "$bin" --stall "$stalled" --port "$port" --reconnect-ms "$reconnect_ms" >"$work/stall.$round.out" 2>&1 &
    staller=$!
    pids+=("$staller")
    wait_for "$work/stall.$round.out" stalling
  fi
  echo "== $name: $(head -1 "$out")${staller:+, $stalled stalled clients}"
  wrk -t"$threads" -c"$conns" -d"$duration" --latency -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/v1/nodes" | tee "$work/$name.$round.wrk"
  if [[ -n $staller ]]; then
    kill "$staller"; wait "$staller" || true
    cat "$work/stall.$round.out" | grep -v '^stalling'
  fi
  kill "$server"; wait "$server" || true
  grep '^counters' "$out"
  local rps p50 p99 errors non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/$name.$round.wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$work/$name.$round.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$name.$round.wrk")
  errors=$(sed -n 's/^ *Socket errors: *//p' "$work/$name.$round.wrk")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$name.$round.wrk")
  summary+=("$(printf '%-8s %5s %10s %10s %10s  %s' "$name" "$load" "$rps" "$p50" "$p99" \
    "${errors:+socket errors: $errors }${non2xx:+non-2xx: $non2xx }$(sed -n 's/^counters: //p' "$out")")")
}

echo "bench-api: $(nproc) cores, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), wrk -t$threads -c$conns -d$duration"
for round in $(seq "$rounds"); do
  for s in $scenarios; do
    case $s in
      quiet | stalled) scenario "$s" ;;
      busy) scenario busy --busy-ms "$busy_ms" --every-ms "$every_ms" ;;
      *) echo "bench-api: unknown scenario $s" >&2; exit 2 ;;
    esac
  done
done

echo
printf '%-8s %5s %10s %10s %10s  %s\n' scenario load 'req/s' p50 p99 'server counters'
printf '%s\n' "${summary[@]}"
