#!/usr/bin/env bash
# scripts/test.sh - configure, build and test each preset; unit and stress tests.
#
#   bash scripts/test.sh                        # presets: release asan tsan tsan-checked shared
#   WEFT_PRESETS="debug" bash scripts/test.sh
#   WEFT_TEST_ARGS="-R run_queue -LE stress" bash scripts/test.sh   # extra ctest arguments
#
# Ends with one line "N passed, N failed" (summed over presets; a preset whose configure
# or build fails, or that has no tests, counts as one failure). Exit status 0 only if
# every build succeeded and every test passed.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(weft_repo_root)"
weft_ensure_packages

read -r -a presets <<<"${WEFT_PRESETS:-release asan tsan tsan-checked shared}"
read -r -a test_args <<<"${WEFT_TEST_ARGS:-}"
total_passed=0
total_failed=0
log_dir=build/test-logs
mkdir -p "$log_dir"

for preset in "${presets[@]}"; do
  echo "=== weft: preset '$preset' ==="
  if ! cmake --preset "$preset" || ! cmake --build --preset "$preset" -j2; then
    echo "=== weft: preset '$preset': configure or build FAILED (counted as 1 failure) ==="
    total_failed=$((total_failed + 1))
    continue
  fi

  log="$log_dir/$preset.log"
  rc=0
  ctest --preset "$preset" --timeout 600 "${test_args[@]}" 2>&1 | tee "$log" || rc=$?

  # ctest ends with "95% tests passed, 1 tests failed out of 20".
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)
  if [[ -z $summary ]]; then
    echo "=== weft: preset '$preset': no ctest summary (no tests, or ctest crashed; rc=$rc) (counted as 1 failure) ==="
    total_failed=$((total_failed + 1))
    continue
  fi
  failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")
  total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$summary")
  passed=$((total - failed))
  if ((failed == 0 && rc != 0)); then
    echo "=== weft: preset '$preset': ctest exited with $rc (counted as 1 failure) ==="
    failed=1
  fi
  echo "=== weft: preset '$preset': $passed passed, $failed failed ==="
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
done

echo "$total_passed passed, $total_failed failed"
((total_failed == 0))
