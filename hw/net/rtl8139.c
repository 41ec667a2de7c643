/*
 * The Realtek RTL8139C+ Fast Ethernet controller (PCI 10ec:8139 rev 0x20),
 * register-compatible with the model QEMU 7.2 exposes, so that Linux's
 * 8139too (C mode: four TX slots and an RX ring buffer) and 8139cp (C+ mode:
 * TX/RX descriptor rings with checksum offload, large send and VLAN) drive
 * it unchanged. BAR0 (256 bytes of I/O) and BAR1 (256 bytes of MMIO) show
 * the same registers. It also models the 93C46 EEPROM behind 9346CR that
 * drivers bit-bang to read the MAC, the MII registers mapped at 0x62..0x6a,
 * the TCTR/TimerInt timer on the virtual clock and TCR loopback. Everything
 * the guest hands over (descriptor contents, lengths, ring addresses) is
 * checked before use: bad input is a guest-error log line and the device
 * moves on; it never aborts and never loops without a bound.
 */
#include "qnic/common.h"
#include "qnic/clock.h"
#include "qnic/device.h"
#include "qnic/log.h"
#include "qnic/machine.h"
#include "qnic/mainloop.h"
#include "qnic/memory.h"
#include "qnic/net.h"
#include "qnic/opts.h"
#include "qnic/pci.h"
#include "qnic/state.h"
#include "hw/net/net-tx-pkt.h"
#include "hw/net/rtl8139-regs.h"

#include <linux/if_ether.h>
#include <linux/mii.h>
#include <netinet/in.h>
#include <stdio.h>

#define RTL_PCI_HZ          33000000ull   /* TCTR counts PCI clocks */
#define RTL_C_TX_MAX        RTL_TSD_SIZE_MASK
/* Longest frame C mode accepts from the wire: the driver's ring has only
 * 1.5 KiB + 16 bytes of slack past its end for WRAP=1. */
#define RTL_C_RX_MAX        1522
/* C+ TX assembles a frame from descriptors into this much (large send). */
#define RTL_CP_TX_MAX       65536
#define RTL_CP_RX_MAX       RTL_CPRX_LEN_MASK
#define RTL_RX_SCRATCH      (RTL_CP_TX_MAX + 64)
#define RTL_MIN_FRAME       60
#define RTL_HLTCLK_RESET    0x01          /* HLTCLK as QEMU 7.2 shows it */

typedef enum {
    EE_IDLE,        /* waiting for the start bit */
    EE_CMD,         /* shifting in opcode + address */
    EE_READ,        /* shifting out a word */
    EE_WRITE,       /* shifting in a data word */
    EE_DONE,        /* command complete, waiting for CS low */
} EepromState;

typedef struct Rtl8139Eeprom {
    uint16_t contents[RTL_EEPROM_WORDS];
    EepromState state;
    unsigned nbits;
    uint16_t shift;         /* bits shifted in */
    uint16_t out;           /* word being shifted out */
    unsigned out_bits;      /* bits of `out` still to send */
    uint8_t addr;
    bool write_all;
    bool write_enabled;
    bool cs, sk, di, dout;
} Rtl8139Eeprom;

typedef struct Rtl8139State {
    QnicPciDevice pci;
    QnicRegion io, mmio;
    QnicNic *nic;
    QnicTimer *timer;

    uint8_t idr[6];
    uint8_t mar[8];
    uint32_t tsd[4];
    uint32_t tsad[4];           /* also TNPDS (0,1) and THPDS (2,3) in C+ */
    uint32_t rbstart;
    uint16_t erbcr;
    uint8_t ersr;
    uint8_t cr;                 /* RE/TE as written */
    uint16_t capr;              /* as the guest wrote it (read ptr - 16) */
    uint16_t cbr;               /* where the next frame goes */
    uint16_t imr, isr;
    uint32_t tcr, rcr;
    int64_t tctr_base;
    uint32_t timer_int;
    uint32_t mpc;
    uint8_t cfg9346, config0, config1, config3, config4, config5, msr;
    uint16_t mulint;
    uint16_t bmcr, bmsr, anar, anlpar, aner, cscr;
    unsigned cur_tx;            /* next C-mode TX slot */

    uint16_t cpcr;
    uint16_t rx_max_size;
    uint8_t etthr;
    uint32_t rdsar[2];
    unsigned cp_tx_idx, cp_rx_idx;
    uint8_t *cp_tx_buf;         /* RTL_CP_TX_MAX + 4 (room for a VLAN tag) */
    size_t cp_tx_len;
    bool cp_tx_open;            /* a frame started with FS, not yet LS */
    bool cp_tx_bad;             /* the open frame is being discarded */
    uint32_t cp_tx_dw0, cp_tx_dw1;  /* first descriptor of the open frame */
    uint8_t *seg_buf;           /* one large-send segment */

    uint8_t *rx_buf;            /* RTL_RX_SCRATCH: flattened frame from the wire */
    uint8_t tx_buf[RTL_C_TX_MAX + 1];
    int loopback_depth;

    Rtl8139Eeprom eeprom;
} Rtl8139State;

static inline QnicDevice *rtl_dev(Rtl8139State *s) { return &s->pci.dev; }
static inline QnicNetClient *rtl_nc(Rtl8139State *s) { return s->nic ? s->nic->ncs[0] : NULL; }

static uint32_t rtl_rx_buf_size(const Rtl8139State *s)
{
    return 8192u << ((s->rcr & RTL_RCR_RBLEN_MASK) >> RTL_RCR_RBLEN_SHIFT);
}

static void rtl_update_irq(Rtl8139State *s)
{
    qnic_pci_set_irq(&s->pci, (s->isr & s->imr) != 0);
}

static void rtl_raise(Rtl8139State *s, uint16_t bits)
{
    s->isr |= bits;
    rtl_update_irq(s);
}

/* ---------------------------------------------------------------- CRCs */

/* IEEE 802.3 FCS (reflected CRC-32), appended to received frames. */
static uint32_t rtl_crc32(const uint8_t *p, size_t len)
{
    static uint32_t table[256];
    static bool ready;
    uint32_t crc = 0xffffffffu;

    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            }
            table[i] = c;
        }
        ready = true;
    }
    for (size_t i = 0; i < len; i++) {
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return crc ^ 0xffffffffu;
}

/* The multicast hash index: the top 6 bits of the big-endian (non-reflected)
 * CRC-32 of the destination address, as the datasheet's MAR filter uses. */
static unsigned rtl_mcast_hash(const uint8_t *mac)
{
    uint32_t crc = 0xffffffffu;

    for (int i = 0; i < 6; i++) {
        uint8_t b = mac[i];
        for (int bit = 0; bit < 8; bit++, b >>= 1) {
            uint32_t carry = ((crc >> 31) ^ b) & 1;
            crc <<= 1;
            if (carry) {
                crc ^= 0x04c11db7u;
            }
        }
    }
    return crc >> 26;
}

/* ---------------------------------------------------------------- timer */

static int64_t rtl_ticks_to_ns(uint64_t ticks)
{
    return (int64_t)((ticks * 1000000000ull + RTL_PCI_HZ - 1) / RTL_PCI_HZ);
}

static uint32_t rtl_tctr(const Rtl8139State *s)
{
    uint64_t delta = (uint64_t)(qnic_clock_ns() - s->tctr_base);
    /* split so long uptimes cannot overflow the product */
    return (uint32_t)((delta / 1000000000ull) * RTL_PCI_HZ +
                      (delta % 1000000000ull) * RTL_PCI_HZ / 1000000000ull);
}

/* TimerInt fires each time the 32-bit TCTR passes it, i.e. once per 2^32
 * ticks (~130 s) after the first match; 0 disables it. */
static void rtl_timer_rearm(Rtl8139State *s)
{
    int64_t now, period, t;

    if (!s->timer_int) {
        qnic_timer_del(s->timer);
        return;
    }
    now = qnic_clock_ns();
    period = rtl_ticks_to_ns(1ull << 32);
    t = s->tctr_base + rtl_ticks_to_ns(s->timer_int);
    if (t <= now) {
        t += ((now - t) / period + 1) * period;
    }
    qnic_timer_mod(s->timer, t);
}

static void rtl_timer_cb(void *opaque)
{
    Rtl8139State *s = opaque;

    qnic_device_enter(rtl_dev(s));
    rtl_raise(s, RTL_INT_TIMEOUT);
    rtl_timer_rearm(s);
    qnic_device_leave(rtl_dev(s));
}

/* ---------------------------------------------------------------- EEPROM */

static void rtl_eeprom_init(Rtl8139State *s, const uint8_t mac[6])
{
    Rtl8139Eeprom *e = &s->eeprom;

    memset(e->contents, 0, sizeof(e->contents));
    e->contents[0] = RTL_EEPROM_MAGIC;
    e->contents[1] = RTL8139_VENDOR_ID;
    e->contents[2] = RTL8139_DEVICE_ID;
    for (int i = 0; i < 3; i++) {
        e->contents[RTL_EEPROM_MAC_WORD + i] = mac[2 * i] | (mac[2 * i + 1] << 8);
    }
    e->state = EE_IDLE;
}

