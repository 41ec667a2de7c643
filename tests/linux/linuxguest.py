"""Host side of the Linux test guest (scripts/build-linux-guest.sh,
tests/linux/init, docs/linux-guest.md): builds the guest into the build
directory, boots it under QEMU (KVM when /dev/kvm works, else TCG) with a
plan on the kernel command line, optionally behind qnic-vhost-user-net,
and parses the QNIC-* lines the guest prints on its serial console.

Standard library only. Every process it starts runs in its own session and
is killed in a finally block (or by guestlib's SIGTERM handler, which ends
the script with SystemExit so those blocks run).
"""

import argparse
import functools
import hashlib
import json
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "functional"))
import guestlib as g  # noqa: E402  (log, skip, Checker)

# Under TCG, QEMU 7.2 segfaults (in its MSI-X vector notifier path inside
# vhost_net_start) as soon as a guest enables MSI-X on a virtio-net-pci
# whose netdev is vhost-user: Linux boots with pci=nomsi and uses INTx.
# This is QEMU's bug, not qnic's; docs/linux-guest.md has the details.
BASE_APPEND = "console=ttyS0 panic=-1 pci=nomsi"


def build_guest(build_dir):
    """Build (or find up to date) the guest in BUILD/tests/linux/guest;
    skip the test when a package is missing. Returns (vmlinuz, initrd)."""
    out = os.path.join(build_dir, "tests", "linux", "guest")
    script = os.path.join(SRC, "scripts", "build-linux-guest.sh")
    t0 = time.monotonic()
    r = subprocess.run(["sh", script, out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=600)
    text = r.stdout.decode("utf-8", "replace").strip()
    if r.returncode == 2:
        g.skip(text.splitlines()[-1] if text else "the Linux guest's packages are missing")
    if r.returncode != 0:
        g.log(text)
        raise RuntimeError("build-linux-guest.sh failed (%d)" % r.returncode)
    g.log("guest: %s (%.1f s)%s" % (out, time.monotonic() - t0, (": " + text) if text else ""))
    return os.path.join(out, "vmlinuz"), os.path.join(out, "initrd.img")


def accel():
    """kvm when /dev/kvm can be opened, else tcg. Even a KVM that cannot
    boot a stock kernel (this machine class's PVM-based one) would be
    picked; QNIC_LINUX_ACCEL=tcg forces TCG there."""
    want = os.environ.get("QNIC_LINUX_ACCEL")
    if want:
        return want
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return "kvm"
    except OSError:
        return "tcg"


def parse(line):
    """'QNIC-RESULT n=1 step=dhcp status=ok ip=...' -> ('RESULT', {...});
    anything else -> None. Kernel messages can precede the tag on the same
    line (printk while init writes), so the tag is searched, not matched."""
    i = line.find("QNIC-")
    if i < 0:
        return None
    words = line[i:].split()
    tag = words[0][len("QNIC-"):]
    kv = {}
    for w in words[1:]:
        if "=" in w:
            k, v = w.split("=", 1)
            kv[k] = v
    return tag, kv


def write_blob(directory, size):
    """A random file DIRECTORY/blob.bin of SIZE bytes for the download
    steps; returns (its CRC32 as zlib computes it, its SHA-256 hex)."""
    blob = os.urandom(size)
    with open(os.path.join(directory, "blob.bin"), "wb") as f:
        f.write(blob)
    return zlib.crc32(blob) & 0xffffffff, hashlib.sha256(blob).hexdigest()


class HttpServer:
    """A quiet static file server on 127.0.0.1 (slirp's 10.0.2.2 is the
    host's loopback, so the guest reaches it as 10.0.2.2:PORT)."""

    def __init__(self, directory):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass
        handler = functools.partial(Quiet, directory=directory)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.server.shutdown()
        self.server.server_close()


class Proc(g.VM):
    """A child in its own session (guestlib's VM: the same waiting, killing
    and SIGTERM cleanup) whose stdout lines are parsed as QNIC-* records of
    the Linux guest instead of the test guest's QNIC-GUEST lines."""

    def __init__(self, name, argv):
        # guestlib.VM's constructor builds a qnic-guest command line; only
        # its state is wanted here.
        self.impl, self.name, self.argv = "linux", name, argv
        self.lines, self.records, self.err_lines = [], [], []
        self.cond = threading.Condition()
        self.proc = None
        self.status = None
        self.start()

    def _reader(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            rec = parse(line)
            with self.cond:
                self.lines.append(line)
                if rec:
                    self.records.append(rec)
                self.cond.notify_all()
            g.log("[%s] %s" % (self.name, line))
        with self.cond:
            self.cond.notify_all()

    def all(self, tag):
        with self.cond:
            return [kv for t, kv in self.records if t == tag]


def qemu_argv(vmlinuz, initrd, append, net_args, mem="512M", shared_mem=False, qmp=None):
    """QEMU's command line for the guest. shared_mem puts RAM on a shared
    memfd, which vhost-user needs (the daemon maps guest RAM); qmp is a
    unix socket path QEMU listens on for QMP."""
    qemu = os.environ.get("QEMU_BINARY", "qemu-system-x86_64")
    argv = [qemu, "-machine", "pc", "-accel", accel(), "-m", mem, "-nodefaults",
            "-display", "none", "-no-reboot", "-serial", "stdio"]
    if qmp:
        argv += ["-qmp", "unix:%s,server=on,wait=off" % qmp]
    # qboot (the firmware of microvm, in Debian's qemu package) starts the
    # kernel seconds sooner than SeaBIOS under TCG and still hands over the
    # ACPI tables poweroff needs. QNIC_GUEST_BIOS=default keeps SeaBIOS.
    bios = os.environ.get("QNIC_GUEST_BIOS", "/usr/share/qemu/qboot.rom")
    if bios != "default" and os.path.exists(bios):
        argv += ["-bios", bios]
    if shared_mem:
        argv += ["-object", "memory-backend-memfd,id=mem,size=%s,share=on" % mem,
                 "-machine", "memory-backend=mem"]
    return argv + ["-kernel", vmlinuz, "-initrd", initrd, "-append", append] + net_args


class Daemon(Proc):
    """qnic-vhost-user-net serving NETDEV on SOCK, --once so it leaves with
    its frontend. With netns it runs inside that namespace (a tap it opens
    by name must be there; the socket is a path, so QEMU outside still
    reaches it)."""

    def __init__(self, binary, sock, netdev, device=None, netns=None):
        # QNIC_LINUX_DAEMON_LOG=guest_errors,trace_dev also logs every
        # vhost-user message the daemon receives (for debugging a run).
        log = os.environ.get("QNIC_LINUX_DAEMON_LOG", "guest_errors")
        argv = [binary, "--socket", sock, "--once", "-d", log, "--netdev", netdev]
        if device:
            argv += ["--device", device]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        super().__init__("qnic-vhost-user-net", argv)
        end = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < end and self.proc.poll() is None:
            time.sleep(0.05)
        self.listening = os.path.exists(sock)


wait_nth = g.wait_nth


def link_flapper(qmp_path, netdev, out, timeout=300):
    """DURING for run_vm: answer each of the guest's linkwait steps
    (QNIC-READY step=linkwait want=up|down) with QMP set_link on NETDEV, so
    the carrier change the guest waits for comes from the VMM's QMP, as an
    operator's would. OUT collects the replies (or "error")."""
    def go(vm):
        qmp = None
        try:
            qmp = g.Qmp(qmp_path)
            n = 1
            while True:
                ready = wait_nth(vm, "READY", n, timeout)
                if not ready:
                    return
                n += 1
                if ready.get("step") != "linkwait":
                    continue
                up = ready.get("want") == "up"
                r = qmp.cmd("set_link", name=netdev, up=up)
                out.setdefault("replies", []).append((up, r))
                g.log("QMP set_link %s up=%s -> %s" % (netdev, up, r))
        except (OSError, EOFError, ValueError) as e:
            out["error"] = "QMP: %s" % e
        finally:
            if qmp:
                qmp.close()
    return go


def check_link_flap(ck, impl, res, out):
    """The linkwait steps (down then up) passed, each QMP set_link was
    accepted, and the guest counted at least two carrier transitions."""
    steps = [r for _, r in sorted(res.items()) if r.get("step") == "linkwait"]
    replies = out.get("replies", [])
    ck.check(impl, "QMP set_link down and up accepted", len(replies) == 2 and
             all(r == {"return": {}} for _, r in replies), str(out))
    ck.check(impl, "guest saw carrier down, then up, from set_link",
             [r.get("carrier") for r in steps] == ["down", "up"] and
             all(r.get("status") == "ok" for r in steps), str(steps))
    changes = int(steps[-1].get("carrier_changes", "0") or 0) if steps else 0
    ck.check(impl, "carrier_changes counted both transitions (%d)" % changes, changes >= 2, str(steps))


def check_common(ck, impl, vm, expect, nsteps):
    """The checks every plan shares: the guest booted with its modules,
    Linux bound the driver EXPECT names (key "driver", default virtio_net)
    and negotiated what the rest of EXPECT ({QNIC-NIC key: value}) says,
    each of the NSTEPS steps passed, and QNIC-DONE counts them. Returns
    {n: result dict} for the plan's own checks."""
    boot = vm.wait_for("BOOT", 0) or {}
    ck.check(impl, "guest booted and loaded its modules", int(boot.get("modules", "0")) > 0,
             "QNIC-BOOT %r" % boot)
    nic = vm.wait_for("NIC", 0) or {}
    driver = expect.get("driver", "virtio_net")
    ck.check(impl, "Linux bound %s" % driver, nic.get("driver") == driver, "got %r" % nic.get("driver"))
    for k, v in expect.items():
        if k == "driver":
            continue
        ck.check(impl, "negotiated %s=%s" % (k, v), nic.get(k) == v, "got %r" % nic.get(k))
    res = {int(r.get("n", "0")): r for r in vm.all("RESULT")}
    for n in range(1, nsteps + 1):
        r = res.get(n, {})
        ck.check(impl, "step %d %s status=ok" % (n, r.get("step", "?")), r.get("status") == "ok", str(r))
    done = vm.wait_for("DONE", 0) or {}
    ck.check(impl, "QNIC-DONE passed=%d failed=0" % nsteps,
             done.get("passed") == str(nsteps) and done.get("failed") == "0", str(done))
    return res


def run_vm(ck, impl, name, argv, daemon=None, timeout=300, during=None, want_status=0):
    """Boot the guest with ARGV and wait for its plan to finish and the
    VMM to exit WANT_STATUS (QEMU 0 on ACPI power-off, qnic-vmm 1 from
    isa-debug-exit); with DAEMON, qnic-vhost-user-net (--once) must leave too.
    DURING(vm), when given, runs in a thread while the plan runs (a host
    acting on a QNIC-READY line); it is joined before returning. Returns
    (the Proc, seconds from start to QEMU's exit); the caller kills both in
    its finally block."""
    t0 = time.monotonic()
    vm = Proc(name, argv)
    helper = None
    if during:
        helper = threading.Thread(target=during, args=(vm,), daemon=True)
        helper.start()
    vm.wait_for("DONE", timeout)
    if helper:
        helper.join(60)
    status = vm.wait(30)
    took = time.monotonic() - t0
    ck.check(impl, "%s exited %d after the guest's poweroff" % (os.path.basename(argv[0]), want_status),
             status == want_status, "status %r" % status)
    if daemon:
        rc = daemon.wait(15)
        ck.check(impl, "qnic-vhost-user-net exits 0 after QEMU left (--once)", rc == 0, "status %r" % rc)
    return vm, took


def compare(ck, results, backends):
    """QEMU's model is the reference: qnic must give the same verdict on
    every step (figures differ and are only printed)."""
    if len(results) != 2:
        return
    ref, got = results[backends[0]], results[backends[1]]
    same = sorted((n, r.get("step"), r.get("status")) for n, r in ref.items()) == \
        sorted((n, r.get("step"), r.get("status")) for n, r in got.items())
    ck.check("compare", "%s and %s agree on every step" % tuple(backends), same)


def prepare(backends):
    """What every Linux-guest test needs before its first boot, skipping
    with the reason when something is missing: QEMU, the daemon (when a
    qnic backend is asked for) and the guest image. Returns (daemon path,
    vmlinuz, initrd)."""
    qemu = os.environ.get("QEMU_BINARY", "qemu-system-x86_64")
    if not shutil.which(qemu):
        g.skip("%s is not installed" % qemu)
    daemon = os.environ.get("QNIC_VHOST_USER_NET", "")
    if "qnic-vhost-user" in backends and not os.path.exists(daemon):
        g.skip("QNIC_VHOST_USER_NET not set or missing (%r)" % daemon)
    build = os.environ.get("QNIC_BUILD_DIR") or os.path.join(SRC, "build")
    vmlinuz, initrd = build_guest(build)
    g.log("accelerator: %s%s" % (accel(), "" if accel() == "kvm" else " (no usable /dev/kvm)"))
    return daemon, vmlinuz, initrd


def parse_args(variants, backends):
    """--variant (one of variants) and --backends (comma list, default
    all of backends): the command line every linux test takes."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True, choices=sorted(variants))
    ap.add_argument("--backends", default=",".join(backends))
    args = ap.parse_args()
    return args, args.backends.split(",")


def stop(vm, daemon):
    """Kill whichever of the guest's QEMU and the daemon were started."""
    if vm:
        vm.kill()
    if daemon:
        daemon.kill()


def log_step_times(results, times, backends, label):
    """One line per run: its wall time and each step's own time."""
    for be in backends:
        if be in results:
            steps = " ".join("%s=%sms" % (r.get("step"), r.get("ms")) for _, r in sorted(results[be].items()))
            g.log("times %s/%s: run %.1f s; %s" % (be, label, times.get(be, 0), steps))


def kvm_boots_stock_kernel():
    """None when this machine's /dev/kvm can boot a stock kernel, else why
    not. A PVM-based KVM (module kvm_pvm) runs PVH/flat guests only."""
    why = g.kvm_problem()
    if why:
        return why
    if os.path.exists("/sys/module/kvm_pvm"):
        return "this KVM is PVM-based and cannot boot a stock kernel"
    # Hardware KVM needs VT-x or AMD-V; a working /dev/kvm on a CPU with
    # neither is a software one (PVM) that runs PVH/flat guests only.
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    if "vmx" not in flags and "svm" not in flags:
        return "this CPU has neither vmx nor svm, so its KVM cannot boot a stock kernel"
    return None


def run_nested(ck, test, test_args, build, timeout):
    """The qnic-vmm half of TEST (a script path) inside
    scripts/nested-kvm.sh, run there as TEST --inside RESULTS TEST_ARGS...;
    returns the JSON it wrote to RESULTS (or None after recording why it
    could not run)."""
    res_path = os.path.join(build, "tests", "linux", "vmm-results-%d.json" % os.getpid())
    if os.path.exists(res_path):
        os.unlink(res_path)
    script = os.path.join(SRC, "scripts", "nested-kvm.sh")
    argv = ["sh", script, os.path.join(build, "tests", "nested"), "--timeout", str(timeout),
            "--", sys.executable, test, "--inside", res_path] + test_args
    g.log("nested KVM: %s" % " ".join(argv))
    rc = g.run_logged(argv, "[nested] ")
    if rc == 2:
        g.skip("nested KVM cannot start here (a package is missing); see the log")
    ck.check("qnic-vmm", "the nested-KVM run passed (status %d)" % rc, rc == 0)
    try:
        with open(res_path) as f:
            return json.load(f)
    except OSError:
        ck.check("qnic-vmm", "the nested-KVM run wrote its results", False, res_path)
        return None
    finally:
        if os.path.exists(res_path):
            os.unlink(res_path)


def prepare_vmm(backends):
    """prepare() for a test with a qnic-vmm half: skips without
    $QNIC_VMM when BACKENDS has qnic-vmm. Returns (vmlinuz, initrd)."""
    vmm = os.environ.get("QNIC_VMM", "")
    if "qnic-vmm" in backends and not os.path.exists(vmm):
        g.skip("QNIC_VMM not set or missing (%r)" % vmm)
    _, vmlinuz, initrd = prepare(["qemu"])
    return vmlinuz, initrd


def run_halves(ck, inside, backends, run, test, test_args, timeout):
    """QEMU's half and qnic-vmm's of a test whose qnic-vmm half needs a KVM
    that boots a stock kernel: RUN(impl) runs one half and returns its
    JSON-able results. With INSIDE (the test runs in scripts/nested-kvm.sh)
    only qnic-vmm's half runs and its results go to that file; returns
    None then. Otherwise each of BACKENDS runs here, qnic-vmm's half
    through run_nested (TEST TEST_ARGS, TIMEOUT) where this KVM cannot
    boot a stock kernel; returns {impl: results}."""
    if inside:
        why = kvm_boots_stock_kernel()
        ck.check("qnic-vmm", "a KVM that boots a stock kernel", why is None, str(why))
        got = run("qnic-vmm") if why is None else {}
        with open(inside, "w") as f:
            json.dump(got, f)
        return None
    results = {}
    if "qemu" in backends:
        results["qemu"] = run("qemu")
    if "qnic-vmm" in backends:
        why = kvm_boots_stock_kernel()
        if why is None:
            results["qnic-vmm"] = run("qnic-vmm")
        else:
            g.log("qnic-vmm: %s; running it under nested KVM (scripts/nested-kvm.sh)" % why)
            build = os.environ.get("QNIC_BUILD_DIR") or os.path.join(SRC, "build")
            got = run_nested(ck, test, test_args, build, timeout)
            if got is not None:
                results["qnic-vmm"] = got
    return results
