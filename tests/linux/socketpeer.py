"""The peer of QEMU's and qnic's socket netdevs in the Linux guest's socket
tests: a host at one IPv4 address (l2responder.Responder answers ARP and
ICMP echo, fragmented both ways) reached over QEMU's socket wire format on
loopback. tcp: the peer listens and each frame is a 4-byte big-endian
length then the frame, one connection per VM run, served one after
another; udp: one frame per datagram, sent back to whoever sent the last
one. It counts every frame each way per connection (per run for udp), so
a test can compare them with the guest's own counters.

Standard library only; runs in a thread of the test.
"""
import socket
import struct
import threading
import time

from l2responder import Responder


class SocketPeer:
    def __init__(self, mode, mac, ip, log=print):
        self.mode, self.log = mode, log
        self.resp = Responder(mac, ip)
        kind = socket.SOCK_STREAM if mode == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if mode == "tcp":
            self.sock.listen(1)
        self.runs = []      # one {"rx": frames in, "tx": frames out, "bad": ...} per run
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def new_run(self):
        """Start counting a new run (udp has no connection to mark it)."""
        with self.lock:
            self.runs.append({"rx": 0, "tx": 0, "bad": 0, "closed": False})

    def _frame(self, raw, reply):
        with self.lock:
            run = self.runs[-1] if self.runs else None
            if run is None:
                return
            run["rx"] += 1
            if len(raw) < 14:
                run["bad"] += 1
                return
            src, etype = raw[6:12], struct.unpack("!H", raw[12:14])[0]
            for dst, rtype, payload in self.resp.handle(src, etype, raw[14:]):
                frame = dst + self.resp.mac + struct.pack("!H", rtype) + payload
                # Ethernet's minimum: a runt frame would be padded by a NIC.
                frame += b"\0" * max(0, 60 - len(frame))
                reply(frame)
                run["tx"] += 1

    def _serve(self):
        try:
            if self.mode == "tcp":
                while not self.stopping:
                    conn, _ = self.sock.accept()
                    # A reply's fragments go out as separate writes: with
                    # Nagle on, the 2nd waits for the netdev's delayed ACK
                    # (~40 ms), which would be the peer's latency, not the
                    # netdev's. QEMU sets TCP_NODELAY on its end too.
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.new_run()
                    self._serve_stream(conn)
                    with self.lock:
                        self.runs[-1]["closed"] = True
            else:
                while not self.stopping:
                    raw, addr = self.sock.recvfrom(65536)
                    self._frame(raw, lambda f, a=addr: self.sock.sendto(f, a))
        except OSError:
            pass    # the socket closed under us: stop() was called

    def _serve_stream(self, conn):
        buf = b""
        with conn:
            def send(f):
                conn.sendall(struct.pack("!I", len(f)) + f)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 4:
                    n = struct.unpack("!I", buf[:4])[0]
                    if len(buf) < 4 + n:
                        break
                    self._frame(buf[4:4 + n], send)
                    buf = buf[4 + n:]

    def last(self, timeout=5):
        """The counts of the latest run; for tcp, once its connection is
        closed (up to TIMEOUT s), so frames still in the socket are in."""
        end = time.monotonic() + timeout
        while self.mode == "tcp" and time.monotonic() < end:
            with self.lock:
                if self.runs and self.runs[-1]["closed"]:
                    break
            time.sleep(0.05)
        with self.lock:
            return dict(self.runs[-1]) if self.runs else {"rx": 0, "tx": 0, "bad": 0}

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
