#!/usr/bin/env python3
"""The vhost-user frontend's latency: the test guest's 4 MiB TFTP download
(stop-and-wait, 2938 blocks of 1428 B) through -netdev vhost-user to
qnic-vhost-user-net serving -netdev user (libslirp), as
tests/functional/test-vhost-user-frontend.py runs it, repeated on several
VMM binaries with identical arguments, runs interleaved (A B C A B C ...)
so that the load of this shared host spreads over all of them. Prints each
run's guest-measured time (time_us, the guest's TSC),
then min / median / max per VMM, and what the transfer cost the VMM
process: its CPU time and its main thread's voluntary context switches
(main-loop wakeups), both sampled from /proc between the guest's DHCP
lease and the end of its TFTP. Never a timed test: run it by hand.

usage: bench/vhost-user-tftp.py [--runs 5] NAME=VMM [NAME=VMM ...]
  e.g. bench/vhost-user-tftp.py qemu=qemu-system-x86_64 \
           before=/tmp/qnic-rev/build/vmm/qnic-vmm after=build/vmm/qnic-vmm
env: QNIC_BUILD_DIR (guest ELF, qnic-vhost-user-net) as for the tests.
Needs /dev/kvm. Standard library only.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import guestlib as g  # noqa: E402

import importlib.util  # noqa: E402
_spec = importlib.util.spec_from_file_location(
    "vhu_frontend", os.path.join(HERE, "..", "tests", "functional", "test-vhost-user-frontend.py"))
fe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fe)


def one_run(name, binary, bebin, tmp):
    port = g.free_port()
    sock = os.path.join(tmp, "vhu-%s.sock" % name)
    be = fe.Backend(bebin, sock, "user,id=u0,tftp=%s,hostfwd=udp:127.0.0.1:%d-:7" % (tmp, port),
                    os.path.join(tmp, "backend-%s.log" % name)).start()
    append = "test=dhcp-tftp file=blob.bin echo-port=7 nic=virtio timeout=70"
    vm = g.VM(name, binary, "vhu-tftp", append, fe.vm_net_args(sock, "virtio-net-pci")).start()
    try:
        vm.wait_for("dhcp", 60)
        s0 = proc_sample(vm.proc.pid)
        end = time.monotonic() + 60
        while time.monotonic() < end and not [r for r in vm.all_records("tftp") if "time_us" in r]:
            with vm.cond:
                vm.cond.wait(0.05)
        s1 = proc_sample(vm.proc.pid)
        ready = vm.wait_for("ready", 30)
        rec = [r for r in vm.all_records("tftp") if "time_us" in r]
        if ready is not None:
            g.udp_exchange("127.0.0.1", port, b"quit", timeout=2, tries=2)
        vm.wait(30)
        ok = rec and rec[0].get("size") == str(fe.BLOB_SIZE) and vm.guest_passed()
        delta = [b - a for a, b in zip(s0, s1)] if s0 and s1 else [0, 0]
        return (int(rec[0]["time_us"]) if ok else None), delta
    finally:
        vm.kill()
        be.close()


def proc_sample(pid):
    """(CPU seconds of the whole VMM process, voluntary context switches of
    its main thread = main-loop wakeups); None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/%d/status" % pid) as f:
            vcs = [int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches")]
        tick = os.sysconf("SC_CLK_TCK")
        return [(int(fields[11]) + int(fields[12])) / tick, vcs[0]]
    except (OSError, IndexError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("vmms", nargs="+", help="NAME=BINARY")
    args = ap.parse_args()
    vmms = [v.split("=", 1) for v in args.vmms]
    bebin = fe.backend_binary()
    g.guest_elf()
    times = {n: [] for n, _ in vmms}
    cpu = {n: [] for n, _ in vmms}
    wakeups = {n: [] for n, _ in vmms}
    with tempfile.TemporaryDirectory(prefix="qnic-vhu-bench-") as tmp:
        with open(os.path.join(tmp, "blob.bin"), "wb") as f:
            f.write(os.urandom(fe.BLOB_SIZE))
        for i in range(args.runs):
            for name, binary in vmms:
                t, (c, w) = one_run(name, binary, bebin, tmp)
                g.log("RESULT run=%d vmm=%s time_us=%s vmm_cpu_s=%.2f main_thread_wakeups=%d" % (
                    i, name, t, c, w))
                if t is not None:
                    times[name].append(t)
                    cpu[name].append(c)
                    wakeups[name].append(w)
    print("machine: %s, %d CPUs, load %s" % (os.uname().release, os.cpu_count(),
                                             " ".join("%.2f" % x for x in os.getloadavg())))
    for name, binary in vmms:
        ts = times[name]
        if ts:
            print("%-8s %-42s runs=%d min=%.3f s median=%.3f s max=%.3f s; median VMM CPU %.2f s, "
                  "main-thread wakeups %d" % (
                      name, binary, len(ts), min(ts) / 1e6, statistics.median(ts) / 1e6, max(ts) / 1e6,
                      statistics.median(cpu[name]), statistics.median(wakeups[name])))
        else:
            print("%-8s %-50s no successful run" % (name, binary))


if __name__ == "__main__":
    main()
