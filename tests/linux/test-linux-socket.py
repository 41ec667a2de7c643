#!/usr/bin/env python3
"""Linux's virtio_net against qnic's virtio-net model on a socket backend:
the Linux test guest (tests/linux/init) boots under QEMU (TCG without
/dev/kvm) with virtio-net-pci on -netdev vhost-user, and
qnic-vhost-user-net serves it -netdev socket to a peer in this test
(tests/linux/socketpeer.py on 127.0.0.1: a host at 192.168.79.1 answering
ARP and ICMP echo, fragmented both ways, in QEMU's socket wire format).
The reference is QEMU's own -netdev socket to the same peer, with the
same plan: a static address, carrier up, a ping, an 8 KiB ping (both
directions fragment) and the guest's frame counters, which must match
what the peer counted on its side of the socket.

Variants: tcp (connect=, 4-byte length per frame), udp (udp= and
localaddr=, one frame per datagram). No root needed: only loopback.

usage: test-linux-socket.py --variant tcp|udp [--backends qemu-socket,qnic-vhost-user]
"""
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linuxguest as lg  # noqa: E402
from linuxguest import g  # noqa: E402
from socketpeer import SocketPeer  # noqa: E402

VM_TIMEOUT = 300
PEER, GUEST = "192.168.79.1", "192.168.79.2/24"
PEER_MAC = bytes.fromhex("020000790001")
MAC = "52:54:00:12:34:56"
PLAN = ["addr:" + GUEST, "link", "ping:" + PEER, "ping:%s:8192" % PEER, "stats"]
BACKENDS = ("qemu-socket", "qnic-vhost-user")


def free_udp_port():
    """A loopback UDP port nobody holds now, for the netdev's localaddr."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_run(ck, impl, vm, peer, nsteps):
    res = lg.check_common(ck, impl, vm, {"ring": "split"}, nsteps)
    by_step = {}
    for n in sorted(res):
        by_step.setdefault(res[n]["step"], []).append(res[n])
    big = [p for p in by_step.get("ping", []) if p.get("size") == "8192"]
    ck.check(impl, "8 KiB ping answered 3/3", len(big) == 1 and big[0].get("recv") == "3", str(big))
    stats = (by_step.get("stats") or [{}])[0]
    counted = peer.last()
    g.log("[%s] guest rx=%s tx=%s; peer rx=%d tx=%d bad=%d" % (
        impl, stats.get("rx_packets"), stats.get("tx_packets"), counted["rx"], counted["tx"], counted["bad"]))
    # The peer only sends replies, and every reply was awaited by a step
    # before the counters were read: the guest must have received exactly
    # what the peer sent. The guest may send more after reading its
    # counters (IPv6 router solicitations on their timer), so the peer
    # must have received at least what the guest had sent.
    grx, gtx = int(stats.get("rx_packets", "-1")), int(stats.get("tx_packets", "-1"))
    ck.check(impl, "guest received every frame the peer sent (%d)" % counted["tx"], grx == counted["tx"],
             "guest rx_packets %d" % grx)
    ck.check(impl, "peer received every frame the guest sent (%d)" % gtx, 0 < gtx <= counted["rx"],
             "peer rx %d" % counted["rx"])
    # 3 small echo replies and 3 of 8 KiB in 6 fragments each (MTU 1500):
    # fewer means a reply was not fragmented or not sent.
    ck.check(impl, "peer sent >= 21 frames (8 KiB replies fragmented)", counted["tx"] >= 3 + 3 * 6,
             str(counted))
    ck.check(impl, "no runt frame on the socket", counted["bad"] == 0, str(counted))
    return res


def main():
    args, backends = lg.parse_args(("tcp", "udp"), BACKENDS)
    daemon, vmlinuz, initrd = lg.prepare(backends)

    append = "%s qnic.timeout=60 qnic.plan=%s" % (lg.BASE_APPEND, ",".join(PLAN))
    device = "virtio-net-pci,netdev=n0,mac=" + MAC
    ck = g.Checker()
    results, times = {}, {}
    peer = SocketPeer(args.variant, PEER_MAC, PEER, log=g.log)
    try:
        with tempfile.TemporaryDirectory(prefix="qnic-linux-socket-") as d:
            for be in backends:
                impl = "%s/%s" % (be, args.variant)
                if args.variant == "tcp":
                    opts = "connect=127.0.0.1:%d" % peer.port
                else:
                    opts = "udp=127.0.0.1:%d,localaddr=127.0.0.1:%d" % (peer.port, free_udp_port())
                    peer.new_run()
                dproc = vm = None
                try:
                    if be == "qemu-socket":
                        net = ["-netdev", "socket,id=n0," + opts, "-device", device]
                        shared = False
                    else:
                        sock = os.path.join(d, "vhu.sock")
                        dproc = lg.Daemon(daemon, sock, "socket,id=s0," + opts)
                        if not ck.check(impl, "qnic-vhost-user-net listens", dproc.listening):
                            continue
                        net = ["-chardev", "socket,id=c0,path=%s" % sock,
                               "-netdev", "vhost-user,id=n0,chardev=c0", "-device", device]
                        shared = True
                    vm, times[be] = lg.run_vm(ck, impl, "linux/" + be,
                                              lg.qemu_argv(vmlinuz, initrd, append, net, shared_mem=shared),
                                              dproc, VM_TIMEOUT)
                    results[be] = check_run(ck, impl, vm, peer, len(PLAN))
                finally:
                    lg.stop(vm, dproc)
    finally:
        peer.stop()

    lg.compare(ck, results, backends)
    lg.log_step_times(results, times, backends, "socket-" + args.variant)
    ck.finish()


if __name__ == "__main__":
    main()
