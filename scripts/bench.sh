#!/usr/bin/env bash
# scripts/bench.sh - build the release preset and run the benchmark tour.
#
#   bash scripts/bench.sh [weft_tour arguments...]
# Benchmark workloads cited here (W1, W4, W6, W7, W8, W10): docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(weft_repo_root)"
weft_ensure_packages

cmake --preset release
cmake --build --preset release -j2

tour=build/release/bench/weft_tour
if [[ ! -x $tour ]]; then
  echo "weft: error: $tour was not built (does bench/CMakeLists.txt define the weft_tour target?)" >&2
  exit 1
fi
# The VM's memory phase (bench/phase_probe.cpp): memory-bound figures (W1, W8) follow it.
probe=build/release/bench/weft_phase_probe
"$probe" start
"$tour" "$@"

# Sync primitives (W4, W6, W10, select fan-in) and I/O (W8 sleep, W7
# echo against a raw epoll server, server on CPU 0 and load generator on CPU 1). Skipped
# with WEFT_BENCH_TOUR_ONLY=1.
if [[ ${WEFT_BENCH_TOUR_ONLY:-0} != 1 ]]; then
  echo "=== sync primitives ==="
  build/release/bench/sync/weft_sync_bench
  echo "=== W8 sleep ==="
  "$probe" before-W8
  build/release/bench/io/weft_w8_sleep
  build/release/bench/io/weft_timer_bench
  echo "=== W7 echo (1 rep x 3 s per point; bench/io/run_w7.sh for more) ==="
  bash bench/io/run_w7.sh build/release/bench/io 1 3 | grep -E '^RESULT.*reps='
fi
"$probe" end
