#!/usr/bin/env bash
# Runs one command as root in a throwaway qemu guest with Debian's stock kernel
# (real kernel WireGuard), then exits with the command's exit code.
#
# Usage: scripts/vm/run.sh [options] -- COMMAND...
#   COMMAND        one argument: a shell command line (run with bash -c), e.g.
#                  'ip link add wg0 type wireguard && wg show'; several
#                  arguments: a program and its arguments, run as they are.
#   --timeout S    wall-clock limit for the whole guest (default 600)
#   --mem M        guest memory in MiB (default 512)
#   --smp N        guest CPUs (default 1)
#   --out DIR      host dir shared writable at /mnt/out ($MESHD_VM_OUT) and kept;
#                  default: a temp dir, removed on exit
#   --env NAME=VAL set an environment variable for COMMAND (repeatable)
#   --systemd      boot the host's systemd as PID 1 and run COMMAND as the unit
#                  meshd-vm-test.service once multi-user.target is reached
#   --unit FILE    (with --systemd) copy FILE into /etc/systemd/system (repeatable)
#   --no-build     skip scripts/vm/build-guest.sh (use the cached guest as is)
#   --link-listen SOCK | --link-connect SOCK
#                  a virtio-net NIC on a private point-to-point link to another
#                  guest: one guest listens on the unix socket SOCK (start it
#                  first), the other connects; nothing reaches the host's
#                  network. The guest loads virtio_net itself (modprobe) and
#                  sees eth0.
#   --mac MAC      the NIC's MAC (default 52:54:00:4d:00:01 listening, :02 connecting)
#
# Inside the guest: the host's / read-only with a tmpfs overlay (writes are
# thrown away), the caller's working directory as the current directory, only
# lo as network device, PATH set, WG_COLOR_MODE=never, MESHD_IN_VM=1.
# Exit codes: COMMAND's own; 124 on timeout; 125 when the guest failed to boot,
# panicked or never reported (a message on stderr says which).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
timeout_s=600 mem=512 smp=1 out_dir="" systemd=0 build=1
link_mode="" link_sock="" mac=""
envs=() units=()
usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --systemd) systemd=1; shift ;;
    --unit) units+=("$2"); shift 2 ;;
    --no-build) build=0; shift ;;
    --link-listen) link_mode=listen; link_sock=$2; shift 2 ;;
    --link-connect) link_mode=connect; link_sock=$2; shift 2 ;;
    --mac) mac=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
