#!/usr/bin/env bash
# tests/bench_scale_test.sh - smoke test of weft_scale (bench/scale/, docs/scaling.md):
# a quick run at 1, 2 and 3 workers must print one RESULT line per workload and count,
# with efficiency 1 at the base count and a positive efficiency everywhere, mark the
# counts above the allowed CPUs as oversubscribed (a '#' line and oversubscribed=yes),
# convert through scripts/bench_json.py with every line kept, draw efficiency.svg with
# scripts/bench_charts.py, and reject bad arguments with a message naming them.
#
#   bash tests/bench_scale_test.sh REPO_ROOT WEFT_SCALE   (PYTHON=python3 by default)
#
# Mutations that make it fail: weft_scale skipping a count or a workload, printing the
# speedup as the efficiency (not divided by n / base), dropping the oversubscribed field,
# or accepting --workers 0; bench_charts.py not writing efficiency.svg.
set -euo pipefail

root=$1
scale=$2
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$scale" --quick --reps 1 --workers 1,2,3 >"$tmp/scale.log"
"$python" "$root/scripts/bench_json.py" "$tmp/scale.log" --host -o "$tmp/scale.json"
"$python" "$root/scripts/bench_charts.py" "$tmp/scale.json" -o "$tmp/svg"
cpus=$(nproc)

"$python" - "$tmp/scale.log" "$tmp/scale.json" "$tmp/svg" "$cpus" <<'PY'
import json, os, sys
import xml.etree.ElementTree as ET
log, path, svg_dir, cpus = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lines = [l for l in open(log) if l.startswith("RESULT ")]
doc = json.load(open(path))
fail = []
workloads = ["scale_W2_skynet", "scale_W5_fib", "scale_W4_chan_pairs", "scale_W6_mutex_sharded"]
if len(doc["results"]) != len(lines):
    fail.append(f"{len(doc['results'])} results in the JSON, {len(lines)} RESULT lines")
got = {(r["workload"], r["workers"]): r for r in doc["results"]}
for w in workloads:
    for n in (1, 2, 3):
        r = got.get((w, n))
        if r is None:
            fail.append(f"no RESULT for {w} at {n} workers")
            continue
        e, s = float(r["extra"].get("efficiency", "nan")), float(r["extra"].get("speedup", "nan"))
        if not (r["median"] > 0 and r["unit"].endswith("/s")):
            fail.append(f"{w} {n}: throughput {r['median']} {r['unit']}")
        if not (e > 0 and abs(e - s / n) < 0.002):
            fail.append(f"{w} {n}: efficiency {e} is not speedup {s} / {n}")
        if n == 1 and (e != 1.0 or s != 1.0):
            fail.append(f"{w} 1: the base count has efficiency {e}, speedup {s}")
        over = r["extra"].get("oversubscribed") == "yes"
        if over != (n > cpus):
            fail.append(f"{w} {n}: oversubscribed={over} on {cpus} CPUs")
note = [l for l in open(log) if l.startswith("# workers=3 > ")]
if (cpus < 3) != bool(note):
    fail.append(f"oversubscription '#' line for 3 workers on {cpus} CPUs: {note}")
try:
    ET.parse(os.path.join(svg_dir, "efficiency.svg"))
except (OSError, ET.ParseError) as err:
    fail.append(f"efficiency.svg: {err}")
for f in fail:
    print("FAILED:", f)
sys.exit(1 if fail else 0)
PY

# Bad arguments: exit status 2 and a message that names the flag.
for args in "--workers 0" "--workers 1,,2" "--workers two" "--workers" "--reps 0" "--only W9"; do
  # shellcheck disable=SC2086 # word splitting of $args is the point
  if err=$("$scale" $args 2>&1 >/dev/null); then
    echo "FAILED: weft_scale $args succeeded"
    exit 1
  fi
  flag=${args%% *}
  grep -q -- "${flag}\|${args#* }" <<<"$err" || {
    echo "FAILED: weft_scale $args: the error does not name the argument: $err"
    exit 1
  }
done
echo "bench_scale_test: OK ($(grep -c '^RESULT ' "$tmp/scale.log") RESULT lines)"
