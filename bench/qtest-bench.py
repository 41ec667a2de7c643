#!/usr/bin/env python3
"""Device-side virtio-net throughput on qnic-vmm and QEMU 7.2 in one run, as ratios.

Runs bench/qtest-virtio-net (built in BUILD/bench/) against each target:
qnic-vmm -accel qtest and QEMU -accel tcg with a halted CPU (libqtest's
QTEST_FLAG_RUNNING), the same driver traffic, frames through -netdev
socket,udp= on loopback. No root, no KVM. Each cell is the best of --repeat
runs (the machine is shared: the best run is the least disturbed one).

usage: bench/qtest-bench.py [--build build-bench] [--impls qemu,qnic] [--base PATH]
                            [--frames 102400] [--sizes 64,1400] [--modes modern,legacy,packed]
                            [--dirs tx,rx] [--repeat 3]
"""
import argparse
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%s, nproc %d, Linux %s, load %.2f %.2f %.2f" % ((model, os.cpu_count(), platform.release())
                                                           + os.getloadavg())


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
    ap.add_argument("--repeat", type=int, default=3)
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

    print("machine: " + machine(), flush=True)
    for name, binary, _ in impls:
        print("impl %s: %s" % (name, binary))
    rows = []
    for d in a.dirs.split(","):
        for mode in a.modes.split(","):
            for size in [int(s) for s in a.sizes.split(",")]:
                vals = {}
                for name, binary, env in impls:
                    best = None
                    for _ in range(a.repeat):
                        argv = [prog, d, mode, str(size), str(a.frames)]
                        r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           timeout=300)
                        out = r.stdout.decode()
                        cmd = [l[len("# qtest: "):] for l in r.stderr.decode().splitlines()
                               if l.startswith("# qtest: ")]
                        res = [l for l in out.splitlines() if l.startswith("result ")]
                        if r.returncode or not res:
                            print("  %s %s %s %d: failed (%d): %s" % (name, d, mode, size, r.returncode,
                                                                      r.stderr.decode()[-300:]))
                            continue
                        kv = dict(p.split("=", 1) for p in res[0].split()[1:])
                        fps = int(kv["fps"])
                        print("  %s %s %s %d: %d frames/s  (%s; target: %s)" % (
                            name, d, mode, size, fps, " ".join(argv[1:]), cmd[0] if cmd else "?"), flush=True)
                        best = max(best or 0, fps)
                    vals[name] = best
                rows.append((d, mode, size, vals))
    print()
    print("machine: " + machine())
    ref = impls[0][0]
    print("| dir | transport | frame | " + " | ".join(n for n, _, _ in impls) + " | " +
          " | ".join("%s/%s" % (n, ref) for n, _, _ in impls[1:]) + " |")
    print("|" + "---|" * (3 + 2 * len(impls) - 1))
    for d, mode, size, vals in rows:
        cols = ["%d" % vals[n] if vals[n] else "fail" for n, _, _ in impls]
        rat = ["%.2f" % (vals[n] / vals[ref]) if vals[n] and vals[ref] else "-" for n, _, _ in impls[1:]]
        print("| %s | %s | %d | %s | %s |" % (d, mode, size, " | ".join(cols), " | ".join(rat)))


if __name__ == "__main__":
    main()
