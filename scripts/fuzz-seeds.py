#!/usr/bin/env python3
"""Writes the seed corpora, dictionaries and regression reproducers of the
device fuzz targets (tests/fuzz/corpus/T/, tests/fuzz/dict/T.dict,
tests/fuzz/regressions/T/) so that they can be regenerated and reviewed as
code instead of as opaque binary files. Each seed is a program in the op
encoding of tests/fuzz/fuzz-device.c that brings a device up the way a
driver does (reset, rings, descriptors in RAM, a frame sent and one
received), which gives libFuzzer a starting point deep inside the data path
instead of at the first register. Reproducers may carry a NAME.expect file
with checks that tests/fuzz/replay.c verifies after running them.

    scripts/fuzz-seeds.py [SRCDIR]     (default: the tree holding this script)
"""
import os
import struct
import sys

# ---- the op encoding of tests/fuzz/fuzz-device.c ----
OP_WRITE, OP_READ, OP_CFG_WRITE, OP_CFG_READ, OP_RAM, OP_PTR, OP_CLOCK, \
    OP_FRAME, OP_LINK, OP_BH, OP_RESET, OP_DESC_FILL, OP_BIG_FRAME = range(13)
SIZE_CODE = {1: 0, 2: 1, 4: 2, 8: 3}
RAM_SIZE = 16 << 20
MAC = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])   # fixed by meson.build
PEER = bytes([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc])
BCAST = b"\xff" * 6


class Prog:
    """One fuzz input: a list of ops, serialized by bytes()."""

    def __init__(self):
        self.b = bytearray()

    def wr(self, bar, off, size, val):
        self.b += struct.pack("<BBIBQ", OP_WRITE, bar, off, SIZE_CODE[size],
                              val & ((1 << (8 * size)) - 1))
        return self

    def rd(self, bar, off, size=4):
        self.b += struct.pack("<BBIB", OP_READ, bar, off, SIZE_CODE[size])
        return self

    def cfgw(self, off, size, val):
        self.b += struct.pack("<BBBI", OP_CFG_WRITE, off, SIZE_CODE[size], val)
        return self

    def cfgr(self, off):
        self.b += struct.pack("<BB", OP_CFG_READ, off)
        return self

    def ram(self, addr, data):
        data = bytes(data)
        for i in range(0, len(data), 255):
            chunk = data[i:i + 255]
            self.b += struct.pack("<BIB", OP_RAM, addr + i, len(chunk)) + chunk
        return self

    def ptr(self, at, p):
        self.b += struct.pack("<BII", OP_PTR, at, p)
        return self

    def clock(self, ns):
        self.b += struct.pack("<BI", OP_CLOCK, ns)
        return self

    def frame(self, data):
        self.b += struct.pack("<BH", OP_FRAME, len(data)) + bytes(data)
        return self

    def desc_fill(self, count, table, buf, length, flags=0, packed=False):
        """count descriptors over one buffer, NEXT on all but the last."""
        self.b += struct.pack("<BBBIIIH", OP_DESC_FILL, count - 1, 1 if packed else 0,
                              table, buf, length, flags)
        return self

    def big_frame(self, length, head=b""):
        """A wire frame of length bytes: head, then a fixed pattern."""
        head = bytes(head[:min(length, 255)])
        self.b += struct.pack("<BIB", OP_BIG_FRAME, length, len(head)) + head
        return self

    def link(self, up):
        self.b += struct.pack("<BB", OP_LINK, 1 if up else 0)
        return self

    def bh(self):
        self.b += bytes([OP_BH])
        return self

    def reset(self):
        self.b += bytes([OP_RESET, 0x5a])
        return self

    def __bytes__(self):
        return bytes(self.b)


# ---- frames ----
def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ipv4(proto, payload, src=b"\x0a\x00\x02\x0f", dst=b"\x0a\x00\x02\x02"):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def udp_frame(dst=BCAST, src=PEER, n=32):
    payload = bytes(range(n % 256)) + bytes(max(0, n - 256))
    u = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload
    return dst + src + b"\x08\x00" + ipv4(17, u)


def tcp_frame(dst=BCAST, src=PEER, n=64):
    payload = bytes((i * 7) & 0xff for i in range(n))
    t = struct.pack("!HHIIBBHHH", 1234, 80, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    return dst + src + b"\x08\x00" + ipv4(6, t)


def arp_frame(dst=BCAST, src=PEER):
    return dst + src + b"\x08\x06" + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src,
                                                 b"\x0a\x00\x02\x02", b"\0" * 6,
                                                 b"\x0a\x00\x02\x0f") + bytes(18)


def vlan_frame(dst=BCAST, src=PEER):
    inner = udp_frame(dst, src, 40)
    return inner[:12] + b"\x81\x00\x00\x05" + inner[12:]


# ---- e1000 (BAR0 = MMIO, BAR1 = I/O) ----
E1K = dict(CTRL=0x0, STATUS=0x8, EECD=0x10, EERD=0x14, MDIC=0x20, ICR=0xc0, ITR=0xc4,
           ICS=0xc8, IMS=0xd0, IMC=0xd8, RCTL=0x100, TCTL=0x400, RDBAL=0x2800, RDBAH=0x2804,
           RDLEN=0x2808, RDH=0x2810, RDT=0x2818, RDTR=0x2820, RADV=0x282c, TDBAL=0x3800,
           TDBAH=0x3804, TDLEN=0x3808, TDH=0x3810, TDT=0x3818, TIDV=0x3820, TADV=0x382c,
           RXCSUM=0x5000, MTA=0x5200, RA=0x5400, VFTA=0x5600, VET=0x38, STATS=0x4000)
E1K_TXRING, E1K_RXRING, E1K_TXBUF, E1K_RXBUF = 0x10000, 0x20000, 0x100000, 0x200000
E1K_CTRL_RST, E1K_CTRL_SLU, E1K_CTRL_VME = 1 << 26, 1 << 6, 1 << 30
E1K_RCTL_EN, E1K_RCTL_UPE, E1K_RCTL_MPE, E1K_RCTL_LPE, E1K_RCTL_BAM, E1K_RCTL_SECRC = \
    1 << 1, 1 << 3, 1 << 4, 1 << 5, 1 << 15, 1 << 26
E1K_RCTL_VFE = 1 << 18
E1K_TCTL_EN, E1K_TCTL_PSP = 1 << 1, 1 << 3
E1K_CMD_EOP, E1K_CMD_IFCS, E1K_CMD_IC, E1K_CMD_RS, E1K_CMD_DEXT, E1K_CMD_VLE, E1K_CMD_IDE = \
    0x01, 0x02, 0x04, 0x08, 0x20, 0x40, 0x80
E1K_CMD_TSE = 0x04
E1K_DTYP_D, E1K_DTYP_C = 0x01, 0x00
E1K_POPTS_IXSM, E1K_POPTS_TXSM = 0x01, 0x02
E1K_TUCMD_TCP, E1K_TUCMD_IP, E1K_TUCMD_TSE = 0x01, 0x02, 0x04


def e1k_wr(p, reg, val):
    return p.wr(0, E1K[reg] if isinstance(reg, str) else reg, 4, val)


def e1k_rd(p, reg):
    return p.rd(0, E1K[reg] if isinstance(reg, str) else reg, 4)


def e1k_legacy_desc(addr, length, cmd, cso=0, css=0, special=0):
    return struct.pack("<QHBBBBH", addr, length, cso, cmd, 0, css, special)


def e1k_ctx_desc(ipcss, ipcso, ipcse, tucss, tucso, tucse, paylen, tucmd, hdrlen, mss):
    return struct.pack("<BBHBBHIBBH", ipcss, ipcso, ipcse, tucss, tucso, tucse,
                       (paylen & 0xfffff) | ((tucmd | E1K_CMD_DEXT) << 24) | (E1K_DTYP_C << 20),
                       0, hdrlen, mss)


def e1k_data_desc(addr, length, dcmd, popts):
    return struct.pack("<QIBBH", addr, (length & 0xfffff) | (E1K_DTYP_D << 20) |
                       ((dcmd | E1K_CMD_DEXT) << 24), 0, popts, 0)