static void rtl_eeprom_command(Rtl8139Eeprom *e)
{
    unsigned op = (e->shift >> RTL_EEPROM_ADDR_BITS) & 3;

    e->addr = e->shift & (RTL_EEPROM_WORDS - 1);
    e->state = EE_DONE;
    switch (op) {
    case RTL_EEPROM_OP_READ:
        e->out = e->contents[e->addr];
        e->out_bits = 16;
        e->dout = 0;                    /* the dummy zero before D15 */
        e->state = EE_READ;
        break;
    case RTL_EEPROM_OP_WRITE:
        e->write_all = false;
        e->nbits = 0;
        e->shift = 0;
        e->state = EE_WRITE;
        break;
    case RTL_EEPROM_OP_ERASE:
        if (e->write_enabled) {
            e->contents[e->addr] = 0xffff;
        }
        e->dout = 1;                    /* ready */
        break;
    case RTL_EEPROM_OP_EXT:
        switch (e->addr >> 4) {
        case 3:                         /* EWEN */
            e->write_enabled = true;
            break;
        case 0:                         /* EWDS */
            e->write_enabled = false;
            break;
        case 2:                         /* ERAL */
            if (e->write_enabled) {
                memset(e->contents, 0xff, sizeof(e->contents));
            }
            break;
        case 1:                         /* WRAL */
            e->write_all = true;
            e->nbits = 0;
            e->shift = 0;
            e->state = EE_WRITE;
            break;
        }
        break;
    }
}

/* One write of the EECS/EESK/EEDI pins in programming mode. The chip
 * latches DI and shifts DO on the rising edge of SK while CS is high. */
static void rtl_eeprom_pins(Rtl8139State *s, bool cs, bool sk, bool di)
{
    Rtl8139Eeprom *e = &s->eeprom;
    bool rising = sk && !e->sk;

    if (!cs) {
        e->state = EE_IDLE;
        e->dout = 0;
        e->cs = e->sk = false;
        e->di = di;
        return;
    }
    if (!e->cs) {
        e->state = EE_IDLE;
    }
    e->cs = cs;
    e->sk = sk;
    e->di = di;
    if (!rising) {
        return;
    }
    switch (e->state) {
    case EE_IDLE:
        if (di) {                       /* start bit; leading zeros are ignored */
            e->state = EE_CMD;
            e->nbits = 0;
            e->shift = 0;
        }
        break;
    case EE_CMD:
        e->shift = (e->shift << 1) | di;
        if (++e->nbits == 2 + RTL_EEPROM_ADDR_BITS) {
            rtl_eeprom_command(e);
        }
        break;
    case EE_READ:
        if (e->out_bits) {
            e->out_bits--;
            e->dout = (e->out >> e->out_bits) & 1;
        } else {
            /* Past the word QEMU 7.2's model drives DO high; do the same so
             * drivers probing the address width see identical bits. */
            e->dout = 1;
        }
        break;
    case EE_WRITE:
        e->shift = (e->shift << 1) | di;
        if (++e->nbits == 16) {
            if (e->write_enabled) {
                if (e->write_all) {
                    for (int i = 0; i < RTL_EEPROM_WORDS; i++) {
                        e->contents[i] = e->shift;
                    }
                } else {
                    e->contents[e->addr] = e->shift;
                }
            }
            e->dout = 1;
            e->state = EE_DONE;
        }
        break;
    case EE_DONE:
        break;
    }
}

/* ---------------------------------------------------------------- reset */

static void rtl_soft_reset(Rtl8139State *s)
{
    /* The station address comes back from the EEPROM; MAR is kept. */
    for (int i = 0; i < 3; i++) {
        uint16_t w = s->eeprom.contents[RTL_EEPROM_MAC_WORD + i];
        s->idr[2 * i] = w & 0xff;
        s->idr[2 * i + 1] = w >> 8;
    }
    for (int i = 0; i < 4; i++) {
        s->tsd[i] = RTL_TSD_OWN;
        s->tsad[i] = 0;
    }
    s->cur_tx = 0;
    s->rbstart = 0;
    s->erbcr = 0;
    s->ersr = 0;
    s->cr = 0;
    s->capr = RTL_CAPR_RESET;
    s->cbr = 0;
    s->imr = 0;
    s->isr = 0;
    s->tcr = RTL_TCR_HWVER_8139CP;
    s->rcr = 0;
    s->tctr_base = qnic_clock_ns();
    s->timer_int = 0;
    qnic_timer_del(s->timer);
    s->mpc = 0;
    s->cfg9346 = 0;
    s->config0 = 0;
    s->config1 = RTL_CONFIG1_DVRLOAD | RTL_CONFIG1_LWACT;
    s->config3 = RTL_CONFIG3_FBTBEN;
    s->config4 = 0;
    s->config5 = 0;
    s->mulint = 0;
    s->bmcr = RTL_BMCR_RESET;
    s->anar = RTL_ANAR_RESET;
    s->anlpar = RTL_ANLPAR_RESET;
    s->aner = RTL_ANER_RESET;
    s->cscr = RTL_CSCR_RESET;
    {
        QnicNetClient *nc = rtl_nc(s);
        bool up = !nc || !nc->link_down;
        s->bmsr = up ? RTL_BMSR_RESET : (RTL_BMSR_RESET & ~BMSR_LSTATUS);
        s->msr = RTL_MSR_TXFCE | RTL_MSR_RXFCE | RTL_MSR_AUX_STATUS |
                 (up ? 0 : RTL_MSR_LINKB);
    }
    s->cpcr = 0;
    s->rx_max_size = 0;
    s->etthr = 0;
    s->rdsar[0] = s->rdsar[1] = 0;
    s->cp_tx_idx = s->cp_rx_idx = 0;
    s->cp_tx_len = 0;
    s->cp_tx_open = s->cp_tx_bad = false;
    s->eeprom.state = EE_IDLE;
    s->eeprom.cs = s->eeprom.sk = s->eeprom.di = s->eeprom.dout = false;
    rtl_update_irq(s);
}

static void rtl_reset(QnicDevice *dev)
{
    Rtl8139State *s = (Rtl8139State *)dev;

    qnic_pci_device_reset(&s->pci);
    memset(s->mar, 0, sizeof(s->mar));
    rtl_soft_reset(s);
}

/* ---------------------------------------------------------------- RX */

/* Which frames RCR lets in, and the status bits that say why. */
static bool rtl_rx_filter(Rtl8139State *s, const uint8_t *buf, size_t len,
                          bool *bcast, bool *mcast, bool *phys)
{
    bool promisc = s->rcr & RTL_RCR_AAP;

    *bcast = *mcast = *phys = false;
    if (len < QNIC_ETH_HLEN) {
        return false;
    }
    if (qnic_eth_is_broadcast(buf)) {
        *bcast = true;
        return promisc || (s->rcr & RTL_RCR_AB);
    }
    if (qnic_eth_is_multicast(buf)) {
        unsigned h = rtl_mcast_hash(buf);
        *mcast = true;
        return promisc || ((s->rcr & RTL_RCR_AM) && (s->mar[h >> 3] & (1u << (h & 7))));
    }
    if (!memcmp(buf, s->idr, 6)) {
        *phys = true;
        return promisc || (s->rcr & RTL_RCR_APM);
    }
    return promisc;
}

/* Write into the C-mode ring at offset off: linearly past the end when
 * WRAP=1 (the driver allocated the slack; not in 64K mode, which has none),
 * otherwise split back to the start. */
static bool rtl_ring_write(Rtl8139State *s, uint32_t off, const void *data, size_t n)
{
    uint32_t size = rtl_rx_buf_size(s);
    bool linear = (s->rcr & RTL_RCR_WRAP) && size < 65536;

    /* Linear mode: the CRC or even the whole frame of a packet whose header
     * sits just before the end goes into the slack past it, not to the
     * start (off may be >= size here: do not reduce it). */
    if (linear) {
        return qnic_dma_write(rtl_dev(s), (uint64_t)s->rbstart + off, data, n);
    }
    off %= size;
    if (off + n <= size) {
        return qnic_dma_write(rtl_dev(s), (uint64_t)s->rbstart + off, data, n);
    }
    {
        size_t first = size - off;
        return qnic_dma_write(rtl_dev(s), (uint64_t)s->rbstart + off, data, first) &&
               qnic_dma_write(rtl_dev(s), s->rbstart, (const uint8_t *)data + first,
                              n - first);
    }
}

static uint32_t rtl_rx_used(const Rtl8139State *s)
{
    uint32_t size = rtl_rx_buf_size(s);
    uint32_t rd = ((uint32_t)s->capr + 16) & 0xffff;

    return (s->cbr + size - (rd % size)) % size;
}

static bool rtl_rx_fits(const Rtl8139State *s, size_t frame_len)
{
    /* header + frame + CRC + alignment, and never fill the ring completely:
     * a full ring would look empty (CBR == CAPR + 16). */
    return rtl_rx_used(s) + 4 + frame_len + 4 + 3 < rtl_rx_buf_size(s);
}

