# podman 4.3 with the CNI backend, private containers.conf/storage.conf:
# runs a container on the meshd network and prints what it sees.
. "$(dirname "$0")/common.sh"
cat > "$W/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024","nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$W/events.log"
runtime = "runc"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$W/bin"]
network_config_dir = "$W/netd"
CONF
cat > "$W/storage.conf" <<CONF
[storage]
driver = "vfs"
runroot = "$W/storage-run"
graphroot = "$W/storage"
CONF
export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf"
make_rootfs_tar
podman import -q "$W/rootfs.tar" localhost/meshd-busybox:test >/dev/null
trap remove_cgroups EXIT
podman run --rm --cgroup-parent=/$CG --network meshd localhost/meshd-busybox:test sh -c 'ip -4 addr show eth0; ip -4 route; ip link show eth0'
