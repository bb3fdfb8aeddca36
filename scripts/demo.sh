#!/usr/bin/env bash
# The demo: a local meshd cluster of real processes, one command.
#
#   scripts/demo.sh            installs what is missing, builds meshd, meshctl and
#                              meshd-cni, brings up 3 nodes in network namespaces,
#                              shows them, and stays up until Ctrl-C
#   scripts/demo.sh --down     tears a running demo down (from another terminal)
#
# Each node is a network namespace on a bridge (the "underlay"), running meshd
# with the WireGuard backend `auto` (kernel WireGuard where the kernel has it,
# else wireguard-go). Node 1 founds the cluster; the others join it with a
# bootstrap token made by `meshctl token create`. Pods are network namespaces
# given an interface and an address by the real meshd-cni plugin, invoked as
# a container runtime invokes it, from the conflist meshd wrote. docs/demo.md
# says what is shown and how it maps to a real deployment.
#
# Everything the demo makes is recorded in its state directory (namespaces,
# PIDs) as it is made; the teardown (on exit, failure, Ctrl-C or --down)
# ends exactly those processes, by PID, and deletes exactly those namespaces.
# Nothing is made outside them: the host's interfaces, routes and sysctls
# are not touched.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: scripts/demo.sh [OPTIONS]

Brings up a local meshd cluster in network namespaces and stays up until
interrupted (Ctrl-C) or `scripts/demo.sh --down`. Needs root.

Options:
  --down             tear down a running demo, then exit
  --check            bring it up, print everything, verify every pod reaches
                     every other, tear down; exit 0 only if all was well
  --no-deps          do not install missing Debian packages
  --no-build         do not configure or build (use the binaries in the build dir)
  --build-dir DIR    the CMake build directory (default: <repo>/build)
  --out DIR          where the graph and the kept logs go (default: <build dir>/demo)
  --nodes N          number of nodes, 2..9 (default 3)
  --pods N           pods per node, 1..9 (default 2)
  -h, --help         this text

Files: the state (configs, stores, sockets, logs) is in /run/meshd-demo while
the demo is up; the mesh graph is written to <build dir>/demo/mesh.svg and the
nodes' logs are kept in <build dir>/demo/logs/ after the teardown.
EOF
}

# --- options -----------------------------------------------------------------
mode=up
out_dir=""
do_deps=1
do_build=1
build_dir="$repo/build"
nodes=3
pods=2
while (($#)); do
  case $1 in
    --down) mode=down ;;
    --check) mode=check ;;
    --no-deps) do_deps=0 ;;
    --no-build) do_build=0 ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift ;;
    --out) out_dir=${2:?--out needs a directory}; shift ;;
    --nodes) nodes=${2:?--nodes needs a number}; shift ;;
    --pods) pods=${2:?--pods needs a number}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $nodes =~ ^[2-9]$ ]] || { echo "demo: --nodes must be 2..9" >&2; exit 2; }
[[ $pods =~ ^[1-9]$ ]] || { echo "demo: --pods must be 1..9" >&2; exit 2; }
build_dir=$(realpath -m "$build_dir")
bin="$build_dir/bin"
out_dir=$(realpath -m "${out_dir:-$build_dir/demo}")

# --- names and addresses -------------------------------------------------------
# Fixed and distinct from the tests' (mc*/cn-*/cu-* names, 172.31.78.0/24 and
# 10.244.0.0/16), so a demo and the test suite never take each other's
# namespaces or addresses; one demo at a time (the state directory says which).
state=/run/meshd-demo
ns_prefix=mdemo
underlay_net=172.31.99
cluster_cidr=10.250.0.0/16
interface=meshd0
wg_port=51820
join_port=51821

