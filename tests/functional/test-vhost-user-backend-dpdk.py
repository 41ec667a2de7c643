#!/usr/bin/env python3
"""qnic-vhost-user-net against DPDK's vhost-user frontend (net_virtio_user in
dpdk-testpmd). The daemon serves `-netdev socket,udp=` on loopback; the test
holds the other end of that UDP link:

  txonly: testpmd's generated frames must arrive as UDP datagrams, every one
          the configured size (64 bytes);
  rxonly: frames the test sends must show up in testpmd's RX-packets.

Then the daemon must exit cleanly on SIGTERM and remove its socket.
Prints frames/s through the daemon (docs/vhost-user-dev.md quotes it).
Exit status 77 (skip) with a reason when dpdk-testpmd or the daemon is missing.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import guestlib as g
from guestlib import log
from testpmd import Testpmd

FRAME = 64
failures = []



def check(what, ok, detail=""):
    log("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""))
    if not ok:
        failures.append(what)


def main():
    daemon = os.environ.get("QNIC_VHOST_USER_NET", "")
    if not shutil.which("dpdk-testpmd"):
        g.skip("dpdk-testpmd not installed (Debian dpdk-dev)")
    if not daemon or not os.path.exists(daemon):
        g.skip("QNIC_VHOST_USER_NET not set or missing (%r)" % daemon)
    tmp = tempfile.mkdtemp(prefix="qnic-vhub-dpdk-")
    sock_path = os.path.join(tmp, "vhu.sock")
    p_test, p_daemon = g.free_port(), g.free_port()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", p_test))
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    argv = [daemon, "--socket", sock_path,
            "--netdev", "socket,id=n0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d" % (p_test, p_daemon),
            "--device", "mac=52:54:00:12:34:56"]
    log("$ " + " ".join(argv))
    d = subprocess.Popen(argv, start_new_session=True)
    pmd = None
    try:
        end = time.monotonic() + 10
        while not os.path.exists(sock_path) and time.monotonic() < end:
            time.sleep(0.05)
        check("daemon listens on its socket", os.path.exists(sock_path))
        pmd = Testpmd(sock_path, "qnicvhb%d" % os.getpid(), log=log)
        check("testpmd came up on the vhost-user port",
              pmd.wait_for(r"Checking link statuses\.\.\.\s*\n.*Done", 60))
        check("port 0 link up", pmd.wait_for(r"Port 0: (link state change event|[0-9A-F:]{17})", 10))

        # --- txonly: testpmd -> daemon -> UDP socket
        pmd.cmd("set fwd txonly")
        pmd.cmd("set txpkts %d" % FRAME)
        got, sizes = 0, set()
        pmd.cmd("start", 0)
        t0 = time.monotonic()
        udp.settimeout(0.5)
        while time.monotonic() - t0 < 3.0:
            try:
                data = udp.recv(65536)
            except socket.timeout:
                continue
            got += 1
            sizes.add(len(data))
        elapsed = time.monotonic() - t0
        pmd.cmd("stop", 1.0)
        log("txonly: %d frames in %.1f s through the daemon into a UDP socket: %.0f frames/s"
            % (got, elapsed, got / elapsed))
        check("txonly frames arrive at the UDP peer", got >= 100, "got %d" % got)
        check("every frame is %d bytes" % FRAME, sizes == {FRAME}, "sizes %r" % sorted(sizes)[:5])
        udp.settimeout(0.2)
        try:
            while True:
                udp.recv(65536)
        except socket.timeout:
            pass

        # --- rxonly: UDP socket -> daemon -> testpmd
        pmd.cmd("set fwd rxonly")
        pmd.cmd("start", 1.0)
        rx0, _ = pmd.stats()
        frame = bytes.fromhex("525400123456" "020000000001" "0800") + bytes(range(46))
        n = 200
        for i in range(n):
            udp.sendto(frame, ("127.0.0.1", p_daemon))
            if i % 50 == 49:
                time.sleep(0.02)
        time.sleep(1.0)
        rx1, _ = pmd.stats()
        pmd.cmd("stop", 0.5)
        log("rxonly: RX-packets %d -> %d after %d frames" % (rx0, rx1, n))
        check("frames sent to the daemon arrive in testpmd", rx1 - rx0 == n,
              "RX-packets went from %d to %d" % (rx0, rx1))
        pmd.stop()
        pmd = None
        time.sleep(0.5)
        check("daemon survives the frontend leaving", d.poll() is None)
        d.send_signal(signal.SIGTERM)
        try:
            rc = d.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        check("daemon exits 0 on SIGTERM", rc == 0, "status %r" % rc)
        check("daemon removed its socket", not os.path.exists(sock_path))
    finally:
        if pmd:
            pmd.stop()
        if d.poll() is None:
            os.killpg(d.pid, signal.SIGKILL)
            d.wait()
        udp.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        log("FAILED: " + ", ".join(failures))
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    main()
