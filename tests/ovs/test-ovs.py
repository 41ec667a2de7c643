#!/usr/bin/env python3
"""qnic NICs on Open vSwitch, across two simulated hosts.

Why: users run their VMs on several hosts joined by Open vSwitch with
VXLAN or Geneve tunnels, the VM side a tap on an OVS bridge or a vhost-user
port of OVS-DPDK. This test builds that on one machine: two network
namespaces ("hosts"), each with its own ovsdb-server and ovs-vswitchd (the
DPDK build, userspace datapath: there is no openvswitch kernel module) in
its own run directory, joined by a veth pair (the underlay, MTU 1550: a
1500-byte inner packet plus the 50 bytes of VXLAN or Geneve over IPv4).
Per host:
  br-phy  the underlay port and the host's tunnel endpoint address;
  br-int  vxlan0 and geneve0 to the other host, and the VM ports: a tap
          (qnic-vmm -netdev tap), an OVS-DPDK dpdkvhostuserclient port
          (qnic-vmm -netdev vhost-user on a server=on chardev), and on host
          A a tap for a QEMU 7.2 VM.
br-int has fail_mode=secure and flows this test installs, as a controller
would: frames from a VM port go out of the tunnel under test, frames from
either tunnel go to the VM port of their destination MAC.

Each VM is tests/ovs/ovs-nic: the target in qtest mode (qnic-vmm, or QEMU
-accel tcg) and a virtio-net driver that speaks ARP, ICMP echo and UDP. For
tap and vhost-user, through VXLAN and through Geneve, both ways: ARP, ping,
a counted UDP stream (the receiver's count must equal what was sent) and a
16 MiB transfer (go-back-N; the CRC-32 of both ends must match). Then
QEMU on host A with qnic on host B (4 MiB transfers). Then ovs-vswitchd on host B is killed
under a transfer and started again: the vhost-user NIC reconnects (OVS, the
client, reconnects to qnic's socket), the transfer completes, qnic-vmm is
alive with the same number of open fds. Last, the MTU rule: with the
underlay one byte short of 1550, 1500-byte inner packets are dropped and
1499-byte ones cross.

Needs root (namespaces, taps) and Debian's openvswitch-switch-dpdk; skips
with one line otherwise or when ovs-vswitchd cannot start. Output is TAP.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BULK = 16 << 20
STREAM = 500
UNDERLAY_MTU = 1550            # 1500 inner IP + 14 inner Ethernet + 36 outer (IP, UDP, VXLAN/Geneve)
TUNNELS = {"vxlan": 1, "geneve": 2}   # port name -> ofport
PORT_TAP, PORT_VHU, PORT_QEMU = 10, 11, 12
DEADLINE = time.monotonic() + 280

counter = 0


def log(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def ok(desc):
    global counter
    counter += 1
    print("ok %d - %s" % (counter, desc), flush=True)


class Failure(Exception):
    pass


def check(cond, desc, detail=""):
    if not cond:
        raise Failure(desc + (": " + detail if detail else ""))
    ok(desc)


def left(cap):
    """A wait of at most cap seconds, and never past the test's deadline."""
    rest = DEADLINE - time.monotonic()
    if rest <= 0:
        raise Failure("out of time (the whole test has 280 s)")
    return min(cap, rest)


def run(argv, ns=None, env=None, timeout=30, check_rc=True):
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                       timeout=left(timeout), text=True)
    if check_rc and p.returncode != 0:
        raise Failure("%s: exit %d: %s" % (" ".join(argv), p.returncode, p.stdout.strip()))
    return p.stdout