say() { printf '%s\n' "$*"; }
step() { printf '== %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  die "needs root (it makes network namespaces and runs meshd): sudo $0 ${*:-}"
fi

# --- teardown ----------------------------------------------------------------
# Ends the processes recorded in $state/pids (meshd), then every process left
# in a namespace recorded in $state/netns (wireguard-go outlives meshd by
# design; pings), each by PID, then deletes those namespaces, newest first.
# Idempotent: it works from what the state directory says, so --down can
# finish the job of a demo that was killed.
pid_is() { # pid_is PID WORD: the process PID is alive and its command line holds WORD
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}
end_pid() { # end_pid PID: TERM, up to 5 s, then KILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
# give_back DIR: under sudo, the demo's output belongs to the user who ran it.
give_back() {
  if [[ -n ${SUDO_UID:-} && ${SUDO_UID} != 0 ]]; then
    chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$1" 2>/dev/null || true
  fi
}
teardown() {
  [[ -d $state ]] || return 0
  local name pid ns pids i
  if [[ -f $state/pids ]]; then
    while read -r name pid; do
      # Only if it is still the meshd we started (its config is in our state).
      if pid_is "$pid" "$state/$name/meshd.toml"; then end_pid "$pid"; fi
    done <"$state/pids"
  fi
  if [[ -f $state/netns ]]; then
    while read -r ns; do
      [[ $ns == "$ns_prefix"-* ]] || continue
      ip netns list | grep -qw -- "$ns" || continue
      for ((i = 0; i < 50; i++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] && break
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        ((i > 20)) && { kill -KILL $pids 2>/dev/null || true; }
        sleep 0.1
      done
      ip netns del "$ns" 2>/dev/null || say "demo: could not delete namespace $ns" >&2
    done < <(tac "$state/netns")
  fi
  # The logs outlive the state, for a look after the fact (in the demo's
  # --out, also when --down finishes a demo that was killed).
  local keep
  keep=$(cat "$state/out" 2>/dev/null || echo "$out_dir")
  if compgen -G "$state/node-*/meshd.log" >/dev/null; then
    rm -rf "$keep/logs"
    mkdir -p "$keep/logs"
    for f in "$state"/node-*/meshd.log; do
      cp "$f" "$keep/logs/$(basename "$(dirname "$f")").log"
    done
    give_back "$keep"
  fi
  rm -rf "$state"
}

if [[ $mode == down ]]; then
  if [[ ! -d $state ]]; then
    say "demo: no demo is up (no $state)"
    exit 0
  fi
  owner=$(cat "$state/owner" 2>/dev/null || true)
  if [[ -n $owner ]] && pid_is "$owner" demo.sh; then
    # The running demo tears itself down on TERM; wait for it to finish.
    say "demo: stopping the demo (pid $owner)"
    kill -TERM "$owner"
    for ((i = 0; i < 300; i++)); do
      kill -0 "$owner" 2>/dev/null || break
      sleep 0.1
    done
  fi
  teardown # whatever it left (or all of it, if it was killed)
  say "demo: down"
  exit 0
fi

# --- a demo already up? ---------------------------------------------------------
if [[ -d $state ]]; then
  owner=$(cat "$state/owner" 2>/dev/null || true)
  if [[ -n $owner ]] && pid_is "$owner" demo.sh; then
    die "a demo is already up (pid $owner); scripts/demo.sh --down first"
  fi
  say "demo: removing what a previous demo left in $state"
  teardown
fi

# --- dependencies and build ------------------------------------------------------
if ((do_deps)); then
  step "packages (scripts/install-deps.sh --demo)"
  "$repo/scripts/install-deps.sh" --demo
fi
if ((do_build)); then
  step "build ($build_dir)"
  # Under sudo the build is the invoking user's, as if they had run it: no
  # root-owned files in their checkout.
  as_user=()
  if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then as_user=(sudo -u "$SUDO_USER" --); fi
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    "${as_user[@]}" cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  # Only what the demo runs: the test programs are scripts/test.sh's business.
  "${as_user[@]}" cmake --build "$build_dir" --target meshd meshctl meshd-cni
fi
for b in meshd meshctl meshd-cni; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing: build first (drop --no-build)"
done
for t in ip jq dot ping; do
  command -v "$t" >/dev/null || die "$t is missing: run scripts/install-deps.sh --demo (or drop --no-deps)"
done

# --- state and the exit trap ---------------------------------------------------------
mkdir -p "$state" "$out_dir"
chmod 0700 "$state" # the join tokens are in there
echo $$ >"$state/owner"
echo "$out_dir" >"$state/out"
: >"$state/netns"
: >"$state/pids"
up=0
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0 && up == 0)); then say "demo: failed; tearing down what was made" >&2; fi
  [[ -n ${sleeper:-} ]] && kill "$sleeper" 2>/dev/null
  teardown
  ((up)) && say "demo: down"
  exit "$rc"
}
trap on_exit EXIT
# Interrupted while coming up: a failure (130/143). Once up, Ctrl-C and
# --down are the normal end (0).
trap 'if ((up)); then exit 0; else exit 130; fi' INT
trap 'if ((up)); then exit 0; else exit 143; fi' TERM

