"""A small user-space IPv4 host for the Linux guest's peers: answers ARP
requests and ICMP echo requests for one address, given Ethernet payloads
however they arrive (an AF_PACKET socket in vlanpeer.py, QEMU's socket
wire format in socketpeer.py). It reassembles fragmented echo requests and
fragments replies that exceed its MTU, because the guest's 8 KiB ping only
passes when both directions fragment and reassemble.

Standard library only.
"""
import socket
import struct

ETH_P_ARP, ETH_P_IP = 0x0806, 0x0800
# Fragments of a datagram that never completes are dropped after this many
# other datagrams started, so a lost fragment cannot grow the table forever.
MAX_PENDING = 64


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ipv4_header(src, dst, proto, ident, payload_len, frag=0):
    """A 20-byte IPv4 header with its checksum; FRAG is flags|offset/8."""
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident, frag, 64, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]


class Responder:
    """handle(src_mac, ethertype, payload) returns the replies as a list of
    (dst_mac, ethertype, payload); counts what it answered in .counts."""

    def __init__(self, mac, ip, mtu=1500):
        self.mac, self.ip, self.mtu = mac, socket.inet_aton(ip), mtu
        self.counts = {"arp": 0, "echo": 0, "fragments_in": 0, "fragments_out": 0}
        self.pending = {}

    def handle(self, src, etype, p):
        if etype == ETH_P_ARP and len(p) >= 28 and p[6:8] == b"\0\1" and p[24:28] == self.ip:
            sha, spa = p[8:14], p[14:18]
            self.counts["arp"] += 1
            return [(src, ETH_P_ARP, p[:6] + b"\0\2" + self.mac + self.ip + sha + spa)]
        if etype != ETH_P_IP or len(p) < 20 or p[16:20] != self.ip:
            return []
        ihl = (p[0] & 15) * 4
        total = struct.unpack("!H", p[2:4])[0]
        frag = struct.unpack("!H", p[6:8])[0]
        data = p[ihl:total]
        if frag & 0x3fff:
            data = self._reassemble(p, frag, data)
            if data is None:
                return []
        if p[9] != 1 or len(data) < 8 or data[0] != 8:
            return []
        reply = b"\0\0\0\0" + data[4:]
        reply = reply[:2] + struct.pack("!H", csum(reply)) + reply[4:]
        self.counts["echo"] += 1
        return [(src, ETH_P_IP, pkt) for pkt in self._fragment(p[12:16], p[4:6], reply)]

    def _reassemble(self, p, frag, data):
        """The whole payload once every fragment of P's datagram is in,
        else None (RFC 791: offset in 8-byte units, MF flag 0x2000)."""
        self.counts["fragments_in"] += 1
        key = (p[12:16], p[4:6], p[9])
        parts = self.pending.setdefault(key, {"parts": {}, "end": None})
        off = (frag & 0x1fff) * 8
        parts["parts"][off] = data
        if not frag & 0x2000:
            parts["end"] = off + len(data)
        while len(self.pending) > MAX_PENDING:
            del self.pending[next(iter(self.pending))]
        if parts["end"] is None:
            return None
        out, at = b"", 0
        while at < parts["end"]:
            piece = parts["parts"].get(at)
            if piece is None:
                return None
            out += piece
            at += len(piece)
        del self.pending[key]
        return out

    def _fragment(self, dst, ident, payload):
        """IPv4 packets carrying PAYLOAD (ICMP) to DST, fragmented at the MTU."""
        ident = struct.unpack("!H", ident)[0]
        room = (self.mtu - 20) // 8 * 8
        if 20 + len(payload) <= self.mtu:
            return [ipv4_header(self.ip, dst, 1, ident, len(payload)) + payload]
        pkts = []
        for off in range(0, len(payload), room):
            piece = payload[off:off + room]
            more = 0x2000 if off + room < len(payload) else 0
            pkts.append(ipv4_header(self.ip, dst, 1, ident, len(piece), more | off // 8) + piece)
        self.counts["fragments_out"] += len(pkts)
        return pkts
