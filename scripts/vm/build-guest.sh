#!/usr/bin/env bash
# Builds the throwaway test guest: Debian's stock kernel plus a busybox-static
# initramfs that mounts the host's / (read-only, 9p) under a tmpfs overlay.
# Idempotent: a second run with the same kernel package and the same guest
# scripts reuses the cache and takes well under a second.
#
# Usage: scripts/vm/build-guest.sh [--force]   (--force: re-resolve linux-image-amd64, rebuild)
# Env:   MESHD_VM_CACHE       cache dir (default: <repo>/build/vm-cache; never tracked)
#        MESHD_VM_KERNEL_PKG  kernel package (default: what linux-image-amd64 depends on)
# Prints the guest directory (vmlinuz, initrd.cpio, kernel-release) on stdout.
#
# Nothing is installed on the host: the .deb is fetched with `apt-get download`
# and unpacked with `dpkg -x` inside the cache.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${MESHD_VM_CACHE:-$repo/build/vm-cache}
force=0
[[ ${1:-} == --force ]] && force=1

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

# Loaded by the init at boot, in this order (their dependencies first).
boot_modules=(virtio_pci 9pnet_virtio 9p overlay wireguard veth)
# Shipped too, loaded on demand by modprobe inside the guest (netns tests;
# autofs4 for systemd; nf_tables, nft_chain_nat, nft_masq for meshd's egress
# table, which the kernel loads on first use; virtio_net for two guests on one
# qemu link, loaded by the test that has the device: udev is masked).
extra_modules=(bridge dummy tun vxlan autofs4 nf_tables nft_chain_nat nft_masq virtio_net)

for tool in apt-get dpkg depmod modprobe cpio; do
  command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
