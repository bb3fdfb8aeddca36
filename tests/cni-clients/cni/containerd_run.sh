# containerd 1.6 with private root, state and socket; `ctr run --cni` uses the
# fixed /etc/cni/net.d and /opt/cni/bin, which common.sh replaced by test
# copies in this private mount namespace. Image: podman save as OCI archive.
. "$(dirname "$0")/common.sh"
cat > "$W/storage.conf" <<CONF
[storage]
driver = "vfs"
runroot = "$W/storage-run"
graphroot = "$W/storage"
CONF
cat > "$W/containerd.toml" <<CONF
version = 2
root = "$W/containerd-root"
state = "$W/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd-ttrpc.sock"
CONF
export CONTAINERS_STORAGE_CONF="$W/storage.conf"
make_rootfs_tar
podman --cgroup-manager cgroupfs --events-backend file import -q "$W/rootfs.tar" localhost/meshd-busybox:test >/dev/null
podman --cgroup-manager cgroupfs --events-backend file save -q --format oci-archive -o "$W/image.tar" localhost/meshd-busybox:test
containerd --config "$W/containerd.toml" >"$W/containerd.log" 2>&1 &
cpid=$!
trap 'kill $cpid 2>/dev/null; wait $cpid 2>/dev/null || true; remove_cgroups' EXIT
i=0
while [ ! -S "$W/containerd.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
C="ctr --address $W/containerd.sock"
$C images import --no-unpack=false "$W/image.tar" >/dev/null 2>&1 || $C images import "$W/image.tar" >/dev/null
$C run --rm --cgroup /$CG/meshd-ctr --cni localhost/meshd-busybox:test meshd-ctr sh -c 'ip -4 addr show eth0; ip -4 route; ip link show eth0'
