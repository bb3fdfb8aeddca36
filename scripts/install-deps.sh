#!/usr/bin/env bash
# Installs every Debian 12 package meshd needs to build, test and run.
# Idempotent: packages already present are left alone; safe to run repeatedly.
# Usage: scripts/install-deps.sh            (needs root; uses apt-get)
#        scripts/install-deps.sh --demo     (the subset scripts/demo.sh needs)
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev llvm        # libFuzzer fuzzers and sanitizers
  # libraries
  libmnl-dev libsodium-dev
  libboost1.81-dev libboost-json1.81-dev libboost-system1.81-dev
  libsqlitecpp-dev libsqlite3-dev sqlite3
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsystemd-dev systemd
  libcli11-dev libtomlplusplus-dev
  libssl-dev openssl                   # the API's TLS listener; tests make certificates with openssl
  libnftables-dev nftables             # egress masquerade through libnftables; nft lists meshd's table in tests
  linux-libc-dev
  # runtime
  wireguard-tools wireguard-go iproute2
  # tests: captures, pings, json checks, reference CNI plugins and real CNI clients
  tcpdump iputils-ping procps util-linux jq
  containernetworking-plugins iptables podman runc containerd   # iptables: portmap (hostPort)
  golang-go golang-github-appc-cni-dev
  prometheus                           # promtool check metrics (the API's /metrics page)
  graphviz                             # dot: a test renders `meshctl graph`; the demo draws its mesh
  libxml2-utils                        # xmllint: the demo test parses the SVG
  wrk curl                             # scripts/bench-api.sh; the API integration test
  gdb heaptrack                        # scripts/bench-cluster.sh asks meshd's heap through gdb; heaptrack split it (docs/protocol.md)
  etcd-server etcd-client              # the etcd datastore's tests start a real 3-member etcd (tests/support/etcd_cluster.h)
  # the Debian package (tests/unit/package): cpack's dependency list comes from
  # dpkg-shlibdeps, which reads the binaries `file` says are ELF; shellcheck
  # checks the maintainer scripts; systemd-analyze (systemd, above) the unit
  dpkg-dev file shellcheck
  # vm tests: a throwaway qemu guest with Debian's stock kernel
  qemu-system-x86 busybox-static kmod cpio
)

# --demo: only what scripts/demo.sh needs to build meshd, meshctl and meshd-cni
# and run its cluster (a subset of the list above), so a first look at meshd
# does not install the test suite's qemu, container runtimes, Go and etcd.
# The test libraries stay: configuring the build looks for them.
if [[ ${1:-} == --demo ]]; then
  packages=(
    build-essential cmake ninja-build pkg-config
    libmnl-dev libsodium-dev
    libboost1.81-dev libboost-json1.81-dev libboost-system1.81-dev
    libsqlitecpp-dev libsqlite3-dev
    libspdlog-dev libfmt-dev
    libgtest-dev libgmock-dev
    libsystemd-dev libcli11-dev libtomlplusplus-dev libssl-dev libnftables-dev
    linux-libc-dev
    wireguard-tools wireguard-go iproute2 iputils-ping procps util-linux jq graphviz
  )
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
