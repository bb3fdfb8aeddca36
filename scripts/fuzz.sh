#!/usr/bin/env bash
# A fuzzing campaign: builds every libFuzzer target with clang under
# ASan+UBSan in build-fuzz (-DMESHD_FUZZ=ON, only the fuzz targets), then runs
# each target, one after the other, from a fresh copy of its seeds in the
# repository, and prints per target: inputs executed, seconds, coverage (cov,
# ft), new corpus entries and any finding with the path of its reproducer.
# Exits 1 on any finding. docs/fuzzing.md says how to turn one into a
# regression input.
#
# Usage: scripts/fuzz.sh [--runs N] [SECONDS] [TARGET...]
#   SECONDS  time per target (default 60)
#   --runs N also stop a target after N inputs (whichever comes first)
#   TARGET   names as given to meshd_fuzzer() (default: every registered one)
# Env: MESHD_BUILD_LOCK  lock file held while building (default
#      /tmp/meshd-build.lock; builds on a shared machine are serialized)
#      FUZZ_BUILD_DIR    build directory (default build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

runs=-1
if [[ ${1:-} == --runs ]]; then
  runs=${2:?--runs needs a number}
  shift 2
fi
seconds=60
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
build=${FUZZ_BUILD_DIR:-build-fuzz}
lock=${MESHD_BUILD_LOCK:-/tmp/meshd-build.lock}

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found (scripts/install-deps.sh installs clang)" >&2
  exit 2
fi

echo "== configure $build (clang, MESHD_FUZZ=ON) =="
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMESHD_FUZZ=ON -DMESHD_BENCH=OFF >/dev/null

# Every target registered with meshd_fuzzer() leaves its seed list here.
manifests=$build/fuzz-targets
if [[ $# -eq 0 ]]; then
  targets=()
  for m in "$manifests"/*.seeds; do
    targets+=("$(basename "$m" .seeds)")
  done
  build_targets=(fuzzers)
else
  targets=("$@")
  build_targets=("$@")
fi
for t in "${targets[@]}"; do
  if [[ ! -f $manifests/$t.seeds ]]; then
    echo "fuzz.sh: no fuzz target \"$t\" (known: $(ls "$manifests" | sed 's/\.seeds$//' | tr '\n' ' '))" >&2
    exit 2
  fi
done

echo "== build ${build_targets[*]} =="
flock "$lock" cmake --build "$build" --target "${build_targets[@]}"

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

runs_dir=$root/$build/fuzz-runs
summary=()
findings=0
for t in "${targets[@]}"; do
  work=$runs_dir/$t
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  # A fresh copy of the repository's seeds: the run adds to the copy only.
  n=0
  while IFS= read -r seed; do
    [[ -z $seed ]] && continue
    n=$((n + 1))
    cp "$seed" "$work/corpus/seed-$n-$(basename "$seed")"
  done <"$manifests/$t.seeds"

  echo "== $t: ${seconds}s$([[ $runs -gt 0 ]] && echo ", at most $runs inputs"), $n seeds =="
  start=$(date +%s)
  set +e
  "$build/bin/$t" "$work/corpus" -max_total_time="$seconds" -runs="$runs" \
    -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
    -artifact_prefix="$work/artifacts/" >"$work/log.txt" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - start))

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$work/log.txt" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$work/log.txt" | tail -1)
  reproducers=$(find "$work/artifacts" -type f | sort)
  line="$t: ${execs:-?} inputs in ${elapsed}s, ${cov:-cov: ? ft: ?}, ${added:-?} new corpus entries"
  if [[ $rc -ne 0 || -n $reproducers ]]; then
    findings=$((findings + 1))
    line+=", FINDING (exit $rc)"
    for r in $reproducers; do line+=$'\n'"    reproducer: $r"; done
    line+=$'\n'"    log: $work/log.txt"
    grep -m3 -E 'ERROR: |runtime error: |SUMMARY: ' "$work/log.txt" | sed 's/^/    /' || true
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${seconds}s per target) =="
printf '%s\n' "${summary[@]}"
if [[ $findings -gt 0 ]]; then
  echo "$findings target(s) with findings"
  exit 1
fi
echo "no findings"
