#!/usr/bin/env python3
"""Linux's own virtio_net driver against qnic's virtio-net model: the Linux
test guest (Debian's kernel, tests/linux/init) boots under QEMU (TCG without
/dev/kvm) with virtio-net-pci on -netdev vhost-user, and
qnic-vhost-user-net serves it -netdev user (libslirp), so every ring
operation of the driver's queues is done by qnic's model. The same plan runs
first with QEMU's own -netdev user (QEMU's virtio-net model: the
reference), then through qnic; each run must pass every step and both must
agree step for step.

The plan: DHCP lease 10.0.2.15, carrier up, a ping and an 8 KiB ping
(fragmented both ways), a 16 MiB random file by TFTP (CRC32 against
zlib's) and by HTTP from a server on the host's loopback (SHA-256 against
hashlib's), MTU 1400 with a 1372-byte DF ping (a whole 1400-byte packet)
and the 8 KiB ping again at that MTU; then link down and up from QMP
set_link, which the guest must see as carrier changes, and a ping after
it. With vhost-user, QEMU 7.2 stops the vhost device on link down and
starts it again on link up, so qnic's device side must hand its ring
state back and resume the live rings Linux still holds.

usage: test-linux-guest.py --variant split|packed|mrg-off|legacy
        [--backends qemu-user,qnic-vhost-user]
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linuxguest as lg  # noqa: E402
from linuxguest import g  # noqa: E402

BLOB_SIZE = 16 * 1024 * 1024
# Generous: a TCG boot takes 5-15 s and the plan 15-30 s on an idle 2-core
# host, several times that when fuzzers share the cores.
VM_TIMEOUT = 300

# variant: (-device properties, what the guest must report on QNIC-NIC)
VARIANTS = {
    "split": ("", {"ring": "split", "transport": "modern", "mrg_rxbuf": "1"}),
    "packed": (",packed=on", {"ring": "packed", "transport": "modern"}),
    "mrg-off": (",mrg_rxbuf=off", {"mrg_rxbuf": "0", "ring": "split"}),
    "legacy": (",disable-modern=on", {"transport": "legacy", "ring": "split"}),
}
BACKENDS = ("qemu-user", "qnic-vhost-user")


def plan_for(crc, sha, http_port):
    return ",".join([
        "dhcp", "link",
        "ping:10.0.2.2", "ping:10.0.2.2:8192",
        "tftp:blob.bin:%08x:1468" % crc,
        "http:10.0.2.2:%d/blob.bin:%s" % (http_port, sha),
        "mtu:1400:10.0.2.2", "ping:10.0.2.2:8192",
        "linkwait:down", "linkwait:up", "ping:10.0.2.2",
    ])


def check_run(ck, impl, vm, variant, crc, sha, nsteps):
    """Every line the guest printed, checked; returns {n: result dict}."""
    res = lg.check_common(ck, impl, vm, VARIANTS[variant][1], nsteps)
    by_step = {}
    for n in sorted(res):
        by_step.setdefault(res[n]["step"], []).append(res[n])
    dhcp = (by_step.get("dhcp") or [{}])[0]
    ck.check(impl, "DHCP lease 10.0.2.15 via 10.0.2.2", dhcp.get("ip") == "10.0.2.15" and
             dhcp.get("router") == "10.0.2.2", str(dhcp))
    pings = [p for p in by_step.get("ping", []) if p.get("size") == "8192"]
    ck.check(impl, "8 KiB pings answered 3/3 (before and after the MTU change)",
             len(pings) == 2 and all(p.get("recv") == "3" for p in pings), str(pings))
    tftp = (by_step.get("tftp") or [{}])[0]
    ck.check(impl, "TFTP 16 MiB, CRC32 %08x" % crc,
             tftp.get("size") == str(BLOB_SIZE) and tftp.get("crc32") == "%08x" % crc, str(tftp))
    http = (by_step.get("http") or [{}])[0]
    ck.check(impl, "HTTP 16 MiB, SHA-256 %s..." % sha[:12],
             http.get("size") == str(BLOB_SIZE) and http.get("sha256") == sha, str(http))
    pings = by_step.get("ping", [])
    ck.check(impl, "ping answered after the link came back", bool(pings) and
             pings[-1].get("recv", "0") != "0", str(pings[-1:]))
    return res


def main():
    args, backends = lg.parse_args(VARIANTS, BACKENDS)
    daemon, vmlinuz, initrd = lg.prepare(backends)

    ck = g.Checker()
    props = VARIANTS[args.variant][0]
    results = {}
    times = {}
    with tempfile.TemporaryDirectory(prefix="qnic-linux-") as d:
        crc, sha = lg.write_blob(d, BLOB_SIZE)
        with lg.HttpServer(d) as web:
            plan = plan_for(crc, sha, web.port)
            nsteps = len(plan.split(","))
            append = "%s qnic.plan=%s" % (lg.BASE_APPEND, plan)
            for be in backends:
                impl = "%s/%s" % (be, args.variant)
                dproc = vm = None
                flap = {}
                qmp_path = os.path.join(d, "qmp-%s.sock" % be)
                try:
                    if be == "qemu-user":
                        net = ["-netdev", "user,id=n0,tftp=%s" % d,
                               "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56" + props]
                        shared = False
                    else:
                        sock = os.path.join(d, "vhu.sock")
                        dproc = lg.Daemon(daemon, sock, "user,id=u0,tftp=%s" % d)
                        if not ck.check(impl, "qnic-vhost-user-net listens", dproc.listening):
                            continue
                        net = ["-chardev", "socket,id=c0,path=%s" % sock,
                               "-netdev", "vhost-user,id=n0,chardev=c0",
                               "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56" + props]
                        shared = True
                    argv = lg.qemu_argv(vmlinuz, initrd, append, net, shared_mem=shared, qmp=qmp_path)
                    vm, times[be] = lg.run_vm(ck, impl, "linux/" + be, argv, dproc, VM_TIMEOUT,
                                              lg.link_flapper(qmp_path, "n0", flap))
                    results[be] = check_run(ck, impl, vm, args.variant, crc, sha, nsteps)
                    lg.check_link_flap(ck, impl, results[be], flap)
                finally:
                    lg.stop(vm, dproc)

    lg.compare(ck, results, backends)
    lg.log_step_times(results, times, backends, args.variant)
    ck.finish()


if __name__ == "__main__":
    main()
