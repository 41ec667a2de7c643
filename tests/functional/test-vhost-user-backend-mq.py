#!/usr/bin/env python3
"""Multiqueue through qnic-vhost-user-net: DPDK's vhost-user frontend
(net_virtio_user in dpdk-testpmd) against the daemon serving a two-queue tap
(`--netdev tap,queues=2 --device mq=on`) that lives in a network namespace
of the test's own (the daemon runs in it under `ip netns exec`). Three
frontends in turn on the same daemon: queues=2, queues=1 (no MQ: after the
reset the device must be back to one pair and the tap's second queue
detached, or the kernel would strand half the flows on a queue nobody
reads), queues=2 again. Each one:

  guest TX: testpmd txonly (--txonly-multi-flow) sends on every virtio TX
            queue; tun records which tap queue a frame was written to, a
            PACKET_FANOUT_QM group of packet sockets on the tap sorts the
            frames by it, and each socket's PACKET_STATISTICS counts them
            (drops included, so the count is exact however slowly Python
            reads). Frames written to tap queue k must equal testpmd's
            tx_qk_good_packets for every k (and 0 on tap queue 1 with one
            pair), the tap's rx_packets must grow by all of them, and sampled
            frames must be testpmd's 64-byte ones.
  guest RX: 400 frames of 400 UDP flows sent into the tap from the namespace
            (AF_PACKET) are spread over the tap's queues by the kernel's flow
            hash; testpmd rxonly's rx_qk_good_packets must all grow, add up
            to 400, and equal what the tap's mq qdisc sent on tap queue k
            (`tc -s qdisc`), i.e. tap queue k went to virtio RX queue k.

Then the daemon must exit cleanly on SIGTERM. `--ring packed` runs the same
with packed_vq=1. Prints frames per queue (docs/vhost-user-dev.md quotes
them). Exit status 77 (skip) with a reason when not root, without
/dev/net/tun, dpdk-testpmd, ip or the daemon. Processes, the namespace, the
temp dir and testpmd's runtime dirs are removed on every exit path but
SIGKILL; every wait is capped by a deadline 55 s after start (a run takes
15-20 s here).
"""
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from guestlib import log, skip
from testpmd import Testpmd

FRAME = 64
TAP = "qnicmq0"
DAEMON_MAC = "52:54:00:12:34:56"
RX_FRAMES = 400
# From <linux/if_packet.h> and <linux/sched.h> (Python has no constants).
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_FANOUT = 18
PACKET_FANOUT_QM = 5
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003
CLONE_NEWNET = 0x40000000
DEADLINE = time.monotonic() + 55
failures = []




