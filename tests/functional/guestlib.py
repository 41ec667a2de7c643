"""Helpers for the end-to-end tests that boot tests/guest (qnic-guest.elf).

Each test runs the same guest twice with the same command line: once under
QEMU (the reference: its own NIC models and netdevs) and once under
qnic-vmm, and passes only when both pass. A VM is always started with the
identical argument list; only the binary differs. Results come from the
guest's "QNIC-GUEST: key=value" serial lines and from the exit status that
isa-debug-exit produces ((value << 1) | 1: 1 = guest pass, 3 = guest fail).

Standard library only. Every process has a timeout and is killed on exit;
namespaces and switches a test creates are removed in `finally` blocks.
"""

import errno
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SKIP = 77

NICS = {
    # name: (-device model and options, guest nic=, expected guest lines)
    "virtio": ("virtio-net-pci", "virtio", {"virtio": {"transport": "modern", "ring": "split"}}),
    "virtio-legacy": ("virtio-net-pci,disable-modern=on", "virtio-legacy",
                      {"virtio": {"transport": "legacy", "ring": "split"}}),
    "virtio-packed": ("virtio-net-pci,packed=on", "virtio-packed",
                      {"virtio": {"transport": "modern", "ring": "packed"}}),
    "e1000": ("e1000", "e1000", {}),
    "rtl8139": ("rtl8139", "rtl8139", {}),
    "virtio-mmio": ("virtio-net-device", "virtio-mmio", {"virtio": {"ring": "split"}}),
}


def machine_for(impl, nic):
    """QEMU's pc has no virtio-mmio transport: the QEMU reference run of the
    virtio-mmio NIC uses microvm with ACPI off, where QEMU appends
    virtio_mmio.device=... to the command line as qnic-vmm does on pc
    (documented in docs/testing.md). Everything else runs on pc."""
    if impl == "qemu" and nic == "virtio-mmio":
        return "microvm,acpi=off"
    return "pc"


def firmware_args(machine):
    """QEMU's pc machine runs SeaBIOS before the PVH kernel; on a PVM-based
    KVM host (where guest supervisor code is emulated) that takes 6-7 s per
    boot, qboot (Debian's /usr/share/qemu/qboot.rom, the firmware microvm
    uses) well under one. qboot leaves the PIIX3 PIRQ routing partly to the
    OS, which the guest handles (tests/guest/pci.c). qnic-vmm accepts and
    ignores -bios, so both implementations still get the same arguments.
    QNIC_GUEST_BIOS=default keeps QEMU's own firmware (SeaBIOS)."""
    bios = os.environ.get("QNIC_GUEST_BIOS", "/usr/share/qemu/qboot.rom")
    if machine.split(",")[0] == "pc" and bios != "default" and os.path.exists(bios):
        return ["-bios", bios]
    return []


_log_lock = threading.Lock()


def log(msg):
    # One write per line under a lock: reader threads and the main thread
    # log at once, and print() writes the text and the newline separately.
    with _log_lock:
        sys.stdout.write(msg + "\n")
        sys.stdout.flush()


def skip(reason):
    log("SKIP: " + reason)
    sys.exit(SKIP)


def guest_elf():
    path = os.environ.get("QNIC_GUEST_ELF")
    if not path:
        build = os.environ.get("QNIC_BUILD_DIR", "")
        path = os.path.join(build, "tests", "guest", "qnic-guest.elf")
    if not os.path.exists(path):
        skip("guest ELF not found (set QNIC_GUEST_ELF; got %r)" % path)
    return path


def impls():
    """The implementations to run: [(name, binary)]; QEMU first."""
    want = os.environ.get("QNIC_GUEST_IMPLS", "qemu,qnic").split(",")
    out = []
    for name in want:
        if name == "qemu":
            out.append(("qemu", os.environ.get("QEMU_BINARY", "qemu-system-x86_64")))
        elif name == "qnic":
            out.append(("qnic", os.environ.get("QNIC_VMM", "qnic-vmm")))
    return out


