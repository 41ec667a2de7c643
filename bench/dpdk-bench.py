#!/usr/bin/env python3
"""The device side against DPDK's: qnic-vhost-user-net with a tap behind it
versus DPDK's own vhost library forwarding to its tap PMD, driven by the
same DPDK frontend (testpmd's net_virtio_user), alternately in one run.

  qnic  `qnic-vhost-user-net --netdev tap` inside a network namespace of
        the script's own; testpmd (net_virtio_user) connects to its socket.
  dpdk  a second testpmd inside the namespace with `--vdev net_vhost0`
        (DPDK's vhost library, the socket) and `--vdev net_tap0` (its tap
        PMD), forward mode io: vhost port <-> tap port.

Workloads:
  tx   testpmd txonly (burst 32) into the device; the rate is what the
       kernel received on the tap (its rx_packets over --seconds, after a
       warm-up), 64-byte frames with 1 and 2 queue pairs and 1500-byte
       frames with 1 (the issue-15 comparison).
  lat  a UDP request/response through the device: a client in the
       namespace sends a UDP frame on the tap (AF_PACKET), the frontend
       testpmd answers it (forward mode macswap) and the client waits for
       it; median and p99 of --pings round trips. Both sides cross the
       same path twice: tap -> device -> virtio ring -> testpmd and back.

CPU placement: the frontend testpmd polls on lcore 1; the device side gets
core 0 (the qnic daemon under `taskset -c 0`, DPDK's forwarding lcore 0),
so each side has one core; --no-pin leaves the scheduler to place them.

Needs root (namespaces, tap), /dev/net/tun, dpdk-testpmd and ip; exits 77
with the reason otherwise. Every process and the namespace are removed on
exit. Standard library only (plus bench/benchlib.py and the project's
testpmd driver in tests/functional/testpmd.py).

usage: sudo bench/dpdk-bench.py [--build build-bench] [--only tx,lat] [--impls qnic,dpdk]
                                [--cells 64x1,64x2,1500x1] [--rounds 3] [--seconds 3]
                                [--pings 2000] [--json FILE]
"""
import argparse
import ctypes
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "functional"))
import benchlib  # noqa: E402
from testpmd import Testpmd  # noqa: E402

TAP = "qnicb0"
DEV_MAC = "52:54:00:12:34:56"
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
READY = r"Checking link statuses\.\.\.\s*\n.*Done"
QUIET = lambda *a: None  # noqa: E731


def sh(argv, check=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if check and r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stdout.decode()[-300:]))
    return r.stdout.decode()


class Netns:
    def __init__(self):
        self.name = "qnicbench-%d" % os.getpid()
        sh(["ip", "netns", "add", self.name])
        self.exec(["ip", "link", "set", "lo", "up"])
        # no IPv6 chatter (router solicitations, MLD) on the tap
        self.exec(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check=False)
        self.exec(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], check=False)

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name] + argv

    def exec(self, argv, check=True):
        return sh(self.argv(argv), check)

    def rx_packets(self, ifname):
        out = self.exec(["cat", "/sys/class/net/%s/statistics/rx_packets" % ifname], check=False)
        return int(out) if out.strip().isdigit() else None

    def socket_in(self, fn):
        """fn() with this thread in the namespace (the socket it makes stays there)."""
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        ns = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if libc.setns(ns, CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), "setns")
            try:
                return fn()
            finally:
                libc.setns(home, CLONE_NEWNET)
        finally:
            os.close(ns)
            os.close(home)

    def delete(self):
        sh(["ip", "netns", "del", self.name], check=False)


class Pmd(Testpmd):
    """testpmd with any EAL/vdev arguments (Testpmd builds a virtio_user one)."""

    def __init__(self, argv, prefix, queues):
        self.argv = argv
        self.queues, self.prefix, self.log, self.cap, self.stop_timeout = queues, prefix, QUIET, (lambda t: t), 10
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.out = []
        import threading
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()


def eal(prefix, lcores, main):
    return ["stdbuf", "-oL", "dpdk-testpmd", "--no-huge", "-m", "512", "--no-pci", "--file-prefix=" + prefix,
            "--single-file-segments", "--log-level=user1,8", "-l", lcores, "--main-lcore", str(main)]


