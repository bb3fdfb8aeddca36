#!/usr/bin/env bash
# Runs inside the test guest (started by run-vm-suite.sh): the smoke check,
# then every program given, each with its GoogleTest XML written to the
# output share. Appends "name<TAB>exit-code<TAB>seconds" to summary.tsv there.
# Usage: suite-guest.sh SMOKE_SCRIPT [PROGRAM...]
set -uo pipefail

out=${MESHD_VM_OUT:?run me through scripts/vm/run.sh}
per_program=${MESHD_VM_PROGRAM_TIMEOUT:-300}
smoke=$1
shift
summary=$out/summary.tsv
: >"$summary"
failed=0

run_one() { # name command...
  local name=$1 start rc
  shift
  echo "=== vm-suite: $name"
  start=$(date +%s)
  # One hung program must not take the others' time: timeout each.
  timeout -k 10 "$per_program" "$@"
  rc=$?
  ((rc == 124)) && echo "=== vm-suite: $name timed out after ${per_program}s"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - start))" >>"$summary"
  sync
  ((rc == 0)) || failed=1
  echo "=== vm-suite: $name exit $rc"
}

run_one smoke bash "$smoke"
for prog in "$@"; do
  name=$(basename "$prog")
  run_one "$name" "$prog" --gtest_color=no --gtest_output="xml:$out/$name.xml"
done
exit $failed