mkns() { # mkns NAME: a namespace, recorded before anything else is put in it
  ip netns add "$1"
  echo "$1" >>"$state/netns"
  ip -n "$1" link set lo up
}
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

node_name() { echo "node-$1"; }
node_dir() { echo "$state/node-$1"; }
node_ns() { echo "$ns_prefix-n$1"; }
node_sock() { echo "$state/node-$1/run/meshd.sock"; }
node_addr() { echo "$underlay_net.$1"; }
meshctl_at() { local i=$1; shift; "$bin/meshctl" --socket "$(node_sock "$i")" "$@"; }

# fail_node I REASON: the reason and the tail of node I's log, then exit 1
# (the trap tears everything down).
fail_node() {
  local i=$1
  shift
  {
    say "demo: $*"
    say "--- last lines of $(node_name "$i")'s log ($(node_dir "$i")/meshd.log; kept in $out_dir/logs/) ---"
    tail -n 25 "$(node_dir "$i")/meshd.log" 2>/dev/null || true
    say "---"
  } >&2
  exit 1
}

# --- underlay ----------------------------------------------------------------------
step "underlay: bridge in namespace $ns_prefix-ul, $underlay_net.0/24"
mkns "$ns_prefix-ul"
in_ns "$ns_prefix-ul" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$ns_prefix-ul" link add br0 type bridge
ip -n "$ns_prefix-ul" link set br0 up

# --- nodes -----------------------------------------------------------------------
write_config() { # write_config I: node I's meshd.toml (node 1 founds, the others join through it)
  local i=$1 dir
  dir=$(node_dir "$i")
  {
    printf '[node]\nname = "%s"\n' "$(node_name "$i")"
    printf '[wireguard]\ninterface = "%s"\nlisten_port = %d\nbackend = "auto"\n' "$interface" "$wg_port"
    # wireguard-go's socket in a directory of the node's own: the nodes share
    # one host's filesystem (docs/userspace-backend.md).
    printf '[userspace]\nsocket_dir = "%s/wg"\n' "$dir"
    printf '[state]\ndatabase = "%s/meshd.db"\nruntime_dir = "%s/run"\n' "$dir" "$dir"
    printf '[cluster]\ncidr = "%s"\nnode_prefix = 24\njoin_listen = "%s:%d"\n' \
      "$cluster_cidr" "$(node_addr "$i")" "$join_port"
    if ((i > 1)); then
      printf '[join]\ntarget = "%s:%d"\ntoken_file = "%s/join-token"\n' "$(node_addr 1)" "$join_port" "$dir"
    fi
    printf '[cni]\nconf_dir = "%s/net.d"\n' "$dir"
    printf '[api]\nsocket = "%s"\n' "$(node_sock "$i")"
  } >"$dir/meshd.toml"
}