class Host:
    """One simulated host: a namespace, an ovsdb-server, an ovs-vswitchd."""

    def __init__(self, name, top, underlay_ip, peer_ip, cpu):
        self.name = name
        self.ns = "qnic-ovs-%s-%d" % (name, os.getpid())
        self.dir = os.path.join(top, name)
        self.underlay_ip = underlay_ip
        self.peer_ip = peer_ip
        self.cpu = cpu
        self.prefix = "qnic-ovs-%s-%d" % (name, os.getpid())
        self.db = self.switch = None
        self.vms = {}                   # ofport -> Vm
        os.mkdir(self.dir)
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir,
                        OVS_LOGDIR=self.dir)
        run(["ip", "netns", "add", self.ns])
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])

    def path(self, f):
        return os.path.join(self.dir, f)

    def vsctl(self, *args, timeout=30):
        return run(["ovs-vsctl", "--db=unix:" + self.path("db.sock"), "--timeout=%d" % left(timeout)]
                   + list(args), env=self.env, timeout=timeout + 5).strip()

    def ofctl(self, *args):
        return run(["ovs-ofctl", "-O", "OpenFlow13"] + list(args), env=self.env)

    def appctl(self, *args):
        return run(["ovs-appctl", "-t", self.path("vswitchd.ctl")] + list(args), env=self.env)

    def start_db(self):
        run(["ovsdb-tool", "create", self.path("conf.db"), SCHEMA])
        self.db = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "ovsdb-server", self.path("conf.db"),
             "--remote=punix:" + self.path("db.sock"), "--unixctl=" + self.path("db.ctl"),
             "--log-file=" + self.path("ovsdb.log")],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(self.path("db.sock")):
                break
            time.sleep(0.05)
        # Small DPDK memory without hugepages (--legacy-mem keeps OVS from
        # adding --in-memory, which --no-huge cannot take), one PMD thread
        # per host on its own core that sleeps when idle: the machine is shared.
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                   'other_config:dpdk-extra="--no-huge --legacy-mem -m 512 --no-pci --file-prefix=%s"'
                   % self.prefix,
                   "other_config:pmd-cpu-mask=%x" % (1 << self.cpu), "other_config:pmd-maxsleep=10000",
                   "other_config:per-port-memory=true")

    def start_switch(self):
        """Start ovs-vswitchd; None when up, else the reason it is not."""
        log_file = open(self.path("vswitchd.out"), "ab")
        self.switch = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, VSWITCHD, "unix:" + self.path("db.sock"),
             "--unixctl=" + self.path("vswitchd.ctl"), "--log-file=" + self.path("vswitchd.log")],
            env=self.env, stdout=log_file, stderr=log_file)
        log_file.close()
        end = time.monotonic() + left(30)
        while time.monotonic() < end:
            if self.switch.poll() is not None:
                return "ovs-vswitchd exited (%d): %s" % (self.switch.returncode, self.log_tail(3))
            try:
                if self.vsctl("get", "Open_vSwitch", ".", "dpdk_initialized", timeout=5) == "true":
                    return None
            except (Failure, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)
        return "ovs-vswitchd did not initialize DPDK in 30 s"

    def kill_switch(self):
        if self.switch and self.switch.poll() is None:
            self.switch.kill()
            self.switch.wait()

    def log_tail(self, n):
        try:
            with open(self.path("vswitchd.log")) as f:
                return " | ".join(line.strip() for line in f.readlines()[-n:])
        except OSError:
            return ""

    def build_bridges(self):
        self.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
                   "--", "add-port", "br-phy", "ul-" + self.name,
                   "--", "set", "interface", "ul-" + self.name, "mtu_request=%d" % UNDERLAY_MTU,
                   "--", "set", "interface", "br-phy", "mtu_request=%d" % UNDERLAY_MTU)
        run(["ip", "-n", self.ns, "addr", "add", self.underlay_ip + "/24", "dev", "br-phy"])
        run(["ip", "-n", self.ns, "link", "set", "br-phy", "up"])
        args = ["add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
                "fail_mode=secure"]
        for tun, port in TUNNELS.items():
            args += ["--", "add-port", "br-int", tun, "--", "set", "interface", tun, "type=" + tun,
                     "options:remote_ip=" + self.peer_ip, "options:key=%d" % (100 * port),
                     "ofport_request=%d" % port]
        self.vsctl(*args)

    def add_vm_port(self, vm):
        if vm.kind == "vhost-user":
            self.vsctl("add-port", "br-int", vm.port, "--", "set", "interface", vm.port,
                       "type=dpdkvhostuserclient", "options:vhost-server-path=" + vm.sock,
                       "ofport_request=%d" % vm.ofport)
        else:
            run(["ip", "-n", self.ns, "link", "set", vm.port, "up"])
            self.vsctl("add-port", "br-int", vm.port, "--", "set", "interface", vm.port,
                       "ofport_request=%d" % vm.ofport)
        self.vms[vm.ofport] = vm

    def set_flows(self, tunnel):
        """Frames from the VMs leave through `tunnel`; frames from either
        tunnel go to the VM with their destination MAC, broadcasts to all."""
        flows = []
        for tun in TUNNELS.values():
            for port, vm in self.vms.items():
                flows.append("priority=10,in_port=%d,dl_dst=%s,actions=output:%d" % (tun, vm.mac, port))
            flows.append("priority=10,in_port=%d,dl_dst=ff:ff:ff:ff:ff:ff,actions=%s"
                         % (tun, ",".join("output:%d" % p for p in self.vms)))
        for port in self.vms:
            flows.append("priority=5,in_port=%d,actions=output:%d" % (port, TUNNELS[tunnel]))
        path = self.path("flows.txt")
        with open(path, "w") as f:
            f.write("\n".join(flows) + "\n")
        self.ofctl("replace-flows", "br-int", path)

    def tunnel_rx(self, tunnel):
        """Packets that came in through a tunnel port, by the flow counters."""
        out = self.ofctl("dump-flows", "br-int", "in_port=%d" % TUNNELS[tunnel])
        return sum(int(n) for n in re.findall(r"n_packets=(\d+)", out))

    def teardown(self):
        for p in (self.switch, self.db):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL)
        shutil.rmtree("/var/run/dpdk/" + self.prefix, ignore_errors=True)