def e1k_up(p, tx_n=8, rx_n=8, rctl=0, rx_bufs=True):
    e1k_wr(p, "IMC", 0xffffffff)
    e1k_wr(p, "CTRL", E1K_CTRL_RST)
    e1k_rd(p, "ICR")
    e1k_wr(p, "CTRL", E1K_CTRL_SLU)
    e1k_rd(p, "STATUS")
    # station address into RA[0] as a driver does (AV bit 31)
    e1k_wr(p, E1K["RA"], struct.unpack("<I", MAC[:4])[0])
    e1k_wr(p, E1K["RA"] + 4, struct.unpack("<H", MAC[4:])[0] | 1 << 31)
    if rx_bufs:
        ring = b"".join(struct.pack("<QQ", E1K_RXBUF + 0x800 * i, 0) for i in range(rx_n))
        p.ram(E1K_RXRING, ring)
    e1k_wr(p, "TDBAL", E1K_TXRING)
    e1k_wr(p, "TDBAH", 0)
    e1k_wr(p, "TDLEN", tx_n * 16)
    e1k_wr(p, "TDH", 0)
    e1k_wr(p, "TDT", 0)
    e1k_wr(p, "TCTL", E1K_TCTL_EN | E1K_TCTL_PSP | (0x0f << 4) | (0x40 << 12))
    e1k_wr(p, "RDBAL", E1K_RXRING)
    e1k_wr(p, "RDBAH", 0)
    e1k_wr(p, "RDLEN", rx_n * 16)
    e1k_wr(p, "RDH", 0)
    e1k_wr(p, "RDT", 0)
    e1k_wr(p, "RCTL", E1K_RCTL_EN | E1K_RCTL_BAM | E1K_RCTL_SECRC | rctl)
    e1k_wr(p, "RDT", rx_n - 1)
    e1k_wr(p, "IMS", 0x1f6dc)
    return p


def e1k_tx(p, slot, frame, cmd=E1K_CMD_EOP | E1K_CMD_IFCS | E1K_CMD_RS, buf=None, **kw):
    buf = E1K_TXBUF + 0x800 * slot if buf is None else buf
    p.ram(buf, frame)
    p.ram(E1K_TXRING + 16 * slot, e1k_legacy_desc(buf, len(frame), cmd, **kw))
    return e1k_wr(p, "TDT", slot + 1)


def e1000_seeds():
    s = {}
    p = e1k_up(Prog())
    e1k_tx(p, 0, udp_frame())
    p.bh().frame(udp_frame(BCAST)).frame(arp_frame(MAC)).bh()
    e1k_rd(p, "ICR")
    e1k_rd(p, "TDH")
    e1k_rd(p, "RDH")
    e1k_rd(p, E1K["STATS"] + 0x74)
    s["bringup-tx-rx"] = p

    # checksum offload with a context descriptor, then TSO
    p = e1k_up(Prog())
    f = tcp_frame(n=200)
    p.ram(E1K_TXRING, e1k_ctx_desc(14, 24, 33, 34, 50, 0, len(f) - 54,
                                   E1K_TUCMD_TCP | E1K_TUCMD_IP, 54, 0))
    p.ram(E1K_TXBUF, f)
    p.ram(E1K_TXRING + 16, e1k_data_desc(E1K_TXBUF, len(f), E1K_CMD_EOP | E1K_CMD_IFCS | E1K_CMD_RS,
                                         E1K_POPTS_IXSM | E1K_POPTS_TXSM))
    e1k_wr(p, "TDT", 2)
    f = tcp_frame(n=3000 - 54)[:1400]
    p.ram(E1K_TXRING + 32, e1k_ctx_desc(14, 24, 33, 34, 50, 0, len(f) - 54,
                                        E1K_TUCMD_TCP | E1K_TUCMD_IP | E1K_TUCMD_TSE, 54, 536))
    p.ram(E1K_TXBUF + 0x800, f[:700])
    p.ram(E1K_TXBUF + 0x1000, f[700:])
    p.ram(E1K_TXRING + 48, e1k_data_desc(E1K_TXBUF + 0x800, 700, E1K_CMD_IFCS | E1K_CMD_TSE,
                                         E1K_POPTS_IXSM | E1K_POPTS_TXSM))
    p.ram(E1K_TXRING + 64, e1k_data_desc(E1K_TXBUF + 0x1000, len(f) - 700,
                                         E1K_CMD_EOP | E1K_CMD_IFCS | E1K_CMD_RS | E1K_CMD_TSE,
                                         E1K_POPTS_IXSM | E1K_POPTS_TXSM))
    e1k_wr(p, "TDT", 5)
    p.bh()
    e1k_rd(p, "ICR")
    s["tx-offload-tso"] = p

    # VLAN: insert on TX, filter and strip on RX
    p = e1k_up(Prog(), rctl=E1K_RCTL_VFE)
    e1k_wr(p, "VET", 0x8100)
    e1k_wr(p, "CTRL", E1K_CTRL_SLU | E1K_CTRL_VME)
    e1k_wr(p, E1K["VFTA"], 1 << 5)
    e1k_tx(p, 0, udp_frame(), cmd=E1K_CMD_EOP | E1K_CMD_IFCS | E1K_CMD_RS | E1K_CMD_VLE,
           special=5)
    p.frame(vlan_frame()).bh()
    e1k_rd(p, "ICR")
    s["vlan"] = p

    # promiscuous + multicast table + RX checksum + interrupt moderation timers
    p = e1k_up(Prog(), rctl=E1K_RCTL_UPE | E1K_RCTL_MPE | E1K_RCTL_LPE)
    e1k_wr(p, "RXCSUM", 0x300)
    e1k_wr(p, "RDTR", 10)
    e1k_wr(p, "RADV", 20)
    e1k_wr(p, "ITR", 500)
    e1k_wr(p, E1K["MTA"] + 4 * 3, 0xffffffff)
    p.frame(tcp_frame(b"\x01\x00\x5e\x00\x00\x01")).frame(udp_frame(PEER, MAC, 1400))
    p.clock(100000).bh().clock(1000000).bh()
    e1k_rd(p, "ICR")
    p.link(False).bh().link(True).bh()
    e1k_rd(p, "STATUS")
    s["rx-filters-timers"] = p

    # EEPROM (EERD), PHY (MDIC), the I/O BAR's IOADDR/IODATA window
    p = Prog()
    for w in (0, 1, 2, 0x3f):
        e1k_wr(p, "EERD", (w << 8) | 1)
        e1k_rd(p, "EERD")
    e1k_wr(p, "MDIC", (1 << 21) | (2 << 16) | (2 << 26))
    e1k_rd(p, "MDIC")
    e1k_wr(p, "MDIC", (1 << 21) | (0 << 16) | (1 << 26) | 0x1340)
    p.wr(1, 0, 4, E1K["STATUS"]).rd(1, 4, 4)
    p.wr(1, 0, 4, E1K["IMS"]).wr(1, 4, 4, 0xff)
    e1k_wr(p, "ICS", 0x4)
    e1k_rd(p, "ICR")
    s["eeprom-phy-io"] = p
    return s