done
(($#)) || { echo "run.sh: no COMMAND given" >&2; usage; }
((${#units[@]} == 0 || systemd)) || { echo "run.sh: --unit needs --systemd" >&2; exit 2; }

command -v qemu-system-x86_64 >/dev/null ||
  { echo "run.sh: qemu-system-x86_64 not found; run scripts/install-deps.sh" >&2; exit 125; }
if ((build)); then
  guest=$("$here/build-guest.sh")
else
  guest=${MESHD_VM_CACHE:-$(cd "$here/../.." && pwd)/build/vm-cache}/guest
fi
kernel=$guest/$(cat "$guest/kernel-image" 2>/dev/null || true)
[[ -f $kernel && -f $guest/initrd.cpio ]] || { echo "run.sh: no guest in $guest; run scripts/vm/build-guest.sh" >&2; exit 125; }

# A run killed with SIGKILL (ctest timeout) cannot clean up after itself:
# remove such leftovers, recognised by the owner PID they record.
for d in /tmp/meshd-vm.*; do
  [[ -f $d/owner ]] || continue
  kill -0 "$(<"$d/owner")" 2>/dev/null || rm -rf "$d"
done
tmp=$(mktemp -d /tmp/meshd-vm.XXXXXX)
echo $$ >"$tmp/owner"
qpid=""
cleanup() {
  # qpid is timeout(1)'s PID: it passes the signal on to qemu.
  if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
    kill -TERM "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ctl=$tmp/ctl
mkdir -p "$ctl/units"
if [[ -z $out_dir ]]; then
  out_dir=$tmp/out
fi
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
nonce=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$nonce" >"$ctl/nonce"
((systemd)) && echo systemd >"$ctl/mode" || echo chroot >"$ctl/mode"
for u in "${units[@]}"; do cp "$u" "$ctl/units/"; done

# The command travels in a file: the kernel command line holds 2048 bytes.
{
  echo '# Written by scripts/vm/run.sh; runs as root inside the guest.'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo 'export HOME=/root LANG=C.UTF-8 TERM=dumb WG_COLOR_MODE=never MESHD_IN_VM=1 MESHD_VM_OUT=/mnt/out'
  for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
  printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
  if (($# == 1)); then
    printf 'exec /bin/bash -c %q\n' "$1"
  else
    printf 'exec'; printf ' %q' "$@"; echo
  fi
} >"$ctl/cmd.sh"

log=$tmp/console.log
# tcg: /dev/kvm here only runs kernels built for its hypervisor (see
# docs/testing-vm.md). -no-reboot + panic=-1 turn a guest panic into a quick
# qemu exit; oops=panic makes a kernel oops a failed run rather than a hang.
# pci=noacpi skips ACPI interrupt-link probing (seconds under emulation) yet
# keeps the ACPI HPET that calibrates the TSC (acpi=off leaves the guest on a
# jiffies clock that runs slow under load). The guest ends with a reboot,
# which -no-reboot turns into qemu's exit. mitigations=off:
# page-table switches on every syscall are costly under emulation.
# cryptomgr.notests: the crypto self-tests run at every module load and took
# most of the 2-5 s of insmod under emulation (not what we test here).
cmdline="console=ttyS0 panic=-1 oops=panic quiet loglevel=4 pci=noacpi mitigations=off cryptomgr.notests rdinit=/init"
((systemd)) && cmdline+=" systemd.show_status=error"
cmdline+=${MESHD_VM_APPEND:+ $MESHD_VM_APPEND}
qemu=(qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp "$smp"
  -nodefaults -display none -no-reboot -monitor none
  -chardev "stdio,id=con,signal=off,logfile=$log" -serial chardev:con
  -kernel "$kernel" -initrd "$guest/initrd.cpio" -append "$cmdline"
  -virtfs "local,path=/,mount_tag=meshd_root,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$ctl,mount_tag=meshd_ctl,security_model=none"
  -virtfs "local,path=$out_dir,mount_tag=meshd_out,security_model=none")
if [[ -n $link_mode ]]; then
  # qemu 7.2's stream netdev: a point-to-point Ethernet link over a unix
  # socket between two qemu processes (the listener must exist first; 7.2
  # has no reconnect).
  [[ $link_mode == listen ]] && server=on || server=off
  [[ -n $mac ]] || { [[ $link_mode == listen ]] && mac=52:54:00:4d:00:01 || mac=52:54:00:4d:00:02; }
  qemu+=(-netdev "stream,id=link0,server=$server,addr.type=unix,addr.path=$link_sock"
    -device "virtio-net-pci,netdev=link0,mac=$mac,romfile=")  # no PXE ROM: the kernel is given
fi

start=$(date +%s.%N)
# --foreground keeps qemu in our process group, so whoever kills that group
# (ctest on its own timeout) ends qemu too.
timeout --foreground -k 10 "$timeout_s" "${qemu[@]}" </dev/null &
qpid=$!
set +e
wait "$qpid"
qrc=$?
set -e
qpid=""
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

# The guest's last line (the kernel's "reboot:") may lack its newline.
[[ -s $log && $(tail -c 1 "$log" | od -An -c | tr -d ' ') != '\n' ]] && echo
marker=$(grep -a -o "MESHD-VM-EXIT $nonce [0-9]*" "$log" 2>/dev/null | tail -n1 || true)
if [[ -n $marker ]]; then
  rc=${marker##* }
  echo "run.sh: guest finished in ${elapsed}s, command exit code $rc" >&2
  exit "$rc"
fi
if ((qrc == 124 || qrc == 137)); then
  echo "run.sh: error: guest timed out after ${timeout_s}s without reporting (raise --timeout?)" >&2
  exit 124
fi
if reason=$(grep -a -o 'MESHD-VM-FAIL: .*' "$log" | tr -d '\r' | head -n1) && [[ -n $reason ]]; then
  echo "run.sh: error: guest init failed: ${reason#MESHD-VM-FAIL: }" >&2
elif grep -a -q 'Kernel panic' "$log"; then
  echo "run.sh: error: guest kernel panicked: $(grep -a 'Kernel panic' "$log" | tr -d '\r' | head -n1)" >&2
else
  echo "run.sh: error: guest stopped (qemu exit $qrc) after ${elapsed}s without reporting an exit code" >&2
fi
exit 125
