#!/usr/bin/env python3
"""Writes the seed corpus and dictionary of the vhost-user backend fuzz
target (tests/fuzz/corpus/vhost-user-backend/, tests/fuzz/dict/
vhost-user-backend.dict) in the op encoding of
tests/fuzz/fuzz-vhost-user-backend.c, so that they can be regenerated and
reviewed as code. The seeds negotiate the way QEMU and DPDK do (split and
packed rings over the harness's 64 KiB guest RAM, a TX frame, an RX frame,
GET_VRING_BASE, SEND_RARP, a second memory table, a reset) and a few
malformed sequences, descriptors of the wrong kind (pipes, sockets, files,
eventfds made blocking and full); NAME.expect files hold what tests/fuzz/replay.c checks.

    scripts/fuzz-seeds-vhost-user-backend.py [SRCDIR]
"""
import os
import struct
import sys

OP_MSG, OP_ATTACH, OP_KICK, OP_FRAME, OP_RAM, OP_DROP, OP_LOOP = range(7)
(FD_RAM, FD_EVENT, FD_SMALL, FD_NULL, FD_PIPE_R, FD_PIPE_W, FD_SOCK, FD_FILE, FD_EVENT_BLOCKING,
 FD_EVENT_FULL) = range(10)
(GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE, SET_LOG_BASE,
 SET_LOG_FD, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE,
 SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR, GET_PROTOCOL_FEATURES,
 SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE, SEND_RARP) = range(1, 20)
RESET_DEVICE = 34
F_VERSION_1, F_MRG, F_PACKED, F_PROTO, F_EVENT_IDX = 32, 15, 34, 30, 29
PF = (1 << 3) | (1 << 2) | (1 << 13)         # REPLY_ACK, RARP, RESET_DEVICE
RAM_SIZE = 0x10000
UA = 0x7f0000000000
QSZ = 16
RX_DESC, RX_AVAIL, RX_USED = 0x0000, 0x1000, 0x2000
TX_DESC, TX_AVAIL, TX_USED = 0x3000, 0x4000, 0x5000
RX_BUF, TX_BUF = 0x8000, 0xc000
MAC = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])


class Prog:
    def __init__(self):
        self.b = bytearray()

    def msg(self, req, payload=b"", flags=0):
        self.b += struct.pack("<BBBH", OP_MSG, req, flags, len(payload)) + payload
        return self

    def u64(self, req, v, flags=0):
        return self.msg(req, struct.pack("<Q", v), flags)

    def state(self, req, idx, num):
        return self.msg(req, struct.pack("<II", idx, num))

    def attach(self, kind):
        self.b += struct.pack("<BB", OP_ATTACH, kind)
        return self

    def kick(self, ring):
        self.b += struct.pack("<BB", OP_KICK, ring)
        return self

    def frame(self, data):
        self.b += struct.pack("<BH", OP_FRAME, len(data)) + data
        return self

    def ram(self, off, data):
        for i in range(0, len(data), 255):
            chunk = data[i:i + 255]
            self.b += struct.pack("<BHB", OP_RAM, off + i, len(chunk)) + chunk
        return self

    def drop(self):
        self.b += bytes([OP_DROP])
        return self

    def loop(self):
        self.b += bytes([OP_LOOP])
        return self


def mem_table(regions):
    out = struct.pack("<II", len(regions), 0)
    for gpa, size, ua, off in regions:
        out += struct.pack("<QQQQ", gpa, size, ua, off)
    return out


def vring_addr(idx, desc, avail, used, flags=0):
    return struct.pack("<IIQQQQ", idx, flags, UA + desc, UA + used, UA + avail, 0)


def eth_frame(n=60, seed=1):
    return MAC + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00" + bytes((seed + i) & 0xff for i in range(n - 14))


def negotiate(p, packed=False, base=0):
    feats = (1 << F_VERSION_1) | (1 << F_MRG) | (1 << F_PROTO) | (1 << F_EVENT_IDX)
    if packed:
        feats |= 1 << F_PACKED
    p.msg(SET_OWNER).msg(GET_FEATURES).msg(GET_PROTOCOL_FEATURES)
    p.u64(SET_PROTOCOL_FEATURES, PF).u64(SET_FEATURES, feats)
    p.attach(FD_RAM).msg(SET_MEM_TABLE, mem_table([(0, RAM_SIZE, UA, 0)]), flags=1)
    for i, (desc, avail, used) in enumerate([(RX_DESC, RX_AVAIL, RX_USED), (TX_DESC, TX_AVAIL, TX_USED)]):
        p.state(SET_VRING_NUM, i, QSZ)
        p.state(SET_VRING_BASE, i, base)
        p.msg(SET_VRING_ADDR, vring_addr(i, desc, avail, used))
        p.attach(FD_EVENT).u64(SET_VRING_CALL, i)
        p.attach(FD_EVENT).u64(SET_VRING_KICK, i)
        p.state(SET_VRING_ENABLE, i, 1)
    return p


def split_desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def split_traffic(p, nth=0):
    frame = bytes(12) + eth_frame(60, nth)
    p.ram(TX_BUF, frame)
    p.ram(TX_DESC + 16 * nth, split_desc(TX_BUF, len(frame)))
    p.ram(TX_AVAIL + 4 + 2 * nth, struct.pack("<H", nth)).ram(TX_AVAIL + 2, struct.pack("<H", nth + 1))
    p.kick(1)
    if nth == 0:
        for i in range(2):
            p.ram(RX_DESC + 16 * i, split_desc(RX_BUF + 0x800 * i, 0x800, 2))
            p.ram(RX_AVAIL + 4 + 2 * i, struct.pack("<H", i))
        p.ram(RX_AVAIL + 2, struct.pack("<H", 2)).kick(0)
        p.frame(eth_frame(100, 7))
    return p


