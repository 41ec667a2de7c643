#!/usr/bin/env python3
"""Two NICs of one VM on one hub: the guest drives both (a virtio-net-pci and
an e1000 by default, each with its own address) and runs the pair test
between them through `-netdev hubport` — ARP, five pings and UDP echoes of
1..1472 bytes, all through the hub. Runs on QEMU and on qnic.

usage: test-guest-hub.py [--nics virtio,e1000]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

VM_TIMEOUT = 60


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nics", default="virtio,e1000")
    args = ap.parse_args()
    nics = args.nics.split(",")
    if len(nics) != 2 or any(n not in g.NICS for n in nics):
        ap.error("--nics wants two of " + ",".join(sorted(g.NICS)))
    g.require_common("two qnic NICs on one hub inside qnic-vmm")
    ck = g.Checker()
    for impl, binary in g.impls():
        net = []
        for i, nic in enumerate(nics):
            net += ["-netdev", "hubport,id=h%d,hubid=0" % i,
                    "-device", "%s,netdev=h%d,mac=52:54:00:00:0a:%02x" % (g.NICS[nic][0], i, i + 1)]
        vm = g.VM(impl, binary, "hub", "test=hub nic=auto timeout=%d" % (VM_TIMEOUT - 10), net).start()
        try:
            status = vm.wait(VM_TIMEOUT)
            found = vm.all_records("nic")
            ck.check(impl, "guest found two NICs", len(found) == 2, repr([r.get("model") for r in found]))
            ping = [r for r in vm.all_records("pair") if "received" in r]
            udp = [r for r in vm.all_records("pair") if "echoed" in r]
            ck.check(impl, "NIC0 pinged NIC1 5/5 through the hub", bool(ping) and ping[0].get("received") == "5",
                     repr(ping[:1]))
            ck.check(impl, "all UDP sizes echoed through the hub",
                     bool(udp) and udp[0].get("echoed") == udp[0].get("sent"), repr(udp[:1]))
            ck.check(impl, "guest verdict pass (exit status 1)", vm.guest_passed(), "status %r" % status)
        finally:
            vm.kill()
    ck.finish()


if __name__ == "__main__":
    main()
