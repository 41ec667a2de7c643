#!/usr/bin/env python3
"""Two guests on one virtual wire: guest B (10.9.0.2) serves ARP, ICMP and
UDP echo; guest A (10.9.0.1) resolves B, pings it five times, sends UDP
datagrams of 1 to 1472 bytes and checks every echo byte for byte, then
stops B with "quit". The wire is one of QEMU's peer-to-peer netdevs:
socket (TCP listen/connect), socket mcast (inside a namespace the test
creates), dgram, l2tpv3 or a vde_switch the test starts.

--pair says which VMM runs each side: qemu-qemu is the reference run,
qnic-qnic and qnic-qemu / qemu-qnic check qnic against itself and against
QEMU on the wire, in both roles (for socket: qnic connecting to a listening
QEMU and QEMU connecting to a listening qnic). By default the script runs
all four; all must pass.

usage: test-guest-pair.py --backend socket|mcast|dgram|l2tpv3|vde [--nic NIC] [--pair A-B ...]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

VM_TIMEOUT = 60
MACS = {"a": "52:54:00:00:09:01", "b": "52:54:00:00:09:02"}


def netdev_args(backend, side, ports, tmp):
    """The -netdev for side a or b; b is started first (it listens)."""
    pa, pb = ports
    if backend == "socket":
        return "socket,id=n0,listen=127.0.0.1:%d" % pb if side == "b" else "socket,id=n0,connect=127.0.0.1:%d" % pb
    if backend == "mcast":
        return "socket,id=n0,mcast=230.0.9.1:%d,localaddr=127.0.0.1" % pb
    mine, theirs = (pa, pb) if side == "a" else (pb, pa)
    if backend == "dgram":
        return ("dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=%d,"
                "remote.type=inet,remote.host=127.0.0.1,remote.port=%d" % (mine, theirs))
    if backend == "l2tpv3":
        return ("l2tpv3,id=n0,src=127.0.0.1,dst=127.0.0.1,udp=on,srcport=%d,dstport=%d,"
                "rxsession=0x9,txsession=0x9,counter=off" % (mine, theirs))
    if backend == "vde":
        return "vde,id=n0,sock=%s" % os.path.join(tmp, "switch")
    raise ValueError(backend)


def run_pair(ck, backend, nic, pair, tmp):
    impl_a, impl_b = pair.split("-")
    bins = dict(g.impls_all())
    label = "%s(a)-%s(b)" % (impl_a, impl_b)
    model, guest_nic, _ = g.NICS[nic]
    ports = (g.free_port(), g.free_port())
    ns = None
    switch = None
    vms = []
    try:
        if backend == "mcast":
            ns = g.Netns().__enter__()
            ns.exec(["ip", "link", "set", "lo", "multicast", "on"])
            ns.exec(["ip", "route", "add", "224.0.0.0/4", "dev", "lo"])
        if backend == "vde":
            switch = subprocess.Popen(["vde_switch", "-s", os.path.join(tmp, "switch")], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            for _ in range(50):
                if os.path.exists(os.path.join(tmp, "switch", "ctl")):
                    break
                time.sleep(0.1)
        for side, impl in (("b", impl_b), ("a", impl_a)):
            test = "pair-b" if side == "b" else "pair-a"
            append = "test=%s nic=%s timeout=%d" % (test, guest_nic, VM_TIMEOUT - 10)
            net = ["-netdev", netdev_args(backend, side, ports, tmp),
                   "-device", "%s,netdev=n0,mac=%s" % (model, MACS[side])]
            vm = g.VM(impl, bins[impl], "%s-%s-%s" % (backend, side, impl), append, net,
                      netns=ns.name if ns else None, machine=g.machine_for(impl, nic)).start()
            vms.append(vm)
            if side == "b":
                if vm.wait_for("ready", 30) is None:
                    ck.check(label, "guest B (%s) booted and serves" % impl, False)
                    return
        vm_b, vm_a = vms
        status_a = vm_a.wait(VM_TIMEOUT)
        status_b = vm_b.wait(15)
        ping = [r for r in vm_a.all_records("pair") if "received" in r]
        udp = [r for r in vm_a.all_records("pair") if "echoed" in r]
        ck.check(label, "%s: A pinged B 5/5" % backend, bool(ping) and ping[0].get("received") == "5",
                 repr(ping[:1]))
        ck.check(label, "%s: all UDP sizes echoed intact" % backend,
                 bool(udp) and udp[0].get("echoed") == udp[0].get("sent"), repr(udp[:1]))
        ck.check(label, "%s: guest A verdict pass" % backend, vm_a.guest_passed(), "status %r" % status_a)
        ck.check(label, "%s: guest B got quit and passed" % backend, vm_b.guest_passed(), "status %r" % status_b)
    finally:
        for vm in vms:
            vm.kill()
        if switch:
            switch.kill()
            switch.wait(timeout=10)
        if ns:
            ns.__exit__(None, None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True, choices=["socket", "mcast", "dgram", "l2tpv3", "vde"])
    ap.add_argument("--nic", default="virtio", choices=sorted(g.NICS))
    ap.add_argument("--pair", action="append", help="A-B, each qemu or qnic")
    args = ap.parse_args()
    g.require_common()
    if args.backend == "mcast":
        g.require_root()
    if args.backend == "vde" and not shutil.which("vde_switch"):
        g.skip("vde_switch (vde2) is not installed")
    pairs = args.pair or ["qemu-qemu", "qnic-qnic", "qnic-qemu", "qemu-qnic"]
    ck = g.Checker()
    for pair in pairs:
        with tempfile.TemporaryDirectory(prefix="qnic-guest-pair-") as tmp:
            run_pair(ck, args.backend, args.nic, pair, tmp)
    ck.finish()


if __name__ == "__main__":
    main()
