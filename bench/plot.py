#!/usr/bin/env python3
"""One PNG of a `make bench` run: qnic against DPDK and QEMU, from the JSON
lines the bench scripts append (--json). Each panel is one comparison; bars
are medians of the alternating rounds, ticks mark every round's value, so
the spread this noisy host gives is on the picture too. docs/benchmarks.md
shows the picture of the run its tables come from.

Needs matplotlib (Debian's python3-matplotlib; scripts/install-deps.sh
installs it); without it, prints why and exits 77.

usage: bench/plot.py RESULTS.jsonl OUT.png [--title TEXT]
"""
import argparse
import json
import sys

PANELS = [
    # (bench, title, unit label)
    ("dpdk-tx", "device side into a tap\n(testpmd txonly, burst 32)", "frames/s"),
    ("dpdk-cpu", "device process CPU time per frame, same runs", "us/frame (lower is better)"),
    ("dpdk-lat", "UDP request/response\n(tap <-> device <-> testpmd)", "round trip, us (lower is better)"),
    ("qtest", "device path over qtest\n(qnic-vmm vs QEMU 7.2 TCG)", "frames/s"),
    ("qtest-lat", "request/response over qtest", "round trip, us (lower is better)"),
    ("inproc-cpu", "qnic in-process device path, no exits, no syscalls\n(frames per CPU-second of the process)",
     "frames/CPU-s"),
]
COLORS = {"qnic": "#1f77b4", "dpdk": "#d62728", "qemu": "#2ca02c", "base": "#7f7f7f"}


def label(cell):
    suffix = {"frame": " B", "queue pairs": "q"}
    return " ".join("%s%s" % (v, suffix.get(k, "")) for k, v in cell.items())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot: matplotlib is not installed (apt-get install python3-matplotlib)")
        sys.exit(77)
    recs = []
    with open(a.results) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    panels = [(b, t, u, [r for r in recs if r["bench"] == b]) for b, t, u in PANELS]
    panels = [p for p in panels if p[3]]
    if not panels:
        print("plot: no results in %s" % a.results)
        sys.exit(1)
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for ax, (bench, title, unit, rows) in zip(axes[:, 0], panels):
        impls = []
        for r in rows:
            for i in r["median"]:
                if i not in impls:
                    impls.append(i)
        width = 0.8 / len(impls)
        for k, impl in enumerate(impls):
            xs = [n + (k - (len(impls) - 1) / 2) * width for n in range(len(rows))]
            ys = [r["median"].get(impl) or 0 for r in rows]
            ax.bar(xs, ys, width, label=impl, color=COLORS.get(impl))
            for x, r in zip(xs, rows):
                runs = r.get("runs", {}).get(impl) or []
                ax.plot([x] * len(runs), runs, "k_", markersize=8)
        if bench == "inproc-cpu":
            ax.axhline(10e6, color="k", linestyle="--", linewidth=1)
            ax.text(len(rows) - 0.5, 10e6, "issue-15 goal: 10 M/s", ha="right", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([label(r["cell"]) for r in rows], fontsize=7, rotation=25 if len(rows) > 6 else 0,
                           ha="right" if len(rows) > 6 else "center")
        if rows[0].get("lower_better"):
            ax.set_yscale("log")    # medians and p99s differ by orders of magnitude
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit, fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    if a.title:
        fig.suptitle(a.title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))    # room for the suptitle
    fig.savefig(a.out, dpi=90)
    print("plot: wrote %s" % a.out)


if __name__ == "__main__":
    main()
