#!/usr/bin/env bash
# Runs the vm test suite in ONE boot of the throwaway guest: the guest smoke
# check (tests/vm/smoke/smoke.sh), then every executable BUILD_DIR/bin/vm_*
# (GoogleTest programs; each writes BUILD_DIR/vm-results/NAME.xml). Prints a
# per-program summary and exits non-zero if anything failed or did not run.
#
# Usage: scripts/vm/run-vm-suite.sh BUILD_DIR
# Env:   MESHD_VM_SUITE_TIMEOUT    whole guest, seconds (default 1500)
#        MESHD_VM_PROGRAM_TIMEOUT  each program, seconds (default 900)
#        MESHD_VM_SMP              guest CPUs (default 2: multi-threaded TCG uses both host cores)
#        MESHD_VM_CACHE            see build-guest.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[[ $# -eq 1 && -d $1 ]] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
results=$build/vm-results
rm -rf "$results"
mkdir -p "$results"

programs=()
for p in "$build"/bin/vm_*; do
  [[ -f $p && -x $p ]] && programs+=("$p")
done
if ((${#programs[@]} == 0)); then
  echo "run-vm-suite: no vm_* programs in $build/bin; running the guest smoke check only"
else
  echo "run-vm-suite: ${#programs[@]} program(s): $(for p in "${programs[@]}"; do basename "$p"; done | tr '\n' ' ')"
fi

"$here/build-guest.sh" >/dev/null

set +e
"$here/run.sh" --no-build --smp "${MESHD_VM_SMP:-2}" --timeout "${MESHD_VM_SUITE_TIMEOUT:-1500}" --out "$results" \
  --env "MESHD_VM_PROGRAM_TIMEOUT=${MESHD_VM_PROGRAM_TIMEOUT:-900}" \
  -- "$here/suite-guest.sh" "$repo/tests/vm/smoke/smoke.sh" "${programs[@]}"
rc=$?
set -e

# The summary comes from the files in the share, not the console: a program
# that never reported (guest died, timeout) shows as "not run".
declare -A status=() secs=()
if [[ -f $results/summary.tsv ]]; then
  while IFS=$'\t' read -r name code s; do status[$name]=$code; secs[$name]=$s; done <"$results/summary.tsv"
fi
echo
echo "vm suite summary (results in $results):"
passed=0 failed=0
for name in smoke $(for p in "${programs[@]}"; do basename "$p"; done); do
  code=${status[$name]:-}
  detail=""
  if [[ -f $results/$name.xml ]]; then
    # <testsuites tests="N" failures="F" disabled="D" errors="E" ...>
    head=$(grep -m1 -o '<testsuites [^>]*>' "$results/$name.xml" || true)
    attr() { grep -o " $1=\"[0-9]*\"" <<<"$head" | grep -o '[0-9]*' || echo "?"; }
    # A skip inside the guest is a failure too, as under the host's ctest.
    skipped=$(grep -c '<skipped' "$results/$name.xml" || true)
    detail=" ($(attr tests) tests, $(attr failures) failed, $(attr disabled) disabled, $skipped skipped)"
    if [[ $code == 0 && $skipped != 0 ]]; then code=skipped; fi
  fi
  if [[ -z $code ]]; then
    printf '  %-28s NOT RUN\n' "$name"
    failed=$((failed + 1))
  elif [[ $code == 0 ]]; then
    printf '  %-28s ok    %4ss%s\n' "$name" "${secs[$name]}" "$detail"
    passed=$((passed + 1))
  else
    printf '  %-28s FAIL  %4ss exit %s%s\n' "$name" "${secs[$name]}" "$code" "$detail"
    failed=$((failed + 1))
  fi
done
echo "vm suite: $passed passed, $failed failed"
if ((failed > 0 || rc != 0)); then
  ((failed > 0)) || echo "run-vm-suite: the guest run failed (exit $rc)" >&2
  exit 1
fi
