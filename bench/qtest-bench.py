#!/usr/bin/env python3
"""Device-side virtio-net throughput on qnic-vmm and QEMU 7.2 in one run, as ratios.

Runs bench/qtest-virtio-net (built in BUILD/bench/) against each target:
qnic-vmm -accel qtest and QEMU -accel tcg with a halted CPU (libqtest's
QTEST_FLAG_RUNNING), the same driver traffic, frames through -netdev
socket,udp= on loopback. No root, no KVM. Each cell runs --rounds
rounds, the implementations alternating (A B A B ...), and the median is
printed with the ratios (bench/benchlib.py).

usage: bench/qtest-bench.py [--build build-bench] [--impls qemu,qnic] [--base PATH]
                            [--frames 102400] [--sizes 64,1400] [--modes modern,legacy,packed]
                            [--dirs tx,rx] [--rounds 3] [--json FILE]
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


if __name__ == "__main__":
    main()