def e1000_regressions():
    r = {}
    # TX descriptor whose buffer is the device's own MMIO (BAR0 at 0xe0000000:
    # fuzz-device.c places it first). A refused DMA must not re-enter.
    p = e1k_up(Prog())
    p.ram(E1K_TXRING, e1k_legacy_desc(0xe0000000 + E1K["CTRL"], 64,
                                      E1K_CMD_EOP | E1K_CMD_IFCS | E1K_CMD_RS))
    p.ram(E1K_TXRING + 16, e1k_legacy_desc(0xe0000000 + E1K["TDT"], 4,
                                           E1K_CMD_EOP | E1K_CMD_RS))
    e1k_wr(p, "TDT", 2)
    p.bh()
    e1k_tx(p, 2, udp_frame())          # still transmits afterwards
    p.bh()
    r["tx-dma-own-mmio"] = (p, ["guest-errors >= 2", "frames-out >= 1"])

    # The rings themselves in the device's MMIO, and an RX buffer there: a
    # frame written by DMA into TDT/CTRL would re-enter the device.
    p = e1k_up(Prog(), rx_bufs=False)
    p.ram(E1K_RXRING, struct.pack("<QQ", 0xe0000000 + E1K["TDT"], 0))
    p.frame(udp_frame(BCAST)).bh()
    e1k_wr(p, "TDBAL", 0xe0000000)
    e1k_wr(p, "TDT", 1)
    p.bh()
    e1k_wr(p, "RDBAL", 0xe0000000 + E1K["CTRL"])
    p.frame(udp_frame(BCAST)).bh()
    e1k_rd(p, "STATUS")
    r["rings-and-rx-dma-own-mmio"] = (p, ["guest-errors >= 3", "frames-out == 0"])

    # RX descriptor with buffer address 0 (Linux's e1000 never posts one;
    # QEMU treats it as "skip"): the frame must not be written to page 0.
    p = e1k_up(Prog(), rx_bufs=False)
    p.ram(E1K_RXRING, struct.pack("<QQ", 0, 0))
    p.ram(E1K_RXRING + 16, struct.pack("<QQ", E1K_RXBUF, 0))
    p.frame(udp_frame(BCAST)).bh()
    r["rx-zero-buffer-address"] = (p, ["ram32 0x0 == 0x0", "ram32 0xc == 0x0"])
    return r


# ---- rtl8139 (BAR0 = I/O, BAR1 = MMIO) ----
RTL = dict(IDR0=0x00, MAR0=0x08, TSD0=0x10, TSAD0=0x20, RBSTART=0x30, CR=0x37, CAPR=0x38,
           CBR=0x3a, IMR=0x3c, ISR=0x3e, TCR=0x40, RCR=0x44, TCTR=0x48, MPC=0x4c,
           CR9346=0x50, CONFIG1=0x52, TIMERINT=0x54, MSR=0x58, TSAD=0x60, BMCR=0x62,
           BMSR=0x64, TPPOLL=0xd9, RXMAXSIZE=0xda, CPCR=0xe0, RDSAR=0xe4, TNPDS=0x20)
RTL_RING, RTL_TXBUF, RTL_CP_TX, RTL_CP_RX, RTL_CP_BUF = 0x100000, 0x120000, 0x10000, 0x20000, \
    0x200000
RTL_CR_RST, RTL_CR_RE, RTL_CR_TE = 0x10, 0x08, 0x04
RCR_AAP, RCR_APM, RCR_AM, RCR_AB, RCR_WRAP = 1, 2, 4, 8, 0x80
CPD_OWN, CPD_EOR, CPD_FS, CPD_LS = 1 << 31, 1 << 30, 1 << 29, 1 << 28
CPTX_LGSEN, CPTX_IPCS, CPTX_UDPCS, CPTX_TCPCS = 1 << 27, 1 << 18, 1 << 17, 1 << 16


def rtl_w(p, reg, size, val, bar=0):
    return p.wr(bar, RTL[reg] if isinstance(reg, str) else reg, size, val)


def rtl_r(p, reg, size, bar=0):
    return p.rd(bar, RTL[reg] if isinstance(reg, str) else reg, size)


def rtl_c_up(p, rcr=RCR_APM | RCR_AB | RCR_AM | RCR_WRAP, tcr=0x03000700):
    rtl_w(p, "CR", 1, RTL_CR_RST)
    rtl_r(p, "CR", 1)
    rtl_w(p, "CR9346", 1, 0xc0)
    rtl_w(p, "CONFIG1", 1, 0)
    rtl_w(p, "CR9346", 1, 0)
    rtl_w(p, "RBSTART", 4, RTL_RING)
    rtl_w(p, "CR", 1, RTL_CR_RE | RTL_CR_TE)
    rtl_w(p, "TCR", 4, tcr)
    rtl_w(p, "RCR", 4, rcr)
    rtl_w(p, "MAR0", 4, 0xffffffff)
    rtl_w(p, MAR0_HI, 4, 0xffffffff)
    rtl_w(p, "IMR", 2, 0xe1ff)
    return p


MAR0_HI = 0x0c


def rtl_c_tx(p, slot, frame):
    p.ram(RTL_TXBUF + 0x800 * slot, frame)
    rtl_w(p, RTL["TSAD0"] + 4 * slot, 4, RTL_TXBUF + 0x800 * slot)
    rtl_w(p, RTL["TSD0"] + 4 * slot, 4, len(frame) | (0x08 << 16))
    return p


def rtl_cp_up(p, rx_n=4):
    rtl_w(p, "CR", 1, RTL_CR_RST)
    rtl_w(p, "CPCR", 2, 0x3 | 0x20 | 0x40)
    rtl_w(p, "TNPDS", 4, RTL_CP_TX)
    rtl_w(p, RTL["TNPDS"] + 4, 4, 0)
    rtl_w(p, "RDSAR", 4, RTL_CP_RX)
    rtl_w(p, RTL["RDSAR"] + 4, 4, 0)
    ring = b""
    for i in range(rx_n):
        eor = CPD_EOR if i == rx_n - 1 else 0
        ring += struct.pack("<IIQ", CPD_OWN | eor | 1536, 0, RTL_CP_BUF + 0x800 * i)
    p.ram(RTL_CP_RX, ring)
    rtl_w(p, "RXMAXSIZE", 2, 1536)
    rtl_w(p, "CR", 1, RTL_CR_RE | RTL_CR_TE)
    rtl_w(p, "RCR", 4, RCR_APM | RCR_AB | RCR_AM)
    rtl_w(p, "IMR", 2, 0xe1ff)
    return p


def rtl_cp_desc(flags, length, buf, vlan=0):
    return struct.pack("<IIQ", flags | length, vlan, buf)


def rtl8139_seeds():
    s = {}
    p = rtl_c_up(Prog())
    rtl_c_tx(p, 0, udp_frame())
    p.frame(udp_frame(BCAST)).frame(arp_frame(MAC)).bh()
    rtl_r(p, "ISR", 2)
    rtl_w(p, "ISR", 2, 0xffff)
    rtl_r(p, "CBR", 2)
    rtl_w(p, "CAPR", 2, 0x50 - 16)
    rtl_r(p, "TSD0", 4)
    rtl_r(p, "TSAD", 2)
    rtl_c_tx(p, 1, tcp_frame())
    rtl_c_tx(p, 2, arp_frame())
    rtl_c_tx(p, 3, vlan_frame())
    p.bh()
    s["c-mode"] = p

    # C mode through the MMIO BAR, 64K ring without WRAP, timer interrupt
    p = Prog()
    rtl_w(p, "CR", 1, RTL_CR_RST, bar=1)
    rtl_w(p, "RBSTART", 4, RTL_RING, bar=1)
    rtl_w(p, "RCR", 4, RCR_AAP | (3 << 11), bar=1)
    rtl_w(p, "CR", 1, RTL_CR_RE | RTL_CR_TE, bar=1)
    rtl_w(p, "TIMERINT", 4, 1000, bar=1)
    rtl_w(p, "TCTR", 4, 0, bar=1)
    for i in range(6):
        p.frame(udp_frame(PEER, MAC, 1000 + 50 * i))
    p.clock(5000000).bh()
    rtl_r(p, "ISR", 2, bar=1)
    rtl_r(p, "TCTR", 4, bar=1)
    rtl_r(p, "MPC", 4, bar=1)
    s["c-mode-mmio-64k"] = p

    # C+ mode: TX ring with checksum offload, a two-descriptor frame, large send
    p = rtl_cp_up(Prog())
    f = tcp_frame(n=100)
    f2 = tcp_frame(n=3000)
    p.ram(RTL_CP_BUF + 0x10000, f)
    p.ram(RTL_CP_BUF + 0x11000, f2)
    ring = rtl_cp_desc(CPD_OWN | CPD_FS | CPD_LS | CPTX_IPCS | CPTX_TCPCS, len(f),
                       RTL_CP_BUF + 0x10000)
    ring += rtl_cp_desc(CPD_OWN | CPD_FS, 60, RTL_CP_BUF + 0x10000)
    ring += rtl_cp_desc(CPD_OWN | CPD_LS, len(f) - 60, RTL_CP_BUF + 0x10000 + 60)
    ring += rtl_cp_desc(CPD_OWN | CPD_FS | CPD_LS | CPD_EOR | CPTX_LGSEN | (1000 << 16),
                        len(f2), RTL_CP_BUF + 0x11000, vlan=(1 << 17) | 0x0500)
    p.ram(RTL_CP_TX, ring)
    rtl_w(p, "TPPOLL", 1, 0x40)
    p.frame(udp_frame(BCAST)).frame(vlan_frame()).frame(tcp_frame(MAC)).bh()
    rtl_r(p, "ISR", 2)
    s["cplus"] = p

    # EEPROM read by bit-banging the 93C46 through 9346CR (read word 7)
    p = Prog()
    rtl_w(p, "CR9346", 1, 0x80)
    bits = [1, 1, 0] + [(7 >> (5 - i)) & 1 for i in range(6)]
    for b in bits:
        v = 0x80 | 0x08 | (0x02 if b else 0)
        rtl_w(p, "CR9346", 1, v)
        rtl_w(p, "CR9346", 1, v | 0x04)
    for _ in range(16):
        rtl_w(p, "CR9346", 1, 0x88)
        rtl_w(p, "CR9346", 1, 0x8c)
        rtl_r(p, "CR9346", 1)
    rtl_w(p, "CR9346", 1, 0)
    rtl_r(p, "BMSR", 2)
    rtl_w(p, "BMCR", 2, 0x8000)
    p.link(False).link(True)
    rtl_r(p, "MSR", 1)
    s["eeprom-mii"] = p
    return s


