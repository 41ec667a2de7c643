"""What every bench/ script shares: the machine and commit header, running the
implementations of one comparison alternately (A B A B ...) and taking
medians, the ratio tables, and the JSON records the plot script reads.

This host is a shared 2-core VM whose load moves by the minute: a cell's
implementations are run interleaved so that a burst of load hits both
alike, and the median of the rounds is kept (not the best, which favours
whichever side happened to get a quiet moment). Standard library only.
"""
import json  # noqa: F401 (inproc-bench.py writes through benchlib.json)
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%s, nproc %d, Linux %s, load %.2f %.2f %.2f" % ((model, os.cpu_count(), platform.release())
                                                           + os.getloadavg())


def commit():
    try:
        sha = subprocess.run(["git", "-C", SRC, "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return sha or "unknown (not a git checkout)"


def header(title):
    print("== %s" % title)
    print("machine: " + machine())
    print("commit: " + commit(), flush=True)


def alternate(cell, impls, rounds, run):
    """Run run(impl) for impl in impls, `rounds` times in turn (A B A B...).
    run returns a number or None (failed; printed by run). Returns
    {impl: (median or None, [values])}."""
    vals = {i: [] for i in impls}
    for r in range(rounds):
        # alternate the order too, so neither side always runs first
        order = impls if r % 2 == 0 else list(reversed(impls))
        for i in order:
            v = run(i)
            print("  %s round %d %s: %s" % (cell, r + 1, i, "failed" if v is None else fmt(v)), flush=True)
            if v is not None:
                vals[i].append(v)
    return {i: (statistics.median(v) if v else None, v) for i, v in vals.items()}


def fmt(v):
    if isinstance(v, float) and v < 100:
        return "%.2f" % v
    return "%d" % round(v)


def table(cols, rows, impls, ref, unit, lower_better=False):
    """Markdown table: the cell's columns, each impl's median, and each
    other impl's ratio against `ref` (>1 = better than ref, whichever way
    the unit goes)."""
    others = [i for i in impls if i != ref]
    # the ratio's name says what is divided: speed i/ref, time ref/i
    print("| %s | %s | %s |" % (" | ".join(cols), " | ".join("%s (%s)" % (i, unit) for i in impls),
                                " | ".join(("%s/%s" % (ref, i)) if lower_better else ("%s/%s" % (i, ref))
                                           for i in others)))
    print("|" + "---|" * (len(cols) + len(impls) + len(others)))
    for key, res in rows:
        meds = [res[i][0] for i in impls]
        rat = []
        for i in others:
            a, b = res[i][0], res[ref][0]
            if a and b:
                rat.append("%.2f" % ((b / a) if lower_better else (a / b)))
            else:
                rat.append("-")
        print("| %s | %s | %s |" % (" | ".join(str(k) for k in key),
                                    " | ".join("fail" if m is None else fmt(m) for m in meds), " | ".join(rat)))
    sys.stdout.flush()


def record(path, bench, unit, cols, rows, impls, lower_better=False):
    """Append this comparison to a JSON-lines file (bench/plot.py reads it)."""
    if not path:
        return
    with open(path, "a") as f:
        for key, res in rows:
            f.write(json.dumps({"bench": bench, "unit": unit, "lower_better": lower_better,
                                "cell": dict(zip(cols, key)), "time": time.time(),
                                "median": {i: res[i][0] for i in impls},
                                "runs": {i: res[i][1] for i in impls}}) + "\n")
