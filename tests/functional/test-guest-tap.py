#!/usr/bin/env python3
"""tap end to end: the test creates a network namespace with a tap device
(192.168.77.1/24) and runs the VM inside it attached to that tap. The guest
(192.168.77.2) pings the kernel five times, then serves ICMP and UDP echo;
the host side runs `ping -c 5` from the namespace and must get five replies,
then stops the guest with a "quit" datagram. Runs on QEMU and on qnic.

Without KVM the virtio NICs run on QEMU (TCG) twice: with QEMU's tap (the
reference) and with the NIC on -netdev vhost-user to qnic-vhost-user-net
serving the tap ("vhu": qnic's virtio-net model and tap backend, the guest
on INTx, guestlib.vhost_user_irq()). e1000, rtl8139 and virtio-mmio have
no vhost-user path and skip.

usage: test-guest-tap.py --nic virtio|virtio-legacy|virtio-packed|e1000|rtl8139|virtio-mmio
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

VM_TIMEOUT = 60
QUIT_PY = ("import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);"
           "s.sendto(b'quit',('192.168.77.2',7));print(s.recvfrom(100)[0])")
VHOST_USER_NICS = ("virtio", "virtio-legacy", "virtio-packed")


def run_one(ck, impl, binary, nic, tmp):
    model, guest_nic, _ = g.NICS[nic]
    with g.Netns() as ns:
        ns.exec(["ip", "tuntap", "add", "dev", "qtap0", "mode", "tap"])
        ns.exec(["ip", "addr", "add", "192.168.77.1/24", "dev", "qtap0"])
        ns.exec(["ip", "link", "set", "qtap0", "up"])
        append = ("test=ping ip=192.168.77.2 dst=192.168.77.1 count=5 echo-port=7 nic=%s timeout=%d"
                  % (guest_nic, VM_TIMEOUT - 10))
        netdev = "tap,id=n0,ifname=qtap0,script=no,downscript=no"
        device = "%s,netdev=n0,mac=52:54:00:12:34:57" % model
        daemon = None
        if impl == "vhu":
            daemon = g.VhostUserDaemon(os.path.join(tmp, "vhu.sock"), netdev, netns=ns.name)
            ck.check(impl, "qnic-vhost-user-net listens", daemon.start())
            append += " irq=" + g.vhost_user_irq()
            vm = g.VM("qemu", binary, "tap-vhu-" + nic, append, g.vhost_user_vm_args(daemon.sock, device),
                      netns=ns.name)
        else:
            vm = g.VM(impl, binary, "tap-" + nic, append, ["-netdev", netdev, "-device", device], netns=ns.name,
                      machine=g.machine_for(impl, nic))
        vm.start()
        try:
            ready = vm.wait_for("ready", VM_TIMEOUT)
            pings = [r for r in vm.all_records("ping") if "received" in r]
            got = pings[0].get("received") if pings else None
            ck.check(impl, "guest pinged the namespace kernel 5/5", got == "5", "received=%r" % got)
            if ready is not None:
                r = ns.exec(["ping", "-c", "5", "-i", "0.2", "-W", "2", "192.168.77.2"], check=False,
                            capture=True)
                out = r.stdout.decode(errors="replace")
                g.log(out)
                ck.check(impl, "ping -c 5 from the namespace gets 5 replies",
                         r.returncode == 0 and " 5 received" in out, "rc=%d" % r.returncode)
                r = ns.exec(["python3", "-c", QUIT_PY], check=False, capture=True)
                ck.check(impl, "UDP quit datagram echoed", b"quit" in r.stdout, r.stdout.decode(errors="replace"))
            else:
                ck.check(impl, "guest reached the echo phase", False)
            status = vm.wait(20)
            ck.check_nic(impl, vm, nic)
            ck.check(impl, "guest verdict pass (exit status 1)", vm.guest_passed(), "status %r" % status)
            if daemon:
                rc = daemon.wait(10)
                ck.check(impl, "qnic-vhost-user-net exits 0 after its frontend left", rc == 0, "status %r" % rc)
        finally:
            vm.kill()
            if daemon:
                daemon.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nic", required=True, choices=sorted(g.NICS))
    args = ap.parse_args()
    g.require_qemu()
    g.require_root()
    g.require_tun()
    impls = g.impls()
    if g.kvm_problem() and args.nic in VHOST_USER_NICS:
        qemu = dict(g.impls_all())["qemu"]
        impls = [("qemu", qemu), ("vhu", qemu)]
        g.vhost_user_net_binary()
    else:
        g.require_common("qnic's e1000, rtl8139 and virtio-mmio on tap inside qnic-vmm "
                         "(virtio-net runs under TCG through qnic-vhost-user-net)")
    ck = g.Checker()
    with tempfile.TemporaryDirectory(prefix="qnic-guest-tap-") as tmp:
        for impl, binary in impls:
            run_one(ck, impl, binary, args.nic, tmp)
    ck.finish()


if __name__ == "__main__":
    main()
