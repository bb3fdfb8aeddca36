#!/usr/bin/env bash
# vm_systemd_package: the Debian package and the systemd unit under a real
# systemd (252, PID 1) in the throwaway qemu guest, with kernel WireGuard and
# wireguard-go. Builds the .deb with CPack from BUILD_DIR (meshd, meshctl and
# meshd-cni must be built), boots the guest once and runs package-guest.sh
# there (what it proves: see that file and docs/systemd.md).
# Usage: package.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=${1:?usage: package.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: package.sh SOURCE_DIR BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "vm_systemd_package: FAIL: $*" >&2; exit 1; }

# Missing prerequisites fail the test (never a skip).
((EUID == 0)) || die "needs root (qemu's 9p share of / and dpkg in the guest)"
for tool in qemu-system-x86_64 cpack dpkg-deb jq; do
  command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
done
for b in meshd meshctl meshd-cni; do
  [[ -x $build/bin/$b ]] || die "$build/bin/$b is not built"
done

start=$(date +%s)
tmp=$(mktemp -d /tmp/meshd-vm-package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"  # the guest reads the .deb through the host's /
echo "vm_systemd_package: building the .deb (cpack)"
(cd "$tmp" && cpack -G DEB -B "$tmp/pkg" --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log" >&2; die "cpack failed"; }
deb=$(find "$tmp/pkg" -maxdepth 1 -name 'meshd_*_amd64.deb' | head -n1)
[[ -f $deb ]] || die "cpack made no meshd_*_amd64.deb"
built=$(date +%s)

rc=0
"$src/scripts/vm/run.sh" --systemd --smp 2 --timeout 900 --out "$tmp/out" \
  -- bash "$here/package-guest.sh" "$deb" || rc=$?
end=$(date +%s)
echo "vm_systemd_package: cpack $((built - start)) s, guest $((end - built)) s, total $((end - start)) s"
((rc == 0)) || die "the guest run exited $rc"
grep -q '^PASS' "$tmp/out/result" 2>/dev/null || die "the guest wrote no PASS result"
echo "vm_systemd_package: PASS (in the guest: $(cut -d' ' -f2 "$tmp/out/result") s from the test unit's start)"