done
busybox=/bin/busybox
# The initramfs has no libc: only busybox-static's binary works there.
if [[ ! -x $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is missing or not static; install busybox-static (scripts/install-deps.sh)"
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # two builds at once (two engineers, ctest -j) must not interleave

# The stamp changes whenever the module list or the guest's own scripts
# change, so an edit to guest-init.sh is picked up without --force. The
# kernel package is resolved only when building: apt-cache alone costs seconds.
stamp=$( { echo "${boot_modules[*]} / ${extra_modules[*]}";
           cat "$here/guest-init.sh" "$0"; sha256sum "$busybox"; } | sha256sum | cut -c1-16)
if ((force == 0)) && [[ -f $cache/guest/stamp && $(<"$cache/guest/stamp") == "$stamp" ]] &&
   [[ -z ${MESHD_VM_KERNEL_PKG:-} || $MESHD_VM_KERNEL_PKG == $(<"$cache/guest/kernel-package") ]]; then
  echo "$cache/guest"
  exit 0
fi

kernel_pkg=${MESHD_VM_KERNEL_PKG:-}
if [[ -z $kernel_pkg ]]; then
  resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
  kernel_pkg=$(resolve || true)
  if [[ -z $kernel_pkg ]]; then
    # A fresh machine may have no package lists yet.
    log "no package lists; running apt-get update"
    apt-get update -qq >&2 || true
    kernel_pkg=$(resolve || true)
  fi
  [[ -n $kernel_pkg ]] || die "cannot resolve linux-image-amd64 with apt-cache"
fi

start=$SECONDS
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$cache/debs"
deb=$(ls "$cache/debs/${kernel_pkg}_"*.deb 2>/dev/null | tail -n1 || true)
if [[ -z $deb ]]; then
  log "fetching $kernel_pkg"
  # apt-get download writes to the current directory; the _apt sandbox user
  # cannot write there, hence the (harmless) "unsandboxed" warning, silenced.
  (cd "$work" && apt-get download -q "$kernel_pkg" 2>&1 | grep -v -e '^W: Download is performed unsandboxed' >&2) ||
    die "apt-get download $kernel_pkg failed"
  fetched=$(ls "$work/${kernel_pkg}_"*.deb 2>/dev/null | head -n1)
  [[ -n $fetched ]] || die "apt-get download $kernel_pkg produced no .deb"
  # Keep only the current kernel's .deb (70 MB each).
  rm -f "$cache/debs/"*.deb
  mv "$fetched" "$cache/debs/"
  deb=$cache/debs/$(basename "$fetched")
fi

log "unpacking $(basename "$deb")"
# The .deb ships no modules.dep (its postinst would run depmod): run it on the
# unpacked tree, then check every module we want resolves.
depmod_ok() {
  local kver
  kver=$(ls "$work/root/lib/modules" 2>/dev/null | head -n1)
  [[ -n $kver ]] && depmod -b "$work/root" "$kver" 2>/dev/null &&
    modprobe -d "$work/root" -S "$kver" --show-depends -a "${boot_modules[@]}" "${extra_modules[@]}" >/dev/null 2>&1
}
# Only the parts of the tree our modules and their dependencies live in (a
# tenth of the 400 MB, a third of the time); if that misses, unpack everything.
m='./lib/modules/*'
mkdir -p "$work/root"
if ! { dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" --wildcards --no-wildcards-match-slash \
         './boot/vmlinuz-*' './boot/config-*' "$m/modules.*" \
         "$m/kernel/arch" "$m/kernel/crypto" "$m/kernel/lib" "$m/kernel/fs" "$m/kernel/net" \
         "$m/kernel/drivers/virtio" "$m/kernel/drivers/char" "$m/kernel/drivers/net/*.ko" \
         "$m/kernel/drivers/net/wireguard" "$m/kernel/drivers/net/vxlan"; } 2>"$work/tar.err" ||
   ! depmod_ok; then
  log "partial unpack missed something ($(head -c 200 "$work/tar.err")); unpacking everything"
  rm -rf "$work/root"
  dpkg -x "$deb" "$work/root"
  depmod_ok || die "modules ${boot_modules[*]} ${extra_modules[*]} do not all resolve in $deb"
fi
kver=$(ls "$work/root/lib/modules" | head -n1)
[[ -n $kver && -f $work/root/boot/vmlinuz-$kver ]] || die "no kernel found in $deb"

# Initramfs tree: busybox, the modules we need (with a real modules.dep, so
# modprobe works in the guest), and our init.
init=$work/initramfs
mkdir -p "$init"/{bin,sbin,dev,proc,sys,host,rw,newroot,etc/meshd-vm} "$init/lib/modules/$kver"
cp "$busybox" "$init/bin/busybox"
mods_src=$work/root/lib/modules/$kver
: >"$init/etc/meshd-vm/modules.boot"
declare -A seen=()
while read -r verb path args; do
  [[ $verb == insmod ]] || continue
  rel=${path#"$mods_src"/}
  if [[ -z ${seen[$rel]:-} ]]; then
    seen[$rel]=1
    mkdir -p "$init/lib/modules/$kver/$(dirname "$rel")"
    cp "$path" "$init/lib/modules/$kver/$rel"
  fi
done < <(modprobe -d "$work/root" -S "$kver" --show-depends -a "${boot_modules[@]}" "${extra_modules[@]}")
# Boot list: insmod order for the boot modules only, duplicates dropped.
declare -A booted=()
while read -r verb path args; do
  [[ $verb == insmod ]] || continue
  rel=${path#"$mods_src"/}
  [[ -z ${booted[$rel]:-} ]] || continue
  booted[$rel]=1
  echo "$rel${args:+ $args}" >>"$init/etc/meshd-vm/modules.boot"
done < <(modprobe -d "$work/root" -S "$kver" --show-depends -a "${boot_modules[@]}")
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [[ -f $mods_src/$f ]] && cp "$mods_src/$f" "$init/lib/modules/$kver/"
done
depmod -b "$init" "$kver"
echo "$kver" >"$init/etc/meshd-vm/kernel-release"
# An autoloaded dummy module would otherwise add a stray dummy0 device.
mkdir -p "$init/etc/modprobe.d"
echo "options dummy numdummies=0" >"$init/etc/modprobe.d/meshd-vm.conf"
install -m 0755 "$here/guest-init.sh" "$init/init"

mkdir -p "$work/guest"
# Under emulation the bzImage's own xz decompression takes 5-15 s of every
# boot. With CONFIG_PVH qemu boots the uncompressed ELF directly: decompress
# it once here (about 1 s). Fall back to the bzImage if that is not possible.
bz=$work/root/boot/vmlinuz-$kver
xz_at=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n1 | cut -d: -f1 || true)
if grep -q '^CONFIG_PVH=y' "$work/root/boot/config-$kver" && [[ -n $xz_at ]] &&
   { tail -c +$((xz_at + 1)) "$bz" | xz -dc >"$work/guest/vmlinux" 2>/dev/null || true; } &&
   [[ $(head -c 4 "$work/guest/vmlinux" | od -An -c | tr -d ' ') == 177ELF ]]; then
  kernel_image=vmlinux
else
  rm -f "$work/guest/vmlinux"
  cp "$bz" "$work/guest/vmlinuz"
  kernel_image=vmlinuz
fi
echo "$kernel_image" >"$work/guest/kernel-image"
# Uncompressed: qemu loads it in an instant and the guest skips a slow
# (emulated) decompression.
(cd "$init" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$work/guest/initrd.cpio"
echo "$kver" >"$work/guest/kernel-release"
echo "$kernel_pkg" >"$work/guest/kernel-package"
echo "$stamp" >"$work/guest/stamp"

rm -rf "$cache/guest.old"
[[ -d $cache/guest ]] && mv "$cache/guest" "$cache/guest.old"
mv "$work/guest" "$cache/guest"
rm -rf "$cache/guest.old"
log "guest ready: kernel $kver, initramfs $(du -h "$cache/guest/initrd.cpio" | cut -f1), $((SECONDS - start)) s"
echo "$cache/guest"