class Vm:
    """An ovs-nic process: one NIC on one port, commands on stdin."""

    def __init__(self, host, kind, ofport, mac, ip, qemu=False):
        self.host, self.kind, self.ofport, self.mac, self.ip = host, kind, ofport, mac, ip
        self.name = "%s-%s%s" % (host.name, "qemu-" if qemu else "", kind)
        self.port = {PORT_TAP: "qtap-", PORT_VHU: "vhu-", PORT_QEMU: "qemu-"}[ofport] + host.name
        self.sock = host.path(self.port + ".sock")
        if kind == "vhost-user":
            args = ("-object memory-backend-memfd,id=mem,size=128M,share=on -machine memory-backend=mem "
                    "-chardev socket,id=c0,path=%s,server=on,wait=off "
                    "-netdev vhost-user,id=n0,chardev=c0" % self.sock)
        else:
            args = "-netdev tap,id=n0,ifname=%s,script=no,downscript=no" % self.port
        self.env = dict(os.environ)
        self.env.pop("QTEST_QEMU_BINARY", None)
        if qemu:
            self.env["QTEST_QEMU_BINARY"] = shutil.which("qemu-system-x86_64")
        self.argv = ["ip", "netns", "exec", host.ns, os.environ["QNIC_OVS_NIC"], mac, ip, args]
        self.proc = None
        self.lines = queue.Queue()

    def start(self):
        """Start the target and the driver (a vhost-user NIC's port is
        added first: the target's start waits for its backend)."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=self.env)
        threading.Thread(target=self._read, daemon=True).start()
        self.reply("ready", 60)
        self.pid = int(self.cmd("pid").split()[2])

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def reply(self, what, timeout):
        try:
            line = self.lines.get(timeout=left(timeout))
        except queue.Empty:
            raise Failure("%s: no answer to '%s' in %d s" % (self.name, what, timeout))
        if line is None:
            raise Failure("%s: ovs-nic exited during '%s' (%s)" % (self.name, what, self.proc.poll()))
        if not line.startswith("ok "):
            raise Failure("%s: %s: %s" % (self.name, what, line))
        return line

    def cmd(self, line, timeout=30):
        self.send(line)
        return self.reply(line, timeout)

    def stats(self, fid):
        m = re.match(r"ok stats stream=(\d+) bulk=(\d+) crc=(\w+)", self.cmd("stats %d" % fid))
        return int(m.group(1)), int(m.group(2)), m.group(3)

    def stream_count(self, fid, want):
        """The receiver's count for a stream once it is `want` or has not
        moved for a second: frames may still sit in the tap's queue, OVS
        or the target when the sender is done."""
        last, since = -1, time.monotonic()
        while time.monotonic() - since < 1.0 and time.monotonic() < DEADLINE:
            count = self.stats(fid)[0]
            if count == want:
                return count
            if count != last:
                last, since = count, time.monotonic()
            time.sleep(0.1)
        return last

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


flow_id = 0


def bulk_result(line):
    m = re.match(r"ok bulk bytes=(\d+) crc=(\w+) frames=(\d+) resent=(\d+) us=(\d+)", line)
    return int(m.group(1)), m.group(2), int(m.group(4)), int(m.group(5))


def exchange(src, dst, label, size=BULK):
    """ARP, ping, a counted stream and a transfer (16 MiB) from src to dst."""
    global flow_id
    flow_id += 1
    mac = src.cmd("arp " + dst.ip).split()[2]
    check(mac == dst.mac, "%s: ARP %s -> %s resolves %s" % (label, src.name, dst.name, dst.ip), mac)
    line = src.cmd("ping %s 5" % dst.ip)
    ok("%s: 5 pings %s -> %s answered (%s)" % (label, src.name, dst.name, line.split()[3]))
    src.cmd("stream %s %d %d" % (dst.ip, flow_id, STREAM), 60)
    count = dst.stream_count(flow_id, STREAM)
    check(count == STREAM, "%s: UDP stream %s -> %s: %d of %d frames counted"
          % (label, src.name, dst.name, count, STREAM))
    nbytes, crc, resent, us = bulk_result(src.cmd("bulk %s %d %d" % (dst.ip, flow_id, size), 150))
    got = dst.stats(flow_id)
    check(got[1] == size and got[2] == crc,
          "%s: %d MiB %s -> %s, CRC %s (%.1f MB/s, %d frames resent)"
          % (label, size >> 20, src.name, dst.name, crc, nbytes / us, resent),
          "received %d bytes CRC %s" % got[1:])


def pair_over(a, b, va, vb, tunnel, size=BULK):
    label = "%s/%s" % (va.kind if va.kind == vb.kind else va.name + "+" + vb.name, tunnel)
    a.set_flows(tunnel)
    b.set_flows(tunnel)
    other = [t for t in TUNNELS if t != tunnel][0]
    before = (b.tunnel_rx(tunnel), b.tunnel_rx(other), a.tunnel_rx(tunnel))
    exchange(va, vb, label, size)
    exchange(vb, va, label, size)
    after = (b.tunnel_rx(tunnel), b.tunnel_rx(other), a.tunnel_rx(tunnel))
    check(after[0] - before[0] > size // 1500 and after[2] - before[2] > size // 1500
          and after[1] == before[1],
          "%s: the frames crossed %s both ways (%d and %d packets in), none %s"
          % (label, tunnel, after[0] - before[0], after[2] - before[2], other))


def restart_under_traffic(a, b, va, vb):
    """Kill host B's ovs-vswitchd during a transfer, start it again."""
    global flow_id
    a.set_flows("vxlan")
    b.set_flows("vxlan")
    flow_id += 1
    va.cmd("arp " + vb.ip)
    fds_before = vb.fds()
    va.send("bulk %s %d %d" % (vb.ip, flow_id, BULK))
    time.sleep(1.5)
    b.kill_switch()
    t_kill = time.monotonic()
    down = False
    for _ in range(40):
        if vb.cmd("link") == "ok link down":
            down = True
            break
        time.sleep(0.05)
    log("killed host B's ovs-vswitchd; vhost-user link %s" % ("went down" if down else "stayed up"))
    time.sleep(1)
    why = b.start_switch()
    if why:
        raise Failure("ovs-vswitchd did not restart: " + why)
    b.vsctl("wait-until", "interface", vb.port, "link_state=up", timeout=30)
    # Flows live in ovs-vswitchd, not in the database: set them again, as a
    # controller would, once the bridge takes OpenFlow connections.
    for attempt in range(50):
        try:
            b.set_flows("vxlan")
            break
        except Failure:
            if attempt == 49:
                raise
            time.sleep(0.2)
    log("host B's ovs-vswitchd is back, port %s up %.1f s after the kill"
        % (vb.port, time.monotonic() - t_kill))
    nbytes, crc, resent, us = bulk_result(va.reply("bulk during restart", 150))
    got = vb.stats(flow_id)
    check(got[1] == BULK and got[2] == crc,
          "restart: the 16 MiB transfer completed across the ovs-vswitchd restart (CRC %s, %d frames "
          "resent, %.1f s)" % (crc, resent, us / 1e6), "received %d bytes CRC %s" % got[1:])
    check(vb.cmd("link") == "ok link up", "restart: the vhost-user NIC's link is up again")
    vb.cmd("ping %s 3" % va.ip)
    ok("restart: pings from B to A after the restart")
    check(os.path.exists("/proc/%d" % vb.pid), "restart: qnic-vmm on host B is alive")
    fds_after = vb.fds()
    check(fds_after == fds_before, "restart: qnic-vmm holds %d fds before and %d after"
          % (fds_before, fds_after))