/* C mode. Returns len when consumed (or dropped), 0 when the ring has no
 * room and the frame may wait (from the wire, with backpressure). */
static ssize_t rtl_rx_c(Rtl8139State *s, const uint8_t *buf, size_t len,
                        uint16_t status, bool may_wait)
{
    uint32_t size = rtl_rx_buf_size(s);
    uint8_t hdr[4], crc[4];
    uint32_t off = s->cbr % size;

    if (len > RTL_C_RX_MAX) {
        s->mpc++;
        return len;
    }
    if (!rtl_rx_fits(s, len)) {
        if (may_wait) {
            return 0;
        }
        s->mpc++;
        rtl_raise(s, RTL_INT_RXOVW);
        return len;
    }
    qnic_st16(hdr, status | RTL_RXS_ROK);
    qnic_st16(hdr + 2, (uint16_t)(len + 4));
    qnic_st32(crc, rtl_crc32(buf, len));
    if (!rtl_ring_write(s, off, hdr, 4) ||
        !rtl_ring_write(s, off + 4, buf, len) ||
        !rtl_ring_write(s, off + 4 + len, crc, 4)) {
        /* refused by the DMA layer (logged there): the frame is lost */
        s->mpc++;
        rtl_raise(s, RTL_INT_RER);
        return len;
    }
    s->cbr = (uint16_t)((QNIC_ALIGN_UP(off + 4 + len + 4, 4u)) % size);
    rtl_raise(s, RTL_INT_ROK);
    return len;
}

/* What C+ RX reports about an IPv4 frame: protocol ID and checksum faults
 * (only when RxChkSum is on). */
static uint32_t rtl_cp_rx_csum_bits(Rtl8139State *s, const uint8_t *buf, size_t len)
{
    QnicPktInfo pi;
    uint32_t bits = 0;

    if (!(s->cpcr & RTL_CPCR_RXCHKSUM) || !qnic_pkt_parse(buf, len, &pi) || !pi.is_ipv4) {
        return 0;
    }
    if (qnic_csum_fold(qnic_csum_add(0, buf + pi.l2_len, pi.l3_hdr_len)) != 0) {
        bits |= RTL_CPRX_IPF;
    }
    if (pi.l4_hdr_len && !pi.is_fragment &&
        (pi.l4_proto == IPPROTO_TCP || pi.l4_proto == IPPROTO_UDP)) {
        const uint8_t *ip = buf + pi.l2_len;
        size_t l4len = qnic_ld16be(ip + 2);
        uint32_t sum;
        uint8_t ph[4] = { 0, pi.l4_proto, 0, 0 };
        bool bad;

        l4len = (l4len >= pi.l3_hdr_len && pi.l2_len + l4len <= len)
                ? l4len - pi.l3_hdr_len : len - pi.l4_off;
        qnic_st16be(ph + 2, (uint16_t)l4len);
        sum = qnic_csum_add(0, ip + 12, 8);
        sum = qnic_csum_add(sum, ph, 4);
        sum = qnic_csum_add(sum, buf + pi.l4_off, l4len);
        bad = qnic_csum_fold(sum) != 0;
        if (pi.l4_proto == IPPROTO_UDP && qnic_ld16be(buf + pi.l4_off + 6) == 0) {
            bad = false;                /* UDP without checksum */
        }
        if (pi.l4_proto == IPPROTO_TCP) {
            bits |= RTL_CPRX_PID_TCP << RTL_CPRX_PID_SHIFT;
            bits |= bad ? RTL_CPRX_TCPF : 0;
        } else {
            bits |= RTL_CPRX_PID_UDP << RTL_CPRX_PID_SHIFT;
            bits |= bad ? RTL_CPRX_UDPF : 0;
        }
    } else {
        bits |= RTL_CPRX_PID_IP << RTL_CPRX_PID_SHIFT;
    }
    return bits;
}

static void rtl_cp_rx_advance(Rtl8139State *s, uint32_t dw0)
{
    s->cp_rx_idx = (dw0 & RTL_CPD_EOR) ? 0 : (s->cp_rx_idx + 1) % RTL_CP_RING_MAX;
}

/* C+ mode: one frame into the descriptor at cp_rx_idx. buf may be modified
 * (VLAN strip) and must have len bytes. No descriptor: dropped and counted
 * (RxOverflow) as the hardware does; backpressure would need a doorbell
 * the 8139C+ does not have for RX. */
static ssize_t rtl_rx_cp(Rtl8139State *s, uint8_t *buf, size_t len,
                         bool bcast, bool mcast, bool phys)
{
    uint64_t ring = ((uint64_t)s->rdsar[1] << 32) | s->rdsar[0];
    uint64_t daddr = ring + (uint64_t)s->cp_rx_idx * RTL_CP_DESC_SIZE;
    uint8_t desc[RTL_CP_DESC_SIZE], crc[4];
    uint32_t dw0, dw1 = 0, bufsize;
    uint64_t baddr;
    size_t orig = len;
    uint16_t tci;

    if (!qnic_dma_read(rtl_dev(s), daddr, desc, sizeof(desc))) {
        s->mpc++;
        rtl_raise(s, RTL_INT_RER);
        return orig;
    }
    dw0 = qnic_ld32(desc + RTL_CPD_DW0);
    if (!(dw0 & RTL_CPD_OWN)) {
        s->mpc++;
        rtl_raise(s, RTL_INT_RXOVW);
        return orig;
    }
    bufsize = dw0 & RTL_CPRX_LEN_MASK;
    baddr = qnic_ld32(desc + RTL_CPD_BUF_LO) | ((uint64_t)qnic_ld32(desc + RTL_CPD_BUF_HI) << 32);

    if ((s->cpcr & RTL_CPCR_RXVLAN) && len >= QNIC_ETH_HLEN + QNIC_VLAN_HLEN) {
        size_t n = qnic_pkt_vlan_strip(buf, len, ETH_P_8021Q, &tci);
        if (n != len) {
            len = n;
            dw1 = RTL_CPRX_TAVA | GUINT16_SWAP_LE_BE(tci);
        }
    }
    if (len + ETH_FCS_LEN > bufsize || len + ETH_FCS_LEN > RTL_CP_RX_MAX) {
        /* one frame, one descriptor: too small a buffer loses the frame */
        s->mpc++;
        rtl_raise(s, RTL_INT_RXOVW);
        return orig;
    }
    qnic_st32(crc, rtl_crc32(buf, len));
    if (!qnic_dma_write(rtl_dev(s), baddr, buf, len) ||
        !qnic_dma_write(rtl_dev(s), baddr + len, crc, ETH_FCS_LEN)) {
        s->mpc++;
        rtl_raise(s, RTL_INT_RER);
        rtl_cp_rx_advance(s, dw0);
        return orig;
    }
    {
        uint32_t st = (dw0 & RTL_CPD_EOR) | RTL_CPD_FS | RTL_CPD_LS | (uint32_t)(len + ETH_FCS_LEN);
        st |= bcast ? RTL_CPRX_BAR : 0;
        st |= mcast ? RTL_CPRX_MAR : 0;
        st |= phys ? RTL_CPRX_PAM : 0;
        st |= rtl_cp_rx_csum_bits(s, buf, len);
        qnic_st32(desc, st);
        qnic_st32(desc + RTL_CPD_DW1, dw1);
        if (!qnic_dma_write(rtl_dev(s), daddr, desc, 8)) {    /* dw0 and dw1 */
            rtl_raise(s, RTL_INT_RER);
        }
    }
    rtl_cp_rx_advance(s, dw0);
    rtl_raise(s, RTL_INT_ROK);
    return orig;
}

/* A frame for this NIC, from the wire or looped back. buf has room for at
 * least RTL_MIN_FRAME bytes (short frames are padded as on the wire). */
static ssize_t rtl_rx_frame(Rtl8139State *s, uint8_t *buf, size_t len, bool may_wait)
{
    bool bcast, mcast, phys;
    size_t orig = len;
    uint16_t status = 0;

    if (!(s->cr & RTL_CR_RE)) {
        return orig;
    }
    if (!rtl_rx_filter(s, buf, len, &bcast, &mcast, &phys)) {
        return orig;
    }
    if (len < RTL_MIN_FRAME) {
        memset(buf + len, 0, RTL_MIN_FRAME - len);
        len = RTL_MIN_FRAME;
    }
    if (s->cpcr & RTL_CPCR_RXENB) {
        rtl_rx_cp(s, buf, len, bcast, mcast, phys);
        return orig;
    }
    status |= bcast ? RTL_RXS_BAR : 0;
    status |= mcast ? RTL_RXS_MAR : 0;
    status |= phys ? RTL_RXS_PAM : 0;
    return rtl_rx_c(s, buf, len, status, may_wait) ? (ssize_t)orig : 0;
}