def seeds():
    out = {}
    p = negotiate(Prog())
    split_traffic(p)
    p.msg(SEND_RARP, MAC + b"\0\0")
    p.state(GET_VRING_BASE, 1, 0)
    out["full-split"] = (p, "frames-out == 2\n")

    p = negotiate(Prog(), packed=True, base=0x80008000)
    frame = bytes(12) + eth_frame(60, 3)
    p.ram(TX_BUF, frame).ram(TX_DESC, struct.pack("<QIHH", TX_BUF, len(frame), 5, 1 << 7)).kick(1)
    p.ram(RX_DESC, struct.pack("<QIHH", RX_BUF, 0x800, 9, (1 << 7) | 2)).kick(0)
    p.frame(eth_frame(80, 4)).state(GET_VRING_BASE, 1, 0).state(GET_VRING_BASE, 0, 0)
    out["full-packed"] = (p, "frames-out == 1\n")

    p = negotiate(Prog())
    split_traffic(p)
    p.attach(FD_RAM).msg(SET_MEM_TABLE, mem_table([(0, RAM_SIZE, UA, 0)]))
    split_traffic(p, 1)
    p.msg(RESET_DEVICE).drop()
    out["remap-reset"] = (p, "frames-out == 2\n")

    p = Prog()
    p.msg(SET_VRING_ADDR, vring_addr(0, RX_DESC, RX_AVAIL, RX_USED))            # before the table
    p.attach(FD_RAM).msg(SET_MEM_TABLE, mem_table([(0, 0x1000, UA, 0), (0x1000, 0x1000, UA + 0x1000, 0x1000)]))
    p.attach(FD_SMALL).msg(SET_MEM_TABLE, mem_table([(0, RAM_SIZE, UA, 0)]))   # file too small
    p.attach(FD_NULL).msg(SET_MEM_TABLE, mem_table([(0, RAM_SIZE, UA, 0)]))    # not a file
    p.attach(FD_EVENT).attach(FD_EVENT).u64(SET_VRING_KICK, 0)                 # two fds
    p.attach(FD_EVENT).u64(SET_VRING_CALL, 0x100)                              # fd and no-fd flag
    p.attach(FD_EVENT).msg(99, b"", flags=1)                                   # unknown
    p.state(SET_VRING_NUM, 0, 3).state(SET_VRING_NUM, 0, 4096).state(GET_VRING_BASE, 200, 0)
    p.msg(SET_VRING_NUM, b"\0\0\0\0")                                          # short
    out["malformed"] = (p, "frames-out == 0\n")

    # A frontend that never enables protocol features: rings run on kick.
    p = Prog()
    p.msg(SET_OWNER).u64(SET_FEATURES, 1 << F_VERSION_1)
    p.attach(FD_RAM).msg(SET_MEM_TABLE, mem_table([(0, RAM_SIZE, UA, 0)]))
    for i, (desc, avail, used) in enumerate([(RX_DESC, RX_AVAIL, RX_USED), (TX_DESC, TX_AVAIL, TX_USED)]):
        p.state(SET_VRING_NUM, i, QSZ).msg(SET_VRING_ADDR, vring_addr(i, desc, avail, used))
        p.attach(FD_EVENT).u64(SET_VRING_KICK, i)
    split_traffic(p)
    out["no-protocol-features"] = (p, "frames-out == 1\n")

    # Descriptors of the wrong kind are refused; an eventfd a frontend made
    # blocking and full is taken but cannot block the device's call write.
    p = negotiate(Prog())
    p.attach(FD_PIPE_W).u64(SET_VRING_CALL, 1, flags=1)
    p.attach(FD_PIPE_R).u64(SET_VRING_KICK, 1, flags=1)
    p.attach(FD_SOCK).u64(SET_VRING_KICK, 1, flags=1)
    p.attach(FD_FILE).u64(SET_VRING_ERR, 1, flags=1)
    p.attach(FD_EVENT_BLOCKING).u64(SET_VRING_KICK, 0, flags=1)
    p.attach(FD_EVENT_FULL).u64(SET_VRING_CALL, 1, flags=1)
    split_traffic(p)
    out["hostile-fds"] = (p, "frames-out == 1\n")
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    corpus = os.path.join(src, "tests", "fuzz", "corpus", "vhost-user-backend")
    os.makedirs(corpus, exist_ok=True)
    for name, (prog, expect) in seeds().items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(bytes(prog.b))
        with open(os.path.join(corpus, name + ".expect"), "w") as f:
            f.write(expect)
    with open(os.path.join(src, "tests", "fuzz", "dict", "vhost-user-backend.dict"), "w") as f:
        f.write("# vhost-user-backend: request numbers, feature words and ring values, "
                "by scripts/fuzz-seeds-vhost-user-backend.py\n")
        for name, v in [("ua", UA), ("feat_v1", 1 << F_VERSION_1), ("feat_packed", 1 << F_PACKED),
                        ("feat_proto", 1 << F_PROTO), ("base_packed", 0x80008000)]:
            f.write('%s="%s"\n' % (name, "".join("\\x%02x" % b for b in struct.pack("<Q", v))))
        for name, v in [("qsz", QSZ), ("qsz_max", 1024), ("nofd", 0x100), ("tx_used", TX_USED)]:
            f.write('%s="%s"\n' % (name, "".join("\\x%02x" % b for b in struct.pack("<I", v))))
        f.write('flag_avail="\\x80\\x00"\nflag_avail_used="\\x80\\x80"\n')


if __name__ == "__main__":
    main()
