#!/usr/bin/env python3
"""scripts/bench_charts.py - SVG charts from a results file of scripts/bench_json.py.

    python3 scripts/bench_charts.py RESULTS.json -o OUT_DIR

Writes into OUT_DIR:
  <workload>.svg  one chart per workload: a horizontal bar per (param, peer) with the
                  median, a whisker from min to max, and each peer's ratio to weft;
  workloads.svg   all of those charts on one page;
  speedup.svg     for workloads measured at several worker counts: each peer's speedup
                  from 1 worker to N (median at 1 / median at N; inverted for rates),
                  with the ideal line. Not written when no workload has several counts.
  efficiency.svg  weft_scale's parallel efficiency (the efficiency= field of its RESULT
                  lines) against the worker count, one line per workload, ideal at 1.
                  Not written when no line has the field.
Every chart carries the run's date, commit and machine. The SVG is written by hand with
the standard library (no plotting package), so bench.sh needs nothing but python3.
"""

import argparse
import json
import math
import os
import re
import sys
from xml.sax.saxutils import escape

# Workload names as RESULT lines give them -> titles with the ids of docs/benchmarks.md.
TITLES = {
    "spawn_join": "W1 spawn_join", "skynet": "W2 skynet", "yield_pingpong": "W3 yield_pingpong",
    "fib": "W5 fib", "idle": "W9 idle (CPU used)", "W7": "W7 echo", "W8": "W8 sleep",
    "scale_W2_skynet": "W2 skynet (weft_scale)", "scale_W5_fib": "W5 fib (weft_scale)",
    "scale_W4_chan_pairs": "W4 independent pairs (weft_scale)",
    "scale_W6_mutex_sharded": "W6 sharded mutex (weft_scale)",
}
# Colours of the efficiency chart's lines, one per workload, in order of appearance.
LINE_COLOURS = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d"]
COLOURS = {"weft": "#d95f02", "boost_fiber": "#1b9e77", "tbb": "#7570b3", "fcontext": "#777777",
           "std_thread": "#e7298a", "raw_epoll": "#66a61e"}
OTHER_COLOUR = "#a6761d"
NOISY_PERCENT = 5  # the tour's threshold (bench/tour/main.cpp, kQuiet)
FONT = 'font-family="DejaVu Sans, Verdana, sans-serif"'

WIDTH = 640
LABEL_W = 170  # param / peer labels
BAR_W = 270
CLIP = BAR_W + 30  # whiskers longer than this are cut (bar_panel)
ROW_H = 17
TITLE_H = 40


def higher_is_better(unit):
    return unit.endswith("/s")


def title_of(workload):
    return TITLES.get(workload, workload.replace("_", " ", 1) if re.match(r"W\d+t?_", workload)
                      else workload)


