#!/usr/bin/env python3
"""qnic benchmarks with the test guest: the same workload on several VMMs in one run.

Boots tests/guest (qnic-guest.elf) under each implementation with an identical
argument list (only the binary differs) and prints the numbers side by side,
as ratios against the first implementation, with the machine description and
every command line. Never a timed test: run it by hand (`make bench`) and copy
the output into docs/benchmarks.md.

Workloads:
  tx    guest test=udp-blast into a tap inside a network namespace made here;
        the guest reports frames/s (its TSC) and the namespace counts the
        frames the kernel received on the tap.
  rx    the namespace blasts UDP datagrams at the guest's test=udp-sink; the
        guest reports the frames it counted and their rate.
  tftp  guest test=dhcp-tftp through -netdev user,tftp= (libslirp): download
        time of 1 MiB and 4 MiB files.
  emul  how many guest instructions KVM emulated per transmitted frame
        (perf tracepoint kvm:kvm_emulate_insn): on a PVM host a non-PVM guest
        runs in KVM's instruction emulator, which bounds every guest number.

Implementations (--impls, comma separated, first = reference of the ratios):
  qemu  $QEMU_BINARY or qemu-system-x86_64 (-M pc -enable-kvm)
  qnic  $QNIC_VMM or --qnic (qnic-vmm -accel kvm)
  base  --base (a second qnic-vmm, e.g. from bench/compare-commits.sh)

usage: sudo bench/bench.py [--build build-bench] [--impls qemu,qnic] [--only tx,rx,tftp]
                           [--nics virtio,virtio-legacy,virtio-packed,e1000,rtl8139]
                           [--sizes 64,1400] [--count 3000] [--repeat 1]
Needs root (namespaces, tap), /dev/kvm and /dev/net/tun. Standard library only.
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)

# name: (-device model, guest nic=)
NICS = {
    "virtio": ("virtio-net-pci", "virtio"),
    "virtio-legacy": ("virtio-net-pci,disable-modern=on", "virtio-legacy"),
    "virtio-packed": ("virtio-net-pci,packed=on", "virtio-packed"),
    "e1000": ("e1000", "e1000"),
    "rtl8139": ("rtl8139", "rtl8139"),
}
GUEST_MAC = "52:54:00:12:34:56"
HOST_IP, GUEST_IP = "192.168.77.1", "192.168.77.2"


def log(msg):
    print(msg, flush=True)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    return "%s, nproc %d, Linux %s, load %s" % (model, os.cpu_count() or 0, platform.release(), load)


def run(argv, check=True, capture=False, timeout=30):
    r = subprocess.run(argv, timeout=timeout, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.STDOUT if capture else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s" % (r.returncode, " ".join(argv)))
    return r.stdout.decode(errors="replace") if capture else r.returncode


class Netns:
    """A namespace with a tap (qbtap0, HOST_IP/24), removed on exit."""

    def __init__(self):
        self.name = "qnicbench-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)

    def __enter__(self):
        run(["ip", "netns", "add", self.name])
        try:
            for argv in (["ip", "link", "set", "lo", "up"],
                         ["ip", "tuntap", "add", "dev", "qbtap0", "mode", "tap"],
                         ["ip", "addr", "add", HOST_IP + "/24", "dev", "qbtap0"],
                         ["ip", "link", "set", "qbtap0", "up"],
                         ["ip", "neigh", "replace", GUEST_IP, "lladdr", GUEST_MAC, "dev", "qbtap0",
                          "nud", "permanent"]):
                self.exec(argv)
        except Exception:
            self.__exit__()
            raise
        return self

    def exec(self, argv, **kw):
        return run(["ip", "netns", "exec", self.name] + argv, **kw)

    def tap_stats(self):
        out = self.exec(["ip", "-s", "-j", "link", "show", "qbtap0"], capture=True)
        st = json.loads(out)[0]["stats64"]
        return st["rx"]["packets"], st["tx"]["packets"], st["tx"].get("dropped", 0)

    def __exit__(self, *a):
        run(["ip", "netns", "del", self.name], check=False)


class VM:
    """One guest run; serial lines collected, QNIC-GUEST records parsed."""

    def __init__(self, impl, append, net_args, netns=None, timeout=120):
        kind, binary = impl.kind, impl.binary
        accel = ["-enable-kvm"] if kind == "qemu" else ["-accel", "kvm"]
        argv = [binary, "-M", "pc"] + accel + ["-m", "128", "-nodefaults", "-display", "none",
                                               "-serial", "stdio",
                                               "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                                               "-kernel", ARGS.guest, "-append", append] + net_args
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        self.argv, self.timeout = argv, timeout
        self.records, self.lines = [], []
        self.cond = threading.Condition()

    def cmdline(self):
        return " ".join(shlex.quote(a) for a in self.argv)

    def start(self):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.cond:
                self.lines.append(line)
                if "QNIC-GUEST:" in line:
                    body = line.split("QNIC-GUEST:", 1)[1].split()
                    tag = body[0] if body and "=" not in body[0] else None
                    kv = dict(p.split("=", 1) for p in body if "=" in p)
                    self.records.append((tag, kv))
                self.cond.notify_all()
            if ARGS.verbose:
                log("    | " + line)
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, tag, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                rec = self.record(tag)
                if rec is not None or self.proc.poll() is not None or time.monotonic() > end:
                    return rec
                self.cond.wait(0.2)

    def record(self, tag):
        for t, kv in self.records:
            if t == tag:
                return kv
        return None

    def wait(self):
        try:
            self.proc.wait(timeout=max(1, self.timeout - (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            log("    timeout after %ds: killing" % self.timeout)
        self.kill()
        self.reader.join(5)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def passed(self):
        return self.proc.returncode == 1 and any(kv.get("result") == "pass" for _, kv in self.records)


class Impl:
    def __init__(self, name, kind, binary):
        self.name, self.kind, self.binary = name, kind, binary


def nic_args(nic, netdev):
    return ["-netdev", netdev, "-device", "%s,netdev=n0,mac=%s" % (NICS[nic][0], GUEST_MAC)]


# ---- workloads: each returns {impl name: (value, unit, detail)} ----

def bench_tx(impl, nic, size):
    with Netns() as ns:
        append = ("test=udp-blast ip=%s dst=%s count=%d size=%d nic=%s timeout=300%s"
                  % (GUEST_IP, HOST_IP, ARGS.count, size, NICS[nic][1],
                     (" tx-batch=%d" % ARGS.tx_batch) if ARGS.tx_batch else ""))
        vm = VM(impl, append, nic_args(nic, "tap,id=n0,ifname=qbtap0,script=no,downscript=no"),
                netns=ns.name, timeout=300)
        rx0 = ns.tap_stats()[0]
        shown = vm.cmdline()
        counts = {}
        with tempfile.NamedTemporaryFile("r", prefix="qnic-perf-") as out:
            if ARGS.perf:
                # Count the instructions KVM emulated: on this PVM host a run
                # sometimes executes in KVM's emulator (both VMMs), which
                # makes it 10-100x slower; such a cell is marked.
                vm.argv = ["perf", "stat", "-x,", "-o", out.name, "-e", "kvm:kvm_emulate_insn", "--"] + vm.argv
            vm.start()
            vm.wait()
            for line in out.read().splitlines():
                f = line.split(",")
                if len(f) > 2 and f[0].isdigit():
                    counts[f[2]] = int(f[0])
        rx1 = ns.tap_stats()[0]
        rec = vm.record("blast") or {}
        fps = int(rec.get("fps", 0))
        ok = vm.passed() and rec
        emul = counts.get("kvm:kvm_emulate_insn")
        per = emul / max(1, int(rec.get("frames", 0) or 0)) if emul is not None else None
        if per is not None and per > 100:
            EMULATED.add(id(impl))
        return (fps if ok else None, "frames/s",
                "guest sent %s, tap received %d, emulated insn/frame %s" % (
                    rec.get("frames", "?"), rx1 - rx0, "%.1f" % per if per is not None else "n/a"), shown)


SENDER = r"""
import socket, sys, time
dst, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
buf = bytes(size)
sent = 0
t0 = time.monotonic()
for i in range(count):
    try:
        s.sendto(buf, (dst, 9)); sent += 1
    except OSError:
        time.sleep(0.0005)
