#!/usr/bin/env bash
# tests/bench_report_test.sh - scripts/bench_json.py and scripts/bench_charts.py on the
# checked-in log of a small run (tests/bench_report/sample.log, every benchmark program
# with reduced sizes): the JSON must parse and hold every RESULT and PHASE line of the
# log with its fields unchanged, the charts must be well-formed SVG with one bar per
# RESULT, and a malformed RESULT line must be an error, not a dropped line.
#
#   bash tests/bench_report_test.sh [REPO_ROOT [WEFT_RESULT_CHECK]]   (PYTHON=python3 by default)
#
# With the path of bench/result_check.cpp's program, it also converts the lines that
# program prints through bench/result.hpp (ctest bench_result_format), and expects the
# program to abort, naming the field, for a field with a space.
#
# Mutations that make it fail: bench_json.py skipping any RESULT line (e.g. those with
# reps=1) or ignoring a parse error; bench_charts.py leaving out a peer's bar;
# result.hpp printing "min:" for "min=", or no longer rejecting a space in a field.
set -euo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
python=${PYTHON:-python3}
sample="$root/tests/bench_report/sample.log"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

results=$(grep -c '^RESULT ' "$sample")
phases=$(grep -c '^PHASE ' "$sample")
workloads=$(awk '/^RESULT /{print $3}' "$sample" | sort -u | wc -l)
echo "sample: $results RESULT lines, $phases PHASE lines, $workloads workloads"

"$python" "$root/scripts/bench_json.py" "$sample" -o "$tmp/results.json"
"$python" "$root/scripts/bench_charts.py" "$tmp/results.json" -o "$tmp/svg"

"$python" - "$sample" "$tmp/results.json" "$tmp/svg" "$results" "$phases" "$workloads" <<'PY'
import json, os, sys
import xml.etree.ElementTree as ET
sample, path, svg_dir, n_results, n_phases, n_workloads = sys.argv[1:4] + [int(a) for a in sys.argv[4:]]
doc = json.load(open(path))
fail = []
if doc.get("format") != "weft-bench-results/1":
    fail.append(f"format is {doc.get('format')!r}")
if len(doc["results"]) != n_results:
    fail.append(f"{len(doc['results'])} results in the JSON, {n_results} RESULT lines in the log")
if len(doc["phases"]) != n_phases:
    fail.append(f"{len(doc['phases'])} phases in the JSON, {n_phases} PHASE lines in the log")
for key in ("nproc", "cpu_model", "kernel", "compiler"):
    if key not in doc["machine"]:
        fail.append(f"machine.{key} missing")
# Each result keeps the fields of its line: peer, workload, param, figures, unit, extras.
lines = [l.split() for l in open(sample) if l.startswith("RESULT ")]
for r, tok in zip(doc["results"], lines):
    want = [tok[1], tok[2], tok[3], float(tok[4]), tok[5], float(tok[6][4:]), float(tok[7][4:]),
            int(tok[8][5:]), dict(t.split("=", 1) for t in tok[9:])]
    got = [r["peer"], r["workload"], r["param"], r["median"], r["unit"], r["min"], r["max"],
           r["reps"], r["extra"]]
    if got != want:
        fail.append(f"result {got} != line {want}")
for p in doc["phases"]:
    if set(p["probes"]) != {"chase", "fault", "bounce", "futex"}:
        fail.append(f"phase {p['label']}: probes {sorted(p['probes'])}")
svgs = sorted(f for f in os.listdir(svg_dir) if f.endswith(".svg"))
if len(svgs) != n_workloads + 2:
    fail.append(f"{len(svgs)} SVG files, want one per workload ({n_workloads}) + workloads.svg + speedup.svg: {svgs}")
ns = "{http://www.w3.org/2000/svg}"
for name in svgs:
    ET.parse(os.path.join(svg_dir, name))  # raises on malformed XML
bars = [r for r in ET.parse(os.path.join(svg_dir, "workloads.svg")).iter(ns + "rect")
        if r.find(ns + "title") is not None]
if len(bars) != n_results:
    fail.append(f"workloads.svg has {len(bars)} bars for {n_results} results")
curves = list(ET.parse(os.path.join(svg_dir, "speedup.svg")).iter(ns + "polyline"))
if not curves:
    fail.append("speedup.svg has no curves")
for f in fail:
    print("FAILED:", f)
sys.exit(1 if fail else 0)
PY

# A RESULT line without min=/max=/reps= must stop the converter, naming the line.
{ cat "$sample"; echo "RESULT weft broken workers=1 1.0 ns"; } >"$tmp/bad.log"
if err=$("$python" "$root/scripts/bench_json.py" "$tmp/bad.log" -o "$tmp/bad.json" 2>&1); then
  echo "FAILED: a malformed RESULT line was accepted"
  exit 1
fi
bad_line=$(wc -l <"$tmp/bad.log")
grep -q "bad.log:$bad_line:" <<<"$err" || {
  echo "FAILED: the error does not name the line: $err"
  exit 1
}
check=${2:-}
if [[ -n $check ]]; then
  "$check" >"$tmp/check.log"
  want=$(grep -c '^RESULT ' "$tmp/check.log")
  "$python" "$root/scripts/bench_json.py" "$tmp/check.log" -o "$tmp/check.json"
  got=$("$python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["results"]))' "$tmp/check.json")
  if [[ $want != 5 || $got != "$want" ]]; then
    echo "FAILED: weft_result_check printed $want RESULT lines (want 5), the JSON has $got"
    exit 1
  fi
  for field in peer param extra; do
    if err=$("$check" --bad $field 2>&1); then
      echo "FAILED: result.hpp printed a $field with a space: $err"
      exit 1
    fi
    grep -q "RESULT ${field}.* contains a space" <<<"$err" || {
      echo "FAILED: result.hpp's error does not name the $field: $err"
      exit 1
    }
  done
  echo "weft_result_check: $got lines round-tripped; fields with spaces rejected"
fi
echo "bench_report_test: OK"
