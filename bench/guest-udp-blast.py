#!/usr/bin/env python3
"""Benchmark (never a timed test): guest-to-tap UDP transmit rate.

The test guest (test=udp-blast) sends COUNT UDP frames of SIZE bytes as fast
as its TX ring allows into a tap device inside a network namespace created
here, and measures frames/s on the guest side with its calibrated TSC. The
same run is made on QEMU and on qnic-vmm with the same arguments; the script
prints both rates and their ratio along with the machine (CPU model, cores,
kernel), as bench/ results are compared as ratios within one run.

usage: sudo bench/guest-udp-blast.py [--nic virtio] [--count 200000] [--size 64] [--impls qemu,qnic]
env: QNIC_VMM, QNIC_GUEST_ELF (as for the functional tests)
"""
import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "functional"))
import guestlib as g  # noqa: E402


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cpus, Linux %s" % (model, os.cpu_count() or 0, platform.release())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nic", default="virtio", choices=sorted(g.NICS))
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--impls", default="qemu,qnic")
    args = ap.parse_args()
    os.environ["QNIC_GUEST_IMPLS"] = args.impls
    g.require_common()
    g.require_root()
    g.require_tun()
    model, guest_nic, _ = g.NICS[args.nic]
    rates = {}
    for impl, binary in g.impls():
        with g.Netns("qnicb") as ns:
            ns.exec(["ip", "tuntap", "add", "dev", "qtap0", "mode", "tap"])
            ns.exec(["ip", "addr", "add", "192.168.77.1/24", "dev", "qtap0"])
            ns.exec(["ip", "link", "set", "qtap0", "up"])
            append = ("test=udp-blast ip=192.168.77.2 dst=192.168.77.1 count=%d size=%d nic=%s timeout=600"
                      % (args.count, args.size, guest_nic))
            net = ["-netdev", "tap,id=n0,ifname=qtap0,script=no,downscript=no",
                   "-device", "%s,netdev=n0" % model]
            vm = g.VM(impl, binary, "blast", append, net, netns=ns.name,
                      machine=g.machine_for(impl, args.nic)).start()
            try:
                vm.wait(600)
                rec = vm.record("blast") or {}
                rates[impl] = int(rec.get("fps", "0"))
            finally:
                vm.kill()
    print("machine: %s" % machine())
    print("nic=%s size=%d count=%d" % (args.nic, args.size, args.count))
    for impl, fps in rates.items():
        print("%-5s %10d frames/s" % (impl, fps))
    if rates.get("qemu") and "qnic" in rates:
        print("qnic/qemu ratio: %.2f" % (rates["qnic"] / rates["qemu"]))


if __name__ == "__main__":
    main()
