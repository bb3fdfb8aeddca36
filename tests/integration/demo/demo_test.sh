#!/usr/bin/env bash
# scripts/demo.sh as a user runs it (without installing or building: the
# build is the test's), in three runs:
#   1. up, then `--down` from outside: meshctl nodes, the SVG graph (parsed
#      by xmllint), an all-ok ping matrix; a second demo refused while one
#      is up; after --down none of its namespaces, processes or state remain;
#   2. a failure halfway (MESHD_DEMO_FAULT=bad-token: the last node's join
#      is refused): a non-zero exit with the reason and the node's log, and
#      everything made so far removed;
#   3. up, then SIGINT (Ctrl-C): exit 0 and nothing left.
# Usage: demo_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail

src=${1:?source dir}
build=${2:?build dir}
demo="$src/scripts/demo.sh"
state=/run/meshd-demo
work=$(mktemp -d /tmp/meshd-demo-test-XXXXXX)
demo_pid=""

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  if [[ -f $work/out ]]; then
    printf -- '--- demo output ---\n' >&2
    cat "$work/out" >&2
  fi
  exit 1
}
cleanup() {
  # A demo this test started and that is still running: --down ends it (by
  # the PIDs it recorded).
  if [[ -n $demo_pid ]] && kill -0 "$demo_pid" 2>/dev/null; then
    "$demo" --down >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Prerequisites fail the test, never skip it.
[[ $(id -u) -eq 0 ]] || fail "needs root (network namespaces)"
for t in ip jq dot ping xmllint; do
  command -v "$t" >/dev/null || fail "$t is missing: scripts/install-deps.sh"
done
for b in meshd meshctl meshd-cni; do
  [[ -x $build/bin/$b ]] || fail "$build/bin/$b is missing: build first"
done
[[ ! -d $state ]] || fail "$state exists: a demo is up on this machine (scripts/demo.sh --down)"

demo_namespaces() { ip netns list | awk '{print $1}' | grep '^mdemo-' || true; }

# start_demo [ENV...]: the demo in the background, its output in $work/out,
# SIGINT at its default (a background job of a script would ignore it).
start_demo() {
  : >"$work/out"
  env "$@" --default-signal=INT "$demo" --no-deps --no-build --build-dir "$build" --out "$work/demo" \
    >"$work/out" 2>&1 &
  demo_pid=$!
}
# wait_up: until the demo says it is up (0), or it ended (1); at most 120 s.
wait_up() {
  local t
  for ((t = 0; t < 1200; t++)); do
    grep -q 'Ctrl-C or scripts/demo.sh --down' "$work/out" && return 0
    kill -0 "$demo_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  fail "the demo was not up within 120 s"
}
# wait_end: the demo's exit status once it ended (at most 60 s).
wait_end() {
  local t rc=0
  for ((t = 0; t < 600; t++)); do
    kill -0 "$demo_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$demo_pid" 2>/dev/null && fail "the demo did not end within 60 s"
  wait "$demo_pid" || rc=$?
  demo_pid=""
  return "$rc"
}
# The PIDs of everything running in the demo's namespaces (meshd,
# wireguard-go), plus the meshd PIDs it recorded.
demo_pids() {
  local ns
  for ns in $(demo_namespaces); do ip netns pids "$ns"; done
  awk '{print $2}' "$state/pids" 2>/dev/null || true
}
# alive PID: running, not a zombie (an orphaned wireguard-go that ended is
# reaped by PID 1 in its own time).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}
# assert_clean WHAT PIDS: none of the demo's namespaces, processes or state left.
assert_clean() {
  local what=$1 pids=$2 pid left
  left=$(demo_namespaces)
  [[ -z $left ]] || fail "$what: namespaces left: $left"
  for pid in $pids; do
    alive "$pid" && fail "$what: process $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline)) left running"
  done
  [[ ! -e $state ]] || fail "$what: $state left"
  ls "$work/demo/logs/node-1.log" >/dev/null 2>&1 || fail "$what: the nodes' logs were not kept"
}

# --- 1. up, then --down --------------------------------------------------------------
echo "== 1. up, then scripts/demo.sh --down"
start_demo
wait_up || { wait_end || true; fail "run 1: the demo ended before it was up"; }
out=$(cat "$work/out")
# meshctl nodes from node 1: itself and two reachable peers.
grep -qE '^node-1 .* self *$' <<<"$out" || fail "run 1: meshctl nodes has no self row for node-1"
for n in node-2 node-3; do
  grep -qE "^$n .*reachable *\$" <<<"$out" || fail "run 1: meshctl nodes does not show $n reachable"
done
# The matrix: 6 pods, 30 pairs, every one ok with a round-trip time.
grep -q 'all 30 pod pairs reach each other' <<<"$out" || fail "run 1: not every pod pair reached"
grep -qE 'FAIL|LOSS' <<<"$out" && fail "run 1: the matrix has a FAIL or LOSS cell"
oks=$(grep -oE 'ok [0-9]+\.[0-9]+' <<<"$out" | wc -l)
((oks == 30)) || fail "run 1: $oks ok cells with a round-trip time, expected 30"
# The graph: where it says, a well-formed SVG with the three nodes, their
# three edges and the six pods.
svg="$work/demo/mesh.svg"
grep -qF "mesh graph: $svg" <<<"$out" || fail "run 1: the demo does not say where the SVG is"
[[ -s $svg ]] || fail "run 1: $svg missing or empty"
xmllint --noout "$svg" || fail "run 1: $svg does not parse"
[[ $(xmllint --xpath 'local-name(/*)' "$svg") == svg ]] || fail "run 1: the root of $svg is not <svg>"
titles=$(xmllint --xpath '//*[local-name()="title"]/text()' "$svg" | sed 's/&#45;/-/g')
for n in node-1 node-2 node-3 n1-pod1 n3-pod2 'node-1--node-2' 'node-1--node-3' 'node-2--node-3'; do
  grep -qxF -- "$n" <<<"$titles" || fail "run 1: $svg has no node or edge titled $n"
done
grep -c 'stroke="darkgreen"' "$svg" | grep -qx 3 || fail "run 1: not three green (both sides reachable) edges"
# Up: its namespaces and processes exist (so the checks after --down mean something).
nss=$(demo_namespaces | wc -l)
((nss == 1 + 3 + 6)) || fail "run 1: $nss mdemo-* namespaces, expected 10 (underlay, 3 nodes, 6 pods)"
pids=$(demo_pids | sort -u)
(($(wc -w <<<"$pids") >= 6)) || fail "run 1: fewer than 6 processes (meshd, wireguard-go) in the demo: $pids"
# A second demo is refused while this one is up, and leaves it alone.
rc=0
second=$("$demo" --no-deps --no-build --build-dir "$build" --out "$work/second" 2>&1) || rc=$?
((rc != 0)) || fail "run 1: a second demo was not refused"
grep -q 'a demo is already up' <<<"$second" || fail "run 1: the second demo's refusal says: $second"
kill -0 "$demo_pid" || fail "run 1: the second demo ended the first"
# Down from outside.
down=$("$demo" --down 2>&1) || fail "run 1: --down failed: $down"
rc=0
wait_end || rc=$?
((rc == 0)) || fail "run 1: the demo exited $rc after --down, expected 0"
assert_clean "run 1 (after --down)" "$pids"
down=$("$demo" --down 2>&1) || fail "run 1: --down with nothing up failed: $down"
grep -q 'no demo is up' <<<"$down" || fail "run 1: --down with nothing up says: $down"

# --- 2. a failure halfway --------------------------------------------------------------
echo "== 2. a failure halfway: node-3's join refused"
rm -rf "$work/demo"
start_demo MESHD_DEMO_FAULT=bad-token
rc=0
wait_end || rc=$?
out=$(cat "$work/out")
((rc == 1)) || fail "run 2: the demo exited $rc, expected 1"
grep -q 'demo: node-3: meshd exited (status 2) before a settled pod CIDR: a member refused its join' <<<"$out" ||
  fail "run 2: no reason given"
grep -q 'join refused by 172.31.99.1:51821' <<<"$out" || fail "run 2: the tail of node-3's log is not shown"
grep -q 'up; \|demo: up' <<<"$out" && fail "run 2: the demo said it was up"
# Nothing of the run left (its processes are gone with it: none may be in
# a namespace, and no namespace is left).
assert_clean "run 2 (failure halfway)" ""
# The secret never reaches the output.
grep -qE '[a-z0-9]{6}\.[a-z0-9]{16}' <<<"$out" && fail "run 2: a token is printed"

# --- 3. up, then Ctrl-C ------------------------------------------------------------------
echo "== 3. up, then SIGINT"
rm -rf "$work/demo"
start_demo
wait_up || { wait_end || true; fail "run 3: the demo ended before it was up"; }
pids=$(demo_pids | sort -u)
kill -INT "$demo_pid"
rc=0
wait_end || rc=$?
((rc == 0)) || fail "run 3: the demo exited $rc after SIGINT, expected 0"
grep -q '^demo: down' "$work/out" || fail "run 3: the demo did not say it is down"
assert_clean "run 3 (after SIGINT)" "$pids"

echo "PASS"
