# Sourced by the runtime scripts. They run as
#   ip netns exec NODE unshare -m --propagation private sh SCRIPT WORKDIR ...
# so every mount below is private to them: the host's /run, /var/lib,
# /opt and /etc/cni stay untouched, and the runtime's fixed paths see test copies.
set -eu
W=$1
# `ip netns exec` mounted a fresh /sys without the cgroup hierarchies runc
# needs: mount the host's hierarchies again (as PID 1 sees them) in this
# private mount namespace.
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
sed -n 's/^[^ ]* [^ ]* [^ ]* [^ ]* \([^ ]*\) .* - \(cgroup2\{0,1\}\) [^ ]* \([^ ]*\)$/\1 \2 \3/p' /proc/1/mountinfo |
  while read -r path type opts; do
    mkdir -p "$path"
    o=$(echo "$opts" | sed 's/^r[wo],\{0,1\}//')
    if [ "$type" = cgroup2 ]; then mount -t cgroup2 none "$path"; else mount -t cgroup -o "$o" cgroup "$path"; fi
  done
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
mkdir -p /var/lib/cni /run/netns /opt
mount -t tmpfs tmpfs /opt
mkdir -p /opt/cni/bin
cp "$W/bin/"* /opt/cni/bin/
mount --bind "$W/netd" /etc/cni/net.d
export TMPDIR="$W/tmp"
mkdir -p "$TMPDIR"

# A busybox-static root filesystem as an image tarball (no registry needed).
make_rootfs_tar() {
  r="$W/rootfs"
  mkdir -p "$r/bin" "$r/proc" "$r/sys" "$r/dev" "$r/etc" "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in sh ip cat ls sleep ping echo; do ln -sf busybox "$r/bin/$a"; done
  tar -C "$r" -cf "$W/rootfs.tar" .
}

# Runtimes make cgroups in the host's (shared) hierarchies: give them a
# test-specific parent and remove it, empty, when the script ends.
CG=meshd-cni-test-$$
remove_cgroups() {
  for d in /sys/fs/cgroup/*/"$CG"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}