def rtl8139_regressions():
    r = {}
    # Loopback (TCR LBK=11): every TX frame goes to our own RX; one TX
    # must deliver exactly one frame, never recurse or loop.
    p = rtl_c_up(Prog(), rcr=RCR_AAP | RCR_AB | RCR_WRAP, tcr=0x03000700 | (3 << 17))
    for slot in range(4):
        rtl_c_tx(p, slot, udp_frame(MAC, MAC, 100 + slot))
    p.bh()
    rtl_r(p, "ISR", 2)
    # the first looped frame sits at the start of the ring: ROK, length 100+42+4
    r["loopback-bounded"] = (p, ["frames-out == 0", "ram16 0x100000 == 0x4001",
                                 "ram16 0x100002 == 146"])

    # C+ TX: one 65535-byte descriptor (the largest a descriptor can say,
    # sent), a frame of two such descriptors (more than the 64 KiB assembly
    # buffer: logged, dropped), a zero-length descriptor (logged, nothing
    # sent) and a good frame that must still go out.
    p = rtl_cp_up(Prog())
    f = udp_frame(n=60)
    p.ram(RTL_CP_BUF + 0x10000, f)
    ring = rtl_cp_desc(CPD_OWN | CPD_FS | CPD_LS, 0xffff, RTL_CP_BUF + 0x10000)
    ring += rtl_cp_desc(CPD_OWN | CPD_FS, 0xffff, RTL_CP_BUF + 0x10000)
    ring += rtl_cp_desc(CPD_OWN | CPD_LS, 0xffff, RTL_CP_BUF + 0x10000)
    ring += rtl_cp_desc(CPD_OWN | CPD_FS | CPD_LS, 0, RTL_CP_BUF + 0x10000)
    ring += rtl_cp_desc(CPD_OWN | CPD_FS | CPD_LS | CPD_EOR, len(f), RTL_CP_BUF + 0x10000)
    p.ram(RTL_CP_TX, ring)
    rtl_w(p, "TPPOLL", 1, 0x40)
    p.bh()
    r["cplus-tx-oversized-zero-length"] = (p, ["guest-errors >= 2", "frames-out == 2"])

    # C-mode RX ring placed on the device's own MMIO BAR (BAR1, 0xe0000000):
    # the frame would be written into CR/ISR/... by DMA; refused.
    p = rtl_c_up(Prog(), rcr=RCR_AAP | RCR_AB)
    rtl_w(p, "RBSTART", 4, 0xe0000000)
    p.frame(udp_frame(BCAST)).bh()
    rtl_c_tx(p, 0, udp_frame())
    p.bh()
    r["rx-ring-own-mmio"] = (p, ["guest-errors >= 1", "frames-out == 1"])
    return r


# ---- virtio ----
F = dict(CSUM=0, GUEST_CSUM=1, MAC=5, GUEST_TSO4=7, HOST_TSO4=11, MRG_RXBUF=15, STATUS=16,
         CTRL_VQ=17, CTRL_RX=18, CTRL_VLAN=19, MQ=22, CTRL_MAC_ADDR=23, INDIRECT=28,
         EVENT_IDX=29, VERSION_1=32, RING_PACKED=34)
S_ACK, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK = 1, 2, 4, 8
DESC_NEXT, DESC_WRITE, DESC_INDIRECT = 1, 2, 4
PACKED_AVAIL, PACKED_USED = 1 << 7, 1 << 15
QSIZE = 256
RXBUF, TXBUF, CTRLBUF = 0x400000, 0x600000, 0x700000


def feat(*names):
    v = 0
    for n in names:
        v |= 1 << F[n]
    return v


class SplitRing:
    def __init__(self, desc, avail, used, num=QSIZE):
        self.desc, self.avail, self.used, self.num = desc, avail, used, num
        self.idx = 0
        self.next = 0

    @staticmethod
    def legacy(base, num=QSIZE, align=4096):
        avail = base + 16 * num
        used = (avail + 6 + 2 * num + align - 1) & ~(align - 1)
        return SplitRing(base, avail, used, num)

    def post(self, p, bufs, kind="chain"):
        """bufs: list of (addr, len, writable). Posts one chain, returns its head."""
        head = self.next
        for i, (a, ln, w) in enumerate(bufs):
            d = self.next
            self.next = (self.next + 1) % self.num
            flags = (DESC_WRITE if w else 0) | (DESC_NEXT if i + 1 < len(bufs) else 0)
            p.ram(self.desc + 16 * d, struct.pack("<QIHH", a, ln, flags, self.next))
        p.ram(self.avail + 4 + 2 * (self.idx % self.num), struct.pack("<H", head))
        self.idx += 1
        p.ram(self.avail + 2, struct.pack("<H", self.idx & 0xffff))
        return head

    def post_indirect(self, p, table_addr, bufs):
        table = b""
        for i, (a, ln, w) in enumerate(bufs):
            flags = (DESC_WRITE if w else 0) | (DESC_NEXT if i + 1 < len(bufs) else 0)
            table += struct.pack("<QIHH", a, ln, flags, i + 1)
        p.ram(table_addr, table)
        d = self.next
        self.next = (self.next + 1) % self.num
        p.ram(self.desc + 16 * d, struct.pack("<QIHH", table_addr, len(table), DESC_INDIRECT, 0))
        p.ram(self.avail + 4 + 2 * (self.idx % self.num), struct.pack("<H", d))
        self.idx += 1
        p.ram(self.avail + 2, struct.pack("<H", self.idx & 0xffff))
        return d


class PackedRing:
    def __init__(self, desc, driver, device, num=QSIZE):
        self.desc, self.driver, self.device, self.num = desc, driver, device, num
        self.next, self.wrap, self.id = 0, 1, 0

    def post(self, p, bufs):
        ident = self.id
        self.id += 1
        for i, (a, ln, w) in enumerate(bufs):
            flags = (DESC_WRITE if w else 0) | (DESC_NEXT if i + 1 < len(bufs) else 0)
            flags |= PACKED_AVAIL if self.wrap else PACKED_USED
            p.ram(self.desc + 16 * self.next, struct.pack("<QIHH", a, ln, ident, flags))
            self.next += 1
            if self.next == self.num:
                self.next, self.wrap = 0, self.wrap ^ 1
        return ident


