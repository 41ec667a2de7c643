#!/usr/bin/env python3
"""The test guest's CPU plumbing on QEMU and qnic-vmm: test=cpu-probe drops
to CPL 3, times single operations (RAM, fences, rdtsc, LAPIC MMIO, UART and
PCI port I/O from user mode through the TSS I/O bitmap, a kernel call
through the #UD gate, LAPIC-timer hlt at CPL 0) and reads CR0/CR4/PAT/MTRR
at CPL 0 through a kernel call. The test checks that every step ran and the
guest passed; the numbers are printed for people (docs/guest.md, "Speed"),
never compared with a limit.

usage: test-guest-cpu.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

VM_TIMEOUT = 60
OPS = ["rdtsc", "ram-write-4k", "ram-copy-4k", "ram-read-4k", "mfence", "sfence", "lfence", "pause",
       "lapic-read-id", "uart-inb-lsr", "pci-cfg-read", "kcall-null", "idle-10us", "idle-100us", "udelay-10us"]


def main():
    g.require_common("the guest's CPU probe on qnic-vmm")
    ck = g.Checker()
    for impl, binary in g.impls():
        vm = g.VM(impl, binary, "cpu", "test=cpu-probe timeout=%d" % (VM_TIMEOUT - 10), []).start()
        try:
            status = vm.wait(VM_TIMEOUT)
            cpu = vm.record("cpu") or {}
            ck.check(impl, "guest dropped to CPL 3", cpu.get("cpl") == "3", "got %r" % cpu.get("cpl"))
            recs = vm.all_records("probe")
            head = [r for r in recs if "cr0" in r]
            ck.check(impl, "CPL 0 register read through a kernel call", bool(head) and head[0].get("cpl") == "3"
                     and head[0].get("cr0", "0x0") != "0x0", repr(head[:1]))
            seen = {r.get("op") for r in recs if "op" in r}
            missing = [op for op in OPS if op not in seen]
            ck.check(impl, "all %d operations timed" % len(OPS), not missing, "missing %r" % missing)
            ck.check(impl, "guest verdict pass (exit status 1)", vm.guest_passed(), "status %r" % status)
        finally:
            vm.kill()
    ck.finish()


if __name__ == "__main__":
    main()