/* Room for a full frame now (or the frame would be dropped anyway)? */
static bool rtl_can_receive(QnicNetClient *nc)
{
    Rtl8139State *s = nc->opaque;

    if (!(s->cr & RTL_CR_RE) || (s->cpcr & RTL_CPCR_RXENB)) {
        return true;                    /* dropped or C+ (see rtl_rx_cp) */
    }
    return rtl_rx_fits(s, RTL_C_RX_MAX);
}

static ssize_t rtl_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    Rtl8139State *s = nc->opaque;
    size_t len = qnic_iov_size(iov, iovcnt);
    ssize_t ret;

    if (len > RTL_RX_SCRATCH - RTL_MIN_FRAME) {
        return len;                     /* nothing this NIC could take */
    }
    qnic_device_enter(rtl_dev(s));
    qnic_iov_to_buf(iov, iovcnt, 0, s->rx_buf, len);
    ret = rtl_rx_frame(s, s->rx_buf, len, true);
    qnic_device_leave(rtl_dev(s));
    return ret;
}

static void rtl_link_changed(QnicNetClient *nc)
{
    Rtl8139State *s = nc->opaque;

    if (nc->link_down) {
        s->bmsr &= ~BMSR_LSTATUS;
        s->msr |= RTL_MSR_LINKB;
    } else {
        s->bmsr |= BMSR_LSTATUS;
        s->msr &= ~RTL_MSR_LINKB;
    }
    rtl_raise(s, RTL_INT_PUN);
}

static void rtl_flush_rx(Rtl8139State *s)
{
    QnicNetClient *nc = rtl_nc(s);

    if (nc && rtl_can_receive(nc)) {
        qnic_net_flush_queued(nc);
    }
}

/* ---------------------------------------------------------------- TX */

/* To the wire, or back into our own RX in loopback mode. Loopback never
 * transmits, so it cannot recurse; the depth guard keeps it that way. */
static void rtl_tx_frame(Rtl8139State *s, const uint8_t *buf, size_t len)
{
    if ((s->tcr & RTL_TCR_LBK_MASK) == RTL_TCR_LBK_LOOP) {
        uint8_t *copy;

        if (s->loopback_depth > 0) {
            qnic_guest_error("rtl8139: nested loopback frame dropped");
            return;
        }
        if (len > RTL_RX_SCRATCH - RTL_MIN_FRAME) {
            return;
        }
        copy = g_malloc(MAX(len, (size_t)RTL_MIN_FRAME));
        memcpy(copy, buf, len);
        s->loopback_depth++;
        rtl_rx_frame(s, copy, len, false);
        s->loopback_depth--;
        g_free(copy);
        return;
    }
    if (rtl_nc(s)) {
        qnic_net_send(rtl_nc(s), buf, len);
    }
}

/* C mode: send every ready slot starting at cur_tx, in order. */
static void rtl_tx_c(Rtl8139State *s)
{
    for (int n = 0; n < 4; n++) {
        unsigned d = s->cur_tx;
        uint32_t size;

        if (!(s->cr & RTL_CR_TE) || (s->tsd[d] & RTL_TSD_OWN)) {
            break;
        }
        size = s->tsd[d] & RTL_TSD_SIZE_MASK;
        if (size == 0) {
            qnic_guest_error("rtl8139: TX slot %u with zero length", d);
        } else if (qnic_dma_read(rtl_dev(s), s->tsad[d], s->tx_buf, size)) {
            rtl_tx_frame(s, s->tx_buf, size);
        } else {
            s->tsd[d] |= RTL_TSD_OWN | RTL_TSD_TABT;
            s->cur_tx = (d + 1) & 3;
            rtl_raise(s, RTL_INT_TER);
            continue;
        }
        s->tsd[d] &= ~(RTL_TSD_TUN | RTL_TSD_TABT);
        s->tsd[d] |= RTL_TSD_OWN | RTL_TSD_TOK;
        s->cur_tx = (d + 1) & 3;
        rtl_raise(s, RTL_INT_TOK);
    }
}

typedef struct {
    Rtl8139State *s;
    uint8_t *seg;
} RtlSegCtx;

static void rtl_tso_seg(void *opaque, const struct iovec *iov, int iovcnt)
{
    RtlSegCtx *c = opaque;
    size_t n = qnic_iov_size(iov, iovcnt);

    if (n > RTL_CP_TX_MAX) {
        return;
    }
    qnic_iov_to_buf(iov, iovcnt, 0, c->seg, n);
    rtl_tx_frame(c->s, c->seg, n);
}

/* The frame assembled in cp_tx_buf is complete: apply the offloads of its
 * first descriptor (dw0/dw1) and send it. */
static void rtl_cp_tx_finish(Rtl8139State *s, uint32_t dw0, uint32_t dw1)
{
    uint8_t *f = s->cp_tx_buf;
    size_t len = s->cp_tx_len;
    bool tag = dw1 & RTL_CPTX_TAGC;
    uint16_t tci = GUINT16_SWAP_LE_BE(dw1 & 0xffff);

    if (dw0 & RTL_CPTX_LGSEN) {
        QnicPktTso p = {
            .mss = (dw0 >> RTL_CPTX_MSS_SHIFT) & RTL_CPTX_MSS_MASK,
            .flags = QNIC_PKT_CSUM_IP | QNIC_PKT_CSUM_L4,
            .insert_vlan = tag, .vlan_tpid = ETH_P_8021Q, .vlan_tci = tci,
        };
        RtlSegCtx c = { .s = s, .seg = s->seg_buf };
        QnicPktInfo pi;
        int r = -1;

        if (p.mss == 0) {
            qnic_guest_error("rtl8139: C+ large send with MSS 0, frame dropped");
        } else if (!qnic_pkt_parse(f, len, &pi) || !pi.is_ipv4 || pi.l4_proto != IPPROTO_TCP) {
            qnic_guest_error("rtl8139: C+ large send of a frame that is not TCP/IPv4, dropped");
        } else {
            r = qnic_pkt_tso(f, len, &p, rtl_tso_seg, &c);
            if (r < 0) {
                qnic_guest_error("rtl8139: C+ large send could not segment the frame, dropped");
            }
        }
        return;
    }
    if (dw0 & (RTL_CPTX_IPCS | RTL_CPTX_TCPCS | RTL_CPTX_UDPCS)) {
        QnicPktInfo pi;
        unsigned flags = 0;

        if (qnic_pkt_parse(f, len, &pi) && pi.is_ipv4) {
            flags |= (dw0 & RTL_CPTX_IPCS) ? QNIC_PKT_CSUM_IP : 0;
            if (((dw0 & RTL_CPTX_TCPCS) && pi.l4_proto == IPPROTO_TCP) ||
                ((dw0 & RTL_CPTX_UDPCS) && pi.l4_proto == IPPROTO_UDP)) {
                flags |= QNIC_PKT_CSUM_L4;
            }
        }
        if (flags && !qnic_pkt_fill_csum(f, len, flags)) {
            qnic_guest_error("rtl8139: C+ checksum offload on a malformed frame");
        }
    }
    if (tag) {
        size_t n = qnic_pkt_vlan_insert(f, len, RTL_CP_TX_MAX + 8, ETH_P_8021Q, tci);
        if (n) {
            len = n;
        }
    }
    rtl_tx_frame(s, f, len);
}

/* C+ mode normal-priority ring: process descriptors the guest owns, at most
 * one ring's worth per poll (a ring without EOR wraps after 64). */
/* One C+ TX descriptor the guest owns: open a frame on FS, gather the
 * buffer into it, send it on LS. Returns true when a frame went out. */
static bool rtl_cp_tx_desc(Rtl8139State *s, uint32_t dw0, uint32_t dw1, uint64_t baddr)
{
    uint32_t len = dw0 & RTL_CPTX_LEN_MASK;
    bool sent = false;

    if (dw0 & RTL_CPD_FS) {
        if (s->cp_tx_open) {
            qnic_guest_error("rtl8139: C+ TX descriptor %u starts a frame while one is open",
                             s->cp_tx_idx);
        }
        s->cp_tx_open = true;
        s->cp_tx_bad = false;
        s->cp_tx_len = 0;
        s->cp_tx_dw0 = dw0;
        s->cp_tx_dw1 = dw1;
    } else if (!s->cp_tx_open) {
        qnic_guest_error("rtl8139: C+ TX descriptor %u continues no frame (no FS)",
                         s->cp_tx_idx);
        s->cp_tx_open = true;
        s->cp_tx_bad = true;
        s->cp_tx_len = 0;
    }
    if (len == 0) {
        qnic_guest_error("rtl8139: C+ TX descriptor %u with zero length", s->cp_tx_idx);
    } else if (!s->cp_tx_bad && s->cp_tx_len + len > RTL_CP_TX_MAX) {
        qnic_guest_error("rtl8139: C+ TX frame longer than %u bytes dropped", RTL_CP_TX_MAX);
        s->cp_tx_bad = true;
    } else if (!s->cp_tx_bad) {
        if (qnic_dma_read(rtl_dev(s), baddr, s->cp_tx_buf + s->cp_tx_len, len)) {
            s->cp_tx_len += len;
        } else {
            s->cp_tx_bad = true;
        }
    }
    if (dw0 & RTL_CPD_LS) {
        if (!s->cp_tx_bad && s->cp_tx_len) {
            rtl_cp_tx_finish(s, s->cp_tx_dw0, s->cp_tx_dw1);
            sent = true;
        } else if (s->cp_tx_bad) {
            rtl_raise(s, RTL_INT_TER);
        }
        s->cp_tx_open = false;
        s->cp_tx_bad = false;
        s->cp_tx_len = 0;
    }
    return sent;
}

