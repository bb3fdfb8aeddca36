#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the meshd test guest (built into the initramfs by build-guest.sh).
#
# Mounts the host's / (9p, read-only) under a tmpfs overlay, so every host
# binary and library runs unchanged and every write stays in guest memory; then
# either chroots into it and runs the command that run.sh left in the control
# share, or (systemd mode) hands the overlay to the host's systemd as PID 1.
# The command's exit code comes back as a marker line on the serial console.
/bin/busybox mkdir -p /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "MESHD-VM-FAIL: $*"
  sync
  reboot -f
  sleep 5
}

# meshd.debug on the kernel command line: timestamps of each boot step.
case " $(cat /proc/cmdline) " in
  *" meshd.debug "*) mark() { echo "meshd-vm-init: $(cut -d' ' -f1 /proc/uptime) $*"; } ;;
  *) mark() { :; } ;;
esac
mark start
kver=$(cat /etc/meshd-vm/kernel-release)
while read -r mod args; do
  # shellcheck disable=SC2086  # module parameters are separate words
  insmod "/lib/modules/$kver/$mod" $args || fail "insmod $mod"
done </etc/meshd-vm/modules.boot
mark modules loaded

# msize: 9p's default (8 KiB) makes every binary load crawl; cache=loose lets
# the guest's page cache serve the read-only root.
p9="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /ctl
mount -t 9p -o "$p9,cache=none" meshd_ctl /ctl || fail "mount control share"
mount -t 9p -o "$p9,ro,cache=loose" meshd_root /host || fail "mount host root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
  fail "mount overlay"

mark root mounted
mode=$(cat /ctl/mode)
nonce=$(cat /ctl/nonce)
root=/newroot

mkdir -p $root/mnt/meshd-vm $root/mnt/out
mount --move /ctl $root/mnt/meshd-vm
mount -t 9p -o "$p9,cache=none" meshd_out $root/mnt/out || fail "mount output share"

# The host has no modules for this kernel: give the guest's modprobe (the
# host's kmod, run inside the overlay) this kernel's modules and modules.dep.
rm -rf "$root/lib/modules/$kver"
mkdir -p "$root/lib/modules/$kver"
if [ "$mode" = systemd ]; then
  cp -a "/lib/modules/$kver/." "$root/lib/modules/$kver/"  # switch_root empties the initramfs
else
  mount --bind "/lib/modules/$kver" "$root/lib/modules/$kver"
fi

mark modules copied
hostname meshd-vm
ip link set lo up

if [ "$mode" = systemd ]; then
  etc=$root/etc/systemd/system
  # Host-enabled units (podman, containerd, timers, gettys) have no business here.
  rm -rf "$etc"/*.wants "$etc"/*.requires
  ln -sf /lib/systemd/system/multi-user.target "$etc/default.target"
  # Units that hang, crawl over 9p, or need hardware the guest lacks.
  for u in getty.target getty@.service serial-getty@.service console-getty.service \
    autovt@.service systemd-firstboot.service systemd-remount-fs.service \
    systemd-networkd-wait-online.service NetworkManager-wait-online.service \
    systemd-timesyncd.service timers.target systemd-tmpfiles-clean.timer \
    systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount systemd-sysusers.service \
    ldconfig.service systemd-hwdb-update.service systemd-journal-catalog-update.service \
    systemd-update-done.service systemd-machine-id-commit.service systemd-repart.service \
    systemd-pcrphase.service systemd-pcrphase-sysinit.service systemd-pstore.service \
    e2scrub_reap.service remote-fs.target systemd-logind.service \
    systemd-user-sessions.service systemd-update-utmp.service \
    systemd-update-utmp-runlevel.service systemd-random-seed.service; do
    ln -sf /dev/null "$etc/$u"
  done
  # Generators run before any unit loads and each reads its inputs over 9p;
  # none applies to this guest (empty fstab, no disks, no gettys, no sysv).
  mkdir -p $root/etc/systemd/system-generators
  for g in $root/lib/systemd/system-generators/*; do
    case ${g##*/} in systemd-debug-generator) continue ;; esac
    ln -sf /dev/null "$root/etc/systemd/system-generators/${g##*/}"
  done
  # Without it systemd believes it runs in a container (docker host).
  rm -f $root/.dockerenv
  # Debian's tmp.conf has `D /tmp`: it would wipe the host's /tmp in the
  # overlay, one 9p round trip per file.
  mkdir -p $root/etc/tmpfiles.d
  : >$root/etc/tmpfiles.d/tmp.conf
  for u in /newroot/mnt/meshd-vm/units/*; do
    # rm first: a mask symlink of the same name would make cp write to /dev/null.
    [ -f "$u" ] && rm -f "$etc/${u##*/}" && cp "$u" "$etc/"
  done
  mkdir -p "$etc/multi-user.target.wants"
  cat >"$etc/meshd-vm-test.service" <<EOF
