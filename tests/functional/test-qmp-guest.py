#!/usr/bin/env python3
"""QMP against a running guest under KVM, on QEMU and on qnic-vmm with the
same arguments: a client that disconnects mid-command leaves the next one a
fresh session; the guest starts with -S and must not run before `cont`;
after its DHCP lease and TFTP download (over -netdev user and
virtio-net-pci), `stop` must keep it from answering a UDP datagram, and it
must answer again after `cont`; `set_link` off on the NIC must cut the hostfwd echo and on must
bring it back; `quit` must end the VMM with status 0 after SHUTDOWN.

usage: test-qmp-guest.py
"""
import os
import socket
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

BLOB_SIZE = 256 * 1024
VM_TIMEOUT = 120


def status(qmp):
    return qmp.cmd("query-status").get("return", {})


def echo(port, payload, timeout):
    return g.udp_exchange("127.0.0.1", port, payload, timeout=timeout, tries=1)


def echo_retry(port, tag, tries=5):
    """A fresh datagram per try; true when one comes back (late answers
    to earlier tries are told apart by their payload)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(tries):
            payload = tag + os.urandom(6).hex().encode()
            s.sendto(payload, ("127.0.0.1", port))
            end = time.monotonic() + 2
            while time.monotonic() < end:
                s.settimeout(max(end - time.monotonic(), 0.01))
                try:
                    if s.recvfrom(65536)[0] == payload:
                        return True
                except socket.timeout:
                    break
        return False
    finally:
        s.close()


def run_one(ck, impl, binary, tmp, blob_crc):
    port = g.free_port()
    sock = os.path.join(tmp, "qmp-%s.sock" % impl)
    append = "test=dhcp-tftp file=blob.bin echo-port=7 nic=virtio timeout=%d" % (VM_TIMEOUT - 20)
    net = ["-S", "-qmp", "unix:%s,server=on,wait=off" % sock,
           "-netdev", "user,id=n0,tftp=%s,hostfwd=udp:127.0.0.1:%d-:7" % (tmp, port),
           "-device", "virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:12:34:56"]
    vm = g.VM(impl, binary, "qmp", append, net).start()
    qmp = None
    try:
        # a client that leaves in the middle of a command: the next one gets
        # a fresh session (greeting, negotiation again)
        first = g.Qmp(sock, negotiate=False)
        ck.check(impl, "greeting names the QMP version", "version" in first.greeting.get("QMP", {}),
                 "got %r" % first.greeting)
        first.sock.sendall(b'{"execute": "qmp_capabilities"}\n{"execute": "query-st')
        first.close()
        qmp = g.Qmp(sock, negotiate=False)
        r = qmp.cmd("query-status")
        ck.check(impl, "a new connection must negotiate again",
                 r.get("error", {}).get("class") == "CommandNotFound", "got %r" % r)
        ck.check(impl, "qmp_capabilities returns {}", qmp.cmd("qmp_capabilities") == {"return": {}})
        st = status(qmp)
        ck.check(impl, "-S: query-status prelaunch, not running",
                 st.get("status") == "prelaunch" and st.get("running") is False, "got %r" % st)
        time.sleep(1.5)
        ck.check(impl, "-S: the guest printed nothing before cont", not vm.lines,
                 "got %r" % vm.lines[:3])

        ck.check(impl, "cont returns {}", qmp.cmd("cont") == {"return": {}})
        ck.check(impl, "cont sends RESUME", qmp.event("RESUME") is not None)
        ck.check(impl, "query-status running after cont", status(qmp).get("running") is True)

        if ck.check_dhcp_tftp_echo(impl, vm, port, BLOB_SIZE, blob_crc, VM_TIMEOUT,
                                   tag=b"qnic-qmp-", quit=False) is None:
            return

        # stop: the guest cannot answer until cont
        ck.check(impl, "stop returns {}", qmp.cmd("stop") == {"return": {}})
        ck.check(impl, "stop sends STOP", qmp.event("STOP") is not None)
        st = status(qmp)
        ck.check(impl, "query-status paused after stop",
                 st.get("status") == "paused" and st.get("running") is False, "got %r" % st)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            payload = b"qnic-paused-" + os.urandom(6).hex().encode()
            s.sendto(payload, ("127.0.0.1", port))
            s.settimeout(1.5)
            try:
                early = s.recvfrom(65536)[0]
            except socket.timeout:
                early = None
            ck.check(impl, "no echo while stopped", early is None, "got %r" % early)
            qmp.cmd("cont")
            qmp.event("RESUME")
        finally:
            s.close()
        # QEMU holds or drops what arrived while stopped; both answer again
        # once running.
        ck.check(impl, "echo again after cont", echo_retry(port, b"qnic-cont-"))

        # set_link: the NIC's cable out, then in again
        r = qmp.cmd("set_link", name="nic0", up=False)
        ck.check(impl, "set_link nic0 off returns {}", r == {"return": {}}, "got %r" % r)
        got = echo(port, b"qnic-linkdown", 1.5)
        ck.check(impl, "no echo with the link down", got is None, "got %r" % got)
        qmp.cmd("set_link", name="nic0", up=True)
        ck.check(impl, "echo again with the link up", echo_retry(port, b"qnic-linkup-"))
        r = qmp.cmd("set_link", name="nosuch", up=True)
        ck.check(impl, "set_link on an unknown name: DeviceNotFound",
                 r.get("error", {}).get("class") == "DeviceNotFound", "got %r" % r)

        # quit
        ck.check(impl, "quit returns {}", qmp.cmd("quit") == {"return": {}})
        ev = qmp.event("SHUTDOWN")
        ck.check(impl, "quit sends SHUTDOWN (host-qmp-quit)",
                 ev is not None and ev.get("data", {}).get("reason") == "host-qmp-quit", "got %r" % ev)
        code = vm.wait(20)
        ck.check(impl, "the VMM exits with status 0 after quit", code == 0, "got %r" % code)
    finally:
        if qmp:
            qmp.close()
        vm.kill()


def main():
    g.require_common("qnic-vmm's QMP against a running guest")
    ck = g.Checker()
    with tempfile.TemporaryDirectory(prefix="qnic-qmp-") as d:
        blob = os.urandom(BLOB_SIZE)
        with open(os.path.join(d, "blob.bin"), "wb") as f:
            f.write(blob)
        crc = zlib.crc32(blob) & 0xffffffff
        for impl, binary in g.impls():
            run_one(ck, impl, binary, d, crc)
    ck.finish()


if __name__ == "__main__":
    main()