/* TPPoll NPQ: walk the normal-priority ring while the guest owns
 * descriptors, at most one ring's worth per poll. */
static void rtl_tx_cp(Rtl8139State *s)
{
    uint64_t ring = ((uint64_t)s->tsad[1] << 32) | s->tsad[0];
    bool sent = false, any = false;

    if (!(s->cr & RTL_CR_TE) || !(s->cpcr & RTL_CPCR_TXENB)) {
        return;
    }
    for (int n = 0; n < RTL_CP_RING_MAX; n++) {
        uint64_t daddr = ring + (uint64_t)s->cp_tx_idx * RTL_CP_DESC_SIZE;
        uint8_t desc[RTL_CP_DESC_SIZE];
        uint32_t dw0;

        if (!qnic_dma_read(rtl_dev(s), daddr, desc, sizeof(desc))) {
            rtl_raise(s, RTL_INT_TER);
            return;
        }
        dw0 = qnic_ld32(desc + RTL_CPD_DW0);
        if (!(dw0 & RTL_CPD_OWN)) {
            break;
        }
        any = true;
        if (rtl_cp_tx_desc(s, dw0, qnic_ld32(desc + RTL_CPD_DW1),
                           qnic_ld32(desc + RTL_CPD_BUF_LO) |
                           ((uint64_t)qnic_ld32(desc + RTL_CPD_BUF_HI) << 32))) {
            sent = true;
        }
        /* Give the descriptor back: OWN clear, the rest as it was. */
        qnic_st32(desc + RTL_CPD_DW0, dw0 & ~RTL_CPD_OWN);
        if (!qnic_dma_write(rtl_dev(s), daddr + RTL_CPD_DW0, desc + RTL_CPD_DW0, 4)) {
            rtl_raise(s, RTL_INT_TER);
            return;
        }
        s->cp_tx_idx = (dw0 & RTL_CPD_EOR) ? 0 : (s->cp_tx_idx + 1) % RTL_CP_RING_MAX;
    }
    if (sent) {
        rtl_raise(s, RTL_INT_TOK);
    }
    if (any) {
        rtl_raise(s, RTL_INT_TDU);
    }
}

/* ---------------------------------------------------------------- registers */

/* The register holding byte addr: its first byte and width. */
static unsigned rtl_reg_width(uint32_t addr, uint32_t *base)
{
    unsigned w = 1;

    if (addr >= RTL_TSD0 && addr < RTL_ERBCR) {
        w = 4;
    } else if (addr == RTL_ERBCR || addr == RTL_ERBCR + 1) {
        w = 2;
    } else if (addr >= RTL_CAPR && addr < RTL_TCR) {
        w = 2;
    } else if (addr >= RTL_TCR && addr < RTL_9346CR) {
        w = 4;
    } else if (addr >= RTL_TIMERINT && addr < RTL_MSR) {
        w = 4;
    } else if (addr == RTL_MULINT || addr == RTL_MULINT + 1) {
        w = 2;
    } else if (addr >= RTL_TSAD && addr < RTL_PHY1_PARM) {
        w = 2;
    } else if (addr >= RTL_PHY1_PARM && addr < RTL_PHY2_PARM + 4) {
        w = 4;
    } else if (addr == RTL_RXMAXSIZE || addr == RTL_RXMAXSIZE + 1 ||
               addr == RTL_CPCR || addr == RTL_CPCR + 1) {
        w = 2;
    } else if (addr >= RTL_RDSAR_LO && addr < RTL_ETTHR) {
        w = 4;
    }
    *base = addr & ~(w - 1);
    return w;
}

static uint16_t rtl_tsad_summary(const Rtl8139State *s)
{
    uint16_t v = 0;

    for (int i = 0; i < 4; i++) {
        v |= (s->tsd[i] & RTL_TSD_OWN) ? 1u << (RTL_TSAD_OWN_SHIFT + i) : 0;
        v |= (s->tsd[i] & RTL_TSD_TABT) ? 1u << (RTL_TSAD_TABT_SHIFT + i) : 0;
        v |= (s->tsd[i] & RTL_TSD_TUN) ? 1u << (RTL_TSAD_TUN_SHIFT + i) : 0;
        v |= (s->tsd[i] & RTL_TSD_TOK) ? 1u << (RTL_TSAD_TOK_SHIFT + i) : 0;
    }
    return v;
}

static uint8_t rtl_cr_read(const Rtl8139State *s)
{
    uint8_t v = s->cr & (RTL_CR_RE | RTL_CR_TE);

    if (rtl_rx_used(s) == 0) {
        v |= RTL_CR_BUFE;
    }
    return v;
}

/* 9346CR: the mode, and in program mode the EEPROM pins. */
static uint8_t rtl_9346_read(const Rtl8139State *s)
{
    uint8_t v = s->cfg9346 & RTL_9346_EEM_MASK;

    if (v == RTL_9346_EEM_PROGRAM) {
        v |= s->eeprom.cs ? RTL_9346_EECS : 0;
        v |= s->eeprom.sk ? RTL_9346_EESK : 0;
        v |= s->eeprom.di ? RTL_9346_EEDI : 0;
        v |= s->eeprom.dout ? RTL_9346_EEDO : 0;
    }
    return v;
}

static uint8_t rtl_read8(Rtl8139State *s, uint32_t base)
{
    switch (base) {
    case RTL_IDR0 ... RTL_IDR0 + 5:
        return s->idr[base - RTL_IDR0];
    case RTL_MAR0 ... RTL_MAR0 + 7:
        return s->mar[base - RTL_MAR0];
    case RTL_ERSR:
        return s->ersr;
    case RTL_CR:
        return rtl_cr_read(s);
    case RTL_9346CR:
        return rtl_9346_read(s);
    case RTL_CONFIG0:
        return s->config0;
    case RTL_CONFIG1:
        return s->config1;
    case RTL_MSR:
        return s->msr;
    case RTL_CONFIG3:
        return s->config3;
    case RTL_CONFIG4:
        return s->config4;
    case RTL_HLTCLK:
        return RTL_HLTCLK_RESET;
    case RTL_RERID:
        return RTL8139_REVISION;
    case RTL_CONFIG5:
        return s->config5;
    case RTL_TPPOLL:
        return 0;
    case RTL_ETTHR:
        return s->etthr;
    default:
        return 0;
    }
}

static uint16_t rtl_read16(Rtl8139State *s, uint32_t base)
{
    switch (base) {
    case RTL_ERBCR:   return s->erbcr;
    case RTL_CAPR:    return s->capr;
    case RTL_CBR:     return s->cbr;
    case RTL_IMR:     return s->imr;
    case RTL_ISR:     return s->isr;
    case RTL_MULINT:  return s->mulint;
    case RTL_TSAD:    return rtl_tsad_summary(s);
    case RTL_BMCR:    return s->bmcr;
    case RTL_BMSR:    return s->bmsr;
    case RTL_ANAR:    return s->anar;
    case RTL_ANLPAR:  return s->anlpar;
    case RTL_ANER:    return s->aner;
    case RTL_CSCR:    return s->cscr;
    case RTL_RXMAXSIZE: return s->rx_max_size;
    case RTL_CPCR:    return s->cpcr;
    default:          return 0;
    }
}

static uint32_t rtl_read32(Rtl8139State *s, uint32_t base)
{
    switch (base) {
    case RTL_TSD0: case RTL_TSD0 + 4: case RTL_TSD0 + 8: case RTL_TSD0 + 12:
        return s->tsd[(base - RTL_TSD0) / 4];
    case RTL_TSAD0: case RTL_TSAD0 + 4: case RTL_TSAD0 + 8: case RTL_TSAD0 + 12:
        return s->tsad[(base - RTL_TSAD0) / 4];
    case RTL_RBSTART:   return s->rbstart;
    case RTL_TCR:       return s->tcr;
    case RTL_RCR:       return s->rcr;
    case RTL_TCTR:      return rtl_tctr(s);
    case RTL_MPC:       return s->mpc;
    case RTL_TIMERINT:  return s->timer_int;
    case RTL_RDSAR_LO:  return s->rdsar[0];
    case RTL_RDSAR_HI:  return s->rdsar[1];
    default:            return 0;
    }
}

/* Read one register at its natural base and width (no side effects). */
static uint32_t rtl_reg_read(Rtl8139State *s, uint32_t base, unsigned w)
{
    if (w == 1) {
        return rtl_read8(s, base);
    }
    if (w == 2) {
        return rtl_read16(s, base);
    }
    return rtl_read32(s, base);
}

