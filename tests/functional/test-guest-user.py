#!/usr/bin/env python3
"""User-mode networking end to end: the test guest takes a DHCP lease from
libslirp, downloads a 4 MiB random file by TFTP and reports its size and
CRC32 (compared with zlib's), then serves UDP echo behind a hostfwd rule and
the host checks that a datagram comes back. Runs on QEMU's NIC and on
qnic's with the same arguments; both must pass.

usage: test-guest-user.py --nic virtio|virtio-legacy|virtio-packed|e1000|rtl8139|virtio-mmio
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


def run_one(ck, impl, binary, nic, tftpdir, blob_crc):
    model, guest_nic, _ = g.NICS[nic]
    port = g.free_port()
    append = "test=dhcp-tftp file=blob.bin echo-port=7 nic=%s timeout=%d" % (guest_nic, VM_TIMEOUT - 20)
    net = ["-netdev", "user,id=n0,tftp=%s,hostfwd=udp:127.0.0.1:%d-:7" % (tftpdir, port),
           "-device", "%s,netdev=n0,mac=52:54:00:12:34:56" % model]
    vm = g.VM(impl, binary, "user-" + nic, append, net, machine=g.machine_for(impl, nic)).start()
    try:
        ck.check_dhcp_tftp_echo(impl, vm, port, BLOB_SIZE, blob_crc, VM_TIMEOUT, tag=b"qnic-hostfwd-")
        status = vm.wait(30)
        cpl = (vm.record("cpu") or {}).get("cpl")
        ck.check(impl, "guest ran at CPL 3 (docs/guest.md, Speed)", cpl == "3", "got %r" % cpl)
        ck.check_nic(impl, vm, nic)
        ck.check(impl, "guest verdict pass (exit status 1)", vm.guest_passed(), "status %r" % status)
    finally:
        vm.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nic", required=True, choices=sorted(g.NICS))
    args = ap.parse_args()
    # Without KVM the QEMU run alone would check only QEMU. qnic's
    # virtio-net on -netdev user does run under TCG, behind QEMU's
    # vhost-user frontend: vhost-user-backend-qemu-*.
    g.require_common("qnic's NIC models on -netdev user inside qnic-vmm")
    ck = g.Checker()
    with tempfile.TemporaryDirectory(prefix="qnic-guest-user-") as d:
        blob = os.urandom(BLOB_SIZE)
        with open(os.path.join(d, "blob.bin"), "wb") as f:
            f.write(blob)
        crc = zlib.crc32(blob) & 0xffffffff
        for impl, binary in g.impls():
            run_one(ck, impl, binary, args.nic, d, crc)
    ck.finish()


if __name__ == "__main__":
    main()