make_node() { # make_node I: the namespace on the underlay, its config
  local i=$1 ns dir
  ns=$(node_ns "$i")
  dir=$(node_dir "$i")
  mkdir -p "$dir/wg" "$dir/run" "$dir/net.d"
  mkns "$ns"
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
    net.ipv4.ip_forward=1
  ip link add "$ns_prefix-n$i" netns "$ns_prefix-ul" type veth peer name eth0 netns "$ns"
  ip -n "$ns_prefix-ul" link set "$ns_prefix-n$i" master br0 up
  ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  # A default route as a real host has (the founder advertises the address
  # of this route); nothing is there, nothing leaves the underlay.
  ip -n "$ns" route add default via "$underlay_net.254" dev eth0
  write_config "$i"
}

start_node() { # start_node I: meshd in its namespace, its PID recorded
  local i=$1 pid
  # setsid: Ctrl-C reaches the script, which ends meshd itself in order.
  # ip netns exec and setsid exec in place: $! is meshd's PID.
  setsid ip netns exec "$(node_ns "$i")" "$bin/meshd" --config "$(node_dir "$i")/meshd.toml" \
    </dev/null >"$(node_dir "$i")/meshd.log" 2>&1 &
  pid=$!
  echo "$(node_name "$i") $pid" >>"$state/pids"
  eval "meshd_pid_$i=$pid"
}

status_json() { meshctl_at "$1" --json status 2>/dev/null || true; } # exit 3 = not in sync yet

# wait_until I SECONDS WHAT CMD...: polls CMD until it succeeds; fails with
# node I's log when meshd ended or the time ran out.
wait_until() {
  local i=$1 secs=$2 what=$3 t pid_var
  shift 3
  pid_var="meshd_pid_$i"
  for ((t = 0; t < secs * 5; t++)); do
    "$@" && return 0
    if ! kill -0 "${!pid_var}" 2>/dev/null; then
      local rc=0
      wait "${!pid_var}" || rc=$?
      local why=""
      ((rc == 2)) && why=": a member refused its join (a new token or name is needed)"
      fail_node "$i" "$(node_name "$i"): meshd exited (status $rc) before $what$why"
    fi
    sleep 0.2
  done
  fail_node "$i" "$(node_name "$i"): no $what within ${secs}s"
}
settled() { [[ $(status_json "$1" | jq -r '.pod_cidr_settled // false') == true ]]; }
holds_all() { # node I holds a record in effect for every node
  [[ $(meshctl_at "$1" --json nodes 2>/dev/null |
    jq '[.nodes[] | select(.in_effect and .liveness != "removed")] | length') == "$nodes" ]]
}

backend=""
for ((i = 1; i <= nodes; i++)); do
  make_node "$i"
  if ((i == 1)); then
    step "$(node_name 1): founds the cluster ($cluster_cidr) at $(node_addr 1)"
  else
    # A real token, made as an operator makes it, through node 1's API; it
    # goes to a file of mode 0600 and is never printed.
    token=$(meshctl_at 1 --json token create --uses 1 --ttl 10m \
      --description "demo $(node_name "$i")" | jq -r .token)
    [[ -n $token && $token != null ]] || fail_node 1 "meshctl token create printed no token"
    if [[ ${MESHD_DEMO_FAULT:-} == bad-token && $i == "$nodes" ]]; then
      # For the test of the failure path: the right id with a wrong secret.
      token="${token%%.*}.0000000000000000"
    fi
    (umask 077 && printf '%s\n' "$token" >"$(node_dir "$i")/join-token")
    unset token
    step "$(node_name "$i"): joins through $(node_name 1) with a one-use token, at $(node_addr "$i")"
  fi
  start_node "$i"
  wait_until "$i" 30 "a settled pod CIDR" settled "$i"
  st=$(status_json "$i")
  say "   pod CIDR $(jq -r .pod_cidr <<<"$st"), WireGuard backend $(jq -r .backend <<<"$st")" \
    "($(jq -r .backend_reason <<<"$st"))"
  [[ -z $backend ]] && backend=$(jq -r .backend <<<"$st")
done
for ((i = 1; i <= nodes; i++)); do
  wait_until "$i" 30 "record of every node" holds_all "$i"
done

