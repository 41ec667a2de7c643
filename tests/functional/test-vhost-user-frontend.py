#!/usr/bin/env python3
"""The vhost-user frontend end to end: the test guest's virtio-net runs on
`-netdev vhost-user` whose backend is another process, qnic's own
qnic-vhost-user-net serving `-netdev user` (libslirp) as a vhost-user-net
device. The guest takes a DHCP lease, downloads a 4 MiB random file by
TFTP (size and CRC32 compared with zlib's) and echoes a host datagram that
reaches it through the backend's hostfwd rule: every frame crosses the
shared-memory rings between the VMM and the backend. The same command line
runs under QEMU (the reference frontend) and qnic-vmm; both must pass.
A second run per VMM kills the backend mid-way and starts a new one on the
same socket (`server=on` chardev) to check that the link comes back.

qnic-vmm runs with `-d vhost` (QEMU has no such log item; it is the one
argument only qnic gets): when a ring goes back from the backend qnic logs
how the ring's kicks and calls travelled and how many it relayed. With
MSI-X (the default) both must have bypassed qnic for the whole transfer:
kick=ioeventfd (the backend reads the guest's ioeventfd), call=irqfd (the
backend signals the KVM irqfd of the vector), 0 kicks and 0 calls relayed
by qnic's main loop. With `--irq intx` the guest uses INTx: kicks still
bypass qnic, calls must be relayed (qnic sets the ISR and the line).

usage: test-vhost-user-frontend.py [--nic virtio|virtio-legacy|virtio-packed]
                                   [--irq msix|intx] [--no-reconnect]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

BLOB_SIZE = 4 * 1024 * 1024
VM_TIMEOUT = 90


class Backend:
    """qnic-vhost-user-net listening on a socket, in its own process group."""

    def __init__(self, binary, sock, netdev, logpath):
        self.argv = [binary, "--socket", sock, "--netdev", netdev]
        self.sock = sock
        self.log = open(logpath, "ab")
        self.proc = None

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        g.log("[backend] $ %s" % " ".join(self.argv))
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        for _ in range(100):
            if os.path.exists(self.sock):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("qnic-vhost-user-net did not create %s" % self.sock)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc = None

    def close(self):
        self.kill()
        self.log.close()


def vm_net_args(sock, model, chardev_extra=""):
    return g.vhost_user_vm_args(sock, "%s,netdev=n0,mac=52:54:00:12:34:56" % model, chardev_extra)


def vhost_ring_stats(vm):
    """{queue: {kick:, call:, kicks_relayed:, ...}} from qnic's `-d vhost`
    lines, the last hand-over of each ring."""
    out = {}
    for line in vm.err_lines:
        m = re.search(r"vhost: \S+: queue (\d+) stopped: (.*)$", line)
        if m:
            out[int(m.group(1))] = dict(kv.split("=", 1) for kv in m.group(2).split())
    return out


def check_fast_path(ck, impl, vm, irq):
    stats = vhost_ring_stats(vm)
    want_call = "irqfd" if irq == "msix" else "relayed"
    for q in (0, 1):
        st = stats.get(q)
        ck.check(impl, "-d vhost reports ring %d's hand-over" % q, st is not None, "got %r" % stats)
        if not st:
            continue
        ck.check(impl, "ring %d: kicks reach the backend on the guest's ioeventfd" % q,
                 st.get("kick") == "ioeventfd" and st.get("kicks_relayed") == "0", "got %r" % st)
        if irq == "msix":
            ck.check(impl, "ring %d: calls go to the KVM irqfd, none relayed by qnic" % q,
                     st.get("call") == "irqfd" and st.get("calls_relayed") == "0", "got %r" % st)
        else:
            ck.check(impl, "ring %d: INTx calls relayed by qnic" % q, st.get("call") == want_call,
                     "got %r" % st)
    if irq == "intx":
        ck.check(impl, "INTx: qnic relayed calls during the transfer",
                 sum(int(st.get("calls_relayed", "0")) for st in stats.values()) > 0, "got %r" % stats)


def run_one(ck, impl, binary, nic, tftpdir, blob_crc, bebin, tmp, irq="msix"):
    model, guest_nic, _ = g.NICS[nic]
    port = g.free_port()
    sock = os.path.join(tmp, "vhu-%s.sock" % impl)
    be = Backend(bebin, sock, "user,id=u0,tftp=%s,hostfwd=udp:127.0.0.1:%d-:7" % (tftpdir, port),
                 os.path.join(tmp, "backend-%s.log" % impl)).start()
    append = "test=dhcp-tftp file=blob.bin echo-port=7 nic=%s irq=%s timeout=%d" % (
        guest_nic, irq, VM_TIMEOUT - 20)
    extra = ["-d", "vhost"] if impl == "qnic" else []
    vm = g.VM(impl, binary, "vhost-user-" + nic, append, vm_net_args(sock, model) + extra).start()
    try:
        ck.check_dhcp_tftp_echo(impl, vm, port, BLOB_SIZE, blob_crc, VM_TIMEOUT,
                                via=" through the vhost-user backend", tag=b"qnic-vhost-user-")
        status = vm.wait(30)
        ck.check_nic(impl, vm, nic)
        ck.check(impl, "guest verdict pass (exit status 1)", vm.guest_passed(), "status %r" % status)
        nicrec = vm.record("nic") or {}
        ck.check(impl, "guest uses irq=%s" % irq, nicrec.get("irq") == irq, "got %r" % nicrec.get("irq"))
        if impl == "qnic":
            check_fast_path(ck, impl, vm, irq)
    finally:
        vm.kill()
        be.close()


def run_reconnect(ck, impl, binary, nic, tftpdir, bebin, tmp):
    """Kill the backend while the guest runs, start a new one: with a
    listening chardev (server=on) the VMM takes the new backend, and the
    guest's UDP echo works again through it."""
    model, guest_nic, _ = g.NICS[nic]
    port = g.free_port()
    sock = os.path.join(tmp, "vhu-rc-%s.sock" % impl)
    netdev = "user,id=u0,tftp=%s,hostfwd=udp:127.0.0.1:%d-:7" % (tftpdir, port)
    belog = os.path.join(tmp, "backend-rc-%s.log" % impl)
    append = "test=dhcp-tftp file=small.bin echo-port=7 nic=%s timeout=%d" % (guest_nic, VM_TIMEOUT - 20)
    vm = g.VM(impl, binary, "vhost-user-reconnect-" + nic, append,
              vm_net_args(sock, model, ",server=on,wait=off")).start()
    be = None
    try:
        # the VMM listens: wait for its socket, then connect the backend
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        be = Backend(bebin, sock, netdev, belog)
        be.argv.insert(1, "--client")
        be.start = _start_client.__get__(be)
        be.start()
        ready = vm.wait_for("ready", VM_TIMEOUT)
        ck.check(impl, "reconnect: guest up behind the first backend", ready is not None)
        if ready is not None:
            payload = b"first-" + os.urandom(4).hex().encode()
            ck.check(impl, "reconnect: echo through the first backend",
                     g.udp_exchange("127.0.0.1", port, payload) == payload)
            be.kill()
            time.sleep(1.0)
            be.start()
            echo = None
            deadline = time.monotonic() + 20
            payload = b"second-" + os.urandom(4).hex().encode()
            while echo != payload and time.monotonic() < deadline:
                echo = g.udp_exchange("127.0.0.1", port, payload, timeout=1, tries=1)
            ck.check(impl, "reconnect: echo through the second backend", echo == payload,
                     "got %r" % echo)
            g.udp_exchange("127.0.0.1", port, b"quit", timeout=2, tries=2)
        vm.wait(30)
    finally:
        vm.kill()
        if be:
            be.close()