def check(what, ok, detail=""):
    log("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""))
    if not ok:
        failures.append(what)


def left(cap):
    """Seconds to wait, capped so the whole test stays bounded."""
    return max(0.5, min(cap, DEADLINE - time.monotonic()))


def run(argv, check_rc=True, capture=False):
    log("$ " + " ".join(argv))
    r = subprocess.run(argv, timeout=15, stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None)
    if check_rc and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s" % (r.returncode, " ".join(argv)))
    return r


class Netns:
    """A network namespace of the test's own; sockets are opened in it by
    switching this thread in and out with setns()."""

    def __init__(self):
        self.name = "qnicmq-%d" % os.getpid()
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.made = False

    def create(self):
        run(["ip", "netns", "add", self.name])
        self.made = True
        self.exec(["ip", "link", "set", "lo", "up"])
        # No IPv6 in here: router solicitations and MLD reports on the tap
        # would be counted as frames the test sent.
        self.exec(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check_rc=False)
        self.exec(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], check_rc=False)

    def exec(self, argv, **kw):
        return run(["ip", "netns", "exec", self.name] + argv, **kw)

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name] + argv

    def _setns(self, fd):
        if self.libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns: " + os.strerror(e))

    def call(self, fn):
        """fn() run with this thread inside the namespace."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        ns = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            self._setns(ns)
            try:
                return fn()
            finally:
                self._setns(home)
        finally:
            os.close(ns)
            os.close(home)

    def counters(self, ifname):
        """The interface's statistics as the namespace's sysfs shows them."""
        r = self.exec(["sh", "-c", "cd /sys/class/net/%s/statistics && grep -H . *" % ifname], capture=True)
        return {k: int(v) for k, v in re.findall(r"^(\w+):(\d+)$", r.stdout.decode(), re.M)}

    def tx_queue_sent(self, ifname):
        """{tx queue: frames sent} from the mq qdisc's per-queue children
        (parent :1 is queue 0); None without tc."""
        if not shutil.which("tc"):
            return None
        r = self.exec(["tc", "-s", "qdisc", "show", "dev", ifname], capture=True, check_rc=False)
        found = re.findall(r"parent :([0-9a-f]+) .*\n\s*Sent \d+ bytes (\d+) pkt", r.stdout.decode())
        return {int(q, 16) - 1: int(n) for q, n in found}

    def delete(self):
        if self.made:
            run(["ip", "netns", "del", self.name], check_rc=False)
            self.made = False


def tap_capture(ns, nsock):
    """nsock packet sockets on the tap in one PACKET_FANOUT_QM group: a frame
    goes to socket (skb queue_mapping % nsock). tun records the queue a frame
    was written to as rx queue k, i.e. queue_mapping k + 1; an unrecorded
    frame has 0 and lands in socket 0."""
    def make():
        group = os.getpid() & 0xffff
        socks = []
        for _ in range(nsock):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((TAP, ETH_P_ALL))
            s.setsockopt(SOL_PACKET, PACKET_FANOUT, group | (PACKET_FANOUT_QM << 16))
            s.setblocking(False)
            socks.append(s)
        return socks
    return ns.call(make)


def pkt_stats(s):
    """(frames the kernel handed this socket, dropped of those); resets them."""
    v = s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    return struct.unpack("II", v)


def drain(socks, keep=0):
    """Read what is queued (bounded: the socket buffers hold a few thousand
    frames, and the counts come from PACKET_STATISTICS anyway); returns up to
    keep sample frames per socket."""
    samples = [[] for _ in socks]
    for i, s in enumerate(socks):
        for _ in range(20000):
            try:
                data, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            if addr[2] != PACKET_OUTGOING and len(samples[i]) < keep:
                samples[i].append(data)
    return samples


def ip_checksum(hdr):
    s = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def udp_frame(dst_mac, sport):
    """A 64-byte IPv4/UDP frame; the flow (and so the tap queue) varies with sport."""
    payload = bytes(18)
    udp = struct.pack("!HHHH", sport, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton("10.99.0.2"), socket.inet_aton("10.99.0.1"))
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    return dst_mac + bytes.fromhex("020000000002") + b"\x08\x00" + ip + udp


class Abort(Exception):
    pass


def on_term(signum, frame):
    # meson sends SIGTERM on timeout: leave through the finally blocks.
    sys.exit(1)


def session(ns, sock_path, socks, queues, ring):
    """One testpmd run with `queues` queue pairs against the daemon; returns
    the per-queue numbers for the summary line."""
    q = list(range(queues))
    extra = ",packed_vq=1" if ring == "packed" else ""
    tag = "[queues=%d] " % queues
    pmd = Testpmd(sock_path, "qnicvhmq%d-%d" % (os.getpid(), queues), queues, extra,
                  extra_args=["--txonly-multi-flow"], log=log, cap=left, stop_timeout=5)
    try:
        check(tag + "testpmd came up on the vhost-user port",
              pmd.wait_for(r"Checking link statuses\.\.\.\s*\n.*Done", 30))
        check(tag + "port 0 link up", pmd.wait_for(r"Port 0: (link state change event|[0-9A-F:]{17})", 5))
        if failures:
            raise Abort()
        m = re.search(r"Port 0: ([0-9A-F:]{17})", pmd.text())
        pmd_mac = bytes.fromhex(m.group(1).replace(":", "")) if m else None

        # --- guest TX: testpmd txonly on every queue -> daemon -> tap queues
        pmd.cmd("set fwd txonly", 0.1)
        pmd.cmd("set txpkts %d" % FRAME, 0.1)
        x0 = pmd.xstats()
        c0 = ns.counters(TAP)
        drain(socks)
        for s in socks:
            pkt_stats(s)
        t0 = time.monotonic()
        pmd.cmd("start", 1.5)
        elapsed = time.monotonic() - t0
        pmd.cmd("stop", 0.5)
        x1 = pmd.xstats()
        tx = [x1.get("tx_q%d_good_packets" % k, -1) - x0.get("tx_q%d_good_packets" % k, 0) for k in q]
        # testpmd's counters are final once it stopped; give the daemon a
        # moment to write what is still in the rings.
        end = time.monotonic() + left(3)
        while True:
            c1 = ns.counters(TAP)
            tap_rx = c1["rx_packets"] - c0["rx_packets"]
            if tap_rx >= sum(tx) or time.monotonic() > end:
                break
            time.sleep(0.1)
        samples = drain(socks, 4)
        st = [pkt_stats(s)[0] for s in socks]
        # Socket k + 1 holds what was written to tap queue k (see tap_capture).
        seen = [st[k + 1] for k in (0, 1)]
        log(tag + "guest TX: testpmd tx_q* %s; frames written to tap queue 0/1: %d/%d "
            "(no queue recorded: %d, other: %d); %.0f frames/s"
            % ("/".join(map(str, tx)), seen[0], seen[1], st[0], st[3], sum(seen) / elapsed))
        check(tag + "testpmd sent on every TX queue", all(n > 0 for n in tx), "%r" % tx)
        for k in q:
            check(tag + "frames from virtio TX queue %d reached tap queue %d" % (k, k), seen[k] > 0,
                  "%d" % seen[k])
        check(tag + "per-queue counts match testpmd's TX queues", seen == tx + [0] * (2 - queues),
              "tap %r, testpmd %r" % (seen, tx))
        check(tag + "the tap's rx_packets grew by all of them", tap_rx == sum(tx),
              "%d, testpmd sent %d" % (tap_rx, sum(tx)))
        check(tag + "no frame without a recorded tap queue", st[0] == 0 and st[3] == 0,
              "%d, %d" % (st[0], st[3]))
        got = [f for k in q for f in samples[k + 1][:2]]
        check(tag + "the frames are testpmd's %d-byte ones" % FRAME,
              len(got) > 0 and all(len(f) == FRAME and f[12:14] == b"\x08\x00" and
                                   (pmd_mac is None or f[6:12] == pmd_mac) for f in got),
              "%r" % [f[:16].hex() for f in got])

        # --- guest RX: many flows into the tap -> tap queues -> virtio RX queues
        pmd.cmd("set fwd rxonly", 0.1)
        pmd.cmd("start", 0.5)
        x0 = pmd.xstats()
        c0 = ns.counters(TAP)
        tq0 = ns.tx_queue_sent(TAP)
        dst = bytes.fromhex(DAEMON_MAC.replace(":", ""))

        def send_all():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            try:
                s.bind((TAP, 0))
                for i in range(RX_FRAMES):
                    s.send(udp_frame(dst, 20000 + i))
                    if i % 50 == 49:
                        time.sleep(0.02)
            finally:
                s.close()
        ns.call(send_all)
        end = time.monotonic() + left(3)
        while True:
            x1 = pmd.xstats()
            rx = [x1.get("rx_q%d_good_packets" % k, -1) - x0.get("rx_q%d_good_packets" % k, 0) for k in q]
            if sum(rx) >= RX_FRAMES or time.monotonic() > end:
                break
            time.sleep(0.1)
        time.sleep(0.2)
        x1 = pmd.xstats()
        c1 = ns.counters(TAP)
        tq1 = ns.tx_queue_sent(TAP)
        pmd.cmd("stop", 0)
        tap_tx = c1["tx_packets"] - c0["tx_packets"]
        tap_drop = c1["tx_dropped"] - c0["tx_dropped"]
        rx = [x1.get("rx_q%d_good_packets" % k, -1) - x0.get("rx_q%d_good_packets" % k, 0) for k in q]
        log(tag + "guest RX: %d frames of %d UDP flows sent into the tap (tap tx_packets %d, "
            "tx_dropped %d); testpmd rx_q* %s"
            % (RX_FRAMES, RX_FRAMES, tap_tx, tap_drop, "/".join(map(str, rx))))
        check(tag + "the tap passed every frame to its queues", tap_tx == RX_FRAMES and tap_drop == 0,
              "tx_packets %d, tx_dropped %d" % (tap_tx, tap_drop))
        for k in q:
            check(tag + "frames reached virtio RX queue %d" % k, rx[k] > 0, "%d" % rx[k])
        check(tag + "every frame sent into the tap arrived", sum(rx) == RX_FRAMES,
              "%r of %d" % (rx, RX_FRAMES))
        if tq0 is None or tq1 is None:
            log("note: tc not installed, tap queue k -> virtio RX queue k not checked")
        else:
            tq = [tq1.get(k, -1) - tq0.get(k, 0) for k in q]
            log(tag + "guest RX: the kernel queued %s frames on tap queue(s) %s"
                % ("/".join(map(str, tq)), "/".join(map(str, q))))
            check(tag + "tap queue k went to virtio RX queue k", tq == rx, "tap %r, testpmd %r" % (tq, rx))
        return tx, rx
    finally:
        pmd.stop()


def main():
    signal.signal(signal.SIGTERM, on_term)
    ring = "split"
    if len(sys.argv) == 3 and sys.argv[1] == "--ring" and sys.argv[2] in ("split", "packed"):
        ring = sys.argv[2]
    elif len(sys.argv) != 1:
        log("usage: %s [--ring split|packed]" % sys.argv[0])
        sys.exit(2)
    daemon = os.environ.get("QNIC_VHOST_USER_NET", "")
    if os.geteuid() != 0:
        skip("needs root (network namespace, tap)")
    if not os.path.exists("/dev/net/tun"):
        skip("/dev/net/tun is missing")
    if not shutil.which("dpdk-testpmd"):
        skip("dpdk-testpmd not installed (Debian dpdk-dev)")
    if not shutil.which("ip"):
        skip("ip (iproute2) not installed")
    if not daemon or not os.path.exists(daemon):
        skip("QNIC_VHOST_USER_NET not set or missing (%r)" % daemon)

    tmp = tempfile.mkdtemp(prefix="qnic-vhub-mq-")
    sock_path = os.path.join(tmp, "vhu.sock")
    ns = Netns()
    d = None
    socks = []
    summary = []
    try:
        ns.create()
        argv = ns.argv([daemon, "--socket", sock_path,
                        "--netdev", "tap,id=t0,ifname=%s,queues=2,script=no,downscript=no" % TAP,
                        "--device", "mac=%s,mq=on" % DAEMON_MAC])
        log("$ " + " ".join(argv))
        # `ip netns exec` execs the daemon: d.pid is the daemon itself.
        d = subprocess.Popen(argv, start_new_session=True)
        end = time.monotonic() + left(10)
        while not os.path.exists(sock_path) and time.monotonic() < end and d.poll() is None:
            time.sleep(0.05)
        check("daemon listens on its socket", os.path.exists(sock_path))
        if failures:
            raise Abort()
        ns.exec(["ip", "link", "set", TAP, "up"])
        socks = tap_capture(ns, 4)

        # Two pairs; then a frontend without MQ on the same daemon (after
        # the reset the device is back to one pair, and the tap's second
        # queue must be detached or the kernel would strand half the flows
        # on a queue nobody reads); then two pairs again (re-attached).
        for queues in (2, 1, 2):
            t_start = time.monotonic()
            tx, rx = session(ns, sock_path, socks, queues, ring)
            log("[queues=%d] session took %.1f s" % (queues, time.monotonic() - t_start))
            summary.append("queues=%d: TX %s, RX %s" % (queues, "/".join(map(str, tx)), "/".join(map(str, rx))))
            time.sleep(0.5)
            check("daemon survives the frontend leaving", d.poll() is None)
            if failures:
                raise Abort()

        d.send_signal(signal.SIGTERM)
        try:
            rc = d.wait(timeout=left(10))
        except subprocess.TimeoutExpired:
            rc = None
        check("daemon exits 0 on SIGTERM", rc == 0, "status %r" % rc)
        check("daemon removed its socket", not os.path.exists(sock_path))
    except Abort:
        log("stopping after the first failures")
    finally:
        for s in socks:
            s.close()
        if d and d.poll() is None:
            os.killpg(d.pid, signal.SIGKILL)
            d.wait()
        ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)
    log("frames per queue (%s rings): %s" % (ring, "; ".join(summary)))
    if failures:
        log("FAILED: " + ", ".join(failures))
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    main()
