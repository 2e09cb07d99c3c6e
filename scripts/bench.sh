#!/usr/bin/env bash
# scripts/bench.sh - build the release preset, run the benchmarks, and write the run's
# results as JSON and SVG charts.
#
#   bash scripts/bench.sh [weft_tour arguments...]
#   WEFT_BENCH_TOUR_ONLY=1 bash scripts/bench.sh     # the tour only
#   WEFT_BENCH_SCALE_ONLY=1 bash scripts/bench.sh [weft_scale arguments...]
#                                     # the scaling benchmark only (docs/scaling.md)
#
# Writes, under build/bench-results/ (the format: docs/benchmarks.md, "The results file"):
#   <stamp>.log    everything the programs printed on stdout (RESULT, PHASE and '#' lines)
#   <stamp>.json   machine, PHASE probes and every RESULT (scripts/bench_json.py)
#   <stamp>/*.svg  charts (scripts/bench_charts.py)
#   latest.log, latest.json, latest/   copies of the newest run
# Progress lines ("weft_tour: [3/24] W1 spawn_join workers=2 weft: rep 2/5") go to stderr.
# Benchmark workloads cited here (W1, W4, W6, W7, W8, W10, W11): docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(weft_repo_root)"
weft_ensure_packages "${WEFT_BENCH_PACKAGES[@]}"

scale_only=${WEFT_BENCH_SCALE_ONLY:-0}
cmake --preset release
if [[ $scale_only == 1 ]]; then
  # Only what this mode runs; on a many-core machine use its cores.
  cmake --build --preset release -j"$(nproc)" --target weft_scale weft_phase_probe
else
  cmake --build --preset release -j2
fi

tour=build/release/bench/weft_tour
scale=build/release/bench/scale/weft_scale
for program in $tour $scale; do
  [[ $scale_only == 1 && $program == "$tour" ]] && continue
  if [[ ! -x $program ]]; then
    echo "weft: error: $program was not built (is its target defined under bench/?)" >&2
    exit 1
  fi
done
# W11's Go peer, beside the tour (which runs it when it exists: docs/benchmarks.md).
if [[ $scale_only != 1 ]] && command -v go >/dev/null 2>&1; then
  GOCACHE=$PWD/build/go-cache GOPATH=$PWD/build/go-path \
    go build -o build/release/bench/weft_go_churn bench/peers/go/churn.go
fi
probe=build/release/bench/weft_phase_probe
out=build/bench-results
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$out"
log=$out/$stamp.log

run_all() {
  echo "# bench.sh: date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
       "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
       "tour_only=${WEFT_BENCH_TOUR_ONLY:-0} scale_only=$scale_only args=\"$*\""
  # The VM's memory phase (bench/phase_probe.cpp): memory-bound figures (W1, W8) follow it.
  "$probe" start
  if [[ $scale_only == 1 ]]; then
    # The scaling benchmark alone, with the arguments: W2, W5, W4 pairs, W6 sharded at
    # 1, 2, 4, ... workers (about 5 s on 2 CPUs, under a minute on 64 cores).
    echo "# === scaling (weft_scale) ==="
    "$scale" "$@"
    "$probe" end
    return
  fi
  "$tour" "$@"

  # Sync primitives (W4, W6, W10, select fan-in) and I/O (W8 sleep, W7 echo against a raw
  # epoll server, server on CPU 0 and load generator on CPU 1). Skipped with
  # WEFT_BENCH_TOUR_ONLY=1.
  if [[ ${WEFT_BENCH_TOUR_ONLY:-0} != 1 ]]; then
    echo "# === scaling (weft_scale) ==="
    "$scale"
    echo "# === sync primitives ==="
    build/release/bench/sync/weft_sync_bench
    echo "# === W12 bounded shutdown ==="
    build/release/bench/weft_shutdown_bench
    echo "# === W8 sleep ==="
    "$probe" before-W8
    build/release/bench/io/weft_w8_sleep
    build/release/bench/io/weft_timer_bench
    echo "# === W7 echo (1 rep x 3 s per point; bench/io/run_w7.sh for more) ==="
    bash bench/io/run_w7.sh build/release/bench/io 1 3
  fi
  "$probe" end
}
run_all "$@" | tee "$log"

python3 scripts/bench_json.py "$log" --host -o "$out/$stamp.json"
python3 scripts/bench_charts.py "$out/$stamp.json" -o "$out/$stamp"
cp "$log" "$out/latest.log"
cp "$out/$stamp.json" "$out/latest.json"
rm -rf "$out/latest"
cp -r "$out/$stamp" "$out/latest"
echo "weft: results in $out/$stamp.json, charts in $out/$stamp/ (and latest.*)"