def vnet_hdr(hlen, flags=0, gso=0, hdr_len=0, gso_size=0, csum_start=0, csum_off=0):
    h = struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, csum_start, csum_off)
    return h + bytes(hlen - 10)


class VirtioDrv:
    """Drives one transport: 'legacy' (PCI I/O BAR0), 'modern' (PCI BAR4 at fuzz
    BAR index 1), 'mmio' (legacy virtio-mmio, version 1)."""

    def __init__(self, kind, features, packed=False, bar=1, ring_base=0x10000):
        self.kind, self.features, self.packed = kind, features, packed
        self.bar, self.ring_base = bar, ring_base      # modern BAR4's fuzz index
        self.rings = {}
        self.hdr_len = 12 if features & (feat("MRG_RXBUF") | feat("VERSION_1")) else 10

    # register helpers per transport
    def status(self, p, v):
        if self.kind == "legacy":
            p.wr(0, 18, 1, v)
        elif self.kind == "modern":
            p.wr(self.bar, 20, 1, v)
        else:
            p.wr(0, 0x70, 4, v)

    def negotiate(self, p):
        self.status(p, 0)
        self.status(p, S_ACK)
        self.status(p, S_ACK | S_DRIVER)
        f = self.features
        if self.kind == "legacy":
            p.rd(0, 0, 4).wr(0, 4, 4, f & 0xffffffff)
        elif self.kind == "modern":
            for sel in (0, 1):
                p.wr(self.bar, 0, 4, sel).rd(self.bar, 4, 4)
                p.wr(self.bar, 8, 4, sel).wr(self.bar, 12, 4, (f >> (32 * sel)) & 0xffffffff)
            self.status(p, S_ACK | S_DRIVER | S_FEATURES_OK)
            p.rd(self.bar, 20, 1)
        else:
            p.rd(0, 0, 4).rd(0, 4, 4)
            p.wr(0, 0x14, 4, 0).rd(0, 0x10, 4)
            p.wr(0, 0x24, 4, 0).wr(0, 0x20, 4, f & 0xffffffff)
            p.wr(0, 0x28, 4, 4096)

    def setup_queue(self, p, q, base):
        if self.kind == "legacy":
            p.wr(0, 14, 2, q).rd(0, 12, 2)
            r = SplitRing.legacy(base)
            p.wr(0, 8, 4, base >> 12)
        elif self.kind == "mmio":
            p.wr(0, 0x30, 4, q).rd(0, 0x34, 4)
            p.wr(0, 0x38, 4, QSIZE).wr(0, 0x3c, 4, 4096)
            r = SplitRing.legacy(base)
            p.wr(0, 0x40, 4, base >> 12)
        else:
            p.wr(self.bar, 22, 2, q).rd(self.bar, 24, 2).rd(self.bar, 30, 2)
            desc, drv, dev = base, base + 0x1000, base + 0x2000
            if self.packed:
                r = PackedRing(desc, drv, dev)
            else:
                r = SplitRing(desc, drv, dev)
            for off, a in ((32, desc), (40, drv), (48, dev)):
                p.wr(self.bar, off, 4, a).wr(self.bar, off + 4, 4, 0)
            p.wr(self.bar, 28, 2, 1)
        self.rings[q] = r
        return r

    def kick(self, p, q):
        if self.kind == "legacy":
            p.wr(0, 16, 2, q)
        elif self.kind == "modern":
            p.wr(self.bar, 0x3000 + 4 * q, 2, q)
        else:
            p.wr(0, 0x50, 4, q)
        return p.bh()

    def up(self, p, nqueues=2, rx_bufs=4):
        self.negotiate(p)
        for q in range(nqueues):
            self.setup_queue(p, q, self.ring_base + 0x10000 * q)
        self.status(p, S_ACK | S_DRIVER | S_DRIVER_OK |
                    (S_FEATURES_OK if self.kind == "modern" else 0))
        for i in range(rx_bufs):
            self.rings[0].post(p, [(RXBUF + 0x1000 * i, 0x1000, True)])
        self.kick(p, 0)
        return p

    def tx(self, p, frame, q=1, split_hdr=True, **hdr):
        r = self.rings[q]
        slot = r.next if isinstance(r, SplitRing) else r.next
        buf = TXBUF + 0x1000 * (slot % 64)
        h = vnet_hdr(self.hdr_len, **hdr)
        if split_hdr:
            p.ram(buf, h)
            p.ram(buf + 0x100, frame)
            r.post(p, [(buf, len(h), False), (buf + 0x100, len(frame), False)])
        else:
            p.ram(buf, h + frame)
            r.post(p, [(buf, len(h) + len(frame), False)])
        return self.kick(p, q)

    def read_isr(self, p):
        if self.kind == "legacy":
            return p.rd(0, 19, 1)
        if self.kind == "modern":
            return p.rd(self.bar, 0x1000, 1)
        return p.rd(0, 0x60, 4).wr(0, 0x64, 4, 3)


def ctrl_cmd(drv, p, q, cls, cmd, data):
    r = drv.rings[q]
    p.ram(CTRLBUF, bytes([cls, cmd]))
    p.ram(CTRLBUF + 0x10, data)
    bufs = [(CTRLBUF, 2, False), (CTRLBUF + 0x10, len(data), False), (CTRLBUF + 0x20, 1, True)]
    if not data:
        bufs.pop(1)
    r.post(p, bufs)
    return drv.kick(p, q)


def virtio_seeds(kind, base_features, packed=False, mq=False):
    s = {}
    # No offload features: the fuzz backend (a hubport) has no vnet header,
    # so the device does not offer them (as QEMU does not).
    f = base_features | feat("MAC", "STATUS", "MRG_RXBUF")
    d = VirtioDrv(kind, f, packed)
    p = d.up(Prog())
    d.tx(p, udp_frame())
    d.tx(p, tcp_frame(), split_hdr=False)
    p.frame(udp_frame(BCAST)).frame(arp_frame(MAC)).bh()
    d.read_isr(p)
    d.tx(p, tcp_frame(n=1000), flags=1, csum_start=34, csum_off=16)
    s["bringup"] = p

    # TSO through the vnet header, mergeable RX of a large frame over small buffers
    d = VirtioDrv(kind, f, packed)
    p = d.up(Prog(), rx_bufs=0)
    for i in range(6):
        d.rings[0].post(p, [(RXBUF + 0x1000 * i, 512, True)])
    d.kick(p, 0)
    p.frame(udp_frame(MAC, PEER, 1800)).bh()
    big = tcp_frame(n=3000)
    d.tx(p, big, flags=1, gso=1, hdr_len=54, gso_size=1448, csum_start=34, csum_off=16)
    s["tso-mergeable"] = p

    # indirect descriptors and event index
    d = VirtioDrv(kind, f | feat("INDIRECT", "EVENT_IDX"), packed)
    p = d.up(Prog(), rx_bufs=0)
    if not packed:
        d.rings[0].post_indirect(p, 0x80000, [(RXBUF, 12, True), (RXBUF + 0x100, 1600, True)])
        p.ram(d.rings[0].avail + 4 + 2 * QSIZE, struct.pack("<H", 0))
        d.kick(p, 0)
        p.frame(udp_frame(BCAST)).bh()
        h = vnet_hdr(d.hdr_len)
        fr = udp_frame()
        p.ram(TXBUF, h).ram(TXBUF + 0x100, fr)
        d.rings[1].post_indirect(p, 0x81000, [(TXBUF, len(h), False),
                                              (TXBUF + 0x100, len(fr), False)])
        d.kick(p, 1)
    else:
        d.tx(p, udp_frame())
    s["indirect-event-idx"] = p

    if kind != "mmio":
        # control queue: promiscuous, MAC table, VLAN filter, multiqueue
        cf = f | feat("CTRL_VQ", "CTRL_RX", "CTRL_VLAN", "CTRL_MAC_ADDR")
        if mq:
            cf |= feat("MQ")
        d = VirtioDrv(kind, cf, packed)
        p = d.up(Prog(), nqueues=3)
        ctrl_cmd(d, p, 2, 0, 0, b"\x01")                      # RX_PROMISC on
        ctrl_cmd(d, p, 2, 1, 1, MAC)                          # MAC_ADDR_SET
        ctrl_cmd(d, p, 2, 1, 0, struct.pack("<I", 1) + PEER + struct.pack("<I", 0))
        ctrl_cmd(d, p, 2, 2, 0, struct.pack("<H", 5))         # VLAN_ADD 5
        if mq:
            ctrl_cmd(d, p, 2, 4, 0, struct.pack("<H", 1))     # MQ_VQ_PAIRS_SET 1
        p.frame(vlan_frame()).frame(udp_frame(PEER)).bh()
        d.read_isr(p)
        s["ctrl-vq"] = p
    return s


