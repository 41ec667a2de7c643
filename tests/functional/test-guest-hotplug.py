#!/usr/bin/env python3
"""NIC hotplug with the test guest as the OS, on QEMU 7.2 and on qnic-vmm
with the same arguments: the guest (test=hotplug, tests/guest/hotplug.c)
boots with no NIC and takes the SCI of the ACPI PCI hotplug GPE. Through
QMP the test plugs each NIC model in turn (netdev_add user + device_add:
virtio-net-pci transitional, legacy and modern, e1000, rtl8139); the guest
must read the new slot from the UP bitmap, bring the NIC up with its
driver, get a DHCP lease and ping the gateway through it. Then device_del:
the guest reads the slot from DOWN, stops the NIC and ejects the slot,
and the test must see DEVICE_DELETED for it and the guest the slot empty.

QEMU runs under KVM or TCG. qnic-vmm needs KVM; where /dev/kvm is missing
its half runs under nested KVM (scripts/nested-kvm.sh: this script again,
with QNIC_GUEST_IMPLS=qnic, in a TCG VM with a real /dev/kvm), which adds a
few minutes; QNIC_NO_NESTED_KVM=1 skips that half instead, saying so.

usage: test-guest-hotplug.py
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

VM_TIMEOUT = 300
STEP_TIMEOUT = 120
# (name, device_add arguments, the guest's model name)
MODELS = [
    ("virtio-transitional", {"driver": "virtio-net-pci"}, "virtio-net-pci"),
    ("virtio-legacy", {"driver": "virtio-net-pci", "disable-modern": "on"}, "virtio-net-pci"),
    ("virtio-modern", {"driver": "virtio-net-pci", "disable-legacy": "on"}, "virtio-net-pci"),
    ("e1000", {"driver": "e1000"}, "e1000"),
    ("rtl8139", {"driver": "rtl8139"}, "rtl8139"),
]


def cycle(ck, impl, vm, qmp, i, model):
    name, props, guest_model = model
    n = i + 1
    r = qmp.cmd("netdev_add", type="user", id="h%d" % n)
    ck.check(impl, "%s: netdev_add user accepted" % name, r == {"return": {}}, str(r))
    r = qmp.cmd("device_add", id="hp%d" % n, netdev="h%d" % n, **props)
    ck.check(impl, "%s: device_add accepted" % name, r == {"return": {}}, str(r))
    up = g.wait_nth(vm, "hotplug-up", n, STEP_TIMEOUT) or {}
    ck.check(impl, "%s: the guest found it (%s), got a lease and 3/3 pings to the gateway" % (name, guest_model),
             up.get("model") == guest_model and up.get("ip") == "10.0.2.15" and up.get("pings") == "3/3", str(up))
    r = qmp.cmd("device_del", id="hp%d" % n)
    ck.check(impl, "%s: device_del accepted" % name, r == {"return": {}}, str(r))
    ev = None
    while True:
        ev = qmp.event("DEVICE_DELETED", STEP_TIMEOUT)
        if not ev or ev.get("data", {}).get("device") == "hp%d" % n:
            break
    ck.check(impl, "%s: DEVICE_DELETED after the guest's eject" % name,
             ev is not None and ev["data"].get("path") == "/machine/peripheral/hp%d" % n, str(ev))
    ej = g.wait_nth(vm, "hotplug-ejected", n, STEP_TIMEOUT) or {}
    ck.check(impl, "%s: the guest ejected slot %s and it reads empty" % (name, up.get("slot")),
             ej.get("slot") == up.get("slot") and ej.get("gone") == "yes" and ej.get("known") == "yes", str(ej))
    r = qmp.cmd("netdev_del", id="h%d" % n)
    ck.check(impl, "%s: netdev_del after the unplug" % name, r == {"return": {}}, str(r))


def run_one(ck, impl, binary, tmp):
    sock = os.path.join(tmp, "qmp-%s.sock" % impl)
    append = "test=hotplug count=%d timeout=%d" % (len(MODELS), VM_TIMEOUT - 20)
    vm = g.VM(impl, binary, "hotplug", append, ["-qmp", "unix:%s,server=on,wait=off" % sock]).start()
    qmp = None
    try:
        ready = vm.wait_for("ready", 60)
        ck.check(impl, "the guest enabled the hotplug GPE", (ready or {}).get("gpe_en") == "0x02", str(ready))
        qmp = g.Qmp(sock)
        for i, model in enumerate(MODELS):
            cycle(ck, impl, vm, qmp, i, model)
        status = vm.wait(60)
        done = vm.record("hotplug-done") or {}
        ck.check(impl, "the guest plugged and ejected %d NICs, each event an SCI" % len(MODELS),
                 done.get("plugged") == str(len(MODELS)) and done.get("ejected") == str(len(MODELS)) and
                 int(done.get("sci_irqs", "0")) >= 2 * len(MODELS), str(done))
        ck.check(impl, "guest verdict pass (exit status 1)", vm.guest_passed(), "status %r" % status)
    finally:
        if qmp:
            qmp.close()
        vm.kill()


def run_nested(ck):
    """qnic-vmm's half in scripts/nested-kvm.sh, where /dev/kvm is real."""
    build = os.environ.get("QNIC_BUILD_DIR") or ""
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = ["sh", os.path.join(src, "scripts", "nested-kvm.sh"), os.path.join(build, "tests", "nested"),
            "--timeout", str(VM_TIMEOUT * 2), "--", sys.executable, os.path.abspath(__file__)]
    env = dict(os.environ, QNIC_GUEST_IMPLS="qnic")
    g.log("qnic-vmm: %s; running its half under nested KVM: %s" % (g.kvm_problem(), " ".join(argv)))
    rc = g.run_logged(argv, "[nested] ", env)
    if rc == 2:
        return "nested KVM cannot start here (a package is missing; see the log)"
    ck.check("qnic", "the nested-KVM run of qnic-vmm's half passed (status %d)" % rc, rc == 0)
    return None


def main():
    g.require_qemu()
    g.guest_elf()
    ck = g.Checker()
    nested = False
    todo = g.impls()
    if "qnic" in [i for i, _ in todo] and g.kvm_problem():
        todo = [(i, b) for i, b in todo if i != "qnic"]
        nested = True
    with tempfile.TemporaryDirectory(prefix="qnic-hotplug-") as tmp:
        for impl, binary in todo:
            run_one(ck, impl, binary, tmp)
    if nested:
        if os.environ.get("QNIC_IN_NESTED_KVM") or os.environ.get("QNIC_NO_NESTED_KVM"):
            g.log("SKIP qnic-vmm's half: qnic-vmm needs KVM and %s" % g.kvm_problem())
        else:
            why = run_nested(ck)
            if why:
                g.log("SKIP qnic-vmm's half: %s" % why)
    ck.finish()


if __name__ == "__main__":
    main()