def impls_all():
    """Both implementations regardless of QNIC_GUEST_IMPLS (pair tests pick sides)."""
    return [("qemu", os.environ.get("QEMU_BINARY", "qemu-system-x86_64")),
            ("qnic", os.environ.get("QNIC_VMM", "qnic-vmm"))]


_kvm_state = None


def kvm_problem():
    """None when /dev/kvm can create a VM, else why not (one phrase). A node
    that exists but cannot be opened, or whose module refuses
    KVM_CREATE_VM, counts as missing: qnic-vmm would fail to start."""
    global _kvm_state
    if _kvm_state is None:
        _kvm_state = ""
        try:
            fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            _kvm_state = "/dev/kvm is missing" if e.errno == errno.ENOENT else "/dev/kvm cannot be opened (%s)" % e.strerror
        else:
            try:
                if fcntl.ioctl(fd, 0xAE00) != 12:               # KVM_GET_API_VERSION
                    _kvm_state = "/dev/kvm has an unexpected API version"
                else:
                    os.close(fcntl.ioctl(fd, 0xAE01, 0))        # KVM_CREATE_VM
            except OSError as e:
                _kvm_state = "/dev/kvm cannot create a VM (%s)" % e.strerror
            finally:
                os.close(fd)
    return _kvm_state or None


def qemu_accel():
    """QEMU's accelerator: kvm when /dev/kvm works, else tcg. Under TCG the
    test guest boots in well under a second (PVH, qboot); QEMU runs its own
    device models either way, so a QEMU guest never needs KVM."""
    return "tcg" if kvm_problem() else "kvm"


def require_qemu():
    if not shutil.which(os.environ.get("QEMU_BINARY", "qemu-system-x86_64")):
        skip("qemu-system-x86_64 not installed (the reference every test also runs)")
    guest_elf()


def require_kvm(what):
    """qnic-vmm runs guests under KVM only: skip, saying what of qnic this
    test would have checked, when /dev/kvm cannot run it."""
    why = kvm_problem()
    if why:
        skip("qnic-vmm needs KVM and %s: %s" % (why, what))


def require_common(what="the qnic-vmm half of this test"):
    """Everything a QEMU-and-qnic-vmm test needs; `what` names the qnic
    part, for the skip line when KVM is missing."""
    require_qemu()
    if "qnic" not in [name for name, _ in impls()]:
        return                          # QNIC_GUEST_IMPLS=qemu: QEMU alone, TCG is fine
    require_kvm(what)
    q = os.environ.get("QNIC_VMM", "")
    if not q or not os.path.exists(q):
        skip("QNIC_VMM not set or missing (%r)" % q)


def vhost_user_net_binary():
    """qnic-vhost-user-net: $QNIC_VHOST_USER_NET, else BUILD/tools/ (skip if missing)."""
    b = os.environ.get("QNIC_VHOST_USER_NET")
    if not b and os.environ.get("QNIC_BUILD_DIR"):
        b = os.path.join(os.environ["QNIC_BUILD_DIR"], "tools", "qnic-vhost-user-net")
    if not b or not os.path.exists(b):
        skip("qnic-vhost-user-net not built (QNIC_VHOST_USER_NET / QNIC_BUILD_DIR: %r)" % b)
    return b


def vhost_user_irq():
    """The guest's irq= on a vhost-user virtio-net under QEMU: QEMU 7.2
    under TCG segfaults as soon as a guest enables MSI-X on a virtio-net-pci
    whose netdev is vhost-user (in its MSI-X vector notifier path, inside
    vhost_net_start; any backend, DPDK's too), so under TCG the guest takes
    INTx (irq=intx, its equivalent of Linux's pci=nomsi). MSI-X under KVM."""
    return "intx" if qemu_accel() == "tcg" else "msix"


