#!/usr/bin/env python3
"""virtio-net's device path in one process (bench/inproc-virtio-net.c): frames/s
and, under callgrind, instructions per frame, for TX into a null backend and
RX from a frame generator, split and packed rings, each frame size.

Frames/s moves with the load of this shared host; callgrind's instruction
count does not (it is the same on every run of the same build), so it is
the number to compare across commits. The count is collected only inside
the program's tx_loop/rx_loop (--toggle-collect), so Ir/frame = collected
Ir / frames; "device" is the part below the driver's notify store, the
bottom halves and the generator's qnic_net_send (callgrind's inclusive
cost of qnic_as_store + qnic_bh_poll + qnic_net_send), the rest is this
program's driver side (tests/lib/vring-driver.c over plain memory).

With --base PATH (another build's inproc-virtio-net, e.g. from
bench/compare-commits.sh) both run alternately and the table has ratios;
otherwise the ratio is against the issue's goal of 10 M frames/s per core,
taken as frames per CPU-second of the process (its CPU time, so that the
other tenants of this host do not count against it; wall-clock frames/s
is printed next to it).

usage: bench/inproc-bench.py [--build build-bench] [--base PATH] [--dirs tx,rx]
                             [--rings split,packed] [--sizes 64,1500] [--frames 2000000]
                             [--rounds 5] [--callgrind-frames 20000] [--top 8] [--json FILE]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

GOAL = 10e6
DEVICE_ENTRIES = ("qnic_as_store", "qnic_bh_poll", "qnic_net_send")
# this program's own functions: the driver side and the null backend
DRIVER = ("vring_", "host_", "tx_loop", "rx_loop", "null_receive")


def run_fps(prog, d, ring, size, frames, burst, cpu_rates):
    argv = [prog, d, ring, str(size), str(frames), str(burst)]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    res = [l for l in r.stdout.decode().splitlines() if l.startswith("result ")]
    if r.returncode or not res:
        print("  %s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr.decode()[-300:]))
        return None
    kv = dict(p.split("=", 1) for p in res[0].split()[1:])
    if "fps_cpu" in kv:         # builds before it printed only fps
        cpu_rates.append(float(kv["fps_cpu"]))
    return float(kv["fps"])


def annotate(out, inclusive):
    """{function: Ir} from callgrind_annotate (exclusive or inclusive)."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=%s" % ("yes" if inclusive else "no"),
                        "--threshold=100", "--auto=no", out], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120,
                       cwd=os.path.dirname(out))
    fns, total = {}, None
    for line in r.stdout.decode().splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        what = m.group(2)
        if what.startswith("PROGRAM TOTALS"):
            total = ir
            continue
        name = what.split(":", 1)[1] if ":" in what else what
        name = name.split(" [", 1)[0].strip()
        name = re.sub(r"\.(constprop|isra|part|cold)\.\d+", "", name)
        # a function can be listed twice (by absolute and by build-relative
        # source path): the same cost, not twice the cost
        fns[name] = max(fns.get(name, 0), ir)
    return total, fns


