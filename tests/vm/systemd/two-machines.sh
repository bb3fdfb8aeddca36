#!/usr/bin/env bash
# vm_two_machines: two qemu guests, each its own machine with systemd 252 as
# PID 1 and Debian's kernel (WireGuard module), joined by one private qemu
# link (a unix socket between the two qemu processes; nothing touches the
# host's network). Each installs the .deb built here; one founds, the other
# joins over the link with a token from `meshctl token create`; a pod on each
# (meshd-cni from meshd's conflist) reaches the other's through kernel
# WireGuard. See two-machines-guest.sh.
# Usage: two-machines.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=${1:?usage: two-machines.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: two-machines.sh SOURCE_DIR BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "vm_two_machines: FAIL: $*" >&2; exit 1; }

((EUID == 0)) || die "needs root (qemu's 9p share of / and dpkg in the guests)"
for tool in qemu-system-x86_64 cpack dpkg-deb jq; do
  command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
done
for b in meshd meshctl meshd-cni; do
  [[ -x $build/bin/$b ]] || die "$build/bin/$b is not built"
done

start=$(date +%s)
tmp=$(mktemp -d /tmp/meshd-vm-two.XXXXXX)
pids=()
cleanup() {
  # Each run.sh ends its own qemu on TERM.
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
chmod 0755 "$tmp"  # the guests read the .deb through the host's /
echo "vm_two_machines: building the .deb (cpack)"
(cd "$tmp" && cpack -G DEB -B "$tmp/pkg" --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log" >&2; die "cpack failed"; }
deb=$(find "$tmp/pkg" -maxdepth 1 -name 'meshd_*_amd64.deb' | head -n1)
[[ -f $deb ]] || die "cpack made no meshd_*_amd64.deb"
"$src/scripts/vm/build-guest.sh" >/dev/null
built=$(date +%s)

# The shared folder carries the token (secret: 0700 folder, 0600 file) and
# the guests' small handshake files.
mkdir -m 0700 "$tmp/out"
run_guest() { # run_guest ROLE LINK-OPTION
  "$src/scripts/vm/run.sh" --systemd --no-build --timeout 900 --out "$tmp/out" "$2" "$tmp/link.sock" \
    -- bash "$here/two-machines-guest.sh" "$1" "$deb" >"$tmp/guest-$1.log" 2>&1
}
run_guest a --link-listen &
pids+=($!)
for ((t = 0; t < 100; t++)); do
  [[ -S $tmp/link.sock ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.2
done
[[ -S $tmp/link.sock ]] || { cat "$tmp/guest-a.log" >&2; die "guest a's qemu made no link socket"; }
run_guest b --link-connect &
pids+=($!)
rc_a=0 rc_b=0
wait "${pids[0]}" || rc_a=$?
wait "${pids[1]}" || rc_b=$?
pids=()
end=$(date +%s)

for r in a b; do
  echo "----- guest $r"
  grep -a -e '^== \[' -e '^   ok:' -e '^FAIL' -e '^PING\|packets transmitted\|^rtt' -e 'run.sh:' "$tmp/guest-$r.log" || true
done
echo "vm_two_machines: cpack $((built - start)) s, both guests $((end - built)) s, total $((end - start)) s"
if ((rc_a != 0 || rc_b != 0)); then
  for r in a b; do echo "===== full console of guest $r"; cat "$tmp/guest-$r.log"; done >&2
  die "guest a exited $rc_a, guest b exited $rc_b"
fi
for r in a b; do
  grep -q '^PASS' "$tmp/out/result-$r" 2>/dev/null || die "guest $r wrote no PASS result"
done
echo "vm_two_machines: PASS"