static bool rtl_config_writable(const Rtl8139State *s)
{
    return (s->cfg9346 & RTL_9346_EEM_MASK) == RTL_9346_EEM_CFGWE;
}

static void rtl_cr_write(Rtl8139State *s, uint8_t val)
{
    uint8_t old = s->cr;

    if (val & RTL_CR_RST) {
        rtl_soft_reset(s);
        return;
    }
    s->cr = val & (RTL_CR_RE | RTL_CR_TE);
    /* C+ rings restart at their first descriptor when the engine starts */
    if ((s->cr & RTL_CR_RE) && !(old & RTL_CR_RE)) {
        s->cp_rx_idx = 0;
    }
    if ((s->cr & RTL_CR_TE) && !(old & RTL_CR_TE)) {
        s->cp_tx_idx = 0;
        s->cp_tx_open = false;
        s->cp_tx_len = 0;
    }
    if (s->cr & RTL_CR_TE) {
        rtl_tx_c(s);
    }
    rtl_flush_rx(s);
}

static void rtl_9346_write(Rtl8139State *s, uint8_t val)
{
    uint8_t mode = val & RTL_9346_EEM_MASK;

    if (mode == RTL_9346_EEM_AUTOLOAD) {
        /* auto-load: reload from the EEPROM (a soft reset), back to normal */
        rtl_soft_reset(s);
        return;
    }
    s->cfg9346 = mode;
    if (mode == RTL_9346_EEM_PROGRAM) {
        rtl_eeprom_pins(s, val & RTL_9346_EECS, val & RTL_9346_EESK, val & RTL_9346_EEDI);
    } else {
        rtl_eeprom_pins(s, false, false, false);
    }
}

static void rtl_idr_write(Rtl8139State *s, uint32_t base, uint8_t val)
{
    if (!rtl_config_writable(s)) {
        qnic_guest_error("rtl8139: IDR%u write outside config-write mode ignored",
                         base - RTL_IDR0);
        return;
    }
    s->idr[base - RTL_IDR0] = val;
}

/* CONFIG0/1/3/4/5: writable only with 9346CR in config-write mode. */
static void rtl_config_write(Rtl8139State *s, uint32_t base, uint8_t val)
{
    if (!rtl_config_writable(s)) {
        qnic_guest_error("rtl8139: CONFIG write at 0x%x while locked", base);
        return;
    }
    switch (base) {
    case RTL_CONFIG0:
        s->config0 = (s->config0 & ~RTL_CONFIG0_BS_MASK) | (val & RTL_CONFIG0_BS_MASK);
        break;
    case RTL_CONFIG1:
        s->config1 = val;
        break;
    case RTL_CONFIG3:
        s->config3 = (s->config3 & RTL_CONFIG3_FBTBEN) | (val & ~RTL_CONFIG3_FBTBEN);
        break;
    case RTL_CONFIG4:
        s->config4 = val;
        break;
    default:
        s->config5 = val;
        break;
    }
}

static void rtl_tppoll_write(Rtl8139State *s, uint8_t val)
{
    if (val & RTL_TPPOLL_HPQ) {
        qnic_unimp("rtl8139: C+ high-priority TX queue");
    }
    if (val & RTL_TPPOLL_NPQ) {
        rtl_tx_cp(s);
    }
    if (val & RTL_TPPOLL_FSWINT) {
        rtl_raise(s, RTL_INT_SWINT);
    }
}

static void rtl_write8(Rtl8139State *s, uint32_t base, uint8_t val)
{
    switch (base) {
    case RTL_IDR0 ... RTL_IDR0 + 5:
        rtl_idr_write(s, base, val);
        return;
    case RTL_MAR0 ... RTL_MAR0 + 7:
        s->mar[base - RTL_MAR0] = val;
        return;
    case RTL_CR:
        rtl_cr_write(s, val);
        return;
    case RTL_9346CR:
        rtl_9346_write(s, val);
        return;
    case RTL_CONFIG0:
    case RTL_CONFIG1:
    case RTL_CONFIG3:
    case RTL_CONFIG4:
    case RTL_CONFIG5:
        rtl_config_write(s, base, val);
        return;
    case RTL_TPPOLL:
        rtl_tppoll_write(s, val);
        return;
    case RTL_ETTHR:
        s->etthr = val;
        return;
    default:
        return;                     /* read-only or reserved */
    }
}

/* BMCR bits a write keeps; BMCR_RESET self-clears instead. */
#define RTL_BMCR_WMASK  (BMCR_SPEED100 | BMCR_ANENABLE | BMCR_FULLDPLX)

static void rtl_bmcr_write(Rtl8139State *s, uint16_t val)
{
    if (val & BMCR_RESET) {
        s->bmcr = RTL_BMCR_RESET;
    } else {
        s->bmcr = val & RTL_BMCR_WMASK;
    }
}

static void rtl_write16(Rtl8139State *s, uint32_t base, uint16_t val)
{
    switch (base) {
    case RTL_ERBCR:
        s->erbcr = val;
        return;
    case RTL_CAPR:
        s->capr = val;
        rtl_flush_rx(s);
        return;
    case RTL_IMR:
        s->imr = val & RTL_IMR_MASK;
        rtl_update_irq(s);
        return;
    case RTL_ISR:
        s->isr &= ~val;
        rtl_update_irq(s);
        return;
    case RTL_MULINT:
        s->mulint = val & RTL_MULINT_MISR_MASK;
        return;
    case RTL_BMCR:
        rtl_bmcr_write(s, val);
        return;
    case RTL_ANAR:
        s->anar = val;
        return;
    case RTL_CSCR:
        s->cscr = val;
        return;
    case RTL_RXMAXSIZE:
        s->rx_max_size = val;
        return;
    case RTL_CPCR:
        s->cpcr = val & (RTL_CPCR_TXENB | RTL_CPCR_RXENB | RTL_CPCR_MULRW |
                         RTL_CPCR_DAC | RTL_CPCR_RXCHKSUM | RTL_CPCR_RXVLAN);
        rtl_flush_rx(s);
        return;
    default:
        return;
    }
}

/* OWN=0 with a size hands slot d to the device; status bits are the
 * device's to set. */
static void rtl_tsd_write(Rtl8139State *s, unsigned d, uint32_t val)
{
    const uint32_t guest = RTL_TSD_OWN | RTL_TSD_SIZE_MASK | RTL_TSD_ERTXTH_MASK;

    s->tsd[d] = (s->tsd[d] & ~(guest | RTL_TSD_TOK | RTL_TSD_TUN | RTL_TSD_TABT)) |
                (val & guest);
    rtl_tx_c(s);
}

static void rtl_write32(Rtl8139State *s, uint32_t base, uint32_t val)
{
    switch (base) {
    case RTL_TSD0: case RTL_TSD0 + 4: case RTL_TSD0 + 8: case RTL_TSD0 + 12:
        rtl_tsd_write(s, (base - RTL_TSD0) / 4, val);
        return;
    case RTL_TSAD0: case RTL_TSAD0 + 4: case RTL_TSAD0 + 8: case RTL_TSAD0 + 12:
        s->tsad[(base - RTL_TSAD0) / 4] = val;
        return;
    case RTL_RBSTART:
        s->rbstart = val;
        return;
    case RTL_TCR:
        s->tcr = (s->tcr & ~RTL_TCR_WMASK) | (val & RTL_TCR_WMASK);
        return;
    case RTL_RCR:
        s->rcr = val & RTL_RCR_WMASK;
        rtl_flush_rx(s);
        return;
    case RTL_TCTR:
        s->tctr_base = qnic_clock_ns();
        rtl_timer_rearm(s);
        return;
    case RTL_MPC:
        s->mpc = 0;
        return;
    case RTL_TIMERINT:
        s->timer_int = val;
        rtl_timer_rearm(s);
        return;
    case RTL_RDSAR_LO:
        s->rdsar[0] = val;
        return;
    case RTL_RDSAR_HI:
        s->rdsar[1] = val;
        return;
    default:
        return;
    }
}

/* Write one register at its natural base and width. */
static void rtl_reg_write(Rtl8139State *s, uint32_t base, unsigned w, uint32_t val)
{
    if (w == 1) {
        rtl_write8(s, base, val);
    } else if (w == 2) {
        rtl_write16(s, base, val);
    } else {
        rtl_write32(s, base, val);
    }
}

static uint64_t rtl_io_read(void *opaque, uint64_t addr, unsigned size)
{
    Rtl8139State *s = opaque;
    uint32_t base;
    unsigned w = rtl_reg_width(addr, &base);
    uint64_t v = 0;

    if (w == size && base == addr) {
        return rtl_reg_read(s, base, w);
    }
    for (unsigned i = 0; i < size && addr + i < RTL8139_REGS_SIZE; i++) {
        uint32_t a = addr + i;
        unsigned bw = rtl_reg_width(a, &base);
        uint32_t r = rtl_reg_read(s, base, bw);
        v |= (uint64_t)((r >> ((a - base) * 8)) & 0xff) << (i * 8);
    }
    return v;
}

