#!/usr/bin/env python3
"""Linux's own drivers (virtio_net, e1000, 8139cp) against qnic's device
models inside qnic-vmm itself: the Linux test guest boots on qnic-vmm under
KVM, once per model, with -netdev user, and runs the plan; QEMU runs the same
plan with its own model of the same name as the reference, and both must
give the same verdict on every step.

qnic-vmm needs a KVM that can boot a stock kernel. Where /dev/kvm is
missing, or where it cannot boot one (a PVM-based KVM), the qnic-vmm half
runs inside scripts/nested-kvm.sh: Debian's kernel under QEMU TCG with
emulated AMD SVM loads kvm_amd, and this script runs again in there
(--inside) on this machine's own files, with a real /dev/kvm. The
reference stays outside (QEMU, KVM or TCG).

The plan: DHCP lease, carrier up, a ping and an 8 KiB ping (fragmented both
ways), a 1 MiB file by TFTP (CRC32) and by HTTP (SHA-256), link down and up
from QMP set_link seen as carrier changes, and a ping after it. The guest
ends by writing to isa-debug-exit (qnic-vmm has no ACPI power-off).

usage: test-linux-vmm.py --models NAME[,NAME...] [--backends qemu,qnic-vmm]
       test-linux-vmm.py --inside RESULTS.json --models ...   (in the nested VM)
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linuxguest as lg  # noqa: E402
from linuxguest import g  # noqa: E402

BLOB_SIZE = 1024 * 1024
# A Linux boot under nested KVM on TCG takes about a minute; generous.
VM_TIMEOUT = 600

# model: (-device string without netdev, QNIC-NIC expectations).
# virtio-net-device (virtio-mmio) is not here: Debian's kernel is built
# without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so it finds virtio-mmio
# transports only through ACPI or a device tree, and qnic-vmm describes
# them on the command line only (its ACPI tables do not list them yet).
MODELS = {
    "virtio-legacy": ("virtio-net-pci,disable-modern=on", {"transport": "legacy"}),
    "virtio-transitional": ("virtio-net-pci", {"transport": "modern"}),
    "virtio-modern": ("virtio-net-pci,disable-legacy=on,disable-modern=off", {"transport": "modern"}),
    "e1000": ("e1000", {"driver": "e1000"}),
    "e1000-82544gc": ("e1000-82544gc", {"driver": "e1000"}),
    "e1000-82545em": ("e1000-82545em", {"driver": "e1000"}),
    "rtl8139": ("rtl8139", {"driver": "8139cp"}),
}
MAC = "52:54:00:12:34:56"


def plan_for(crc, sha, http_port):
    return ",".join([
        "dhcp", "link",
        "ping:10.0.2.2", "ping:10.0.2.2:8192",
        "tftp:blob.bin:%08x" % crc,
        "http:10.0.2.2:%d/blob.bin:%s" % (http_port, sha),
        "linkwait:down", "linkwait:up", "ping:10.0.2.2",
    ])


def append_for(plan):
    # No pci=nomsi: QEMU's MSI-X bug is on vhost-user only. lpj and
    # tsc=reliable: QEMU's microvm gives the guest no HPET or ACPI PM timer
    # (qnic-vmm has a PM timer since its ACPI tables, no HPET), and under
    # emulation (TCG, nested KVM) the PIT calibration fails; without a TSC
    # rate Linux then waits forever. Both VMMs get the same command line.
    # quiet: every console byte is a VM exit, which costs most under
    # nested KVM.
    return "console=ttyS0 panic=-1 quiet lpj=4000000 tsc=reliable qnic.exit=isa-debug-exit qnic.plan=%s" % plan


def vmm_argv(impl, model, vmlinuz, initrd, append, tftp, qmp):
    dev = "%s,netdev=n0,mac=%s" % (MODELS[model][0], MAC)
    net = ["-netdev", "user,id=n0,tftp=%s" % tftp, "-device", dev,
           "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
           "-qmp", "unix:%s,server=on,wait=off" % qmp]
    if impl == "qnic-vmm":
        return [os.environ["QNIC_VMM"], "-accel", "kvm", "-m", "512M", "-nodefaults",
                "-display", "none", "-no-reboot", "-serial", "stdio",
                "-kernel", vmlinuz, "-initrd", initrd, "-append", append] + net
    return lg.qemu_argv(vmlinuz, initrd, append, net)


def run_model(ck, impl, model, vmlinuz, initrd, d, crc, sha, port):
    plan = plan_for(crc, sha, port)
    nsteps = len(plan.split(","))
    qmp = os.path.join(d, "qmp-%s-%s.sock" % (impl, model))
    name = "%s/%s" % (impl, model)
    flap = {}
    vm = None
    try:
        argv = vmm_argv(impl, model, vmlinuz, initrd, append_for(plan), d, qmp)
        vm, took = lg.run_vm(ck, name, name, argv, None, VM_TIMEOUT,
                             lg.link_flapper(qmp, "n0", flap), want_status=1)
        res = lg.check_common(ck, name, vm, MODELS[model][1], nsteps)
        by = {}
        for n in sorted(res):
            by.setdefault(res[n]["step"], []).append(res[n])
        tftp = (by.get("tftp") or [{}])[0]
        ck.check(name, "TFTP 1 MiB, CRC32 %08x" % crc,
                 tftp.get("size") == str(BLOB_SIZE) and tftp.get("crc32") == "%08x" % crc, str(tftp))
        http = (by.get("http") or [{}])[0]
        ck.check(name, "HTTP 1 MiB, SHA-256 %s..." % sha[:12],
                 http.get("size") == str(BLOB_SIZE) and http.get("sha256") == sha, str(http))
        lg.check_link_flap(ck, name, res, flap)
        g.log("times %s: run %.1f s; %s" % (name, took, " ".join(
            "%s=%sms" % (r.get("step"), r.get("ms")) for _, r in sorted(res.items()))))
        return {str(n): {"step": r.get("step"), "status": r.get("status")} for n, r in res.items()}
    finally:
        if vm:
            vm.kill()


def run_all(ck, impl, models, vmlinuz, initrd):
    """Every model on IMPL; returns {model: {n: {step, status}}}."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="qnic-linux-vmm-") as d:
        crc, sha = lg.write_blob(d, BLOB_SIZE)
        with lg.HttpServer(d) as web:
            for m in models:
                out[m] = run_model(ck, impl, m, vmlinuz, initrd, d, crc, sha, web.port)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--backends", default="qemu,qnic-vmm")
    ap.add_argument("--inside", metavar="RESULTS")
    args = ap.parse_args()
    args.models = args.models.split(",")
    for m in args.models:
        if m not in MODELS:
            ap.error("unknown model %r (known: %s)" % (m, ", ".join(sorted(MODELS))))
    backends = args.backends.split(",")
    vmlinuz, initrd = lg.prepare_vmm(backends)
    ck = g.Checker()

    results = lg.run_halves(ck, args.inside, backends,
                            lambda impl: run_all(ck, impl, args.models, vmlinuz, initrd),
                            os.path.abspath(__file__), ["--models", ",".join(args.models)],
                            VM_TIMEOUT * 2)
    if results is None:
        ck.finish()
        return
    if len(results) == 2:
        for m in args.models:
            ck.check("compare", "%s: QEMU and qnic-vmm agree on every step" % m,
                     results["qemu"].get(m) == results["qnic-vmm"].get(m),
                     "qemu %r, qnic-vmm %r" % (results["qemu"].get(m), results["qnic-vmm"].get(m)))
    ck.finish()


if __name__ == "__main__":
    main()