# --- pods -------------------------------------------------------------------------
# As a container runtime does it: a network namespace per pod, then meshd-cni
# with CNI_COMMAND=ADD in the node's namespace, fed the chain's first plugin
# from the conflist meshd installed (plus the network's name and version).
pod_names=()
pod_ns=()
pod_ips=()
pod_node=()
for ((i = 1; i <= nodes; i++)); do
  conflist="$(node_dir "$i")/net.d/05-meshd.conflist"
  wait_until "$i" 20 "CNI conflist" test -s "$conflist"
  config=$(jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "$conflist")
  for ((p = 1; p <= pods; p++)); do
    name="n$i-pod$p"
    ns="$ns_prefix-n$i-p$p"
    mkns "$ns"
    result=$(in_ns "$(node_ns "$i")" env -i PATH="$PATH" CNI_COMMAND=ADD \
      CNI_CONTAINERID="demo-$name" CNI_NETNS="/var/run/netns/$ns" CNI_IFNAME=eth0 \
      CNI_PATH=/opt/cni/bin "$bin/meshd-cni" <<<"$config") ||
      fail_node "$i" "meshd-cni ADD for pod $name on $(node_name "$i") failed: $result"
    ip=$(jq -r '.ips[0].address' <<<"$result")
    pod_names+=("$name")
    pod_ns+=("$ns")
    pod_ips+=("${ip%/*}")
    pod_node+=("$(node_name "$i")")
  done
