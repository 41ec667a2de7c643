#!/usr/bin/env python3
"""Live migration of the test guest between qnic-vmm processes under KVM.

The test enters a network namespace of its own holding a tap (qtap0,
192.168.77.1/24) and opens the tap's queue itself, as a management layer
would, handing the same fd to every qnic-vmm (`-netdev tap,fd=N`). The
guest (192.168.77.2, one NIC of the model under test) starts on the first,
pings the namespace once and then serves ICMP and UDP echo. The namespace
pings it every 0.2 s while the test migrates it (QMP `migrate` to a
destination started with `-incoming unix:...`) CYCLES times in a row, each
destination becoming the next source. Checked: every migration completes and the destination runs; the
guest answers pings after every switch-over and at the end (the sequence
goes on, a few lost during each stop); the bridge sees the NIC announce
itself (RARP or gratuitous ARP from its MAC) after every switch-over, which
is what would move a switch's forwarding entry to the new host; the guest
finally passes (it answers the UDP "quit" on the last destination).

Without /dev/kvm the test runs itself inside scripts/nested-kvm.sh (slow:
the guest runs at TCG speed there; CYCLES and the guest's RAM are kept
small so one model takes a few minutes at most) and skips only when that
cannot start.

usage: test-guest-migrate.py --nic virtio|e1000|rtl8139 [--cycles N] [--inside]
"""
import argparse
import ctypes
import fcntl
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
VM_TIMEOUT = 300                # one guest's whole life, every migration included
MIG_TIMEOUT = 120               # one migration
QMP_TIMEOUT = 90                # one QMP answer (see start_vmm)
MAC = "52:54:00:12:34:57"
GUEST_IP = "192.168.77.2"

# Counts what the bridge receives from the guest's MAC: RARP (0x8035) and
# gratuitous ARP (sender IP == target IP), one line per frame with the time.
WATCH_PY = r"""
import socket, struct, sys, time
mac = bytes.fromhex(sys.argv[2].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
print('watching', flush=True)
while True:
    f = s.recv(2048)
    if len(f) < 42 or f[6:12] != mac:
        continue
    et = struct.unpack('!H', f[12:14])[0]
    if et == 0x8035:
        print('announce rarp %.3f' % time.time(), flush=True)
    elif et == 0x0806 and f[28:32] == f[38:42]:
        print('announce garp %.3f' % time.time(), flush=True)
"""


class Watcher:
    """The announcement counter, in the namespace."""

    def __init__(self, ns, ifname):
        self.times = []
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", WATCH_PY, ifname, MAC],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready.wait(10)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line == "watching":
                self.ready.set()
            elif line.startswith("announce "):
                self.times.append(float(line.split()[2]))
            else:
                g.log("[watch] " + line)

    def stop(self):
        g.kill_group(self.proc)


class Pinger:
    """ping -D every 0.2 s from the namespace; keeps (time, seq) of replies."""

    def __init__(self, ns):
        self.replies = []
        self.summary = ""
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-D", "-i", "0.2", "-W", "1", GUEST_IP],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            m = re.match(r"\[([0-9.]+)\] \d+ bytes from .*icmp_seq=(\d+)", line)
            if m:
                self.replies.append((float(m.group(1)), int(m.group(2))))
            elif "transmitted" in line:
                self.summary = line

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGINT)     # ping prints its summary
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            g.kill_group(self.proc)
        time.sleep(0.2)

    def transmitted(self):
        m = re.match(r"(\d+) packets transmitted", self.summary)
        return int(m.group(1)) if m else None


CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454ca
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def enter_netns(name):
    """Move this (single-threaded so far) process into netns NAME; returns
    an fd of the namespace it was in, for leave_netns."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open("/var/run/netns/" + name, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)
    return old


def leave_netns(old):
    ctypes.CDLL(None, use_errno=True).setns(old, CLONE_NEWNET)
    os.close(old)


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, name.encode().ljust(16, b"\0") + (IFF_TAP | IFF_NO_PI).to_bytes(2, "little")
                + bytes(22))
    return fd


class FdVM(g.VM):
    """A guestlib VM that inherits the tap fd."""

    def start(self):
        real_popen = g.subprocess.Popen

        def popen(*a, **kw):
            kw["pass_fds"] = (self.tap_fd,)
            return real_popen(*a, **kw)
        g.subprocess.Popen = popen
        try:
            return super().start()
        finally:
            g.subprocess.Popen = real_popen


def start_vmm(vmm, nic, tmp, n, tap_fd, incoming=None):
    model, guest_nic, _ = g.NICS[nic]
    qmp = os.path.join(tmp, "qmp%d.sock" % n)
    append = ("test=ping ip=%s dst=192.168.77.1 count=1 echo-port=7 nic=%s timeout=%d"
              % (GUEST_IP, guest_nic, VM_TIMEOUT - 10))
    args = ["-netdev", "tap,id=n0,fd=%d" % tap_fd,
            "-device", "%s,netdev=n0,mac=%s" % (model, MAC),
            "-qmp", "unix:%s,server=on,wait=off" % qmp]
    if incoming:
        args += ["-incoming", incoming]
    vm = FdVM("qnic", vmm, "mig%d-%s" % (n, nic), append, args, mem="32")
    vm.tap_fd = tap_fd
    vm.start()
    vm.qmp = g.Qmp(qmp, timeout=QMP_TIMEOUT)   # see guestlib.Qmp
    return vm


def wait_status(q, want, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = q.cmd("query-status").get("return", {})
        if r.get("status") == want:
            return True
        time.sleep(0.1)
    return False


def migrate(ck, src, dst, uri):
    """One switch-over; True when the destination runs the guest."""
    r = src.qmp.cmd("migrate", uri=uri)
    if "error" in r:
        ck.check("qnic", "migrate accepted", False, str(r["error"]))
        return False
    end = time.monotonic() + MIG_TIMEOUT
    status = None
    while time.monotonic() < end:
        status = src.qmp.cmd("query-migrate").get("return", {}).get("status")
        if status in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.1)
    if status != "completed":
        ck.check("qnic", "migration completed", False, "status %r; source stderr %r"
                 % (status, src.err_lines[-3:]))
        return False
    return wait_status(dst.qmp, "running", 20)


def run_model(ck, vmm, nic, cycles):
    g.require_root()
    g.require_tun()
    with tempfile.TemporaryDirectory() as tmp, g.Netns("qnicm") as ns:
        old_ns = enter_netns(ns.name)
        tap_fd = open_tap("qtap0")
        g.run(["ip", "addr", "add", "192.168.77.1/24", "dev", "qtap0"])
        g.run(["ip", "link", "set", "qtap0", "up"])
        watch = Watcher(ns.name, "qtap0")
        vms = []
        pinger = None
        try:
            vms.append(start_vmm(vmm, nic, tmp, 0, tap_fd))
            ready = vms[0].wait_for("ready", VM_TIMEOUT)
            ck.check("qnic", "%s: the guest is up and pinged the bridge" % nic, ready is not None)
            if ready is None:
                return
            r = vms[0].qmp.cmd("query-commands")
            names = [c.get("name") for c in r.get("return", [])]
            if "migrate" not in names:
                g.skip("qnic-vmm has no QMP migrate yet")
            pinger = Pinger(ns.name)
            time.sleep(1.0)
            switched = []
            for i in range(1, cycles + 1):
                uri = "unix:%s" % os.path.join(tmp, "mig%d.sock" % i)
                dst = start_vmm(vmm, nic, tmp, i, tap_fd, incoming=uri)
                vms.append(dst)
                ok = migrate(ck, vms[-2], dst, uri)
                ck.check("qnic", "%s: migration %d of %d: the destination runs" % (nic, i, cycles), ok)
                if not ok:
                    return
                switched.append(time.time())
                vms[-2].qmp.cmd("quit")
                vms[-2].wait(10)
                # let the pings (0.2 s apart) see this destination
                time.sleep(1.5)
            time.sleep(1.0)
            pinger.stop()
            replies = pinger.replies
            sent = pinger.transmitted()
            g.log("%s: %d replies of %s pings, %d announcements" % (nic, len(replies), sent, len(watch.times)))
            for i, t in enumerate(switched):
                after = [s for (rt, s) in replies if rt > t]
                ck.check("qnic", "%s: pings answered after switch-over %d" % (nic, i + 1), bool(after))
                seen = [a for a in watch.times if a >= t - 1.0]
                ck.check("qnic", "%s: the NIC announced itself after switch-over %d" % (nic, i + 1),
                         bool(seen))
            seqs = [s for (_, s) in replies]
            ck.check("qnic", "%s: the ping sequence went on to the end" % nic,
                     sent is not None and seqs and max(seqs) >= sent - 2, "last seq %r of %r" %
                     (max(seqs) if seqs else None, sent))
            ck.check("qnic", "%s: at most 2 s of pings lost per switch-over" % nic,
                     sent is not None and sent - len(replies) <= 10 * cycles + 2,
                     "%d of %s lost" % ((sent or 0) - len(replies), sent))
            r = ns.exec([sys.executable, "-c",
                         "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);"
                         "s.sendto(b'quit',('%s',7));print(s.recvfrom(100)[0])" % GUEST_IP],
                        check=False, capture=True)
            vms[-1].wait(15)
            ck.check("qnic", "%s: the guest passes on the last destination" % nic, vms[-1].guest_passed(),
                     "status %r, quit reply %r" % (vms[-1].status, r.stdout))
        finally:
            if pinger:
                g.kill_group(pinger.proc)
            watch.stop()
            for vm in vms:
                vm.kill()
            os.close(tap_fd)
            leave_netns(old_ns)


def run_nested(args, build):
    script = os.path.join(SRC, "scripts", "nested-kvm.sh")
    argv = ["sh", script, os.path.join(build, "tests", "nested"), "--timeout", "900", "--",
            sys.executable, os.path.abspath(__file__), "--inside", "--nic", args.nic,
            "--cycles", str(args.cycles)]
    g.log("no usable /dev/kvm: running under nested KVM: %s" % " ".join(argv))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for raw in p.stdout:
            g.log("[nested] %s" % raw.decode("utf-8", "replace").rstrip())
        rc = p.wait()
    finally:
        g.kill_group(p)
    if rc == 2:
        g.skip("nested KVM cannot start here (a package is missing); see the log")
    sys.exit(rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nic", required=True, choices=["virtio", "e1000", "rtl8139"])
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--inside", action="store_true")
    args = ap.parse_args()
    vmm = os.environ.get("QNIC_VMM", "")
    if not os.path.exists(vmm):
        g.skip("QNIC_VMM not set or missing (%r)" % vmm)
    g.guest_elf()
    build = os.environ.get("QNIC_BUILD_DIR") or os.path.join(SRC, "build")
    why = g.kvm_problem()
    if why and not args.inside:
        run_nested(args, build)
    if why:
        g.skip("even nested KVM has no usable /dev/kvm: %s" % why)
    ck = g.Checker()
    run_model(ck, vmm, args.nic, args.cycles)
    ck.finish()


if __name__ == "__main__":
    main()
