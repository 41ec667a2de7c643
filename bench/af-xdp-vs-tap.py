#!/usr/bin/env python3
"""-netdev af-xdp (skb and native mode) against -netdev tap on the same path, as ratios.

Runs bench/af-xdp-tap (built in BUILD/bench/), which puts the backend
between the kernel and a client of its own in a network namespace it makes
(a tap, or AF_XDP on one end of a veth pair) and counts 60-byte frames
for --seconds: rx, the kernel sends UDP as fast as it can and the client
counts what the backend delivers; tx, the client sends in bursts of 256 and
the kernel side's rx_packets counts what arrived. The three backends run
alternately (benchlib: A B C C B A ...), medians of --rounds rounds, with
frames/s and the main loop thread's CPU time per frame. Needs root.

usage: bench/af-xdp-vs-tap.py [--build build] [--rounds 5] [--seconds 2] [--dirs rx,tx] [--json FILE]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

IMPLS = ["tap", "skb", "native"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--dirs", default="rx,tx")
    ap.add_argument("--json", help="append the results here (bench/plot.py)")
    args = ap.parse_args()
    exe = os.path.join(args.build, "bench", "af-xdp-tap")
    if os.geteuid() != 0:
        sys.exit("af-xdp-vs-tap: needs root (network namespaces, tap, XDP)")
    if not os.access(exe, os.X_OK):
        sys.exit("af-xdp-vs-tap: %s is missing (ninja -C %s bench/af-xdp-tap)" % (exe, args.build))
    benchlib.header("af-xdp vs tap, 60-byte frames, %g s per run" % args.seconds)
    cpu = {}

    def run_one(d, impl):
        p = subprocess.run([exe, impl, d, str(args.seconds)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        m = re.search(r"fps=(\d+) loop_cpu_ns_per_frame=(\d+)", p.stdout)
        if p.returncode != 0 or not m:
            print("  %s %s failed: %s" % (impl, d, (p.stdout + p.stderr).strip()))
            return None
        cpu.setdefault((d, impl), []).append(int(m.group(2)))
        return float(m.group(1))

    rows = []
    for d in args.dirs.split(","):
        rows.append(((d,), benchlib.alternate(d, IMPLS, args.rounds, lambda i, d=d: run_one(d, i))))
    print("\nframes/s (median of %d), ratio against tap:\n" % args.rounds)
    benchlib.table(["dir"], rows, IMPLS, "tap", "frames/s")
    benchlib.record(args.json, "af-xdp-vs-tap", "frames/s", ["dir"], rows, IMPLS)
    cpu_rows = [((d,), {i: (statistics.median(cpu[(d, i)]) if cpu.get((d, i)) else None,
                            cpu.get((d, i), [])) for i in IMPLS}) for (d,), _ in rows]
    print("\nmain loop CPU ns per frame (median), tap's over each:\n")
    benchlib.table(["dir"], cpu_rows, IMPLS, "tap", "ns/frame", lower_better=True)


if __name__ == "__main__":
    main()