done
step "pods (meshd-cni ADD):"
for ((k = 0; k < ${#pod_names[@]}; k++)); do
  printf '   %-9s %-13s on %s (namespace %s)\n' "${pod_names[k]}" "${pod_ips[k]}" "${pod_node[k]}" "${pod_ns[k]}"
done

# --- reachability ---------------------------------------------------------------------
# Every pod pings every other pod: first until one answer comes (the first
# packet to a peer may wait for a WireGuard handshake), at most 15 s; then
# the measured run, 3 pings 0.2 s apart. All pairs at once.
step "pinging every pod from every pod"
probe_dir="$state/pings"
mkdir -p "$probe_dir"
probe_pids=()
for ((a = 0; a < ${#pod_names[@]}; a++)); do
  for ((b = 0; b < ${#pod_names[@]}; b++)); do
    ((a == b)) && continue
    (
      for ((t = 0; t < 15; t++)); do
        in_ns "${pod_ns[a]}" ping -n -c 1 -W 1 "${pod_ips[b]}" >/dev/null 2>&1 && break
      done
      in_ns "${pod_ns[a]}" ping -n -q -c 3 -i 0.2 -W 1 "${pod_ips[b]}" >"$probe_dir/$a-$b" 2>&1 || true
    ) &
    probe_pids+=($!)
  done
done
for pid in "${probe_pids[@]}"; do wait "$pid" || true; done

# The handshakes are fresh now: the nodes and the graph.
step "meshctl nodes (on $(node_name 1))"
meshctl_at 1 nodes

# --- the mesh graph ------------------------------------------------------------------------
# Graphviz, from every node's `meshctl --json nodes`: a box per node (name, pod
# CIDR, endpoint), an edge per pair of nodes labelled with the age of the last
# WireGuard handshake as each side sees it (green when both sides are
# reachable), and the pods hanging off their node.
for ((i = 1; i <= nodes; i++)); do meshctl_at "$i" --json nodes >"$state/nodes-$i.json"; done
{
  printf 'graph mesh {\n'
  printf '  graph [label="meshd demo: %d nodes, WireGuard full mesh (%s backend), cluster %s", labelloc=t, fontname="Helvetica", fontsize=16];\n' \
    "$nodes" "${backend//[^a-z]/}" "$cluster_cidr"
  printf '  node [fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontsize=10];\n'
  for ((i = 1; i <= nodes; i++)); do
    jq -r '.nodes[] | select(.self) |
      "  \(.name|tojson) [shape=box, style=\"rounded,bold\", label=\("\(.name)\npod CIDR \(.pod_cidr)\n\(.endpoints | join(" "))" | tojson)];"' \
      "$state/nodes-$i.json"
  done
  for ((i = 1; i <= nodes; i++)); do
    for ((j = i + 1; j <= nodes; j++)); do
      jq -rn --slurpfile a "$state/nodes-$i.json" --slurpfile b "$state/nodes-$j.json" \
        --arg an "$(node_name "$i")" --arg bn "$(node_name "$j")" '
        def peer($v; $n): ($v[0].nodes[] | select(.name == $n and (.self | not))) // null;
        def age: if . == null then "never" else "\(. | floor)s ago" end;
        peer($a; $bn) as $ab | peer($b; $an) as $ba |
        (($ab.stats.reachable // false) and ($ba.stats.reachable // false)) as $ok |
        "  \($an|tojson) -- \($bn|tojson) [color=\(if $ok then "darkgreen" else "red" end), penwidth=2, label=\(
          "handshake: \($an) \($ab.stats.last_handshake_age_seconds | age), \($bn) \($ba.stats.last_handshake_age_seconds | age)" | tojson)];"'
    done
  done
  for ((k = 0; k < ${#pod_names[@]}; k++)); do
    printf '  "%s" [shape=ellipse, style=filled, fillcolor="#eef3ff", label="%s\\n%s"];\n' \
      "${pod_names[k]}" "${pod_names[k]}" "${pod_ips[k]}"
    printf '  "%s" -- "%s" [style=dotted];\n' "${pod_node[k]}" "${pod_names[k]}"
  done
  printf '}\n'
} >"$out_dir/mesh.dot"
dot -Tsvg "$out_dir/mesh.dot" -o "$out_dir/mesh.svg"
give_back "$out_dir"
step "mesh graph: $out_dir/mesh.svg (source: $out_dir/mesh.dot)"

# --- the matrix ----------------------------------------------------------------------------
step "pod-to-pod reachability (ping -c 3 -i 0.2; ok and the average round trip in ms)"
failures=0
printf '   %-12s' "from \\ to"
last=$((${#pod_names[@]} - 1))
put_cell() { if (($1 == last)); then printf '%s' "$2"; else printf '%-12s' "$2"; fi; } # no trailing blanks
for ((b = 0; b < ${#pod_names[@]}; b++)); do put_cell "$b" "${pod_names[b]}"; done
printf '\n'
for ((a = 0; a < ${#pod_names[@]}; a++)); do
  printf '   %-12s' "${pod_names[a]}"
  for ((b = 0; b < ${#pod_names[@]}; b++)); do
    if ((a == b)); then
      cell="-"
    else
      f="$probe_dir/$a-$b"
      received=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$f")
      avg=$(sed -nE 's|^rtt [^=]*= [0-9.]+/([0-9.]+)/.*|\1|p' "$f")
      if [[ $received == 3 ]]; then
        cell="ok ${avg}"
      elif [[ -n $received && $received != 0 ]]; then
        cell="LOSS $received/3"
        failures=$((failures + 1))
      else
        cell="FAIL"
        failures=$((failures + 1))
      fi
    fi
    put_cell "$b" "$cell"
  done
  printf '\n'
done
total=$((${#pod_names[@]} * (${#pod_names[@]} - 1)))
if ((failures)); then
  say "   $failures of $total pod pairs did not answer every ping"
else
  say "   all $total pod pairs reach each other"
fi

up=1
if [[ $mode == check ]]; then
  ((failures == 0)) || { up=0; die "check: $failures pod pairs failed"; }
  say "demo: check passed; tearing down"
  exit 0
fi
say ""
say "demo: up. Try: $bin/meshctl --socket $(node_sock 1) status"
say "      ip netns exec ${pod_ns[0]} ping ${pod_ips[${#pod_ips[@]} - 1]}"
say "demo: Ctrl-C or scripts/demo.sh --down to tear down"
# Wait for a signal; `wait` returns at once when one comes (a plain sleep
# would delay the trap until it ends). Short sleeps: if the demo is killed
# with SIGKILL, its last sleep ends by itself within a second.
while :; do
  sleep 1 &
  sleeper=$!
  wait "$sleeper" || true
done