def start_vm(host, vm):
    if vm.kind == "vhost-user":
        host.add_vm_port(vm)
        vm.start()
    else:
        vm.start()
        host.add_vm_port(vm)


def mtu_rule(a, b, va, vb):
    """One byte less of underlay MTU: a 1500-byte inner packet no longer
    fits through either tunnel, a 1499-byte one still does (50 bytes of
    overhead, Geneve here without options)."""
    global flow_id
    for h in (a, b):
        h.vsctl("set", "interface", "ul-" + h.name, "mtu_request=%d" % (UNDERLAY_MTU - 1),
                "--", "set", "interface", "br-phy", "mtu_request=%d" % (UNDERLAY_MTU - 1))
    for tunnel in TUNNELS:
        a.set_flows(tunnel)
        b.set_flows(tunnel)
        got = {}
        for size in (1500, 1499, 1500):
            flow_id += 1
            va.cmd("stream %s %d 20 %d" % (vb.ip, flow_id, size), 60)
            got[size] = got.get(size, 0) + vb.stream_count(flow_id, 20)
        check(got[1500] == 0 and got[1499] == 20,
              "MTU: underlay %d, %s: 1499-byte packets cross (%d of 20), 1500-byte ones do not (%d of 40)"
              % (UNDERLAY_MTU - 1, tunnel, got[1499], got[1500]))


