# shellcheck shell=bash
# Sourced by the guest halves of the vm systemd tests (package-guest.sh,
# two-machines-guest.sh): they run inside the qemu guest as a unit under
# systemd (scripts/vm/run.sh --systemd). Steps print their time since the
# script started, so the host's log shows where a run spends its minutes.
t0=$(date +%s.%N)
elapsed() { awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
step() { printf '== [%6ss] %s\n' "$(elapsed)" "$*"; }
ok() { printf '   ok: %s\n' "$*"; }

# fail MESSAGE: prints what the operator would look at (the unit's status and
# its journal), then ends the test with status 1.
fail() {
  printf 'FAIL: %s\n' "$*"
  echo "--- systemctl status meshd"
  systemctl status meshd --no-pager -l 2>&1 | tail -n 20 || true
  echo "--- journalctl -u meshd (last 60)"
  journalctl -u meshd --no-pager -n 60 2>&1 || true
  exit 1
}

# wait_for SECONDS WHAT CMD...: polls CMD every 0.5 s; fails naming WHAT when
# it never succeeds (a bound on a hang, not a timed assertion).
wait_for() {
  local secs=$1 what=$2 t
  shift 2
  for ((t = 0; t < secs * 2; t++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  fail "no $what within ${secs}s"
}

prop() { systemctl show -p "$2" --value "$1"; }   # prop UNIT PROPERTY
ifindex() { cat "/sys/class/net/$1/ifindex"; }
is_state() { [[ $(systemctl is-active "$1" 2>/dev/null) == "$2" ]]; }