class Side:
    """One device side (qnic or dpdk) up in the namespace, serving `sock`."""

    def __init__(self, impl, ns, sock, queues, a):
        self.impl, self.ns, self.proc, self.pmd = impl, ns, None, None
        pin = not a.no_pin
        if impl == "qnic":
            argv = [a.daemon, "--socket", sock, "--netdev",
                    "tap,id=t0,ifname=%s,queues=%d,script=no,downscript=no" % (TAP, queues)]
            if queues > 1:
                argv += ["--device", "mq=on"]
            argv = (["taskset", "-c", "0"] if pin else []) + argv
            self.cmd = " ".join(ns.argv(argv))
            self.proc = subprocess.Popen(ns.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            try:
                wait_path(sock, 10)
            except RuntimeError:
                self.stop()
                raise RuntimeError("the daemon did not come up: " + self.proc.stdout.read().decode()[-500:])
            ns.exec(["ip", "link", "set", TAP, "up"])
        else:
            argv = eal("pbv%d" % os.getpid(), "0,1" if pin else "0-1", 1) + [
                "--vdev", "net_vhost0,iface=%s,queues=%d" % (sock, queues), "--vdev", "net_tap0,iface=%s" % TAP,
                "--", "-i", "--total-num-mbufs=8192", "--rxq=%d" % queues, "--txq=%d" % queues,
                "--forward-mode=io", "--burst=32", "--nb-cores=1"]
            self.cmd = " ".join(ns.argv(argv))
            self.pmd = Pmd(ns.argv(argv), "pbv%d" % os.getpid(), queues)
            if not self.pmd.wait_for(READY, 20):
                raise RuntimeError("DPDK vhost testpmd did not start:\n" + self.pmd.text()[-800:])
            self.pmd.cmd("start", 0.3)
            wait_path(sock, 10)

    def pid(self):
        """The device process (ip netns exec, taskset and stdbuf exec it)."""
        return (self.proc or self.pmd.proc).pid

    def stop(self):
        if self.pmd:
            self.pmd.stop()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_seconds(pid):
    """User + system CPU time of a process, all its threads."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def wait_path(path, timeout):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError("%s did not appear" % path)
        time.sleep(0.05)


def frontend(sock, queues, mode, size, pin):
    prefix = "pbf%d" % os.getpid()
    argv = eal(prefix, "0,1" if pin else "0-1", 0) + [
        "--vdev", "net_virtio_user0,path=%s,queues=%d" % (sock, queues), "--", "-i",
        "--total-num-mbufs=8192", "--rxq=%d" % queues, "--txq=%d" % queues, "--burst=32",
        "--forward-mode=%s" % mode, "--txpkts=%d" % size, "--nb-cores=1"]
    pmd = Pmd(argv, prefix, queues)
    if not pmd.wait_for(READY, 20):
        pmd.stop()
        raise RuntimeError("frontend testpmd did not start:\n" + pmd.text()[-800:])
    return pmd, " ".join(argv)


def run_tx(impl, ns, queues, size, a, shown, cpu):
    tmp = tempfile.mkdtemp(prefix="qnic-dpdk-bench-")
    sock = os.path.join(tmp, "vhu.sock")
    side = pmd = None
    try:
        side = Side(impl, ns, sock, queues, a)
        pmd, fcmd = frontend(sock, queues, "txonly", size, not a.no_pin)
        if impl not in shown:
            shown[impl] = "%s\n    %s" % (side.cmd, fcmd)
        pmd.cmd("start", a.warmup)
        n0, t0, c0 = ns.rx_packets(TAP), time.monotonic(), cpu_seconds(side.pid())
        time.sleep(a.seconds)
        n1, t1, c1 = ns.rx_packets(TAP), time.monotonic(), cpu_seconds(side.pid())
        pmd.cmd("stop", 0.2)
        if n0 is None or n1 is None:
            print("  %s: no rx_packets on %s" % (impl, TAP))
            return None
        if c0 is not None and c1 is not None and n1 > n0:
            cpu.append((c1 - c0) * 1e6 / (n1 - n0))
        return (n1 - n0) / (t1 - t0)
    except RuntimeError as e:
        print("  %s: %s" % (impl, e))
        return None
    finally:
        if pmd:
            pmd.stop()
        if side:
            side.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def udp_frame(src_mac, seq, size):
    """Ethernet/IPv4/UDP to the device's MAC, `seq` in the payload."""
    payload = struct.pack("!Q", seq) + bytes(max(0, size - 42 - 8))
    udp = struct.pack("!HHHH", 5000, 5001, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton("10.9.0.1"), socket.inet_aton("10.9.0.2"))
    csum = 0
    for i in range(0, 20, 2):
        csum += (ip[i] << 8) | ip[i + 1]
    csum = (csum & 0xffff) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xffff) + ip[12:]
    return bytes.fromhex(DEV_MAC.replace(":", "")) + src_mac + b"\x08\x00" + ip + udp