def vhost_user_vm_args(sock, device, chardev_extra=""):
    """A VMM's arguments for a NIC (-device string) on -netdev vhost-user to
    the backend on sock: guest RAM must be a shared memfd."""
    return ["-object", "memory-backend-memfd,id=mem,size=128M,share=on",
            "-machine", "memory-backend=mem",
            "-chardev", "socket,id=c0,path=%s%s" % (sock, chardev_extra),
            "-netdev", "vhost-user,id=n0,chardev=c0",
            "-device", device]


def kill_group(proc):
    """SIGKILL a process started with start_new_session=True and its children."""
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class VhostUserDaemon:
    """qnic-vhost-user-net --once serving one netdev on a socket, in its own
    process group (optionally inside a namespace); it leaves when its
    frontend does."""

    def __init__(self, sock, netdev, netns=None, name="daemon"):
        self.sock, self.name = sock, name
        self.argv = [vhost_user_net_binary(), "--socket", sock, "--once", "-d", "guest_errors",
                     "--netdev", netdev]
        if netns:
            self.argv = ["ip", "netns", "exec", netns] + self.argv
        self.proc = None

    def start(self, timeout=10):
        log("[%s] $ %s" % (self.name, " ".join(shlex.quote(a) for a in self.argv)))
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + timeout
        while not os.path.exists(self.sock) and self.proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        return os.path.exists(self.sock)

    def wait(self, timeout=10):
        """Exit status after the frontend left (None if still running)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        kill_group(self.proc)


def require_root():
    if os.geteuid() != 0:
        skip("needs root (network namespaces)")


def require_tun():
    if not os.path.exists("/dev/net/tun"):
        skip("/dev/net/tun is missing")


def free_port(kind=socket.SOCK_DGRAM):
    """A 127.0.0.1 port free for both UDP and TCP: a port the kernel hands
    out for UDP may still be taken for TCP (a listener of a parallel test,
    TIME_WAIT), which once failed QEMU's socket listen in CI."""
    other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
    for _ in range(100):
        s = socket.socket(socket.AF_INET, kind)
        t = socket.socket(socket.AF_INET, other)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
            t.close()
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def parse_line(line):
    """'QNIC-GUEST: tftp size=4 crc32=0x1 msg="a b"' -> ('tftp', {...})."""
    m = re.match(r"\s*QNIC-GUEST: (.*)$", line)
    if not m:
        return None
    body = m.group(1).strip()
    try:
        parts = shlex.split(body)
    except ValueError:
        parts = body.split()
    tag = None
    kv = {}
    for p in parts:
        if "=" in p:
            k, v = p.split("=", 1)
            kv[k] = v
        elif tag is None:
            tag = p
    return tag, kv


_live_vms = []


def _on_term(signum, frame):
    # meson sends SIGTERM on timeout: VMs run in their own sessions, so
    # kill them here or they would outlive the test.
    for vm in list(_live_vms):
        vm.kill()
    sys.exit(1)


signal.signal(signal.SIGTERM, _on_term)