def fmt(v):
    a = abs(v)
    if a >= 100000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ratio(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def text(x, y, s, size=11, anchor="start", weight="normal", fill="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}" {FONT}>{escape(s)}</text>')


def caption(doc):
    m, run = doc.get("machine", {}), doc.get("run", {})
    parts = [run.get("date", ""), ("weft " + run["commit"]) if run.get("commit") else "",
             f"{m['nproc']} CPUs" if "nproc" in m else "", m.get("cpu_model", ""),
             m.get("kernel", ""), ("g++ " + m["compiler"]) if m.get("compiler") else ""]
    return ", ".join(p for p in parts if p)


def noisy(r):
    return r.get("others_cpu_percent", 0) > NOISY_PERCENT


def by_workload(results):
    groups = {}
    for r in results:
        groups.setdefault(r["workload"], []).append(r)
    return groups


def scaled(r):
    """(median, min, max) of r, times its work_factor: a peer that ran a smaller problem
    (the tour's boost_fiber on W2 and W5) has its time scaled up, as the tour's table does."""
    f = float(r["extra"].get("work_factor", 1))
    return r["median"] * f, r["min"] * f, r["max"] * f


def bar_panel(workload, rows):
    """One workload's bars; returns (svg body, height)."""
    unit = rows[0]["unit"]
    better = "higher is better" if higher_is_better(unit) else "lower is better"
    out = [text(8, 18, title_of(workload), 14, weight="bold"),
           text(8, 33, f"{unit}, {better}. Bar: median of the repetitions; whisker: min to max; "
                "Nx weft: peer median / weft median", 10, fill="#555")]
    # Scaled to the largest median: one wild repetition must not squash every bar; a
    # whisker past the end is cut at CLIP and ends in an arrow (the exact max is in the
    # bar's tooltip and in the JSON).
    scale_max = max(scaled(r)[0] for r in rows) or 1.0
    params = list(dict.fromkeys(r["param"] for r in rows))
    y = TITLE_H
    notes = set()
    for param in params:
        group = [r for r in rows if r["param"] == param]
        weft = next((r for r in group if r["peer"] == "weft"), None)
        out.append(text(8, y + 12, param, 10, weight="bold", fill="#444"))
        y += ROW_H
        for r in group:
            median, lo, hi = scaled(r)
            colour = COLOURS.get(r["peer"], OTHER_COLOUR)
            x0, w = LABEL_W, BAR_W * median / scale_max
            approx = "~" if median != r["median"] else ""
            out.append(text(x0 - 6, y + 12, r["peer"], 11, anchor="end"))
            out.append(f'<rect x="{x0}" y="{y + 2}" width="{max(w, 0.5):.1f}" height="{ROW_H - 5}" '
                       f'fill="{colour}"><title>{escape(r["peer"])} {escape(param)}: '
                       f'{fmt(r["median"])} {escape(unit)} (min {fmt(r["min"])}, max '
                       f'{fmt(r["max"])}, {r["reps"]} reps)</title></rect>')
            xh = x0 + min(BAR_W * hi / scale_max, CLIP)
            if r["reps"] > 1 and hi > lo:
                xl, mid = x0 + BAR_W * lo / scale_max, y + ROW_H / 2
                end = (f"M{xh - 4:.1f} {mid - 3:.1f}L{xh:.1f} {mid:.1f}L{xh - 4:.1f} {mid + 3:.1f}"
                       if BAR_W * hi / scale_max > CLIP else f"M{xh:.1f} {mid - 3:.1f}V{mid + 3:.1f}")
                out.append(f'<path d="M{xl:.1f} {mid:.1f}H{xh:.1f}M{xl:.1f} {mid - 3:.1f}V{mid + 3:.1f}'
                           f'{end}" stroke="#222" stroke-width="1" fill="none"/>')
            label = approx + fmt(median)
            if weft is not None and r is not weft and weft["median"] > 0:
                label += f"   {approx}{ratio(median / weft['median'])}x weft"
            if approx:
                notes.add("~ ran a smaller problem; time scaled up by its work_factor")
            if noisy(r):
                label += " *"
                notes.add(f"* other processes used more than {NOISY_PERCENT}% of the CPUs "
                          "during these repetitions")
            out.append(text(max(x0 + w, xh) + 6, y + 12, label, 10))
            y += ROW_H
        y += 6
    for note in sorted(notes):
        out.append(text(8, y + 10, note, 9, fill="#a00"))
        y += 14
    return "\n".join(out), y + 4


def speedups(rows):
    """{peer: [(workers, speedup)]} for peers with a 1-worker figure and other counts."""
    out = {}
    for peer in dict.fromkeys(r["peer"] for r in rows):
        by_n = {r["workers"]: r["median"] for r in rows
                if r["peer"] == peer and r.get("workers") is not None}
        base = by_n.get(1)
        if not base or len(by_n) < 2:
            continue
        inverted = higher_is_better(rows[0]["unit"])
        out[peer] = [(n, (v / base if inverted else base / v) if v > 0 else 0.0)
                     for n, v in sorted(by_n.items())]
    return out


def speedup_panel(workload, curves, rows):
    """One workload's speedup lines; returns (svg body, height)."""
    height, left, top, plot_w, plot_h = 230, 50, TITLE_H, 300, 150
    counts = sorted({n for pts in curves.values() for n, _ in pts})
    top_n = max(counts)
    y_max = max([top_n] + [s for pts in curves.values() for _, s in pts]) * 1.1
    # Worker counts are powers of two (and the machine's total): a log2 axis spaces them evenly.
    xs = {n: left + plot_w * (math.log2(n) / math.log2(top_n) if top_n > 1 else 0) for n in counts}
    def ypos(s):
        return top + plot_h * (1 - s / y_max)
    out = [text(8, 18, title_of(workload) + ": speedup", 14, weight="bold"),
           text(8, 33, "median at 1 worker / median at N (dashed: ideal)", 10, fill="#555"),
           f'<path d="M{left} {top}V{top + plot_h}H{left + plot_w}" stroke="#444" fill="none"/>']
    for n in counts:
        out.append(text(xs[n], top + plot_h + 14, str(n), 10, anchor="middle"))
    out.append(text(left + plot_w / 2, top + plot_h + 28, "workers", 10, anchor="middle"))
    step = max(1, math.ceil(y_max / 8))
    for tick in range(step, int(y_max) + 1, step):
        out.append(text(left - 6, ypos(tick) + 4, f"{tick}x", 10, anchor="end"))
        out.append(f'<path d="M{left} {ypos(tick):.1f}H{left + plot_w}" stroke="#ddd"/>')
    ideal = " ".join(f"{xs[n]:.1f},{ypos(n):.1f}" for n in counts)
    out.append(f'<polyline points="{ideal}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    legend_y = top + 6
    for peer, pts in curves.items():
        colour = COLOURS.get(peer, OTHER_COLOUR)
        points = " ".join(f"{xs[n]:.1f},{ypos(s):.1f}" for n, s in pts)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for n, s in pts:
            out.append(f'<circle cx="{xs[n]:.1f}" cy="{ypos(s):.1f}" r="3" fill="{colour}">'
                       f'<title>{escape(peer)} at {n} workers: {s:.2f}x</title></circle>')
        out.append(f'<rect x="{left + plot_w + 20}" y="{legend_y}" width="10" height="10" fill="{colour}"/>')
        out.append(text(left + plot_w + 36, legend_y + 9, f"{peer}  {pts[-1][1]:.2f}x at {pts[-1][0]}", 10))
        legend_y += 16
    if any(noisy(r) for r in rows):
        out.append(text(8, height + 4, f"other processes used more than {NOISY_PERCENT}% of the CPUs "
                        "during some of these repetitions: a busy machine cannot show a speedup",
                        9, fill="#a00"))
        height += 14
    return "\n".join(out), height


def efficiency_panel(groups):
    """weft_scale's efficiency per workload against the worker count; (svg body, height) or
    None when no RESULT line has an efficiency= field."""
    curves, over, noisy_any = {}, set(), False
    for workload, rows in groups.items():
        rows = [r for r in rows if "efficiency" in r["extra"] and r.get("workers") is not None]
        pts = sorted((r["workers"], float(r["extra"]["efficiency"])) for r in rows)
        if pts:
            curves[workload] = pts
        over |= {(workload, r["workers"]) for r in rows
                 if r["extra"].get("oversubscribed") == "yes"}
        noisy_any = noisy_any or any(noisy(r) for r in rows)
    if not curves:
        return None
    height, left, top, plot_w, plot_h = 230, 50, TITLE_H, 300, 150
    counts = sorted({n for pts in curves.values() for n, _ in pts})
    top_n = max(counts)
    y_max = max([1.0] + [e for pts in curves.values() for _, e in pts]) * 1.1
    xs = {n: left + plot_w * (math.log2(n) / math.log2(top_n) if top_n > 1 else 0.5)
          for n in counts}
    def ypos(e):
        return top + plot_h * (1 - e / y_max)
    out = [text(8, 18, "Parallel efficiency (weft_scale)", 14, weight="bold"),
           text(8, 33, "throughput(n) / (n x throughput(1)); dashed: ideal 1.0", 10,
                fill="#555"),
           f'<path d="M{left} {top}V{top + plot_h}H{left + plot_w}" stroke="#444" fill="none"/>',
           f'<path d="M{left} {ypos(1):.1f}H{left + plot_w}" stroke="#999" stroke-dasharray="4 3"/>']
    for n in counts:
        out.append(text(xs[n], top + plot_h + 14, str(n), 10, anchor="middle"))
    out.append(text(left + plot_w / 2, top + plot_h + 28, "workers", 10, anchor="middle"))
    tick = 0.25
    while tick < y_max:
        out.append(text(left - 6, ypos(tick) + 4, f"{tick:.2f}", 10, anchor="end"))
        tick += 0.25
    legend_y = top + 6
    for i, (workload, pts) in enumerate(curves.items()):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        points = " ".join(f"{xs[n]:.1f},{ypos(e):.1f}" for n, e in pts)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for n, e in pts:
            # Hollow: an oversubscribed count (more workers than CPUs).
            fill = "white" if (workload, n) in over else colour
            out.append(f'<circle cx="{xs[n]:.1f}" cy="{ypos(e):.1f}" r="3" fill="{fill}" '
                       f'stroke="{colour}"><title>{escape(workload)} at {n} workers: {e:.2f}'
                       f'</title></circle>')
        out.append(f'<rect x="{left + plot_w + 20}" y="{legend_y}" width="10" height="10" fill="{colour}"/>')
        out.append(text(left + plot_w + 36, legend_y + 9,
                        f"{title_of(workload).split(' (')[0]}  {pts[-1][1]:.2f} at {pts[-1][0]}", 10))
        legend_y += 16
    notes = (["hollow points: more workers than CPUs (oversubscribed)"] if over else []) + \
        ([f"other processes used more than {NOISY_PERCENT}% of the CPUs during some of these "
          "repetitions: a busy machine cannot show scaling"] if noisy_any else [])
    for note in notes:
        out.append(text(8, height + 4, note, 9, fill="#a00"))
        height += 14
    return "\n".join(out), height


def svg(panels, doc, title):
    """Stacks (body, height) panels into one SVG document with the run's caption."""
    parts, y = [], 0
    for body, h in panels:
        parts.append(f'<g transform="translate(0,{y})">\n{body}\n</g>')
        y += h + 10
    parts.append(text(8, y + 10, caption(doc), 9, fill="#555"))
    y += 18
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" '
            f'viewBox="0 0 {WIDTH} {y}">\n<title>{escape(title)}</title>\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n")


def file_name(workload):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", workload) + ".svg"


def write(path, content):
    with open(path, "w", encoding="utf-8") as out:
        out.write(content)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="JSON written by scripts/bench_json.py")
    parser.add_argument("-o", "--output", required=True, help="directory for the SVG files")
    args = parser.parse_args()
    try:
        with open(args.results, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as err:
        print(f"bench_charts: {args.results}: {err}", file=sys.stderr)
        return 1
    if doc.get("format") != "weft-bench-results/1" or not isinstance(doc.get("results"), list):
        print(f"bench_charts: {args.results}: not a weft-bench-results/1 file", file=sys.stderr)
        return 1
    os.makedirs(args.output, exist_ok=True)
    groups = by_workload(doc["results"])
    panels, curves_all, written = [], [], []
    for workload, rows in groups.items():
        panel = bar_panel(workload, rows)
        panels.append(panel)
        write(os.path.join(args.output, file_name(workload)), svg([panel], doc, title_of(workload)))
        written.append(file_name(workload))
        curves = speedups(rows)
        if curves:
            curves_all.append(speedup_panel(workload, curves, rows))
    write(os.path.join(args.output, "workloads.svg"), svg(panels, doc, "weft benchmarks"))
    written.append("workloads.svg")
    if curves_all:
        write(os.path.join(args.output, "speedup.svg"), svg(curves_all, doc, "weft speedup"))
        written.append("speedup.svg")
    efficiency = efficiency_panel(groups)
    if efficiency:
        write(os.path.join(args.output, "efficiency.svg"),
              svg([efficiency], doc, "weft parallel efficiency"))
        written.append("efficiency.svg")
    print(f"bench_charts: {len(written)} SVG files in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