def virtio_regressions(kind, base_features, packed=False):
    r = {}
    f = base_features | feat("MAC", "STATUS", "MRG_RXBUF", "INDIRECT")
    ok_status = "status-needs-reset" if kind == "modern" else None

    def recover(d, p):
        # Reset the device and bring it up again: it must work afterwards.
        # Like a driver, clear the old rings first (a device may look at a
        # TX ring again as soon as DRIVER_OK is set).
        for r in d.rings.values():
            if isinstance(r, SplitRing):
                p.ram(r.avail, bytes(4)).ram(r.used, bytes(4))
            else:
                p.ram(r.desc, bytes(16 * QSIZE))
        d.rings = {}
        d.up(p, rx_bufs=1)
        d.tx(p, udp_frame())

    if not packed:
        # a descriptor chain that loops (0 -> 1 -> 0)
        d = VirtioDrv(kind, f)
        p = d.up(Prog(), rx_bufs=0)
        t = d.rings[1]
        p.ram(TXBUF, vnet_hdr(d.hdr_len) + udp_frame())
        p.ram(t.desc, struct.pack("<QIHH", TXBUF, 12, DESC_NEXT, 1))
        p.ram(t.desc + 16, struct.pack("<QIHH", TXBUF + 12, 40, DESC_NEXT, 0))
        p.ram(t.avail + 4, struct.pack("<H", 0)).ram(t.avail + 2, struct.pack("<H", 1))
        d.kick(p, 1)
        recover(d, p)
        r["desc-chain-loop"] = (p, ["guest-errors >= 1", "frames-out == 1"])

        # an indirect table whose entry is itself indirect
        d = VirtioDrv(kind, f)
        p = d.up(Prog(), rx_bufs=0)
        t = d.rings[1]
        p.ram(0x80000, struct.pack("<QIHH", 0x81000, 32, DESC_INDIRECT, 0))
        p.ram(0x81000, struct.pack("<QIHH", TXBUF, 60, 0, 0) * 2)
        p.ram(TXBUF, vnet_hdr(d.hdr_len) + udp_frame())
        p.ram(t.desc, struct.pack("<QIHH", 0x80000, 16, DESC_INDIRECT, 0))
        p.ram(t.avail + 4, struct.pack("<H", 0)).ram(t.avail + 2, struct.pack("<H", 1))
        d.kick(p, 1)
        recover(d, p)
        r["nested-indirect"] = (p, ["guest-errors >= 1", "frames-out == 1"])

        # avail idx more than a queue's size ahead of the device
        d = VirtioDrv(kind, f)
        p = d.up(Prog(), rx_bufs=0)
        t = d.rings[1]
        p.ram(TXBUF, vnet_hdr(d.hdr_len) + udp_frame())
        p.ram(t.desc, struct.pack("<QIHH", TXBUF, d.hdr_len + 60, 0, 0))
        p.ram(t.avail + 2, struct.pack("<H", QSIZE + 5))
        d.kick(p, 1)
        recover(d, p)
        r["avail-idx-ahead"] = (p, ["guest-errors >= 1", "frames-out == 1"])

        # num_buffers must be in the header before the used index publishes
        # the buffers. The first RX buffer's num_buffers field (offset 10)
        # overlaps the used ring's idx: written in the right order, the
        # index (3, after a 1-buffer and a 2-buffer frame) wins; written
        # after the flush, num_buffers (2) would be left there.
        d = VirtioDrv(kind, f)
        p = d.up(Prog(), rx_bufs=1)
        p.frame(udp_frame(BCAST, PEER, 60)).bh()
        rx = d.rings[0]
        used_idx = rx.used + 2
        rx.post(p, [(used_idx - 10, 0x200, True)])
        rx.post(p, [(RXBUF + 0x8000, 0x1000, True)])
        d.kick(p, 0)
        p.frame(udp_frame(BCAST, PEER, 900)).bh()
        r["num-buffers-before-used-idx"] = (p, ["ram16 0x%x == 3" % used_idx])

        # a TX buffer in MMIO (the virtio-mmio window / the PCI BARs at
        # 0xe0000000): not RAM, refused, the device needs a reset
        d = VirtioDrv(kind, f)
        p = d.up(Prog(), rx_bufs=0)
        t = d.rings[1]
        mmio = 0xfeb00000 if kind == "mmio" else 0xe0000000
        p.ram(TXBUF, vnet_hdr(d.hdr_len))
        t.post(p, [(TXBUF, d.hdr_len, False), (mmio + 0x50, 64, False)])
        d.kick(p, 1)
        recover(d, p)
        r["desc-buffer-in-mmio"] = (p, ["guest-errors >= 1", "frames-out == 1"])
    else:
        # packed: a chain longer than the ring (every descriptor has NEXT)
        d = VirtioDrv(kind, f, packed=True)
        p = d.up(Prog(), rx_bufs=0)
        t = d.rings[1]
        p.ram(TXBUF, vnet_hdr(d.hdr_len) + udp_frame())
        for i in range(QSIZE):
            p.ram(t.desc + 16 * i, struct.pack("<QIHH", TXBUF, 16, 0, PACKED_AVAIL | DESC_NEXT))
        d.kick(p, 1)
        recover(d, p)
        r["packed-chain-too-long"] = (p, ["guest-errors >= 1", "frames-out == 1"])

        d = VirtioDrv(kind, f, packed=True)
        p = d.up(Prog(), rx_bufs=0)
        t = d.rings[1]
        p.ram(0x80000, struct.pack("<QIHH", 0x81000, 32, 0, DESC_INDIRECT))
        p.ram(t.desc, struct.pack("<QIHH", 0x80000, 16, 0, PACKED_AVAIL | DESC_INDIRECT))
        d.kick(p, 1)
        recover(d, p)
        r["nested-indirect"] = (p, ["guest-errors >= 1", "frames-out == 1"])
    r.update(huge_chain_regressions(kind, f, packed, recover))
    return r


def huge_chain_regressions(kind, f, packed, recover):
    """Issue 21: 255 descriptors of 8 MiB over the same RAM are one 2 GiB
    frame; the net core drops it (a guest error) and the device goes on.
    The sink aborts if the frame ever reaches it. And a wire frame past the
    largest legal size never reaches the guest."""
    r = {}
    d = VirtioDrv(kind, f, packed)
    p = d.up(Prog(), rx_bufs=0)
    t = d.rings[1]
    p.ram(TXBUF, vnet_hdr(d.hdr_len) + udp_frame())
    if packed:
        p.desc_fill(QSIZE - 1, t.desc, TXBUF, 8 << 20, PACKED_AVAIL, packed=True)
        t.next, t.id = QSIZE - 1, 1
    else:
        p.desc_fill(255, 0x80000, TXBUF, 8 << 20)
        p.ram(t.desc, struct.pack("<QIHH", 0x80000, 255 * 16, DESC_INDIRECT, 0))
        p.ram(t.avail + 4, struct.pack("<H", 0)).ram(t.avail + 2, struct.pack("<H", 1))
        t.next, t.idx = 1, 1
    d.kick(p, 1)
    d.tx(p, udp_frame())
    r["tx-huge-chain"] = (p, ["guest-errors >= 1", "frames-out == 1"])

    d = VirtioDrv(kind, f, packed)
    p = d.up(Prog(), rx_bufs=4)
    p.big_frame(0x11001, udp_frame(MAC)).bh()      # 69633 bytes: one too many
    p.frame(udp_frame(MAC)).bh()
    d.tx(p, udp_frame())
    checks = ["frames-out == 1"]
    if not packed:      # one frame reached the guest: one used RX buffer
        checks.append("ram16 0x%x == 1" % (d.rings[0].used + 2))
    r["rx-oversize-frame"] = (p, checks)
    return r


