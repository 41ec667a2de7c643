#!/usr/bin/env python3
"""tap end to end: the test creates a network namespace with a tap device
(192.168.77.1/24) and runs the VM inside it attached to that tap. The guest
(192.168.77.2) pings the kernel five times, then serves ICMP and UDP echo;
the host side runs `ping -c 5` from the namespace and must get five replies,
then stops the guest with a "quit" datagram. Runs on QEMU and on qnic.

usage: test-guest-tap.py --nic virtio|virtio-legacy|virtio-packed|e1000|rtl8139|virtio-mmio
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

VM_TIMEOUT = 60
QUIT_PY = ("import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);"
           "s.sendto(b'quit',('192.168.77.2',7));print(s.recvfrom(100)[0])")


def run_one(ck, impl, binary, nic):
    model, guest_nic, _ = g.NICS[nic]
    with g.Netns() as ns:
        ns.exec(["ip", "tuntap", "add", "dev", "qtap0", "mode", "tap"])
        ns.exec(["ip", "addr", "add", "192.168.77.1/24", "dev", "qtap0"])
        ns.exec(["ip", "link", "set", "qtap0", "up"])
        append = ("test=ping ip=192.168.77.2 dst=192.168.77.1 count=5 echo-port=7 nic=%s timeout=%d"
                  % (guest_nic, VM_TIMEOUT - 10))
        net = ["-netdev", "tap,id=n0,ifname=qtap0,script=no,downscript=no",
               "-device", "%s,netdev=n0,mac=52:54:00:12:34:57" % model]
        vm = g.VM(impl, binary, "tap-" + nic, append, net, netns=ns.name, machine=g.machine_for(impl, nic)).start()
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
        finally:
            vm.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nic", required=True, choices=sorted(g.NICS))
    args = ap.parse_args()
    g.require_common()
    g.require_root()
    g.require_tun()
    ck = g.Checker()
    for impl, binary in g.impls():
        run_one(ck, impl, binary, args.nic)
    ck.finish()


if __name__ == "__main__":
    main()