def run_lat(impl, ns, a, shown):
    """[round trip us] or None."""
    tmp = tempfile.mkdtemp(prefix="qnic-dpdk-bench-")
    sock = os.path.join(tmp, "vhu.sock")
    side = pmd = s = None
    try:
        side = Side(impl, ns, sock, 1, a)
        pmd, fcmd = frontend(sock, 1, "macswap", 64, not a.no_pin)
        if impl not in shown:
            shown[impl] = "%s\n    %s" % (side.cmd, fcmd)
        pmd.cmd("start", 0.5)

        def mk():
            x = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            x.bind((TAP, 0))
            return x
        s = ns.socket_in(mk)
        s.settimeout(0.2)
        mac = s.getsockname()[4]
        rtts, lost = [], 0
        for seq in range(a.pings + 50):
            f = udp_frame(mac, seq, 64)
            t0 = time.perf_counter_ns()
            s.send(f)
            got = False
            while True:
                try:
                    data, addr = s.recvfrom(2048)
                except socket.timeout:
                    break
                if addr[2] == PACKET_OUTGOING or len(data) < 50 or data[42:50] != f[42:50]:
                    continue
                got = True
                break
            t1 = time.perf_counter_ns()
            if seq < 50:
                continue        # warm-up
            if got:
                rtts.append((t1 - t0) / 1000.0)
            else:
                lost += 1
        if lost:
            print("  %s: %d of %d requests got no answer" % (impl, lost, a.pings))
        return rtts or None
    except (RuntimeError, OSError) as e:
        print("  %s: %s" % (impl, e))
        return None
    finally:
        if s:
            s.close()
        if pmd:
            pmd.stop()
        if side:
            side.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(benchlib.SRC, "build-bench"))
    ap.add_argument("--impls", default="dpdk,qnic")
    ap.add_argument("--only", default="tx,lat")
    ap.add_argument("--cells", default="64x1,64x2,1500x1", help="FRAMExQUEUEPAIRS,...")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--pings", type=int, default=2000)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    a.daemon = os.path.join(a.build, "tools", "qnic-vhost-user-net")
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (namespaces and taps)")
    if not os.path.exists("/dev/net/tun"):
        problems.append("no /dev/net/tun")
    for tool in ("dpdk-testpmd", "ip", "taskset", "stdbuf"):
        if not shutil.which(tool):
            problems.append("%s not installed" % tool)
    if not os.path.exists(a.daemon):
        problems.append("%s not built" % a.daemon)
    if problems:
        print("dpdk-bench: skipped: " + "; ".join(problems))
        sys.exit(77)
    impls = a.impls.split(",")
    benchlib.header("device side: qnic-vhost-user-net + tap vs DPDK vhost + tap PMD (testpmd net_virtio_user)")
    ns = Netns()
    shown = {}
    try:
        if "tx" in a.only.split(","):
            rows, cpu_rows = [], []
            for c in a.cells.split(","):
                size, queues = (int(x) for x in c.split("x"))
                cpu = {i: [] for i in impls}
                res = benchlib.alternate("tx %dB %dq" % (size, queues), impls, a.rounds,
                                         lambda i: run_tx(i, ns, queues, size, a, shown, cpu[i]))
                rows.append(((size, queues), res))
                cpu_rows.append(((size, queues), {i: (statistics.median(v) if v else None, v)
                                                  for i, v in cpu.items()}))
            for i, cmd in shown.items():
                print("  %s: %s" % (i, cmd))
            print("\ntxonly into the tap, burst 32, frames/s the tap received (median of %d):" % a.rounds)
            benchlib.table(("frame", "queue pairs"), rows, impls, impls[0], "frames/s")
            benchlib.record(a.json, "dpdk-tx", "frames/s", ("frame", "queue pairs"), rows, impls)
            print("\nCPU time of the device process per frame, us (user + system, all threads; DPDK's "
                  "forwarding lcore polls, so it spends its whole core whatever the rate):")
            benchlib.table(("frame", "queue pairs"), cpu_rows, impls, impls[0], "us/frame", lower_better=True)
            benchlib.record(a.json, "dpdk-cpu", "device CPU us/frame", ("frame", "queue pairs"), cpu_rows, impls,
                            lower_better=True)
        if "lat" in a.only.split(","):
            shown.clear()
            samples = {i: [] for i in impls}

            def one(i):
                r = run_lat(i, ns, a, shown)
                if not r:
                    return None
                samples[i].extend(r)
                return statistics.median(r)
            res = benchlib.alternate("lat 64B", impls, a.rounds, one)
            for i, cmd in shown.items():
                print("  %s: %s" % (i, cmd))
            print("\nUDP request/response through the device (tap <-> device <-> testpmd macswap), "
                  "round trip in us over all %d rounds:" % a.rounds)
            print("| impl | median | p99 | samples |")
            print("|---|---|---|---|")
            for i in impls:
                v = samples[i]
                print("| %s | %s | %s | %d |" % (i, "%.1f" % statistics.median(v) if v else "fail",
                                                 "%.1f" % p99(v) if v else "fail", len(v)))
            rows = [(("median",), {i: (statistics.median(samples[i]) if samples[i] else None, res[i][1])
                                   for i in impls}),
                    (("p99",), {i: (p99(samples[i]) if samples[i] else None, []) for i in impls})]
            benchlib.record(a.json, "dpdk-lat", "us", ("stat",), rows, impls, lower_better=True)
    finally:
        ns.delete()


if __name__ == "__main__":
    main()
