"""DPDK testpmd as a vhost-user frontend (net_virtio_user), driven on stdin
with its output collected: shared by the vhost-user device-side tests.
`cap` bounds every wait (a test passes its own deadline keeper); `log`
prints a line the test's way."""

import os
import re
import shutil
import signal
import subprocess
import threading
import time


class Testpmd:
    def __init__(self, sock, prefix, queues=1, vdev_extra="", extra_args=(),
                 log=print, cap=lambda t: t, stop_timeout=10):
        # stdbuf: testpmd's stdout is a pipe here and would be block-buffered.
        self.argv = ["stdbuf", "-oL", "dpdk-testpmd", "--no-huge", "-m", "512", "--no-pci",
                     "--file-prefix=" + prefix, "--single-file-segments", "--log-level=user1,8",
                     "--vdev", "net_virtio_user0,path=%s,queues=%d%s" % (sock, queues, vdev_extra),
                     "--", "-i", "--total-num-mbufs=4096", "--txq=%d" % queues,
                     "--rxq=%d" % queues] + list(extra_args)
        self.queues = queues
        self.prefix = prefix
        self.log = log
        self.cap = cap
        self.stop_timeout = stop_timeout
        log("$ " + " ".join(self.argv))
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.out = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            with self.lock:
                self.out.append(line)

    def text(self):
        with self.lock:
            return "\n".join(self.out)

    def cmd(self, c, wait=0.5):
        self.proc.stdin.write((c + "\n").encode())
        self.proc.stdin.flush()
        time.sleep(wait)

    def wait_for(self, pattern, timeout):
        end = time.monotonic() + self.cap(timeout)
        while time.monotonic() < end:
            if re.search(pattern, self.text()):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return bool(re.search(pattern, self.text()))

    def stats(self):
        """(rx, tx) packets of port 0 from a fresh `show port stats 0`."""
        mark = len(self.text())
        self.cmd("show port stats 0", 1.0)
        t = self.text()[mark:]
        rx = re.findall(r"RX-packets:\s*(\d+)", t)
        tx = re.findall(r"TX-packets:\s*(\d+)", t)
        return (int(rx[-1]) if rx else -1, int(tx[-1]) if tx else -1)

    def xstats(self):
        """{name: value} from a fresh `show port xstats 0`; virtio lists the
        per-queue counters last, ending with the last TX queue's."""
        mark = len(self.text())
        self.cmd("show port xstats 0", 0)
        last = "tx_q%d_size_1519_max_packets:" % (self.queues - 1)
        end = time.monotonic() + self.cap(5)
        while time.monotonic() < end and last not in self.text()[mark:]:
            time.sleep(0.05)
        return {k: int(v) for k, v in re.findall(r"^\s*(\w+):\s+(\d+)\s*$", self.text()[mark:], re.M)}

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit", 0)
                self.proc.wait(timeout=self.stop_timeout)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=self.stop_timeout)
        # EAL's runtime files (hugepage info, mp socket) live in RAM under
        # /var/run/dpdk/PREFIX when root; they outlive testpmd.
        shutil.rmtree(os.path.join("/var/run/dpdk", self.prefix), ignore_errors=True)
        for line in self.out[-15:]:
            self.log("  testpmd| " + line)
