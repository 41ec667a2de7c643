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

A third kind of side, vhu, is QEMU's guest whose virtio-net runs on
`-netdev vhost-user` to qnic-vhost-user-net, which serves the side's
netdev: qnic's virtio-net model and qnic's backend (socket, dgram,
l2tpv3, vde) on the wire against QEMU's. It needs no KVM (QEMU falls back
to TCG, the guest uses INTx there: guestlib.vhost_user_irq()), so without
KVM the virtio NICs run qemu-qemu (the reference), vhu-vhu, vhu-qemu and
qemu-vhu instead; e1000, rtl8139 and virtio-mmio have no vhost-user path
and skip.

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


VHOST_USER_NICS = ("virtio", "virtio-legacy", "virtio-packed")


def start_side(backend, side, impl, nic, ports, tmp, ns, daemons):
    """Guest `side` (a or b) under impl (qemu, qnic or vhu)."""
    bins = dict(g.impls_all())
    model, guest_nic, _ = g.NICS[nic]
    test = "pair-b" if side == "b" else "pair-a"
    append = "test=%s nic=%s timeout=%d" % (test, guest_nic, VM_TIMEOUT - 10)
    device = "%s,netdev=n0,mac=%s" % (model, MACS[side])
    netdev = netdev_args(backend, side, ports, tmp)
    netns = ns.name if ns else None
    if impl != "vhu":
        return g.VM(impl, bins[impl], "%s-%s-%s" % (backend, side, impl), append, ["-netdev", netdev, "-device", device],
                    netns=netns, machine=g.machine_for(impl, nic))
    sock = os.path.join(tmp, "vhu-%s.sock" % side)
    daemon = g.VhostUserDaemon(sock, netdev, netns=netns, name="%s-%s-daemon" % (backend, side))
    daemons.append(daemon)
    if not daemon.start():
        raise RuntimeError("qnic-vhost-user-net did not listen on %s" % sock)
    append += " irq=" + g.vhost_user_irq()
    return g.VM("qemu", bins["qemu"], "%s-%s-vhu" % (backend, side), append, g.vhost_user_vm_args(sock, device),
                netns=netns)


def run_pair(ck, backend, nic, pair, tmp):
    impl_a, impl_b = pair.split("-")
    label = "%s(a)-%s(b)" % (impl_a, impl_b)
    ports = (g.free_port(), g.free_port())
    ns = None
    switch = None
    vms = []
    daemons = []
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
            vm = start_side(backend, side, impl, nic, ports, tmp, ns, daemons).start()
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
        for d in daemons:
            rc = d.wait(10)
            ck.check(label, "%s: %s exits 0 after its frontend left (--once)" % (backend, d.name), rc == 0,
                     "status %r" % rc)
    finally:
        for vm in vms:
            vm.kill()
        for d in daemons:
            d.kill()
        if switch:
            switch.kill()
            switch.wait(timeout=10)
        if ns:
            ns.__exit__(None, None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True, choices=["socket", "mcast", "dgram", "l2tpv3", "vde"])
    ap.add_argument("--nic", default="virtio", choices=sorted(g.NICS))
    ap.add_argument("--pair", action="append", help="A-B, each qemu, qnic or vhu (qemu on qnic-vhost-user-net)")
    args = ap.parse_args()
    pairs = args.pair
    if not pairs:
        pairs = ["qemu-qemu", "qnic-qnic", "qnic-qemu", "qemu-qnic"]
        if g.kvm_problem() and args.nic in VHOST_USER_NICS:
            pairs = ["qemu-qemu", "vhu-vhu", "vhu-qemu", "qemu-vhu"]
    sides = set("-".join(pairs).split("-"))
    g.require_qemu()
    if "qnic" in sides:
        g.require_common("qnic's e1000, rtl8139 and virtio-mmio on peer netdevs inside qnic-vmm "
                         "(virtio-net runs under TCG through qnic-vhost-user-net)")
    if "vhu" in sides:
        if args.nic not in VHOST_USER_NICS:
            ap.error("vhu sides need a virtio-net-pci NIC (%s)" % ", ".join(VHOST_USER_NICS))
        g.vhost_user_net_binary()
    if args.backend == "mcast":
        g.require_root()
    if args.backend == "vde" and not shutil.which("vde_switch"):
        g.skip("vde_switch (vde2) is not installed")
    ck = g.Checker()
    for pair in pairs:
        with tempfile.TemporaryDirectory(prefix="qnic-guest-pair-") as tmp:
            run_pair(ck, args.backend, args.nic, pair, tmp)
    ck.finish()


if __name__ == "__main__":
    main()
