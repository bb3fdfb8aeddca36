#!/usr/bin/env bash
# Proves run.sh --systemd on the host: the host's systemd boots as PID 1 in the
# guest, a unit passed with --unit can be enabled and reaches active, the
# command's exit code comes back (0 when it succeeds, non-zero when it fails).
# Two boots of roughly a minute each under emulation: opt-in from CTest
# (-DMESHD_VM_SYSTEMD_TESTS=ON) or run by hand.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../../.." && pwd)
run=$repo/scripts/vm/run.sh
tmp=$(mktemp -d /tmp/meshd-vm-systemd-smoke.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A notify-less long-running unit: what a later daemon test will do with meshd.
cat >"$tmp/meshd-vm-sleeper.service" <<'EOF'
[Unit]
Description=meshd vm smoke: a long-running service
[Service]
Type=exec
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
EOF

cat >"$tmp/check.sh" <<'EOF'
set -eu
echo "pid 1 is $(cat /proc/1/comm)"
test "$(cat /proc/1/comm)" = systemd
systemctl is-active multi-user.target
systemctl enable --now meshd-vm-sleeper.service
systemctl is-active meshd-vm-sleeper.service
systemctl show -p MainPID --value meshd-vm-sleeper.service
echo "systemd in the guest: ok" >"$MESHD_VM_OUT/result"
EOF

echo "== systemd-smoke: a unit that succeeds"
"$run" --systemd --timeout 300 --out "$tmp/out" --unit "$tmp/meshd-vm-sleeper.service" \
  -- bash "$tmp/check.sh"
grep -q 'systemd in the guest: ok' "$tmp/out/result"

echo "== systemd-smoke: a unit that fails must give a non-zero exit"
set +e
"$run" --systemd --timeout 300 --no-build -- 'echo failing on purpose; exit 7'
rc=$?
set -e
if ((rc != 7)); then
  echo "systemd-smoke: expected exit 7 from the failing unit, got $rc" >&2
  exit 1
fi
echo "systemd-smoke: both boots behaved"
