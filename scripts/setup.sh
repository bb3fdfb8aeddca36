#!/usr/bin/env bash
# Installs dependencies and builds meshd, meshctl and meshd-cni into build/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
echo "setup: binaries are in $(pwd)/build/bin"
