#!/usr/bin/env bash
# Installs dependencies, builds, runs the unit and fuzz-smoke labels under
# AddressSanitizer + UndefinedBehaviorSanitizer, then every test (all CTest labels) on the
# regular build; the last summary printed is that of the whole suite.
# A skipped test fails the run, unless tests/allowed-skips.txt names it with
# the reason its prerequisite can honestly be absent (that list is printed).
# Usage: scripts/test.sh [extra ctest arguments for the whole-suite run, e.g. -L unit]
# Env:   MESHD_SANITIZER_PASS=0 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build

# run_ctest DIR ARGS...: ctest in DIR with its output kept, then fails on any
# skip not in tests/allowed-skips.txt. Skips reach ctest as "(Skipped)" from
# GTEST_SKIP and "(Not Run)"/"(Disabled)" from missing or disabled programs.
allowed_used=()
run_ctest() {
  local dir=$1
  shift
  local log
  log=$(mktemp)
  local rc=0
  (cd "$dir" && ctest "$@") 2>&1 | tee "$log" || rc=$?
  local name bad=()
  while IFS= read -r name; do
    [[ -z $name ]] && continue
    local reason
    reason=$(awk -F'\t' -v n="$name" '$0 !~ /^#/ && $1 == n { print $2 }' "$root/tests/allowed-skips.txt")
    if [[ -n $reason ]]; then
      allowed_used+=("$name: $reason")
    else
      bad+=("$name")
    fi
  done < <(sed -nE 's/^[[:space:]]*[0-9]+ - (.+) \((Skipped|Not Run|Disabled)\)$/\1/p' "$log")
  rm -f "$log"
  if ((${#bad[@]})); then
    printf 'FAILED: %d test(s) skipped or did not run, which the test command counts as failures:\n' "${#bad[@]}"
    printf '  %s\n' "${bad[@]}"
    return 1
  fi
  return "$rc"
}

if [[ ${MESHD_SANITIZER_PASS:-1} != 0 ]]; then
  echo "== unit tests and fuzz smoke (seeds + short mutation runs) under ASan + UBSan =="
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMESHD_SANITIZE=ON \
    -DMESHD_BENCH=OFF >/dev/null
  cmake --build build-asan --target unit_tests fuzz_smoke_tests
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build-asan --output-on-failure -L 'unit|fuzz-smoke'
fi

echo "== every test =="
status=0
run_ctest build --output-on-failure --timeout 1800 "$@" || status=$?
if ((${#allowed_used[@]})); then
  echo "Allowed skips (tests/allowed-skips.txt):"
  printf '  %s\n' "${allowed_used[@]}"
fi
exit "$status"
