#!/usr/bin/env bash
# tests/oversubscribed.sh - runs the given test binaries (a subset of the suites built on
# tests/weft_test.hpp) with the worker counts in WEFT_TEST_WORKERS (ctest entry
# unit_oversubscribed sets "16,64": 8 and 32 workers per CPU on a 2-vCPU machine).
# Runs every binary even after a failure and names the failed ones; exit status 1 when
# any failed, 2 on bad usage.
#
#   WEFT_TEST_WORKERS=16,64 bash tests/oversubscribed.sh BINARY [--gtest_filter=...] ...
#
# An argument starting with "--gtest" applies to the binary before it.
set -uo pipefail

[[ $# -ge 1 ]] || { echo "usage: oversubscribed.sh BINARY [--gtest_...] ..." >&2; exit 2; }
[[ -n ${WEFT_TEST_WORKERS:-} ]] || { echo "oversubscribed.sh: WEFT_TEST_WORKERS is not set" >&2; exit 2; }

failed=()
run() {
  local bin=$1; shift
  [[ -x $bin ]] || { echo "oversubscribed.sh: not an executable: $bin" >&2; exit 2; }
  echo "== $(basename "$bin") $* (WEFT_TEST_WORKERS=$WEFT_TEST_WORKERS)"
  # The counts must reach the suites (weft_test_worker_counts): a test named .../wN each.
  local listed count
  listed=$("$bin" --gtest_list_tests) || { failed+=("$(basename "$bin")"); return; }
  IFS=, read -ra counts <<< "$WEFT_TEST_WORKERS"
  for count in "${counts[@]}"; do
    if ! grep -q "/w${count}\b" <<< "$listed"; then
      echo "oversubscribed.sh: $(basename "$bin") has no test at $count workers"
      failed+=("$(basename "$bin")")
      return
    fi
  done
  "$bin" --gtest_brief=1 "$@" || failed+=("$(basename "$bin")")
}

args=("$@")
i=0
while (( i < ${#args[@]} )); do
  bin=${args[i]}; (( i++ ))
  opts=()
  while (( i < ${#args[@]} )) && [[ ${args[i]} == --gtest* ]]; do opts+=("${args[i]}"); (( i++ )); done
  run "$bin" "${opts[@]}"
done

if (( ${#failed[@]} )); then
  echo "oversubscribed.sh: failed: ${failed[*]}"
  exit 1
fi
echo "oversubscribed.sh: all passed"
