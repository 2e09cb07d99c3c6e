#!/usr/bin/env python3
"""scripts/bench_json.py - turn the log of a benchmark run into one JSON file.

    python3 scripts/bench_json.py LOG [-o OUT.json] [--host]

Reads what scripts/bench.sh's programs printed on stdout and keeps:
  RESULT lines  (bench/result.hpp) -> "results", one object per line, in order;
  PHASE lines   (bench/phase_probe.cpp) -> "phases";
  '#' lines of the tour and of bench.sh -> "machine" and "run".
Every other line is ignored. A RESULT or PHASE line that does not have the documented
shape is an error (exit 1, naming the line), never silently dropped: the results file
must hold every figure of the log. --host fills machine fields the log does not give
from the machine this runs on. Format of the output: docs/benchmarks.md, "The results
file". Standard library only.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys

FORMAT = "weft-bench-results/1"

# RESULT <peer> <workload> <param> <median> <unit> min=<min> max=<max> reps=<n> [key=value ...]
RESULT_FIXED = ("peer", "workload", "param", "median", "unit", "min", "max", "reps")
# key="quoted value" or key=value, as in the tour's '# machine:' and '# build:' lines.
KEY_VALUE = re.compile(r'(\w+)=("([^"]*)"|\S+)')


class LogError(Exception):
    pass


def parse_number(text, what):
    try:
        return float(text)
    except ValueError:
        raise LogError(f"{what} is not a number: {text!r}") from None


def parse_result(line):
    """One RESULT line -> dict; raises LogError naming what is wrong."""
    tokens = line.split()
    if len(tokens) < 9:
        raise LogError(f"RESULT needs at least 8 fields after the word RESULT, got {len(tokens) - 1}")
    peer, workload, param, median, unit = tokens[1:6]
    fixed = {}
    for token, key in zip(tokens[6:9], ("min", "max", "reps")):
        if not token.startswith(key + "="):
            raise LogError(f"expected {key}=..., got {token!r}")
        fixed[key] = token[len(key) + 1:]
    extra = {}
    for token in tokens[9:]:
        key, sep, value = token.partition("=")
        if not sep or not key or not value:
            raise LogError(f"extra field {token!r} is not key=value")
        if key in extra:
            raise LogError(f"extra field {key!r} appears twice")
        extra[key] = value
    reps = parse_number(fixed["reps"], "reps")
    if reps < 1 or reps != int(reps):
        raise LogError(f"reps is not a positive integer: {fixed['reps']!r}")
    result = {
        "peer": peer,
        "workload": workload,
        "param": param,
        "workers": workers_of(param, extra),
        "median": parse_number(median, "median"),
        "unit": unit,
        "min": parse_number(fixed["min"], "min"),
        "max": parse_number(fixed["max"], "max"),
        "reps": int(reps),
        "extra": extra,
    }
    if "others_cpu" in extra:
        result["others_cpu_percent"] = parse_number(extra["others_cpu"].rstrip("%"), "others_cpu")
    return result


def workers_of(param, extra):
    """The worker count a result ran on: param workers=N (the tour) or extra workers=N."""
    for text in (param, "workers=" + extra.get("workers", "")):
        match = re.fullmatch(r"workers=(\d+)", text)
        if match:
            return int(match.group(1))
    return None


def parse_phase(line):
    """PHASE <label> chase=<v> <unit> fault=<v> <unit> ... -> dict."""
    tokens = line.split()
    if len(tokens) < 3:
        raise LogError("PHASE needs a label and at least one probe")
    phase = {"label": tokens[1], "probes": {}}
    i = 2
    while i < len(tokens):
        key, sep, value = tokens[i].partition("=")
        if not sep or not key:
            raise LogError(f"probe {tokens[i]!r} is not key=value")
        unit = ""
        if i + 1 < len(tokens) and "=" not in tokens[i + 1]:
            unit = tokens[i + 1]
            i += 1
        phase["probes"][key] = {"value": parse_number(value, key), "unit": unit}
        i += 1
    return phase


def fields(text):
    return {m.group(1): m.group(3) if m.group(3) is not None else m.group(2)
            for m in KEY_VALUE.finditer(text)}


def parse_comment(line, machine, run):
    """Context the tour and bench.sh print as '#' lines."""
    if line.startswith("# machine:"):
        f = fields(line)
        if "nproc" in f:
            machine["nproc"] = int(f["nproc"])
        for key, name in (("cpu", "cpu_model"), ("kernel", "kernel")):
            if key in f:
                machine[name] = f[key]
    elif line.startswith("# build:"):
        f = fields(line)
        if "compiler" in f:
            machine["compiler"] = f["compiler"]
        if "type" in f:
            machine["build_type"] = f["type"]
    elif line.startswith("# load:"):
        machine.setdefault("loadavg_start", line[len("# load:"):].strip())
    elif line.startswith("# bench.sh:"):
        run.update(fields(line))
    elif line.startswith("# run:"):
        run.update({"tour_" + k: v for k, v in fields(line).items()})
    else:
        match = re.match(r"# (start|end): other processes kept (\d+)% of the CPUs busy", line)
        if match:
            machine[f"others_cpu_percent_{match.group(1)}"] = int(match.group(2))


def host_machine():
    """What this machine says about itself (for fields the log lacks)."""
    info = {"nproc": len(os.sched_getaffinity(0)), "kernel": " ".join(
        (platform.system(), platform.release(), platform.machine()))}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        out = subprocess.run(["c++", "--version"], capture_output=True, text=True, check=False)
        if out.stdout:
            info["compiler"] = out.stdout.splitlines()[0]
    except OSError:
        pass
    return info


def convert(lines, source):
    machine, run, phases, results = {}, {}, [], []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        try:
            if line.startswith("RESULT"):
                result = parse_result(line)
                result["line"] = number
                results.append(result)
            elif line.startswith("PHASE"):
                phases.append(parse_phase(line))
            elif line.startswith("#"):
                parse_comment(line, machine, run)
        except LogError as err:
            raise LogError(f"{source}:{number}: {err}: {line}") from None
    return {"format": FORMAT, "source": os.path.basename(source), "run": run,
            "machine": machine, "phases": phases, "results": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="log of a run (stdout of the benchmark programs)")
    parser.add_argument("-o", "--output", help="JSON file to write (default: stdout)")
    parser.add_argument("--host", action="store_true",
                        help="fill machine fields missing from the log from this machine")
    args = parser.parse_args()
    try:
        with open(args.log, encoding="utf-8") as log:
            doc = convert(log, args.log)
    except (OSError, LogError) as err:
        print(f"bench_json: {err}", file=sys.stderr)
        return 1
    if args.host:
        for key, value in host_machine().items():
            doc["machine"].setdefault(key, value)
    text = json.dumps(doc, indent=1) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    print(f"bench_json: {len(doc['results'])} RESULT and {len(doc['phases'])} PHASE lines "
          f"from {args.log}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
