#!/usr/bin/env python3
"""A VLAN peer in user space: answers ARP and ICMP echo for one IPv4
address on one 802.1Q VLAN ID of one interface, through an AF_PACKET
socket. tests/linux/test-linux-tap.py runs it inside its network namespace
on the tap's end, because a kernel without 8021q (this CI host's) cannot
make a VLAN sub-interface there. Only frames tagged with that VID are
answered, and the replies carry the same tag, so the guest's ping succeeds
only if its 8021q sub-interface tags on the way out and untags on the way
in.

usage: vlanpeer.py IFACE VID IPV4    (prints "vlanpeer: ready", and on
SIGTERM/SIGINT "vlanpeer: arp=N echo=M" with what it answered)
"""
import signal
import socket
import struct
import sys

from l2responder import Responder

ETH_P_ALL, ETH_P_8021Q = 0x0003, 0x8100
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID = 0x10


def frame_vlan(raw, anc):
    """(vid, ethertype, payload, src mac) of a received frame. The kernel
    usually strips the tag into PACKET_AUXDATA before AF_PACKET sees the
    frame; an in-frame tag (no acceleration) is read too."""
    src, etype = raw[6:12], struct.unpack("!H", raw[12:14])[0]
    for level, kind, data in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 20:
            status, _, _, _, _, tci = struct.unpack("=IIIHHH", data[:18])
            if status & TP_STATUS_VLAN_VALID:
                return tci & 0xfff, etype, raw[14:], src
    if etype == ETH_P_8021Q:
        tci, inner = struct.unpack("!HH", raw[14:18])
        return tci & 0xfff, inner, raw[18:], src
    return None, etype, raw[14:], src


def main():
    iface, vid, ip = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    mymac = s.getsockname()[4]
    resp = Responder(mymac, ip)
    counts = resp.counts

    def bye(*_):
        print("vlanpeer: arp=%d echo=%d" % (counts["arp"], counts["echo"]), flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    print("vlanpeer: ready on %s vid %d %s" % (iface, vid, ip), flush=True)

    def send(dst, etype, payload):
        s.send(dst + mymac + struct.pack("!HHH", ETH_P_8021Q, vid, etype) + payload)

    while True:
        raw, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(32))
        if addr[2] == socket.PACKET_OUTGOING or len(raw) < 14:
            continue
        got_vid, etype, p, src = frame_vlan(raw, anc)
        if got_vid != vid:
            continue
        for dst, rtype, payload in resp.handle(src, etype, p):
            send(dst, rtype, payload)


if __name__ == "__main__":
    main()
