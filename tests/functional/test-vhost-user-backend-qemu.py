#!/usr/bin/env python3
"""qnic-vhost-user-net behind QEMU's vhost-user frontend, with a real guest
driver: the test guest (tests/guest) boots under QEMU with
`-netdev vhost-user` on a shared memfd RAM backend, and the daemon serves a
`-netdev user,tftp=DIR,hostfwd=...` to it. The guest takes a DHCP lease
from libslirp, downloads a 4 MiB random file by TFTP and reports its size
and CRC32 (compared with zlib's), then echoes a UDP datagram sent through
the hostfwd rule, exactly as test-guest-user.py checks qnic's own NICs. The
guest's frames cross qnic's virtio-net model (in the daemon) over shared
rings, the NIC model is QEMU's.

Needs no KVM: QEMU falls back to TCG (guestlib.qemu_accel()), where the
test guest boots in under a second; there the guest uses INTx, because
QEMU 7.2 under TCG crashes when a guest enables MSI-X on a vhost-user
virtio-net (guestlib.vhost_user_irq()).

usage: test-vhost-user-backend-qemu.py --nic virtio|virtio-packed|virtio-legacy
"""
import argparse
import os
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

BLOB_SIZE = 4 * 1024 * 1024
VM_TIMEOUT = 90
NICS = ("virtio", "virtio-packed", "virtio-legacy")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nic", required=True, choices=NICS)
    args = ap.parse_args()
    g.vhost_user_net_binary()
    g.require_qemu()
    qemu = os.environ.get("QEMU_BINARY", "qemu-system-x86_64")
    ck = g.Checker()
    impl = "qemu+qnic-vhost-user-net"
    with tempfile.TemporaryDirectory(prefix="qnic-vhub-qemu-") as d:
        blob = os.urandom(BLOB_SIZE)
        with open(os.path.join(d, "blob.bin"), "wb") as f:
            f.write(blob)
        crc = zlib.crc32(blob) & 0xffffffff
        sock = os.path.join(d, "vhu.sock")
        port = g.free_port()
        daemon = g.VhostUserDaemon(sock, "user,id=u0,tftp=%s,hostfwd=udp:127.0.0.1:%d-:7" % (d, port))
        vm = None
        try:
            ck.check(impl, "daemon listens", daemon.start())
            model, guest_nic, _ = g.NICS[args.nic]
            irq = g.vhost_user_irq()
            append = "test=dhcp-tftp file=blob.bin echo-port=7 nic=%s irq=%s timeout=%d" % (
                guest_nic, irq, VM_TIMEOUT - 20)
            net = g.vhost_user_vm_args(sock, "%s,netdev=n0,mac=52:54:00:12:34:56" % model)
            vm = g.VM("qemu", qemu, "vhost-user-" + args.nic, append, net).start()
            ck.check_dhcp_tftp_echo(impl, vm, port, BLOB_SIZE, crc, VM_TIMEOUT,
                                    via=" through qnic-vhost-user-net", tag=b"qnic-vhost-user-")
            status = vm.wait(30)
            ck.check_nic(impl, vm, args.nic)
            nicrec = vm.record("nic") or {}
            ck.check(impl, "guest uses irq=%s (QEMU -accel %s)" % (irq, vm.accel), nicrec.get("irq") == irq,
                     "got %r" % nicrec.get("irq"))
            cpl = (vm.record("cpu") or {}).get("cpl")
            ck.check(impl, "guest ran at CPL 3 (docs/guest.md, Speed)", cpl == "3", "got %r" % cpl)
            ck.check(impl, "guest verdict pass (exit status 1)", vm.guest_passed(), "status %r" % status)
            # --once: the daemon leaves when QEMU does, removing its socket.
            rc = daemon.wait(10)
            ck.check(impl, "daemon exits 0 after the frontend left (--once)", rc == 0, "status %r" % rc)
            ck.check(impl, "daemon removed its socket", not os.path.exists(sock))
        finally:
            if vm:
                vm.kill()
            daemon.kill()
    ck.finish()


if __name__ == "__main__":
    main()
