#!/usr/bin/env python3
"""Device-side virtio-net throughput on qnic-vmm and QEMU 7.2 in one run, as ratios.

Runs bench/qtest-virtio-net (built in BUILD/bench/) against each target:
qnic-vmm -accel qtest and QEMU -accel tcg with a halted CPU (libqtest's
QTEST_FLAG_RUNNING), the same driver traffic, frames through -netdev
socket,udp= on loopback. No root, no KVM. Each cell runs --rounds
rounds, the implementations alternating (A B A B ...), and the median is
printed with the ratios (bench/benchlib.py). Then request/response latency
(qtest-virtio-net lat: a frame out of TX, echoed by the peer socket into
RX), median and p99 per run, medians over the rounds.

usage: bench/qtest-bench.py [--build build-bench] [--impls qemu,qnic] [--base PATH]
                            [--frames 102400] [--sizes 64,1400] [--modes modern,legacy,packed]
                            [--dirs tx,rx] [--rounds 3] [--lat-pings 500] [--json FILE]
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build-bench"))
    ap.add_argument("--qnic")
    ap.add_argument("--qemu", default=os.environ.get("QEMU_BINARY", "/usr/bin/qemu-system-x86_64"))
    ap.add_argument("--base", help="a second qnic-vmm (impl 'base')")
    ap.add_argument("--impls", default="qemu,qnic")
    ap.add_argument("--frames", type=int, default=102400)
    ap.add_argument("--sizes", default="64,1400")
    ap.add_argument("--modes", default="modern,legacy,packed")
    ap.add_argument("--dirs", default="tx,rx")
    ap.add_argument("--repeat", "--rounds", type=int, default=3, help="rounds of A B A B; medians")
    ap.add_argument("--json", help="append the results here (bench/plot.py)")
    ap.add_argument("--lat-pings", type=int, default=500, help="round trips per latency run; 0: none")
    a = ap.parse_args()
    prog = os.path.join(a.build, "bench", "qtest-virtio-net")
    qnic = a.qnic or os.path.join(a.build, "vmm", "qnic-vmm")
    if not os.path.exists(prog):
        print("qtest-bench: %s not built" % prog)
        sys.exit(77)
    impls = []
    for name in a.impls.split(","):
        env = dict(os.environ)
        env.pop("QTEST_QEMU_BINARY", None)
        env["QTEST_LOG"] = "1"     # libqtest prints the target command line
        if name == "qemu":
            env["QTEST_QEMU_BINARY"] = a.qemu
            binary = a.qemu
        elif name in ("qnic", "base"):
            binary = qnic if name == "qnic" else a.base
            env["QNIC_VMM"] = binary or ""
        else:
            sys.exit("unknown impl %s" % name)
        if not binary or not os.path.exists(binary):
            print("qtest-bench: %s binary %r missing" % (name, binary))
            sys.exit(77)
        impls.append((name, binary, env))

    benchlib.header("device path over qtest: qnic-vmm vs QEMU (%s)" % prog)
    for name, binary, _ in impls:
        print("impl %s: %s" % (name, binary))
    envs = {name: env for name, _, env in impls}

    def run(name, d, mode, size):
        argv = [prog, d, mode, str(size), str(a.frames)]
        r = subprocess.run(argv, env=envs[name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        cmd = [l[len("# qtest: "):] for l in r.stderr.decode().splitlines() if l.startswith("# qtest: ")]
        res = [l for l in r.stdout.decode().splitlines() if l.startswith("result ")]
        if r.returncode or not res:
            print("  %s %s %s %d: failed (%d): %s" % (name, d, mode, size, r.returncode, r.stderr.decode()[-300:]))
            return None
        if (name, d, mode, size) not in shown:
            shown.add((name, d, mode, size))
            print("  %s: %s; target: %s" % (name, " ".join(argv), cmd[0] if cmd else "?"))
        return float(dict(p.split("=", 1) for p in res[0].split()[1:])["fps"])

    shown = set()
    rows = []
    names = [n for n, _, _ in impls]
    for d in a.dirs.split(","):
        for mode in a.modes.split(","):
            for size in [int(s) for s in a.sizes.split(",")]:
                res = benchlib.alternate("%s %s %d" % (d, mode, size), names, a.repeat,
                                         lambda n: run(n, d, mode, size))
                rows.append(((d, mode, size), res))
    print()
    print("machine: " + benchlib.machine())
    cols = ("dir", "transport", "frame")
    benchlib.table(cols, rows, names, names[0], "frames/s")
    benchlib.record(a.json, "qtest", "frames/s", cols, rows, names)
    if a.lat_pings:
        lat(a, prog, names, envs)


def lat(a, prog, names, envs):
    """Request/response through the device (qtest-virtio-net lat): each
    run's median and p99 round trip, medians over the rounds."""
    p99s = {n: [] for n in names}

    def run(name, mode):
        argv = [prog, "lat", mode, "64", str(a.lat_pings)]
        r = subprocess.run(argv, env=envs[name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        res = [l for l in r.stdout.decode().splitlines() if l.startswith("result ")]
        if r.returncode or not res:
            print("  %s lat %s: failed (%d): %s" % (name, mode, r.returncode, r.stderr.decode()[-300:]))
            return None
        kv = dict(p.split("=", 1) for p in res[0].split()[1:])
        p99s[name].append(float(kv["p99_us"]))
        return float(kv["median_us"])

    rows = []
    print("\nrequest/response latency (%s lat MODE 64 %d: TX to the UDP peer, echoed into RX), us:"
          % (prog, a.lat_pings))
    for mode in a.modes.split(","):
        for n in names:
            p99s[n] = []
        res = benchlib.alternate("lat %s 64" % mode, names, a.repeat, lambda n: run(n, mode))
        rows.append(((mode, "median"), res))
        rows.append(((mode, "p99"), {n: (benchlib.statistics.median(p99s[n]) if p99s[n] else None, p99s[n])
                                     for n in names}))
    cols = ("transport", "round trip")
    benchlib.table(cols, rows, names, names[0], "us", lower_better=True)
    benchlib.record(a.json, "qtest-lat", "us", cols, rows, names, lower_better=True)


if __name__ == "__main__":
    main()