[Unit]
Description=meshd VM test command
After=multi-user.target

[Service]
Type=exec
ExecStart=/bin/bash /mnt/meshd-vm/cmd.sh
ExecStopPost=/bin/sh /mnt/meshd-vm/stop-post.sh $nonce
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/console
EOF
  ln -sf ../meshd-vm-test.service "$etc/multi-user.target.wants/meshd-vm-test.service"
  cat >/newroot/mnt/meshd-vm/stop-post.sh <<'EOF'
# ExecStopPost of the test unit: report the exit code, then end the guest (a reboot: qemu runs with -no-reboot).
rc=$EXIT_STATUS
case $rc in ''|*[!0-9]*) rc=1 ;; esac
[ "$SERVICE_RESULT" != success ] && [ "$rc" = 0 ] && rc=1
echo "$rc" >/mnt/meshd-vm/rc
sync
echo "meshd-vm: test unit result=$SERVICE_RESULT status=$EXIT_STATUS" >/dev/console
echo "MESHD-VM-EXIT $1 $rc" >/dev/console
# The guest is thrown away and results are already on the host (the shares
# are uncached): skip the orderly stop of every unit, which takes 10 s here.
systemctl --force --force reboot
EOF
  for d in proc sys dev; do
    mkdir -p $root/$d
    mount --move /$d $root/$d
  done
  # shellcheck disable=SC2093  # the fail below only runs if exec itself fails
  exec switch_root $root /lib/systemd/systemd --log-target=console --log-level=notice
  fail "switch_root to systemd"
fi

mount -t proc proc $root/proc
mount -t sysfs sysfs $root/sys
mount -t devtmpfs devtmpfs $root/dev
mkdir -p $root/dev/pts $root/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $root/dev/pts
mount -t tmpfs tmpfs $root/dev/shm
mount -t tmpfs -o mode=0755 tmpfs $root/run
mount -t cgroup2 cgroup2 $root/sys/fs/cgroup 2>/dev/null
# devtmpfs lacks these; bash's <(...) needs /dev/fd.
ln -sf /proc/self/fd $root/dev/fd
ln -sf /proc/self/fd/0 $root/dev/stdin
ln -sf /proc/self/fd/1 $root/dev/stdout
ln -sf /proc/self/fd/2 $root/dev/stderr
# Opening it loads tun on demand (what kmod-static-nodes does on a real boot):
# wireguard-go and `ip tuntap` need it.
mkdir -p $root/dev/net
[ -e $root/dev/net/tun ] || mknod -m 0666 $root/dev/net/tun c 10 200
# Plain LF line ends on the host's side of the console.
stty -onlcr </dev/console

mark running command
chroot $root /bin/bash /mnt/meshd-vm/cmd.sh </dev/null
rc=$?
echo "$rc" >$root/mnt/meshd-vm/rc
sync
echo "MESHD-VM-EXIT $nonce $rc"
reboot -f
sleep 5
