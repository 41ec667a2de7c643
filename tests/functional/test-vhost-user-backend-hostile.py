#!/usr/bin/env python3
"""qnic-vhost-user-net against a hand-written hostile frontend (issue 21,
findings 2 and 7). The test speaks vhost-user itself:

  fds:     a pipe as call fd and a socketpair end as kick fd (O_NONBLOCK
           cleared on both afterwards, as a frontend sharing the open file
           description can do) are refused with a nonzero REPLY_ACK; an
           eventfd made blocking and full is taken and the daemon still
           answers at once;
  log:     2000 unsupported requests give a handful of log lines (rate
           limited), not 2000;
  next:    after the hostile frontend leaves, a new one is served;
  sigterm: with a frontend that stopped mid-message still connected, the
           daemon exits 0 within 2 s of SIGTERM and removes its socket.

Exit status 77 (skip) with a reason when the daemon is missing.
"""
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import guestlib as g
from guestlib import log

GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_VRING_KICK, SET_VRING_CALL = 12, 13
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES = 15, 16
VERSION, REPLY, NEED_REPLY = 1, 1 << 2, 1 << 3
F_PROTOCOL = 1 << 30
PF_REPLY_ACK = 1 << 3
failures = []


def check(what, ok, detail=""):
    log("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""))
    if not ok:
        failures.append(what)


class Frontend:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(5)
        self.s.connect(path)

    def send(self, req, payload=b"", flags=0, fds=()):
        data = struct.pack("<III", req, VERSION | flags, len(payload)) + payload
        if fds:
            socket.send_fds(self.s, [data], list(fds))
        else:
            self.s.sendall(data)

    def recv(self):
        hdr = b""
        while len(hdr) < 12:
            chunk = self.s.recv(12 - len(hdr))
            if not chunk:
                raise EOFError("daemon closed the connection")
            hdr += chunk
        req, flags, size = struct.unpack("<III", hdr)
        body = b""
        while len(body) < size:
            body += self.s.recv(size - len(body))
        return req, flags, body

    def get_u64(self, req):
        self.send(req)
        r, flags, body = self.recv()
        assert r == req and flags & REPLY and len(body) == 8, (r, flags, body)
        return struct.unpack("<Q", body)[0]

    def set_u64(self, req, v, fds=()):
        """Returns the REPLY_ACK status (0: accepted)."""
        self.send(req, struct.pack("<Q", v), NEED_REPLY, fds)
        r, flags, body = self.recv()
        assert r == req and len(body) == 8, (r, flags, body)
        return struct.unpack("<Q", body)[0]

    def negotiate(self):
        feats = self.get_u64(GET_FEATURES)
        pf = self.get_u64(GET_PROTOCOL_FEATURES)
        self.send(SET_PROTOCOL_FEATURES, struct.pack("<Q", pf & PF_REPLY_ACK))
        self.send(SET_OWNER)
        return self.set_u64(SET_FEATURES, feats & (F_PROTOCOL | (1 << 32))) == 0

    def close(self):
        self.s.close()


def set_blocking(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)


def hostile_fds(fe):
    r, w = os.pipe()
    a, b = socket.socketpair()
    ev = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        st_call = fe.set_u64(SET_VRING_CALL, 1, [w])
        st_kick = fe.set_u64(SET_VRING_KICK, 1, [a.fileno()])
        # What the daemon may have kept, the frontend now makes blocking.
        for fd in (w, a.fileno(), ev):
            set_blocking(fd)
        check("pipe as call fd refused", st_call != 0, "ack %d" % st_call)
        check("socketpair as kick fd refused", st_kick != 0, "ack %d" % st_kick)
        st_ev = fe.set_u64(SET_VRING_CALL, 0, [ev])
        set_blocking(ev)
        os.eventfd_write(ev, 0xfffffffffffffffe)
        check("eventfd as call fd taken", st_ev == 0, "ack %d" % st_ev)
        t0 = time.monotonic()
        feats = fe.get_u64(GET_FEATURES)
        check("daemon still answers at once", time.monotonic() - t0 < 1 and feats != 0)
    finally:
        for fd in (r, w, ev):
            os.close(fd)
        a.close()
        b.close()


def log_flood(fe, err_path):
    before = open(err_path).read().count("not supported")
    for _ in range(2000):
        fe.send(999)             # unknown request, no reply asked
    fe.get_u64(GET_FEATURES)     # all of them handled by now
    lines = open(err_path).read().count("not supported") - before
    check("2000 refused requests, rate-limited log", 1 <= lines <= 20, "%d lines" % lines)


def main():
    daemon = os.environ.get("QNIC_VHOST_USER_NET", "")
    if not daemon or not os.path.exists(daemon):
        g.skip("QNIC_VHOST_USER_NET not set or missing (%r)" % daemon)
    tmp = tempfile.mkdtemp(prefix="qnic-vhu-hostile-")
    path = os.path.join(tmp, "vhu.sock")
    err_path = os.path.join(tmp, "daemon.err")
    argv = [daemon, "--socket", path, "--netdev", "hubport,id=h0,hubid=0"]
    log("$ " + " ".join(argv))
    with open(err_path, "w") as err:
        d = subprocess.Popen(argv, stderr=err, start_new_session=True)
    try:
        end = time.monotonic() + 10
        while not os.path.exists(path) and time.monotonic() < end:
            time.sleep(0.05)
        check("daemon listens", os.path.exists(path))
        fe = Frontend(path)
        check("hostile frontend negotiates", fe.negotiate())
        hostile_fds(fe)
        log_flood(fe, err_path)
        fe.close()
        time.sleep(0.2)
        fe2 = Frontend(path)
        check("a new frontend is served", fe2.negotiate())
        # Stop in the middle of a header, then SIGTERM.
        fe2.s.send(struct.pack("<I", GET_FEATURES))
        time.sleep(0.1)
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        try:
            rc = d.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        check("SIGTERM ends the daemon within 2 s", rc == 0 and took < 2,
              "rc %s after %.2f s" % (rc, took))
        check("socket removed", not os.path.exists(path))
        fe2.close()
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
        log("daemon stderr (first lines):\n" + "".join(open(err_path).readlines()[:30]))
    if failures:
        log("FAILED: " + ", ".join(failures))
        sys.exit(1)
    log("PASS")


if __name__ == "__main__":
    main()