def _start_client(self):
    g.log("[backend] $ %s" % " ".join(self.argv))
    self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                 stderr=self.log, start_new_session=True)
    return self


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nic", default="virtio", choices=["virtio", "virtio-legacy", "virtio-packed"])
    ap.add_argument("--irq", default="msix", choices=["msix", "intx"])
    ap.add_argument("--no-reconnect", action="store_true")
    args = ap.parse_args()
    # Without KVM only QEMU's frontend could run, and qnic-vhost-user-net
    # behind it is what vhost-user-backend-qemu-* checks under TCG.
    g.require_common("qnic-vmm's vhost-user frontend")
    bebin = g.vhost_user_net_binary()
    ck = g.Checker()
    with tempfile.TemporaryDirectory(prefix="qnic-vhu-fe-") as d:
        blob = os.urandom(BLOB_SIZE)
        with open(os.path.join(d, "blob.bin"), "wb") as f:
            f.write(blob)
        with open(os.path.join(d, "small.bin"), "wb") as f:
            f.write(os.urandom(4096))
        crc = zlib.crc32(blob) & 0xffffffff
        for impl, binary in g.impls():
            run_one(ck, impl, binary, args.nic, d, crc, bebin, d, args.irq)
            if not args.no_reconnect:
                run_reconnect(ck, impl, binary, args.nic, d, bebin, d)
    ck.finish()


if __name__ == "__main__":
    main()