class VM:
    """One guest run under one implementation, serial on stdout."""

    def __init__(self, impl, binary, name, append, net_args, netns=None, mem="128", machine="pc"):
        self.impl, self.name = impl, name
        # qnic-vmm has KVM only; QEMU falls back to TCG without it
        self.accel = "kvm" if impl == "qnic" else qemu_accel()
        argv = [binary, "-M", machine, "-accel", self.accel, "-m", mem, "-nodefaults", "-display", "none",
                "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"] + firmware_args(machine) + [
                "-kernel", guest_elf(), "-append", append] + net_args
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        self.argv = argv
        self.lines = []
        self.records = []           # (tag, dict)
        self.err_lines = []         # the VMM's stderr
        self.cond = threading.Condition()
        self.proc = None
        self.status = None

    def start(self):
        log("[%s/%s] $ %s" % (self.impl, self.name, " ".join(shlex.quote(a) for a in self.argv)))
        # stderr gets its own pipe: a VMM warning written while the guest is
        # in the middle of a serial line must not split that line.
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        _live_vms.append(self)
        self._readers = [threading.Thread(target=self._reader, daemon=True),
                         threading.Thread(target=self._stderr_reader, daemon=True)]
        for t in self._readers:
            t.start()
        return self

    def _stderr_reader(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.cond:
                self.err_lines.append(line)
            log("[%s/%s] stderr: %s" % (self.impl, self.name, line))

    def _reader(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            rec = parse_line(line)
            with self.cond:
                self.lines.append(line)
                if rec:
                    self.records.append(rec)
                self.cond.notify_all()
            log("[%s/%s] %s" % (self.impl, self.name, line))
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, tag, timeout):
        """Wait until the guest prints a record with this tag; None on timeout/exit."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, kv in self.records:
                    if t == tag:
                        return kv
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    for t, kv in self.records:
                        if t == tag:
                            return kv
                    return None
                self.cond.wait(min(left, 0.5))

    def wait(self, timeout):
        try:
            self.status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("[%s/%s] timeout after %ss: killing" % (self.impl, self.name, timeout))
            self.kill()
            self.status = None
        for t in getattr(self, "_readers", []):
            t.join(timeout=2)       # let the readers drain the pipes
        return self.status

    def kill(self):
        kill_group(self.proc)

    def record(self, tag):
        for t, kv in self.records:
            if t == tag:
                return kv
        return None

    def all_records(self, tag):
        return [kv for t, kv in self.records if t == tag]

    def guest_passed(self):
        """Exit status 1 (debug-exit 0) and a result=pass line."""
        res = [kv.get("result") for t, kv in self.records if "result" in kv]
        return self.status == 1 and res[-1:] == ["pass"]


def run_logged(argv, prefix, env=None):
    """Run ARGV in a session of its own, logging each line it prints
    (stdout and stderr) after PREFIX; returns its exit status. Its process
    group is killed when this returns or raises."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for raw in p.stdout:
            log(prefix + raw.decode("utf-8", "replace").rstrip())
        return p.wait()
    finally:
        kill_group(p)


def wait_nth(vm, tag, n, timeout):
    """The Nth (from 1) record with TAG of VM (a VM, or anything with its
    records, cond and proc), waiting up to TIMEOUT; None when the guest
    exits or the time runs out first."""
    end = time.monotonic() + timeout
    with vm.cond:
        while True:
            got = [kv for t, kv in vm.records if t == tag]
            if len(got) >= n:
                return got[n - 1]
            left = end - time.monotonic()
            if left <= 0 or vm.proc.poll() is not None:
                return None
            vm.cond.wait(min(left, 0.5))


class Checker:
    """Collects named checks per implementation and prints a summary."""

    def __init__(self):
        self.failures = []
        self.results = {}

    def check(self, impl, what, ok, detail=""):
        log("%s [%s] %s%s" % ("ok  " if ok else "FAIL", impl, what, (": " + detail) if detail else ""))
        self.results.setdefault(impl, True)
        if not ok:
            self.results[impl] = False
            self.failures.append((impl, what, detail))
        return ok

    def check_nic(self, impl, vm, nic):
        for tag, fields in NICS[nic][2].items():
            rec = vm.record(tag)
            for k, v in fields.items():
                got = rec.get(k) if rec else None
                self.check(impl, "guest reports %s %s=%s" % (tag, k, v), got == v, "got %r" % got)

    def check_dhcp_tftp_echo(self, impl, vm, port, size, crc, timeout, via="", tag=b"qnic-",
                             quit=True):
        """The checks of the guest's test=dhcp-tftp run: the DHCP lease, the
        TFTP download's size and CRC32, then a UDP datagram echoed through
        the hostfwd rule on `port` (and, with quit, "quit" to end the
        guest's echo loop). `via` is appended to the names of the DHCP and
        echo checks.
        Returns the guest's "ready" record (None if it never came)."""
        t0 = time.monotonic()
        ready = vm.wait_for("ready", timeout)
        dhcp = vm.record("dhcp") or {}
        self.check(impl, "DHCP lease 10.0.2.15" + via, dhcp.get("ip") == "10.0.2.15", "got %r" % dhcp.get("ip"))
        tftp = [r for r in vm.all_records("tftp") if "crc32" in r]
        tftp = tftp[0] if tftp else {}
        self.check(impl, "TFTP size %d" % size, tftp.get("size") == str(size), "got %r" % tftp.get("size"))
        self.check(impl, "TFTP crc32 0x%08x" % crc, tftp.get("crc32") == "0x%08x" % crc,
                   "got %r" % tftp.get("crc32"))
        if ready is None:
            self.check(impl, "guest reached the echo phase", False)
            return None
        log("[%s] DHCP+TFTP phase took %.2f s" % (impl, time.monotonic() - t0))
        payload = tag + os.urandom(8).hex().encode()
        echo = udp_exchange("127.0.0.1", port, payload)
        self.check(impl, "hostfwd UDP datagram echoed" + via, echo == payload, "got %r" % echo)
        if quit:
            udp_exchange("127.0.0.1", port, b"quit", timeout=2, tries=2)
        return ready

    def finish(self):
        log("summary: " + ", ".join("%s=%s" % (k, "pass" if v else "FAIL") for k, v in self.results.items()))
        if self.failures:
            for impl, what, detail in self.failures:
                log("FAILED [%s] %s %s" % (impl, what, detail))
            sys.exit(1)
        sys.exit(0)


class Netns:
    """A network namespace owned by the test, removed on exit."""

    def __init__(self, prefix="qnicg"):
        self.name = "%s-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000) % 100000)

    def __enter__(self):
        run(["ip", "netns", "add", self.name])
        self.exec(["ip", "link", "set", "lo", "up"])
        return self

    def exec(self, argv, check=True, timeout=30, capture=False):
        return run(["ip", "netns", "exec", self.name] + argv, check=check, timeout=timeout, capture=capture)

    def __exit__(self, *a):
        run(["ip", "netns", "del", self.name], check=False)


def run(argv, check=True, timeout=30, capture=False):
    log("$ " + " ".join(shlex.quote(a) for a in argv))
    r = subprocess.run(argv, timeout=timeout, stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s" % (r.returncode, " ".join(argv)))
    return r


def udp_exchange(host, port, payload, timeout=3.0, tries=3, bind=None):
    """Send one datagram and return the first reply (None when nothing came)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if bind:
            s.bind(bind)
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(payload, (host, port))
            try:
                data, _ = s.recvfrom(65536)
                return data
            except socket.timeout:
                continue
        return None
    finally:
        s.close()


class Qmp:
    """A QMP client on a unix socket the VMM listens on (-qmp
    unix:PATH,server=on,wait=off): negotiates, runs commands, keeps events."""

    # A VMM answers at once; the wait is for nested KVM on TCG (tests that
    # run qnic-vmm in scripts/nested-kvm.sh), whose kernel has been seen
    # stalled for 26 s on a loaded 2-core host.
    def __init__(self, path, timeout=90, negotiate=True):
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile("rb")
        self.events = []
        self.greeting = self._read()
        if negotiate:
            self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line)

    def cmd(self, _command, **args):
        """Run a command; returns the whole reply ({"return": ...} or {"error": ...})."""
        msg = {"execute": _command}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            return r

    def event(self, name, timeout=10):
        """The first event called name (already received or arriving within timeout)."""
        end = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e["event"] == name:
                    self.events.remove(e)
                    return e
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                r = self._read()
            except (socket.timeout, EOFError):
                return None
            if "event" in r:
                self.events.append(r)

    def close(self):
        self.file.close()
        self.sock.close()