static void rtl_io_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    Rtl8139State *s = opaque;
    uint32_t base;
    unsigned w = rtl_reg_width(addr, &base);

    if (w == size && base == addr) {
        rtl_reg_write(s, base, w, val);
        return;
    }
    /* Narrower or straddling accesses act byte by byte on the registers
     * they touch: read-modify-write for wide ones (ISR: write-1-to-clear
     * only the bits given). */
    for (unsigned i = 0; i < size && addr + i < RTL8139_REGS_SIZE; i++) {
        uint32_t a = addr + i;
        uint8_t b = val >> (i * 8);
        unsigned bw = rtl_reg_width(a, &base);
        unsigned shift = (a - base) * 8;

        if (bw == 1) {
            rtl_reg_write(s, a, 1, b);
        } else if (base == RTL_ISR) {
            rtl_reg_write(s, base, bw, (uint32_t)b << shift);
        } else {
            uint32_t cur = rtl_reg_read(s, base, bw);
            if (base >= RTL_TSD0 && base < RTL_TSAD0) {
                /* a partial TSD write must not re-arm a finished slot */
                cur |= RTL_TSD_OWN;
            }
            cur &= ~(0xffu << shift);
            cur |= (uint32_t)b << shift;
            rtl_reg_write(s, base, bw, cur);
        }
    }
}

static const QnicMemOps rtl_ops = {
    .read = rtl_io_read,
    .write = rtl_io_write,
    .valid_min = 1, .valid_max = 4, .valid_unaligned = true,
    .impl_min = 1, .impl_max = 4,
};

/* ---------------------------------------------------------------- life cycle */

static const QnicNetClientOps rtl_net_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    /* No can_receive: a frame that does not fit makes receive_iov return 0,
     * so it waits in our queue with its sender's completion attached, and
     * CAPR/RCR/CR writes flush it. Backends that pause on can_send alone
     * would otherwise never learn that room came back. */
    .receive_iov = rtl_receive_iov,
    .link_status_changed = rtl_link_changed,
};

static bool rtl_realize(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    Rtl8139State *s = (Rtl8139State *)dev;
    static const QnicPciIds ids = {
        .vendor_id = RTL8139_VENDOR_ID,
        .device_id = RTL8139_DEVICE_ID,
        .revision = RTL8139_REVISION,
        .class_code = 0x020000,           /* Ethernet controller */
        .subsystem_vendor_id = RTL8139_SUBSYS_VENDOR,
        .subsystem_id = RTL8139_SUBSYS_ID,
        .interrupt_pin = 1,
    };

    if (!qnic_pci_device_init(&s->pci, opts, &ids, "efi-rtl8139.rom", errp)) {
        return false;
    }
    /* QEMU 7.2 puts 0xdc in the capability pointer without setting the
     * capability-list status bit; drivers ignore it, the layout matches. */
    qnic_pci_set_byte(&s->pci, PCI_CAPABILITY_LIST, 0xdc);

    qnic_region_init_io(&s->io, dev, &rtl_ops, s, "rtl8139-io", RTL8139_REGS_SIZE);
    qnic_region_init_io(&s->mmio, dev, &rtl_ops, s, "rtl8139-mmio", RTL8139_REGS_SIZE);
    qnic_pci_register_bar(&s->pci, 0, QNIC_PCI_BAR_IO, &s->io);
    qnic_pci_register_bar(&s->pci, 1, QNIC_PCI_BAR_MEM32, &s->mmio);

    s->nic = qnic_nic_new(dev->machine->cfg.backends, &rtl_net_ops, opts, "rtl8139", 1, s, errp);
    if (!s->nic) {
        qnic_pci_device_exit(&s->pci);
        return false;
    }
    snprintf(rtl_nc(s)->info_str, sizeof(rtl_nc(s)->info_str),
             "model=rtl8139,macaddr=%02x:%02x:%02x:%02x:%02x:%02x",
             s->nic->mac[0], s->nic->mac[1], s->nic->mac[2],
             s->nic->mac[3], s->nic->mac[4], s->nic->mac[5]);
    s->timer = qnic_timer_new(rtl_timer_cb, s);
    s->cp_tx_buf = g_malloc(RTL_CP_TX_MAX + 8);
    s->rx_buf = g_malloc(RTL_RX_SCRATCH);
    s->seg_buf = g_malloc(RTL_CP_TX_MAX + 8);
    rtl_eeprom_init(s, s->nic->mac);
    memset(s->mar, 0, sizeof(s->mar));
    rtl_soft_reset(s);
    return true;
}

static void rtl_unrealize(QnicDevice *dev)
{
    Rtl8139State *s = (Rtl8139State *)dev;

    qnic_timer_free(s->timer);
    s->timer = NULL;
    qnic_nic_free(s->nic);
    s->nic = NULL;
    qnic_pci_device_exit(&s->pci);
    g_free(s->cp_tx_buf);
    g_free(s->rx_buf);
    g_free(s->seg_buf);
}

/* ---------------------------------------------------------------- state */

/* Device state (qnic/state.h): the section "rtl8139", after "pci". The
 * timer is not saved as a deadline: TCTR's base on the virtual clock and
 * TimerInt determine it, and apply re-arms it from them. */
typedef struct Rtl8139Snap {
    uint8_t idr[6], mar[8];
    uint32_t tsd[4], tsad[4];
    uint32_t rbstart;
    uint16_t erbcr;
    uint8_t ersr, cr;
    uint16_t capr, cbr, imr, isr;
    uint32_t tcr, rcr;
    uint64_t tctr_base;             /* virtual-clock ns where TCTR was 0 */
    uint32_t timer_int, mpc;
    uint8_t cfg9346, config0, config1, config3, config4, config5, msr;
    uint16_t mulint, bmcr, bmsr, anar, anlpar, aner, cscr;
    uint32_t cur_tx;
    uint16_t cpcr, rx_max_size;
    uint8_t etthr;
    uint32_t rdsar[2];
    uint32_t cp_tx_idx, cp_rx_idx;
    bool cp_tx_open, cp_tx_bad;
    uint32_t cp_tx_dw0, cp_tx_dw1;
    uint32_t cp_tx_len;
    uint8_t cp_tx_frame[RTL_CP_TX_MAX];
    uint16_t ee_contents[RTL_EEPROM_WORDS];
    uint32_t ee_state, ee_nbits, ee_out_bits;
    uint16_t ee_shift, ee_out;
    uint8_t ee_addr;
    bool ee_write_all, ee_write_enabled, ee_cs, ee_sk, ee_di, ee_dout;
} Rtl8139Snap;

/* Far beyond any uptime, and far enough below INT64_MAX that re-arming the
 * timer from it cannot overflow. */
#define RTL_TCTR_BASE_MAX (1ull << 62)

#define RTL_SU(f) QNIC_STATE_UINT(Rtl8139Snap, f, 0)
#define RTL_SB(f) QNIC_STATE_BOOL(Rtl8139Snap, f, 0)
#define RTL_SR(f, hi) QNIC_STATE_UINT_RANGE(Rtl8139Snap, f, 0, 0, hi)

static const QnicStateField rtl_state_fields[] = {
    QNIC_STATE_BYTES(Rtl8139Snap, idr, 0), QNIC_STATE_BYTES(Rtl8139Snap, mar, 0),
    QNIC_STATE_UINT_ARRAY(Rtl8139Snap, tsd, 0), QNIC_STATE_UINT_ARRAY(Rtl8139Snap, tsad, 0),
    RTL_SU(rbstart), RTL_SU(erbcr), RTL_SU(ersr), RTL_SU(cr), RTL_SU(capr), RTL_SU(cbr),
    RTL_SU(imr), RTL_SU(isr), RTL_SU(tcr), RTL_SU(rcr), RTL_SR(tctr_base, RTL_TCTR_BASE_MAX),
    RTL_SU(timer_int), RTL_SU(mpc), RTL_SU(cfg9346), RTL_SU(config0), RTL_SU(config1),
    RTL_SU(config3), RTL_SU(config4), RTL_SU(config5), RTL_SU(msr), RTL_SU(mulint),
    RTL_SU(bmcr), RTL_SU(bmsr), RTL_SU(anar), RTL_SU(anlpar), RTL_SU(aner), RTL_SU(cscr),
    RTL_SR(cur_tx, 3), RTL_SU(cpcr), RTL_SU(rx_max_size), RTL_SU(etthr),
    QNIC_STATE_UINT_ARRAY(Rtl8139Snap, rdsar, 0),
    RTL_SR(cp_tx_idx, RTL_CP_RING_MAX - 1), RTL_SR(cp_rx_idx, RTL_CP_RING_MAX - 1),
    RTL_SB(cp_tx_open), RTL_SB(cp_tx_bad), RTL_SU(cp_tx_dw0), RTL_SU(cp_tx_dw1),
    { .name = "cp_tx_frame", .kind = QNIC_SF_UINT, .offset = offsetof(Rtl8139Snap, cp_tx_frame),
      .size = 1, .count = RTL_CP_TX_MAX, .count_offset = offsetof(Rtl8139Snap, cp_tx_len) },
    QNIC_STATE_UINT_ARRAY(Rtl8139Snap, ee_contents, 0),
    RTL_SR(ee_state, EE_DONE), RTL_SR(ee_nbits, 16), RTL_SR(ee_out_bits, 16),
    RTL_SU(ee_shift), RTL_SU(ee_out), RTL_SR(ee_addr, RTL_EEPROM_WORDS - 1),
    RTL_SB(ee_write_all), RTL_SB(ee_write_enabled), RTL_SB(ee_cs), RTL_SB(ee_sk),
    RTL_SB(ee_di), RTL_SB(ee_dout),
    QNIC_STATE_END,
};

