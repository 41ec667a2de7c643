#!/usr/bin/env python3
"""`make bench`: every comparison of bench/ in one command, on one machine
state, with the machine and the commit printed first, then the plot.

In order (each prints its own commands, medians and ratios):
  inproc   bench/inproc-bench.py: the device path in-process, frames/s and
           callgrind instructions per frame
  qtest    bench/qtest-bench.py: qnic-vmm vs QEMU 7.2 over qtest,
           throughput and request/response latency
  dpdk     bench/dpdk-bench.py: qnic-vhost-user-net + tap vs DPDK vhost +
           tap PMD under testpmd, throughput and latency (root)
  guest    bench/bench.py: the test guest under QEMU and qnic-vmm with KVM
           (root and /dev/kvm)
A part that cannot run here says why and the rest goes on. The results go
to BUILD/bench-results.jsonl (one JSON line per cell) and the plot to
BUILD/bench.png (bench/plot.py).

usage: bench/run-all.py [--build build-bench] [--only inproc,qtest,dpdk,guest] [--rounds 3] [--quick]
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402


def plot_python():
    """A Python that has matplotlib: this one, else the system's (a pyenv
    or venv python3 on PATH does not see Debian's python3-matplotlib)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(py) and subprocess.run([py, "-c", "import matplotlib"], stderr=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL).returncode == 0:
            return py
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(benchlib.SRC, "build-bench"))
    ap.add_argument("--only", default="inproc,qtest,dpdk,guest")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer frames and pings (a smoke run)")
    a = ap.parse_args()
    results = os.path.join(a.build, "bench-results.jsonl")
    png = os.path.join(a.build, "bench.png")
    open(results, "w").close()
    benchlib.header("make bench")
    sha = benchlib.commit()     # the tree measured (the plot is drawn later)
    rounds = ["--rounds", str(a.rounds)]
    q = a.quick
    parts = {
        "inproc": ["inproc-bench.py", "--frames", "200000" if q else "2000000",
                   "--callgrind-frames", "5000" if q else "20000"] + rounds,
        "qtest": ["qtest-bench.py", "--frames", "5120" if q else "51200", "--sizes", "64,1400",
                  "--lat-pings", "100" if q else "500"] + rounds,
        "dpdk": ["dpdk-bench.py", "--seconds", "1" if q else "3", "--pings", "200" if q else "2000"] + rounds,
        "guest": ["bench.py", "--only", "tx,rx", "--nics", "virtio,virtio-packed", "--sizes", "64,1400"]
                 + ["--repeat", str(a.rounds)],
    }
    status = {}
    for name in a.only.split(","):
        argv = [sys.executable, os.path.join(HERE, parts[name][0]), "--build", a.build] + parts[name][1:]
        if name != "guest":
            argv += ["--json", results]
        print("\n$ " + " ".join(argv), flush=True)
        rc = subprocess.run(argv).returncode
        status[name] = {0: "ok", 77: "skipped (reason above)"}.get(rc, "failed (%d)" % rc)
    py = plot_python()
    if py:
        argv = [py, os.path.join(HERE, "plot.py"), results, png, "--title",
                "%s | %s" % (sha, benchlib.machine())]
        print("\n$ " + " ".join(argv), flush=True)
        status["plot"] = "ok" if subprocess.run(argv).returncode == 0 else "failed"
    else:
        status["plot"] = "skipped: no python3 with matplotlib (apt-get install python3-matplotlib)"
    print("\n== make bench: %s" % ", ".join("%s %s" % kv for kv in status.items()))
    print("results: %s, plot: %s" % (results, png))
    print("machine at the end: " + benchlib.machine())


if __name__ == "__main__":
    main()