def skip(reason):
    print("1..0 # SKIP " + reason, flush=True)
    sys.exit(0)


def main():
    if os.geteuid() != 0:
        skip("needs root for network namespaces and taps")
    for prog in (VSWITCHD, shutil.which("ovsdb-server"), shutil.which("ovs-vsctl")):
        if not prog or not os.path.exists(prog):
            skip("Open vSwitch with DPDK is not installed (Debian openvswitch-switch-dpdk)")
    if not shutil.which("qemu-system-x86_64"):
        skip("qemu-system-x86_64 is not installed")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("# killed (SIGTERM)"))
    top = tempfile.mkdtemp(prefix="qnic-ovs-")
    hosts, vms = [], []
    t0 = time.monotonic()
    try:
        a = Host("a", top, "172.31.254.1", "172.31.254.2", 0)
        hosts.append(a)
        b = Host("b", top, "172.31.254.2", "172.31.254.1", 1)
        hosts.append(b)
        run(["ip", "link", "add", "ul-a", "netns", a.ns, "type", "veth", "peer", "name", "ul-b",
             "netns", b.ns])
        for h in hosts:
            run(["ip", "-n", h.ns, "link", "set", "ul-" + h.name, "mtu", str(UNDERLAY_MTU), "up"])
            h.start_db()
            why = h.start_switch()
            if why:
                log(h.log_tail(10))
                skip("Open vSwitch cannot start here: " + why)
        for h in hosts:
            h.build_bridges()
        run(["ping", "-c", "2", "-W", "2", b.underlay_ip], ns=a.ns)
        ok("underlay: host A reaches host B through both br-phy bridges and the veth (MTU %d)"
           % UNDERLAY_MTU)
        nics = {}
        for h, n in ((a, 0xa), (b, 0xb)):
            for kind, port in (("tap", PORT_TAP), ("vhost-user", PORT_VHU)):
                vm = Vm(h, kind, port, "52:54:00:%02x:00:%02x" % (n, port), "10.77.%d.%d" % (n, port))
                vms.append(vm)
                start_vm(h, vm)
                nics[h.name, kind] = vm
        qemu = Vm(a, "tap", PORT_QEMU, "52:54:00:0a:00:%02x" % PORT_QEMU, "10.77.10.%d" % PORT_QEMU,
                  qemu=True)
        vms.append(qemu)
        start_vm(a, qemu)
        for h in hosts:
            h.vsctl("wait-until", "interface", "vhu-" + h.name, "link_state=up")
        ok("VMs up: qnic tap and vhost-user NICs on both hosts, QEMU 7.2 tap NIC on host A")
        for kind in ("tap", "vhost-user"):
            for tunnel in TUNNELS:
                pair_over(a, b, nics["a", kind], nics["b", kind], tunnel)
        # QEMU under TCG moves frames slower: 4 MiB each way
        pair_over(a, b, qemu, nics["b", "vhost-user"], "geneve", 4 << 20)
        restart_under_traffic(a, b, nics["a", "vhost-user"], nics["b", "vhost-user"])
        mtu_rule(a, b, nics["a", "tap"], nics["b", "tap"])
        print("1..%d" % counter)
        log("total %.1f s" % (time.monotonic() - t0))
        return 0
    except (Failure, subprocess.TimeoutExpired) as e:
        print("not ok %d - %s" % (counter + 1, e), flush=True)
        for h in hosts:
            log("host %s ovs-vswitchd log: %s" % (h.name, h.log_tail(15)))
        print("1..%d" % (counter + 1))
        return 1
    finally:
        for vm in vms:
            vm.close()
        for h in hosts:
            h.teardown()
        if os.environ.get("QNIC_OVS_KEEP"):
            log("logs kept in " + top)
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
