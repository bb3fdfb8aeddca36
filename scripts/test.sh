#!/usr/bin/env bash
# Installs dependencies, builds, runs the unit label under AddressSanitizer +
# UndefinedBehaviorSanitizer, then every test (all CTest labels) on the
# regular build; the last summary printed is that of the whole suite.
# Usage: scripts/test.sh [extra ctest arguments for the whole-suite run, e.g. -L unit]
# Env:   MESHD_SANITIZER_PASS=0 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build

if [[ ${MESHD_SANITIZER_PASS:-1} != 0 ]]; then
  echo "== unit tests under ASan + UBSan =="
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMESHD_SANITIZE=ON \
    -DMESHD_BENCH=OFF >/dev/null
  cmake --build build-asan --target unit_tests
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -L unit)
fi

echo "== every test =="
cd build
ctest --output-on-failure --timeout 1800 "$@"