# ---- stream (length-prefixed frames) and l2tpv3 (tests/fuzz/fuzz-*.c) ----
def stream_seeds():
    def seg(data):
        return struct.pack("<H", len(data)) + data

    def fr(data):
        return struct.pack(">I", len(data)) + data
    a, b, c = udp_frame(), arp_frame(), tcp_frame(n=1200)
    s = {}
    s["two-frames-one-segment"] = bytes([0]) + seg(fr(a) + fr(b))
    whole = fr(a) + fr(c) + fr(b)
    s["frames-cut-everywhere"] = bytes([0]) + seg(whole[:2]) + seg(whole[2:9]) + \
        seg(whole[9:700]) + seg(whole[700:])
    s["receiver-queues"] = bytes([1]) + b"".join(seg(fr(x)) for x in (a, b, c, a, b, c, a))
    s["disconnect-mid-frame"] = bytes([2]) + seg(fr(a) + fr(c)[:100])
    s["zero-length-frame"] = bytes([0]) + seg(fr(b"") + fr(a))
    s["oversized-length"] = bytes([2]) + seg(fr(a) + struct.pack(">I", 0x7fffffff) + a + fr(b))
    s["max-length"] = bytes([0]) + seg(struct.pack(">I", 4096 + 65536)) + seg(bytes(4000))
    return s


def l2tpv3_seeds():
    f = udp_frame()
    s = {}
    # flags: udp 1, ipv6 2, cookie 4, cookie64 8, counter 16, pin 32
    def params(flags, session=0x1234, cookie=0x1122334455667788, offset=0):
        return struct.pack("<BIQH", flags, session, cookie, offset)
    s["udp"] = params(1) + struct.pack(">II", 0x00030000, 0x1234) + f
    s["udp-cookie64-counter"] = params(1 | 4 | 8 | 16) + struct.pack(">IIQI", 0x00030000, 0x1234,
                                                                     0x1122334455667788, 9) + f
    s["ipv6-cookie32-offset"] = params(2 | 4, offset=8) + struct.pack(">II", 0x1234, 0x55667788) + \
        bytes(8) + f
    body = struct.pack(">I", 0x1234) + f
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 115, 0,
                     b"\x7f\0\0\1", b"\x7f\0\0\1")
    s["raw-ipv4"] = params(0) + ip + body
    s["udp-control-message"] = params(1) + struct.pack(">II", 0xc8030000, 0x1234) + f
    return s


# ---- several NICs on one machine (tests/fuzz/fuzz-multi.c) ----
# BAR selectors: 0 e1000 MMIO (0xe0000000), 1 e1000 I/O, 2 rtl8139 I/O,
# 3 rtl8139 MMIO (0xe0020000), 4 virtio MSI-X, 5 virtio modern (0xe0024000).
MULTI_RTL_MMIO, MULTI_VIRTIO_NOTIFY = 0xe0020000, 0xe0024000 + 0x3000


def multi_seeds():
    s = {}
    # e1000 receives a frame into a buffer that is virtio's TX notify
    # register: the DMA kicks virtio, whose frame crosses the hub back to
    # the e1000 while the e1000 is still inside its receive.
    d = VirtioDrv("modern", feat("VERSION_1", "MAC", "MRG_RXBUF"), bar=5, ring_base=0x800000)
    p = d.up(Prog(), rx_bufs=2)
    t = d.rings[1]
    h = vnet_hdr(d.hdr_len)
    fr = udp_frame(BCAST, MAC, 80)
    p.ram(TXBUF, h + fr)
    t.post(p, [(TXBUF, len(h) + len(fr), False)])
    e1k_up(p, rx_bufs=False)
    p.ram(E1K_RXRING, struct.pack("<QQ", MULTI_VIRTIO_NOTIFY + 4, 0))
    p.ram(E1K_RXRING + 16, struct.pack("<QQ", E1K_RXBUF, 0) + struct.pack("<QQ", E1K_RXBUF + 0x800, 0))
    p.frame(udp_frame(BCAST, PEER, 40)).bh().bh()
    e1k_rd(p, "ICR")
    s["e1000-rx-dma-kicks-virtio"] = p

    # rtl8139 C-mode RX ring on the e1000's registers, e1000 TX buffer on
    # the rtl8139's registers, and each NIC's frames reaching the others
    p = Prog()
    e1k_up(p)
    rtl_w(p, "CR", 1, RTL_CR_RST, bar=2)
    rtl_w(p, "RBSTART", 4, 0xe0000000 + E1K["TDT"], bar=2)
    rtl_w(p, "RCR", 4, RCR_AAP | RCR_AB, bar=2)
    rtl_w(p, "CR", 1, RTL_CR_RE | RTL_CR_TE, bar=2)
    e1k_tx(p, 0, udp_frame(), buf=MULTI_RTL_MMIO)
    e1k_tx(p, 1, udp_frame())
    p.bh()
    p.ram(RTL_TXBUF, udp_frame())
    rtl_w(p, "TSAD0", 4, RTL_TXBUF, bar=2)
    rtl_w(p, "TSD0", 4, 60, bar=2)
    p.frame(udp_frame(BCAST)).bh()
    s["cross-device-rings"] = p
    return s


# ---- dictionaries ----
def dict_entries(name, regs, extra):
    out = ['# %s: register offsets (LE u32) and magic values, by scripts/fuzz-seeds.py' % name]
    for k, v in sorted(regs.items(), key=lambda kv: kv[1]):
        out.append('reg_%s="%s"' % (k, "".join("\\x%02x" % b for b in struct.pack("<I", v))))
    for k, v in extra:
        out.append('%s="%s"' % (k, "".join("\\x%02x" % b for b in v)))
    return "\n".join(out) + "\n"


COMMON_MAGIC = [
    ("mac", MAC), ("bcast", BCAST), ("ethertype_ipv4", b"\x08\x00"),
    ("ethertype_vlan", b"\x81\x00"), ("ethertype_arp", b"\x08\x06"),
    ("reset_op", bytes([OP_RESET, 0x5a])), ("ram_rings", struct.pack("<I", 0x10000)),
    ("ram_bufs", struct.pack("<I", 0x100000)), ("mmio_bar", struct.pack("<I", 0xe0000000)),
    ("all_ones", b"\xff\xff\xff\xff"),
]


def state_op(patches=(), fix_crc=True, cut=None):
    """fuzz-device.c's op 0xff: save the state, xor the patches (offset,
    value) into it, fix the checksums or not, cut it to `cut` bytes, load."""
    flags = (1 if fix_crc else 0) | (4 if cut is not None else 0)
    out = bytes([0xff, len(patches), flags])
    for off, val in patches:
        out += struct.pack("<IB", off, val)
    if cut is not None:
        out += struct.pack("<I", cut)
    return out


