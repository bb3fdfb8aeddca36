#!/usr/bin/env bash
# vm_systemd_package: the Debian package and the systemd unit under a real
# systemd (252, PID 1) in the throwaway qemu guest, with kernel WireGuard and
# wireguard-go. Builds the .deb with CPack from BUILD_DIR (meshd, meshctl and
# meshd-cni must be built), and two of higher versions from the same build
# for the upgrades, boots the guest once and runs package-guest.sh there
# (what it proves: see that file and docs/systemd.md).
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
# Two higher versions of the same build for the upgrades (a running meshd,
# then a stopped one): cpack -D overrides the version the build configured,
# and the .deb's version and file name follow it (CPACK_DEBIAN_FILE_NAME
# DEB-DEFAULT). The shipped conffile is the same in all three, as in an
# upgrade that did not change it.
version=$(dpkg-deb -f "$deb" Version)
debs=("$deb")
for n in 1 2; do
  v="$version+vmupgrade$n"
  echo "vm_systemd_package: building the .deb of version $v (cpack)"
  (cd "$tmp" && cpack -G DEB -B "$tmp/pkg$n" --config "$build/CPackConfig.cmake" \
    -D "CPACK_PACKAGE_VERSION=$v" >"$tmp/cpack$n.log" 2>&1) ||
    { cat "$tmp/cpack$n.log" >&2; die "cpack of version $v failed"; }
  next="$tmp/pkg$n/meshd_${v}_amd64.deb"
  [[ -f $next ]] || die "cpack made no $(basename "$next")"
  [[ $(dpkg-deb -f "$next" Version) == "$v" ]] || die "$(basename "$next") says version $(dpkg-deb -f "$next" Version)"
  dpkg --compare-versions "$v" gt "$(dpkg-deb -f "${debs[-1]}" Version)" || die "$v does not sort above the previous version"
  debs+=("$next")
done
built=$(date +%s)

rc=0
"$src/scripts/vm/run.sh" --systemd --smp 2 --timeout 900 --out "$tmp/out" \
  -- bash "$here/package-guest.sh" "${debs[@]}" || rc=$?
end=$(date +%s)
echo "vm_systemd_package: cpack $((built - start)) s, guest $((end - built)) s, total $((end - start)) s"
((rc == 0)) || die "the guest run exited $rc"
grep -q '^PASS' "$tmp/out/result" 2>/dev/null || die "the guest wrote no PASS result"
echo "vm_systemd_package: PASS (in the guest: $(cut -d' ' -f2 "$tmp/out/result") s from the test unit's start)"