dt = time.monotonic() - t0
time.sleep(1.0)
for i in range(100):
    s.sendto(b"quit", (dst, 7)); time.sleep(0.1)
print("sent=%d time_s=%.3f" % (sent, dt))
"""


def bench_rx(impl, nic, size):
    with Netns() as ns:
        append = "test=udp-sink ip=%s port=9 ctl-port=7 nic=%s timeout=120" % (GUEST_IP, NICS[nic][1])
        vm = VM(impl, append, nic_args(nic, "tap,id=n0,ifname=qbtap0,script=no,downscript=no"),
                netns=ns.name, timeout=150)
        vm.start()
        sent = "?"
        if vm.wait_for("ready", 60) is not None:
            time.sleep(0.2)
            out = ns.exec(["python3", "-c", SENDER, GUEST_IP, str(ARGS.count), str(size)],
                          capture=True, check=False, timeout=140)
            sent = out.strip().splitlines()[-1] if out.strip() else "?"
        vm.wait()
        _, tx, drop = ns.tap_stats()
        rec = vm.record("sink") or {}
        ok = vm.passed() and rec
        return (int(rec.get("fps", 0)) if ok else None, "frames/s",
                "host %s, guest counted %s, tap tx %d dropped %d" % (sent, rec.get("frames", "?"), tx, drop),
                vm.cmdline())


def bench_tftp(impl, nic, size):
    with tempfile.TemporaryDirectory(prefix="qnic-bench-") as d:
        data = os.urandom(size)
        with open(os.path.join(d, "blob.bin"), "wb") as f:
            f.write(data)
        append = "test=dhcp-tftp file=blob.bin nic=%s timeout=200" % NICS[nic][1]
        vm = VM(impl, append, nic_args(nic, "user,id=n0,tftp=" + d), timeout=220)
        vm.start()
        vm.wait()
        rec = next((kv for t, kv in vm.records if t == "tftp" and "crc32" in kv), {})
        want = "0x%08x" % zlib.crc32(data)
        ok = vm.passed() and rec.get("crc32") == want
        us = int(rec.get("time_us", 0))
        return (us / 1e6 if ok else None, "s", "%d KiB, crc %s" % (size >> 10, "ok" if ok else "BAD"),
                vm.cmdline())


def perf_emulated(impl, nic, size):
    """Guest instructions KVM emulated per frame of a short blast (perf tracepoint)."""
    if not shutil.which("perf"):
        return None, "insn/frame", "perf not installed", ""
    with Netns() as ns:
        count = 1000
        append = "test=udp-blast ip=%s dst=%s count=%d size=%d nic=%s" % (GUEST_IP, HOST_IP, count, size,
                                                                            NICS[nic][1])
        results = []
        for c in (count, 1):
            vm = VM(impl, append.replace("count=%d" % count, "count=%d" % c),
                    nic_args(nic, "tap,id=n0,ifname=qbtap0,script=no,downscript=no"), netns=ns.name)
            with tempfile.NamedTemporaryFile("r", prefix="qnic-perf-") as out:
                vm.argv = ["perf", "stat", "-x,", "-o", out.name, "-e", "kvm:kvm_emulate_insn,kvm:kvm_userspace_exit",
                           "--"] + vm.argv
                vm.start()
                vm.wait()
                counts = {}
                for line in out.read().splitlines():
                    f = line.split(",")
                    if len(f) > 2 and f[0].isdigit():
                        counts[f[2]] = int(f[0])
            results.append(counts)
        if not all(results):
            return None, "insn/frame", "perf stat gave no kvm tracepoint counts", vm.cmdline()
        d = {k: (results[0].get(k, 0) - results[1].get(k, 0)) / (count - 1) for k in results[0]}
        return (d.get("kvm:kvm_emulate_insn", 0), "insn/frame",
                "userspace exits/frame %.2f (1000-frame run minus 1-frame run)" % d.get("kvm:kvm_userspace_exit", 0),
                vm.cmdline())


EMULATED = set()

WORKLOADS = {"tx": bench_tx, "rx": bench_rx, "tftp": bench_tftp, "emul": perf_emulated}


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("QNIC_BUILD_DIR", os.path.join(SRC, "build-bench")))
    ap.add_argument("--qnic", default=os.environ.get("QNIC_VMM"))
    ap.add_argument("--qemu", default=os.environ.get("QEMU_BINARY", "qemu-system-x86_64"))
    ap.add_argument("--base", help="a second qnic-vmm binary (impl 'base')")
    ap.add_argument("--guest", default=os.environ.get("QNIC_GUEST_ELF"))
    ap.add_argument("--impls", default="qemu,qnic")
    ap.add_argument("--only", default="tx,rx,tftp")
    ap.add_argument("--nics", default=",".join(NICS))
    ap.add_argument("--sizes", default="64,1400")
    ap.add_argument("--tftp-sizes", default="1M,4M")
    ap.add_argument("--count", type=int, default=3000, help="frames per tx/rx run")
    ap.add_argument("--tx-batch", type=int, default=0, help="guest tx-batch= (virtio only)")
    ap.add_argument("--repeat", "--rounds", type=int, default=1,
                    help="rounds per cell, implementations alternating; the median is kept")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--no-perf", dest="perf", action="store_false",
                    help="do not count emulated instructions (perf stat) in tx runs")
    ARGS = ap.parse_args()
    ARGS.qnic = ARGS.qnic or os.path.join(ARGS.build, "vmm", "qnic-vmm")
    ARGS.guest = ARGS.guest or os.path.join(ARGS.build, "tests", "guest", "qnic-guest.elf")

    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (network namespaces and tap)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        problems.append("/dev/kvm is missing")
    if not os.path.exists(ARGS.guest):
        problems.append("guest ELF %s not found (build with -Dguest=true)" % ARGS.guest)
    impls = []
    for name in ARGS.impls.split(","):
        binary = {"qemu": ARGS.qemu, "qnic": ARGS.qnic, "base": ARGS.base}.get(name)
        if not binary:
            problems.append("unknown implementation %r (or --base not given)" % name)
        elif not shutil.which(binary):
            problems.append("%s binary %s not found" % (name, binary))
        else:
            impls.append(Impl(name, "qemu" if name == "qemu" else "qnic", shutil.which(binary)))
    if problems:
        for p in problems:
            log("bench: " + p)
        sys.exit(77)

    log("machine: " + machine())
    log("guest: %s" % ARGS.guest)
    for i in impls:
        log("impl %s: %s" % (i.name, i.binary))
    sizes = [int(s) for s in ARGS.sizes.split(",")]
    tftp_sizes = [int(s[:-1]) << (20 if s[-1] in "Mm" else 10) if s[-1] in "MmKk" else int(s)
                  for s in ARGS.tftp_sizes.split(",")]
    cells = []
    for w in ARGS.only.split(","):
        for nic in ARGS.nics.split(","):
            for size in (tftp_sizes if w == "tftp" else sizes):
                cells.append((w, nic, size))
            if w == "tftp":
                break           # slirp's TFTP pace does not depend on the NIC: one NIC is enough
    rows = []
    for w, nic, size in cells:
        runs = {impl.name: [] for impl in impls}
        unit, emulated = "", set()
        # rounds alternate the implementations (A B, then B A ...): a burst
        # of host load hits both alike; the median is kept
        for r in range(ARGS.repeat):
            for impl in (impls if r % 2 == 0 else impls[::-1]):
                EMULATED.discard(id(impl))
                log("run %s nic=%s size=%d impl=%s round %d" % (w, nic, size, impl.name, r + 1))
                try:
                    v, u, detail, cmd = WORKLOADS[w](impl, nic, size)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    v, u, detail, cmd = None, "", "error: %s" % e, ""
                log("  %s %s (%s)" % (v, u, detail))
                log("  $ " + cmd)
                if v is not None:
                    runs[impl.name].append(v)
                    unit = u
                    if id(impl) in EMULATED:
                        emulated.add(impl.name)
        vals = {}
        for impl in impls:
            v = runs[impl.name]
            vals[impl.name] = (statistics.median(v) if v else None,
                               unit + (" (kvm-emul>100/frame)" if impl.name in emulated else ""))
        rows.append((w, nic, size, vals))

    log("")
    log("machine: " + machine())
    head = "| workload | nic | size | " + " | ".join(i.name for i in impls) + " | " + \
        " | ".join("%s/%s" % (i.name, impls[0].name) for i in impls[1:]) + " |"
    log(head)
    log("|" + "---|" * (3 + 2 * len(impls) - 1))
    for w, nic, size, vals in rows:
        unit = next((u.split(" (")[0] for _, u in vals.values() if u), "")
        cols = []
        for i in impls:
            v, u = vals[i.name]
            cols.append("fail" if v is None else ("%.2f %s" % (v, u) if isinstance(v, float) else "%d %s" % (v, u)))
        ref = vals[impls[0].name][0]
        ratios = []
        for i in impls[1:]:
            v = vals[i.name][0]
            if not v or not ref:
                ratios.append("-")
            elif unit == "s":
                ratios.append("%.2fx faster" % (ref / v) if v <= ref else "%.2fx slower" % (v / ref))
            else:
                ratios.append("%.2f" % (v / ref))
        log("| %s | %s | %s | %s | %s |" % (w, nic, size, " | ".join(cols), " | ".join(ratios)))


if __name__ == "__main__":
    main()