def state_seeds(device_seeds):
    seeds = {}
    for name, prog in device_seeds.items():
        prog = bytes(prog)
        seeds[name + "-roundtrip"] = prog + state_op() + prog
        seeds[name + "-patched"] = prog + state_op([(40, 1), (97, 0x80), (160, 0xff)]) + prog
        seeds[name + "-cut"] = prog + state_op(cut=64) + prog
    return seeds


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    fz = os.path.join(src, "tests", "fuzz")
    corpora, regress, dicts = {}, {}, {}

    corpora["e1000"] = e1000_seeds()
    corpora["e1000-82545em"] = corpora["e1000"]
    regress["e1000"] = e1000_regressions()
    regress["e1000-82545em"] = regress["e1000"]
    corpora["rtl8139"] = rtl8139_seeds()
    regress["rtl8139"] = rtl8139_regressions()
    corpora["virtio-net-pci-legacy"] = virtio_seeds("legacy", 0)
    regress["virtio-net-pci-legacy"] = virtio_regressions("legacy", 0)
    corpora["virtio-net-pci-modern"] = virtio_seeds("modern", feat("VERSION_1"))
    regress["virtio-net-pci-modern"] = virtio_regressions("modern", feat("VERSION_1"))
    corpora["virtio-net-pci-packed-mq"] = virtio_seeds(
        "modern", feat("VERSION_1", "RING_PACKED"), packed=True, mq=True)
    regress["virtio-net-pci-packed-mq"] = virtio_regressions(
        "modern", feat("VERSION_1", "RING_PACKED"), packed=True)
    corpora["virtio-net-mmio"] = virtio_seeds("mmio", 0)
    regress["virtio-net-mmio"] = virtio_regressions("mmio", 0)

    e1k_extra = COMMON_MAGIC + [("ctrl_rst", struct.pack("<I", E1K_CTRL_RST)),
                                ("rctl_en", struct.pack("<I", E1K_RCTL_EN | E1K_RCTL_BAM)),
                                ("tctl_en", struct.pack("<I", E1K_TCTL_EN | E1K_TCTL_PSP)),
                                ("cmd_eop_rs", bytes([E1K_CMD_EOP | E1K_CMD_RS | E1K_CMD_IFCS])),
                                ("dext_tse", bytes([E1K_CMD_DEXT | 0x04]))]
    dicts["e1000"] = dict_entries("e1000", E1K, e1k_extra)
    dicts["e1000-82545em"] = dicts["e1000"]
    rtl_extra = COMMON_MAGIC + [("cr_rst", b"\x10"), ("cr_rete", b"\x0c"),
                                ("cpd_own_fs_ls", struct.pack("<I", CPD_OWN | CPD_FS | CPD_LS)),
                                ("cpd_eor", struct.pack("<I", CPD_EOR)),
                                ("tcr_loop", struct.pack("<I", 3 << 17)),
                                ("cfgwe", b"\xc0"), ("tppoll_npq", b"\x40")]
    dicts["rtl8139"] = dict_entries("rtl8139", RTL, rtl_extra)
    vq_extra = COMMON_MAGIC + [
        ("status_ok", bytes([S_ACK | S_DRIVER | S_DRIVER_OK | S_FEATURES_OK])),
        ("status_features_ok", bytes([S_ACK | S_DRIVER | S_FEATURES_OK])),
        ("version_1", struct.pack("<I", 1)), ("packed", struct.pack("<I", 1 << 2)),
        ("desc_next", struct.pack("<H", DESC_NEXT)), ("desc_write", struct.pack("<H", DESC_WRITE)),
        ("desc_indirect", struct.pack("<H", DESC_INDIRECT)),
        ("packed_avail", struct.pack("<H", PACKED_AVAIL)), ("packed_used", struct.pack("<H", PACKED_USED)),
        ("qsize", struct.pack("<H", QSIZE)), ("feat_lo", struct.pack("<I", 0xffffffff)),
        ("ctrl_mq", b"\x04\x00\x01\x00"), ("ctrl_promisc", b"\x00\x00\x01"),
    ]
    legacy_regs = dict(HOST_FEATURES=0, GUEST_FEATURES=4, QUEUE_PFN=8, QUEUE_NUM=12, QUEUE_SEL=14,
                       QUEUE_NOTIFY=16, STATUS=18, ISR=19, CONFIG=20)
    modern_regs = dict(DFSELECT=0, DF=4, GFSELECT=8, GF=12, MSIX_CONFIG=16, NUM_QUEUES=18,
                       STATUS=20, QUEUE_SELECT=22, QUEUE_SIZE=24, QUEUE_MSIX=26, QUEUE_ENABLE=28,
                       QUEUE_NOFF=30, QUEUE_DESC=32, QUEUE_DRIVER=40, QUEUE_DEVICE=48,
                       ISR=0x1000, DEVICE_CFG=0x2000, NOTIFY=0x3000)
    mmio_regs = dict(MAGIC=0, VERSION=4, DEVICE_ID=8, DEVICE_FEATURES=0x10, DEVICE_FEATURES_SEL=0x14,
                     DRIVER_FEATURES=0x20, DRIVER_FEATURES_SEL=0x24, GUEST_PAGE_SIZE=0x28,
                     QUEUE_SEL=0x30, QUEUE_NUM_MAX=0x34, QUEUE_NUM=0x38, QUEUE_ALIGN=0x3c,
                     QUEUE_PFN=0x40, QUEUE_READY=0x44, QUEUE_NOTIFY=0x50, INTERRUPT_STATUS=0x60,
                     INTERRUPT_ACK=0x64, STATUS=0x70, QUEUE_DESC_LOW=0x80, QUEUE_AVAIL_LOW=0x90,
                     QUEUE_USED_LOW=0xa0, CONFIG=0x100)
    dicts["virtio-net-pci-legacy"] = dict_entries("virtio-net-pci-legacy", legacy_regs, vq_extra)
    dicts["virtio-net-pci-modern"] = dict_entries("virtio-net-pci-modern", modern_regs, vq_extra)
    dicts["virtio-net-pci-packed-mq"] = dicts["virtio-net-pci-modern"]
    dicts["virtio-net-mmio"] = dict_entries("virtio-net-mmio", mmio_regs, vq_extra)

    # state-T (fuzz-device.c built with FUZZ_STATE): each seed of T, then op
    # 0xff (save, patch, load) as a clean round trip, with patches whose
    # checksums are fixed (so they reach the field checks), and cut short;
    # then the seed's program again, run on whatever state loaded.
    for t in ("virtio-net-pci-legacy", "virtio-net-pci-modern", "virtio-net-pci-packed-mq",
              "virtio-net-mmio", "e1000", "rtl8139"):
        corpora["state-" + t] = state_seeds(corpora[t])
        dicts["state-" + t] = dicts[t]

    corpora["multi"] = multi_seeds()
    dicts["multi"] = dicts["e1000"].rstrip("\n") + "\n" + "\n".join(
        l for l in (dicts["rtl8139"] + dicts["virtio-net-pci-modern"]).splitlines()
        if not l.startswith("#")) + "\n"
    corpora["stream"] = stream_seeds()
    corpora["l2tpv3"] = l2tpv3_seeds()
    st = corpora["stream"]
    regress["stream"] = {
        # a peer announcing 2 GiB is dropped after the frame before it
        "oversized-length": (st["oversized-length"], ["frames-out == 1"]),
        # frames refused by the receiver are queued, not lost or reordered
        "receiver-queues": (st["receiver-queues"], ["frames-out == 7"]),
        # a disconnect inside a frame delivers nothing of it
        "disconnect-mid-frame": (st["disconnect-mid-frame"], ["frames-out == 1"]),
        "frames-cut-everywhere": (st["frames-cut-everywhere"], ["frames-out == 3"]),
    }

    os.makedirs(os.path.join(fz, "dict"), exist_ok=True)
    for t, text in dicts.items():
        with open(os.path.join(fz, "dict", t + ".dict"), "w") as fh:
            fh.write(text)
    for t, seeds in corpora.items():
        d = os.path.join(fz, "corpus", t)
        os.makedirs(d, exist_ok=True)
        for name, prog in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as fh:
                fh.write(bytes(prog))
    for t, regs in regress.items():
        d = os.path.join(fz, "regressions", t)
        os.makedirs(d, exist_ok=True)
        for name, (prog, expect) in regs.items():
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(bytes(prog))
            if not expect:
                continue
            with open(os.path.join(d, name + ".expect"), "w") as fh:
                fh.write("# checked by tests/fuzz/replay.c after %s ran\n" % name)
                fh.write("\n".join(expect) + "\n")
    print("fuzz-seeds: wrote %d corpora, %d dictionaries, %d reproducers" %
          (sum(len(v) for v in corpora.values()), len(dicts),
           sum(len(v) for v in regress.values())))


if __name__ == "__main__":
    main()