static const QnicStateDesc rtl_state_desc = {
    .name = "rtl8139", .version = 1, .min_version = 1,
    .size = sizeof(Rtl8139Snap), .fields = rtl_state_fields,
};

static void rtl_snap_fill_eeprom(const Rtl8139Eeprom *e, Rtl8139Snap *p)
{
    memcpy(p->ee_contents, e->contents, sizeof(p->ee_contents));
    p->ee_state = e->state;
    p->ee_nbits = e->nbits;
    p->ee_out_bits = e->out_bits;
    p->ee_shift = e->shift;
    p->ee_out = e->out;
    p->ee_addr = e->addr;
    p->ee_write_all = e->write_all;
    p->ee_write_enabled = e->write_enabled;
    p->ee_cs = e->cs;
    p->ee_sk = e->sk;
    p->ee_di = e->di;
    p->ee_dout = e->dout;
}

static void rtl_snap_fill(const Rtl8139State *s, Rtl8139Snap *p)
{
    memcpy(p->idr, s->idr, 6);
    memcpy(p->mar, s->mar, 8);
    memcpy(p->tsd, s->tsd, sizeof(p->tsd));
    memcpy(p->tsad, s->tsad, sizeof(p->tsad));
    p->rbstart = s->rbstart;
    p->erbcr = s->erbcr;
    p->ersr = s->ersr;
    p->cr = s->cr;
    p->capr = s->capr;
    p->cbr = s->cbr;
    p->imr = s->imr;
    p->isr = s->isr;
    p->tcr = s->tcr;
    p->rcr = s->rcr;
    p->tctr_base = (uint64_t)s->tctr_base;
    p->timer_int = s->timer_int;
    p->mpc = s->mpc;
    p->cfg9346 = s->cfg9346;
    p->config0 = s->config0;
    p->config1 = s->config1;
    p->config3 = s->config3;
    p->config4 = s->config4;
    p->config5 = s->config5;
    p->msr = s->msr;
    p->mulint = s->mulint;
    p->bmcr = s->bmcr;
    p->bmsr = s->bmsr;
    p->anar = s->anar;
    p->anlpar = s->anlpar;
    p->aner = s->aner;
    p->cscr = s->cscr;
    p->cur_tx = s->cur_tx;
    p->cpcr = s->cpcr;
    p->rx_max_size = s->rx_max_size;
    p->etthr = s->etthr;
    memcpy(p->rdsar, s->rdsar, sizeof(p->rdsar));
    p->cp_tx_idx = s->cp_tx_idx;
    p->cp_rx_idx = s->cp_rx_idx;
    p->cp_tx_open = s->cp_tx_open;
    p->cp_tx_bad = s->cp_tx_bad;
    p->cp_tx_dw0 = s->cp_tx_dw0;
    p->cp_tx_dw1 = s->cp_tx_dw1;
    p->cp_tx_len = s->cp_tx_open ? (uint32_t)MIN(s->cp_tx_len, (size_t)RTL_CP_TX_MAX) : 0;
    memcpy(p->cp_tx_frame, s->cp_tx_buf, p->cp_tx_len);
    rtl_snap_fill_eeprom(&s->eeprom, p);
}

/* What spans fields or is narrower than its type: the RX ring pointer, the
 * C+ frame only while one is open, the EEPROM's counters within its state. */
static bool rtl_snap_check(const void *snap, GError **errp)
{
    const Rtl8139Snap *p = snap;

    if (p->cbr & 3) {
        /* The device only ever moves it in dwords (and uses it modulo the
         * ring size RCR selects, which the guest may change). */
        qnic_error_setg(errp, "rtl8139: RX ring write pointer CBR 0x%x is not dword "
                        "aligned", p->cbr);
        return false;
    }
    if (p->cp_tx_len && !p->cp_tx_open) {
        qnic_error_setg(errp, "rtl8139: %u bytes of a C+ TX frame but no frame open",
                        p->cp_tx_len);
        return false;
    }
    if ((p->ee_state == EE_CMD && p->ee_nbits >= 2 + RTL_EEPROM_ADDR_BITS) ||
        (p->ee_state == EE_WRITE && p->ee_nbits >= 16)) {
        qnic_error_setg(errp, "rtl8139: EEPROM shift count %u impossible in state %u",
                        p->ee_nbits, p->ee_state);
        return false;
    }
    return true;
}

static void rtl_snap_apply_eeprom(Rtl8139Eeprom *e, const Rtl8139Snap *p)
{
    memcpy(e->contents, p->ee_contents, sizeof(e->contents));
    e->state = (EepromState)p->ee_state;
    e->nbits = p->ee_nbits;
    e->out_bits = p->ee_out_bits;
    e->shift = p->ee_shift;
    e->out = p->ee_out;
    e->addr = p->ee_addr;
    e->write_all = p->ee_write_all;
    e->write_enabled = p->ee_write_enabled;
    e->cs = p->ee_cs;
    e->sk = p->ee_sk;
    e->di = p->ee_di;
    e->dout = p->ee_dout;
}

static void rtl_snap_apply(Rtl8139State *s, const Rtl8139Snap *p)
{
    memcpy(s->idr, p->idr, 6);
    memcpy(s->mar, p->mar, 8);
    memcpy(s->tsd, p->tsd, sizeof(p->tsd));
    memcpy(s->tsad, p->tsad, sizeof(p->tsad));
    s->rbstart = p->rbstart;
    s->erbcr = p->erbcr;
    s->ersr = p->ersr;
    s->cr = p->cr;
    s->capr = p->capr;
    s->cbr = p->cbr;
    s->imr = p->imr;
    s->isr = p->isr;
    s->tcr = p->tcr;
    s->rcr = p->rcr;
    s->tctr_base = (int64_t)p->tctr_base;
    s->timer_int = p->timer_int;
    s->mpc = p->mpc;
    s->cfg9346 = p->cfg9346;
    s->config0 = p->config0;
    s->config1 = p->config1;
    s->config3 = p->config3;
    s->config4 = p->config4;
    s->config5 = p->config5;
    s->msr = p->msr;
    s->mulint = p->mulint;
    s->bmcr = p->bmcr;
    s->bmsr = p->bmsr;
    s->anar = p->anar;
    s->anlpar = p->anlpar;
    s->aner = p->aner;
    s->cscr = p->cscr;
    s->cur_tx = p->cur_tx;
    s->cpcr = p->cpcr;
    s->rx_max_size = p->rx_max_size;
    s->etthr = p->etthr;
    memcpy(s->rdsar, p->rdsar, sizeof(p->rdsar));
    s->cp_tx_idx = p->cp_tx_idx;
    s->cp_rx_idx = p->cp_rx_idx;
    s->cp_tx_open = p->cp_tx_open;
    s->cp_tx_bad = p->cp_tx_bad;
    s->cp_tx_dw0 = p->cp_tx_dw0;
    s->cp_tx_dw1 = p->cp_tx_dw1;
    s->cp_tx_len = p->cp_tx_len;
    memcpy(s->cp_tx_buf, p->cp_tx_frame, p->cp_tx_len);
    rtl_snap_apply_eeprom(&s->eeprom, p);
    rtl_timer_rearm(s);
}

static bool rtl_save_state(QnicDevice *dev, GByteArray *out, GError **errp)
{
    Rtl8139State *s = (Rtl8139State *)dev;
    g_autofree Rtl8139Snap *p = g_new0(Rtl8139Snap, 1);

    rtl_snap_fill(s, p);
    qnic_pci_model_save_state(&s->pci, out, &rtl_state_desc, p);
    return true;
}

static bool rtl_load_state(QnicDevice *dev, QnicStateReader *r, GError **errp)
{
    Rtl8139State *s = (Rtl8139State *)dev;
    g_autofree Rtl8139Snap *p = g_new0(Rtl8139Snap, 1);

    if (!qnic_pci_model_load_state(&s->pci, r, &rtl_state_desc, p, rtl_snap_check, errp)) {
        return false;
    }
    rtl_snap_apply(s, p);
    return true;
}

static const QnicDeviceClass rtl8139_class = {
    .name = "rtl8139",
    .bus = "pci",
    .instance_size = sizeof(Rtl8139State),
    .realize = rtl_realize,
    .reset = rtl_reset,
    .unrealize = rtl_unrealize,
    .save_state = rtl_save_state,
    .load_state = rtl_load_state,
};
QNIC_DEVICE_REGISTER(rtl8139_class)