def run_callgrind(prog, d, ring, size, frames, burst, tmp, impl):
    out = os.path.join(tmp, "cg.%s.%s.%s.%d" % (impl, d, ring, size))
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
            "--toggle-collect=%s_loop*" % d, prog, d, ring, str(size), str(frames), str(burst)]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1200)
    if r.returncode:
        print("  callgrind failed (%d): %s" % (r.returncode, r.stderr.decode()[-300:]))
        return None
    total, excl = annotate(out, False)
    _, incl = annotate(out, True)
    device = sum(incl.get(f, 0) for f in DEVICE_ENTRIES)
    return {"cmd": " ".join(argv), "total": total / frames, "device": device / frames,
            "top": sorted(excl.items(), key=lambda kv: -kv[1])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(benchlib.SRC, "build-bench"))
    ap.add_argument("--base", help="another build's inproc-virtio-net (impl 'base')")
    ap.add_argument("--dirs", default="tx,rx")
    ap.add_argument("--rings", default="split,packed")
    ap.add_argument("--sizes", default="64,1500")
    ap.add_argument("--frames", type=int, default=2000000)
    ap.add_argument("--burst", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--callgrind-frames", type=int, default=20000, help="0: no callgrind")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--json")
    a = ap.parse_args()
    prog = os.path.join(a.build, "bench", "inproc-virtio-net")
    if not os.path.exists(prog):
        print("inproc-bench: %s not built" % prog)
        sys.exit(77)
    progs = {"qnic": prog}
    if a.base:
        progs["base"] = a.base
    impls = list(progs)
    benchlib.header("in-process virtio-net device path (%s)" % prog)
    print("command per run: %s DIR RING SIZE %d %d" % (prog, a.frames, a.burst))
    rows, cpu_rows = [], []
    for d in a.dirs.split(","):
        for ring in a.rings.split(","):
            for size in [int(s) for s in a.sizes.split(",")]:
                cell = "%s %s %d" % (d, ring, size)
                cpu = {i: [] for i in impls}
                res = benchlib.alternate(cell, impls, a.rounds,
                                         lambda i: run_fps(progs[i], d, ring, size, a.frames, a.burst, cpu[i]))
                rows.append(((d, ring, size), res))
                cpu_rows.append(((d, ring, size), {i: (statistics.median(v) if v else None, v)
                                                   for i, v in cpu.items()}))
    cols = ("dir", "ring", "frame")
    print()
    if a.base:
        print("frames/s over wall time:")
        benchlib.table(cols, rows, impls, "base", "frames/s")
        print("frames per CPU-second:")
        benchlib.table(cols, cpu_rows, impls, "base", "frames/CPU-s")
    print("| dir | ring | frame | frames/s (wall) | frames per CPU-second | per CPU-second / 10 M goal |")
    print("|---|---|---|---|---|---|")
    for (key, res), (_, cres) in zip(rows, cpu_rows):
        m, c = res["qnic"][0], cres["qnic"][0]
        print("| %s | %s | %d | %s | %s | %s |" % (key + (benchlib.fmt(m) if m else "fail",
                                                          benchlib.fmt(c) if c else "fail",
                                                          "%.2f" % (c / GOAL) if c else "-")))
    benchlib.record(a.json, "inproc-cpu", "frames per CPU-second", cols, cpu_rows, impls)
    benchlib.record(a.json, "inproc", "frames/s", cols, rows, impls)

    if not a.callgrind_frames or not shutil.which("valgrind"):
        print("\ncallgrind: skipped (%s)" % ("--callgrind-frames 0" if not a.callgrind_frames
                                             else "valgrind is not installed"))
        return
    print("\ninstructions per frame (callgrind, %d frames, collected in the *_loop functions only):"
          % a.callgrind_frames)
    print("| dir | ring | frame | %s |%s" % (" | ".join("%s Ir/frame | %s device Ir/frame" % (i, i) for i in impls),
                                         " device qnic/base |" if a.base else ""))
    print("|" + "---|" * (3 + 2 * len(impls) + (1 if a.base else 0)))
    tops = []
    with tempfile.TemporaryDirectory(prefix="inproc-cg-") as tmp:
        for (d, ring, size), _ in rows:
            c = {i: run_callgrind(progs[i], d, ring, size, a.callgrind_frames, a.burst, tmp, i) for i in impls}
            cells = []
            for i in impls:
                cells += ["%.0f" % c[i]["total"], "%.0f" % c[i]["device"]] if c[i] else ["fail", "fail"]
            if a.base:
                cells.append("%.3f" % (c["qnic"]["device"] / c["base"]["device"])
                             if c["qnic"] and c["base"] else "-")
            print("| %s | %s | %d | %s |" % (d, ring, size, " | ".join(cells)), flush=True)
            if c["qnic"]:
                tops.append(((d, ring, size), c["qnic"]))
            if a.json:
                with open(a.json, "a") as f:
                    for i in impls:
                        if c[i]:
                            f.write(benchlib.json.dumps({"bench": "inproc-callgrind", "impl": i,
                                                         "cell": {"dir": d, "ring": ring, "frame": size},
                                                         "ir_frame": c[i]["total"], "device_ir_frame": c[i]["device"],
                                                         "cmd": c[i]["cmd"]}) + "\n")
    for (d, ring, size), c in tops:
        print("\ntop functions, %s %s %d (exclusive Ir/frame; %s):" % (d, ring, size, c["cmd"]))
        for name, ir in c["top"][:a.top]:
            print("  %7.1f  %s%s" % (ir / a.callgrind_frames, name,
                                     "  (bench driver/backend)" if name.startswith(DRIVER) else ""))

if __name__ == "__main__":
    main()
