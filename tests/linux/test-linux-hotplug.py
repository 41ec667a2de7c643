#!/usr/bin/env python3
"""NIC hotplug and system reset as a stock OS sees them: Debian's Linux
guest boots with one virtio-net-pci, and the host, through QMP as an
operator would, resets the VM once (system_reset: the guest must boot
again and its NIC must work again), has the guest reboot itself once
(reboot -f after set_link off: RESET with guest true, and the NIC works
again after that boot too), then plugs a virtio-net-pci and an
e1000 one after the other (device_add, each on a new -netdev user). Linux's
ACPI PCI hotplug driver (acpiphp) finds each after the SCI, the driver
binds it, the guest gets a DHCP lease on it and pings the slirp router
through it; then device_del asks for the unplug, acpiphp ejects the slot
and the host must see DEVICE_DELETED. One boot (plus the reset's) for
both models (plus the two reboots) keeps the run short.

QEMU 7.2 (pc, KVM or TCG) runs the same plan as the reference; qnic-vmm
needs a KVM that boots a stock kernel and otherwise runs under nested KVM
(scripts/nested-kvm.sh), as test-linux-vmm.py does. QEMU runs without
-no-reboot, which would turn system_reset into a shutdown.

usage: test-linux-hotplug.py [--backends qemu,qnic-vmm]
       test-linux-hotplug.py --inside RESULTS.json   (in the nested VM)
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linuxguest as lg  # noqa: E402
from linuxguest import g  # noqa: E402

VM_TIMEOUT = 900
MAC = "52:54:00:12:34:56"
# The hotplugged models, in plug order: (device_add driver, Linux driver).
PLUGS = [("virtio-net-pci", "virtio_net"), ("e1000", "e1000")]
PLAN = ",".join(["dhcp", "ping:10.0.2.2", "resetwait:3", "rebootwait:3"] +
                ["plugwait:120", "dhcp", "ping:10.0.2.2", "unplugwait:120"] * len(PLUGS))


def append_for(plan):
    # As test-linux-vmm.py: lpj and tsc=reliable because PIT calibration
    # fails under emulation; quiet because console bytes are VM exits.
    return "console=ttyS0 panic=-1 quiet lpj=4000000 tsc=reliable qnic.exit=isa-debug-exit " \
        "qnic.plan=%s" % plan


def vmm_argv(impl, vmlinuz, initrd, qmp):
    net = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=%s" % MAC,
           "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
           "-qmp", "unix:%s,server=on,wait=off" % qmp]
    append = append_for(PLAN)
    if impl == "qnic-vmm":
        return [os.environ["QNIC_VMM"], "-accel", "kvm", "-m", "512M", "-nodefaults",
                "-display", "none", "-serial", "stdio",
                "-kernel", vmlinuz, "-initrd", initrd, "-append", append] + net
    return [a for a in lg.qemu_argv(vmlinuz, initrd, append, net) if a != "-no-reboot"]


def operator(qmp_path, out, timeout=VM_TIMEOUT):
    """DURING for run_vm: answer the guest's QNIC-READY lines through QMP.
    The first resetwait gets system_reset (the second boot's passes);
    each plugwait gets a new netdev and the next model of PLUGS; each
    unplugwait gets device_del, then DEVICE_DELETED is awaited. OUT
    collects what happened, for the checks."""
    def go(vm):
        qmp = None
        try:
            qmp = g.Qmp(qmp_path)
            n, plugged = 1, 0
            while True:
                ready = lg.wait_nth(vm, "READY", n, timeout)
                if not ready:
                    return
                n += 1
                step = ready.get("step")
                if step == "resetwait" and "reset" not in out:
                    out["reset"] = qmp.cmd("system_reset")
                    out["reset_event"] = qmp.event("RESET", 30)
                elif step == "rebootwait" and "reboot" not in out:
                    # the guest reboots itself when its carrier goes
                    out["reboot"] = qmp.cmd("set_link", name="n0", up=False)
                    out["reboot_event"] = qmp.event("RESET", 120)
                    out["link_up"] = qmp.cmd("set_link", name="n0", up=True)
                elif step == "plugwait" and plugged < len(PLUGS):
                    drv = PLUGS[plugged][0]
                    plugged += 1
                    nd = qmp.cmd("netdev_add", type="user", id="h%d" % plugged)
                    dev = qmp.cmd("device_add", driver=drv, id="hp%d" % plugged,
                                  netdev="h%d" % plugged)
                    out.setdefault("plugs", []).append((drv, nd, dev))
                elif step == "unplugwait" and plugged:
                    r = qmp.cmd("device_del", id="hp%d" % plugged)
                    ev = None
                    while True:
                        ev = qmp.event("DEVICE_DELETED", 180)
                        if not ev or ev.get("data", {}).get("device") == "hp%d" % plugged:
                            break
                    out.setdefault("unplugs", []).append((r, ev))
                    # the sign the guest waits for, then the link back
                    done = len([kv for kv in vm.all("RESULT") if kv.get("step") == "unplugwait"]) + 1
                    qmp.cmd("set_link", name="n0", up=False)
                    while len([kv for kv in vm.all("RESULT") if kv.get("step") == "unplugwait"]) < done:
                        if not lg.wait_nth(vm, "RESULT", len(vm.all("RESULT")) + 1, 120):
                            break
                    qmp.cmd("set_link", name="n0", up=True)
                g.log("QMP for %s: %r" % (step, out))
        except (OSError, EOFError, ValueError) as e:
            out["error"] = "QMP: %s" % e
    return go


def boots(vm):
    """The guest's records split at each QNIC-BOOT: [[(tag, kv), ...], ...]."""
    with vm.cond:
        recs = list(vm.records)
    out = []
    for tag, kv in recs:
        if tag == "BOOT":
            out.append([])
        if out:
            out[-1].append((tag, kv))
    return out


def check(ck, name, vm, out):
    """The checks; returns {step n of the last boot: status} to compare."""
    ck.check(name, "QMP ran without error", "error" not in out, out.get("error", ""))
    ck.check(name, "system_reset accepted, RESET event (guest false)",
             out.get("reset") == {"return": {}} and
             (out.get("reset_event") or {}).get("data") == {"guest": False,
                                                            "reason": "host-qmp-system-reset"},
             "%r %r" % (out.get("reset"), out.get("reset_event")))
    ck.check(name, "the guest's own reboot (reboot -f): RESET event (guest true, guest-reset)",
             out.get("reboot") == {"return": {}} and out.get("link_up") == {"return": {}} and
             (out.get("reboot_event") or {}).get("data") == {"guest": True, "reason": "guest-reset"},
             "%r %r" % (out.get("reboot"), out.get("reboot_event")))
    bs = boots(vm)
    ck.check(name, "the guest booted three times (after system_reset, after its reboot)", len(bs) == 3,
             "%d boots" % len(bs))
    for i, what in enumerate(["before the reset", "after the reset, before the reboot"][:len(bs)]):
        res = [kv for t, kv in bs[i] if t == "RESULT"]
        ck.check(name, "%s: lease and ping on the boot NIC" % what,
                 [r.get("status") for r in res[:2]] == ["ok", "ok"], str(res[:2]))
    last = [kv for t, kv in (bs[-1] if bs else []) if t == "RESULT"]
    nsteps = len(PLAN.split(","))
    ck.check(name, "after the reboot: all %d steps ran" % nsteps, len(last) == nsteps, "%d" % len(last))
    for r in last:
        ck.check(name, "step %s %s status=ok" % (r.get("n"), r.get("step")), r.get("status") == "ok", str(r))
    unplugs = [r for r in last if r.get("step") == "unplugwait"]
    ck.check(name, "the guest waited for the host's DEVICE_DELETED each time",
             len(unplugs) == len(PLUGS) and all(r.get("host_saw") == "yes" for r in unplugs), str(unplugs))
    plugs = [r for r in last if r.get("step") == "plugwait"]
    for i, (drv, linux_drv) in enumerate(PLUGS):
        p = out.get("plugs", [])[i] if i < len(out.get("plugs", [])) else None
        ck.check(name, "netdev_add and device_add %s accepted" % drv,
                 p is not None and p[1] == {"return": {}} and p[2] == {"return": {}}, str(p))
        r = plugs[i] if i < len(plugs) else {}
        ck.check(name, "Linux found the hotplugged %s and bound %s" % (drv, linux_drv),
                 r.get("driver") == linux_drv, str(r))
        u = out.get("unplugs", [])[i] if i < len(out.get("unplugs", [])) else None
        ck.check(name, "device_del %s accepted and DEVICE_DELETED after the guest's eject" % drv,
                 u is not None and u[0] == {"return": {}} and u[1] is not None and
                 u[1]["data"].get("device") == "hp%d" % (i + 1), str(u))
    done = [kv for t, kv in (bs[-1] if bs else []) if t == "DONE"]
    ck.check(name, "QNIC-DONE failed=0", bool(done) and done[0].get("failed") == "0", str(done))
    return {r.get("n"): r.get("status") for r in last}


def run_one(ck, impl, vmlinuz, initrd):
    with tempfile.TemporaryDirectory(prefix="qnic-linux-hp-") as d:
        qmp = os.path.join(d, "qmp.sock")
        out = {}
        vm = None
        try:
            vm, took = lg.run_vm(ck, impl, impl, vmm_argv(impl, vmlinuz, initrd, qmp), None,
                                 VM_TIMEOUT, operator(qmp, out), want_status=1)
            res = check(ck, impl, vm, out)
            g.log("times %s: run %.1f s" % (impl, took))
            return res
        finally:
            if vm:
                vm.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="qemu,qnic-vmm")
    ap.add_argument("--inside", metavar="RESULTS")
    args = ap.parse_args()
    backends = args.backends.split(",")
    vmlinuz, initrd = lg.prepare_vmm(backends)
    ck = g.Checker()

    results = lg.run_halves(ck, args.inside, backends, lambda impl: run_one(ck, impl, vmlinuz, initrd),
                            os.path.abspath(__file__), [], VM_TIMEOUT + 300)
    if results is None:
        ck.finish()
        return
    if len(results) == 2:
        ck.check("compare", "QEMU and qnic-vmm agree on every step",
                 results["qemu"] == results["qnic-vmm"], "%r / %r" % (results["qemu"], results["qnic-vmm"]))
    ck.finish()


if __name__ == "__main__":
    main()
