/*
 * The e1000 family of NICs (Intel 82540EM "e1000", 82544GC, 82545EM) as
 * QEMU 7.2 presents them to a guest: the same PCI identity and BARs (128 KiB
 * MMIO register file, 64-byte IOADDR/IODATA port window), a Microwire EEPROM
 * reachable by bit-banging EECD or through EERD, the integrated Marvell PHY
 * behind MDIC with auto-negotiation completing on the virtual clock, legacy
 * and extended (context + data) transmit descriptors with checksum offload,
 * TCP segmentation and VLAN insertion, a receive ring with address, multicast
 * and VLAN filtering, VLAN stripping and checksum verification, and the
 * interrupt machinery (ICR/ICS/IMS/IMC, ITR throttling, RDTR/RADV/TIDV/TADV
 * delay timers). The guest is hostile: descriptor and buffer addresses go
 * through qnic_dma_*, ring indices are checked against the ring size, and
 * each register access does a bounded amount of work.
 */
#include "qnic/common.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/machine.h"
#include "qnic/clock.h"
#include "qnic/log.h"
#include "qnic/opts.h"
#include "qnic/state.h"
#include "hw/net/e1000-regs.h"
#include "hw/net/net-tx-pkt.h"

#include <linux/if_ether.h>

/* Largest frame assembled from TX descriptors: a 64 KiB TSO payload plus
 * headers (Linux never hands e1000 more). */
#define E1000_TX_BUF_SIZE (65536 + QNIC_PKT_MAX_HDR + QNIC_VLAN_HLEN)
/* Largest frame accepted on receive with RCTL.LPE (as QEMU), and without. */
#define E1000_MAX_LPE_FRAME 16384
#define E1000_MAX_FRAME 1522
#define E1000_MIN_FRAME 60
#define E1000_FCS_LEN 4
#define E1000_RX_BUF_SIZE (E1000_MAX_LPE_FRAME + E1000_FCS_LEN)
/* Time PHY auto-negotiation takes after a restart, as in QEMU. */
#define E1000_AUTONEG_NS (500 * 1000 * 1000LL)
/* ITR counts 256 ns; RDTR/RADV/TIDV/TADV count 1.024 us. */
#define E1000_ITR_UNIT_NS 256
#define E1000_DELAY_UNIT_NS 1024

typedef struct E1000Model {
    const char *name;
    uint16_t device_id;
    uint16_t phy_id2;
} E1000Model;

static const E1000Model e1000_models[] = {
    { "e1000",         E1000_DEV_ID_82540EM, E1000_PHY_ID2_M88E1011 },
    { "e1000-82544gc", E1000_DEV_ID_82544GC, E1000_PHY_ID2_M88E1000_I },
    { "e1000-82545em", E1000_DEV_ID_82545EM, E1000_PHY_ID2_M88E1011 },
};

/* One offload context as a context descriptor sets it. */
typedef struct E1000TxCtx {
    uint8_t ipcss, ipcso, tucss, tucso, tucmd, hdrlen;
    uint16_t ipcse, tucse, mss;
    uint32_t paylen;
} E1000TxCtx;

typedef struct E1000State {
    QnicPciDevice pci;          /* first: the device core casts to it */
    const E1000Model *model;
    QnicRegion mmio, io;
    QnicNic *nic;
    bool prop_autoneg, prop_mitigation, prop_init_vet, prop_tso_props;

    uint32_t mac[E1000_MMIO_SIZE / 4];
    uint16_t phy[E1000_PHY_REGS];
    uint16_t eeprom[E1000_EEPROM_WORDS];
    uint32_t ioaddr;

    /* Microwire EEPROM shift state */
    struct {
        uint32_t eecd;          /* the SK/CS/DI/REQ/FWE bits last written */
        uint32_t val_in;
        int bits_in;
        bool reading;
        int out_pos;            /* bit index into the EEPROM, -1 before the first */
    } ee;

    /* TX: contexts and the frame being assembled */
    E1000TxCtx ctx, tso_ctx;
    uint8_t *tx_buf;
    size_t tx_len;
    bool tx_in_frame, tx_tse, tx_legacy, tx_vle, tx_bad;
    uint8_t tx_popts, tx_cso, tx_css, tx_cmd;
    uint16_t tx_special;
    uint64_t tx_segments;       /* for tests/debug: segments sent by TSO */

    uint8_t *rx_buf;

    int irq_level;
    QnicTimer *autoneg_timer, *itr_timer, *rdtr_timer, *radv_timer, *tidv_timer, *tadv_timer;
} E1000State;

#define REG(s, off) ((s)->mac[(off) >> 2])

/* ---------------------------------------------------------------- */
/* Interrupts */

static void e1000_update_irq(E1000State *s)
{
    int level = (REG(s, E1000_ICR) & REG(s, E1000_IMS)) != 0;
    uint32_t itr = REG(s, E1000_ITR) & E1000_ITR_MASK;

    if (level && !s->irq_level && s->prop_mitigation && itr) {
        /* ITR: at most one assertion per interval; a cause that arrives
         * inside the window waits for the throttle timer. */
        if (qnic_timer_pending(s->itr_timer)) {
            return;
        }
        qnic_timer_mod(s->itr_timer, qnic_clock_ns() + (int64_t)itr * E1000_ITR_UNIT_NS);
    }
    if (level != s->irq_level) {
        s->irq_level = level;
        qnic_pci_set_irq(&s->pci, level);
    }
}

static void e1000_set_ics(E1000State *s, uint32_t cause)
{
    REG(s, E1000_ICR) |= cause & E1000_ICR_MASK;
    e1000_update_irq(s);
}

static void e1000_itr_timer_cb(void *opaque)
{
    E1000State *s = opaque;
    qnic_device_enter(&s->pci.dev);
    e1000_update_irq(s);
    qnic_device_leave(&s->pci.dev);
}

static void e1000_rx_delay_cb(void *opaque)
{
    E1000State *s = opaque;
    qnic_device_enter(&s->pci.dev);
    qnic_timer_del(s->rdtr_timer);
    qnic_timer_del(s->radv_timer);
    e1000_set_ics(s, E1000_ICR_RXT0);
    qnic_device_leave(&s->pci.dev);
}

static void e1000_tx_delay_cb(void *opaque)
{
    E1000State *s = opaque;
    qnic_device_enter(&s->pci.dev);
    qnic_timer_del(s->tidv_timer);
    qnic_timer_del(s->tadv_timer);
    e1000_set_ics(s, E1000_ICR_TXDW);
    qnic_device_leave(&s->pci.dev);
}

/* A delayed cause: the packet timer restarts with every event, the absolute
 * timer bounds the total delay from the first one. */
static void e1000_delay_cause(E1000State *s, uint32_t cause, uint32_t pkt_delay,
                              uint32_t abs_delay, QnicTimer *pkt_t, QnicTimer *abs_t)
{
    int64_t now = qnic_clock_ns();
    pkt_delay &= E1000_DELAY_MASK;
    abs_delay &= E1000_DELAY_MASK;
    if (!s->prop_mitigation || pkt_delay == 0) {
        e1000_set_ics(s, cause);
        return;
    }
    qnic_timer_mod(pkt_t, now + (int64_t)pkt_delay * E1000_DELAY_UNIT_NS);
    if (abs_delay && !qnic_timer_pending(abs_t)) {
        qnic_timer_mod(abs_t, now + (int64_t)abs_delay * E1000_DELAY_UNIT_NS);
    }
}

/* ---------------------------------------------------------------- */
/* Link and PHY */

static void e1000_link_down(E1000State *s)
{
    REG(s, E1000_STATUS) &= ~E1000_STATUS_LU;
    /* a lost link also loses the negotiation (QEMU 7.2 shows both bits
     * clear), so the next "up" negotiates again */
    s->phy[E1000_PHY_STATUS] &= ~(E1000_MII_SR_LINK_STATUS | E1000_MII_SR_AN_COMPLETE);
    s->phy[E1000_PHY_LP_ABILITY] &= ~E1000_MII_LPAR_LPACK;
}

static void e1000_link_up(E1000State *s)
{
    REG(s, E1000_STATUS) |= E1000_STATUS_LU;
    s->phy[E1000_PHY_STATUS] |= E1000_MII_SR_LINK_STATUS;
}

static bool e1000_nc_link_down(E1000State *s)
{
    return s->nic && s->nic->ncs[0]->link_down;
}

static bool e1000_have_autoneg(E1000State *s)
{
    return s->prop_autoneg && (s->phy[E1000_PHY_CTRL] & E1000_MII_CR_AN_ENABLE);
}

static void e1000_restart_autoneg(E1000State *s)
{
    e1000_link_down(s);
    s->phy[E1000_PHY_STATUS] &= ~E1000_MII_SR_AN_COMPLETE;
    qnic_timer_mod(s->autoneg_timer, qnic_clock_ns() + E1000_AUTONEG_NS);
}

static void e1000_autoneg_done(void *opaque)
{
    E1000State *s = opaque;
    qnic_device_enter(&s->pci.dev);
    if (!e1000_nc_link_down(s)) {
        e1000_link_up(s);
        s->phy[E1000_PHY_LP_ABILITY] |= E1000_MII_LPAR_LPACK;
        s->phy[E1000_PHY_STATUS] |= E1000_MII_SR_AN_COMPLETE;
        e1000_set_ics(s, E1000_ICR_LSC);
        if (s->nic) {
            qnic_net_flush_queued(s->nic->ncs[0]);
        }
    }
    qnic_device_leave(&s->pci.dev);
}

static void e1000_phy_reset(E1000State *s)
{
    memset(s->phy, 0, sizeof(s->phy));
    /* Power-on values, as QEMU 7.2 shows them. */
    s->phy[E1000_PHY_CTRL] = 0x1140;
    s->phy[E1000_PHY_STATUS] = 0x794d;
    s->phy[E1000_PHY_ID1] = E1000_PHY_ID1_MARVELL;
    s->phy[E1000_PHY_ID2] = s->model->phy_id2;
    s->phy[E1000_PHY_AUTONEG_ADV] = 0x0de1;
    s->phy[E1000_PHY_LP_ABILITY] = 0x01e0;
    s->phy[E1000_PHY_1000T_CTRL] = 0x0e00;
    s->phy[E1000_PHY_1000T_STATUS] = 0x3c00;
    s->phy[E1000_M88_PHY_SPEC_CTRL] = 0x0360;
    s->phy[E1000_M88_PHY_SPEC_STATUS] = 0xac00;
    s->phy[E1000_M88_EXT_PHY_SPEC_CTRL] = 0x0d60;
}

enum { PHY_R = 1, PHY_W = 2 };
static uint8_t e1000_phy_cap(unsigned reg)
{
    switch (reg) {
    case E1000_PHY_CTRL:
    case E1000_PHY_AUTONEG_ADV:
    case E1000_PHY_1000T_CTRL:
    case E1000_M88_PHY_SPEC_CTRL:
    case E1000_M88_EXT_PHY_SPEC_CTRL:
        return PHY_R | PHY_W;
    case E1000_PHY_STATUS:
    case E1000_PHY_ID1:
    case E1000_PHY_ID2:
    case E1000_PHY_LP_ABILITY:
    case E1000_PHY_AUTONEG_EXP:
    case E1000_PHY_1000T_STATUS:
    case E1000_M88_PHY_SPEC_STATUS:
    case E1000_M88_RX_ERR_CNTR:
        return PHY_R;
    default:
        return 0;
    }
}

static void e1000_phy_write(E1000State *s, unsigned reg, uint16_t val)
{
    if (reg == E1000_PHY_CTRL) {
        if (val & E1000_MII_CR_RESET) {
            uint16_t status_link = s->phy[E1000_PHY_STATUS] &
                                   (E1000_MII_SR_LINK_STATUS | E1000_MII_SR_AN_COMPLETE);
            e1000_phy_reset(s);
            s->phy[E1000_PHY_STATUS] = (s->phy[E1000_PHY_STATUS] & ~E1000_MII_SR_LINK_STATUS) |
                                       status_link;
            val &= ~E1000_MII_CR_RESET;
        }
        s->phy[reg] = val & ~(E1000_MII_CR_RESERVED | E1000_MII_CR_RESET |
                              E1000_MII_CR_RESTART_AN);
        if ((val & E1000_MII_CR_AN_ENABLE) && (val & E1000_MII_CR_RESTART_AN) &&
            s->prop_autoneg) {
            e1000_restart_autoneg(s);
        }
        return;
    }
    s->phy[reg] = val;
}

static void e1000_mdic_write(E1000State *s, uint32_t val)
{
    unsigned phy = (val & E1000_MDIC_PHY_MASK) >> E1000_MDIC_PHY_SHIFT;
    unsigned reg = (val & E1000_MDIC_REG_MASK) >> E1000_MDIC_REG_SHIFT;
    uint32_t data = val & E1000_MDIC_DATA_MASK;

    if (phy != E1000_PHY_ADDR) {
        val |= E1000_MDIC_ERROR;
    } else if (val & E1000_MDIC_OP_READ) {
        if (!(e1000_phy_cap(reg) & PHY_R)) {
            qnic_unimp("e1000: MDIC read of unknown PHY register 0x%x\n", reg);
            val |= E1000_MDIC_ERROR;
        } else {
            val = (val & ~E1000_MDIC_DATA_MASK) | s->phy[reg];
        }
    } else if (val & E1000_MDIC_OP_WRITE) {
        if (!(e1000_phy_cap(reg) & PHY_W)) {
            qnic_unimp("e1000: MDIC write to read-only/unknown PHY register 0x%x\n", reg);
            val |= E1000_MDIC_ERROR;
        } else {
            e1000_phy_write(s, reg, data);
        }
    }
    REG(s, E1000_MDIC) = val | E1000_MDIC_READY;
    if (val & E1000_MDIC_INT_EN) {
        e1000_set_ics(s, E1000_ICR_MDAC);
    }
}

/* ---------------------------------------------------------------- */
/* EEPROM */

/* Words 3..0x3e of the image (the MAC fills 0..2, the checksum 0x3f);
 * device-ID words are patched per model. Contents as QEMU 7.2 shows them. */
static const uint16_t e1000_eeprom_image[E1000_EEPROM_WORDS] = {
    [0x03] = 0x0000, 0xffff, 0x0000, 0x0000, 0x0000,
    [0x08] = 0x3000, 0x1000, 0x6403, 0x0000, 0x8086, 0x0000, 0x8086, 0x3040,
    [0x10] = 0x0008, 0x2000, 0x7e14, 0x0048, 0x1000, 0x00d8, 0x0000, 0x2700,
    [0x18] = 0x6cc9, 0x3150, 0x0722, 0x040b, 0x0984, 0x0000, 0xc000, 0x0706,
    [0x20] = 0x1008, 0x0000, 0x0f04, 0x7fff, 0x4d01, 0xffff, 0xffff, 0xffff,
    [0x28] = 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
    [0x30] = 0x0100, 0x4000, 0x121c, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
    [0x38] = 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
};

static void e1000_eeprom_init(E1000State *s, const uint8_t mac[6])
{
    uint16_t sum = 0;
    memcpy(s->eeprom, e1000_eeprom_image, sizeof(s->eeprom));
    for (int i = 0; i < 3; i++) {
        s->eeprom[i] = mac[2 * i] | (uint16_t)mac[2 * i + 1] << 8;
    }
    s->eeprom[E1000_EEPROM_SUBSYS_ID] = s->model->device_id;
    s->eeprom[E1000_EEPROM_DEVICE_ID] = s->model->device_id;
    for (int i = 0; i < E1000_EEPROM_CHECKSUM_WORD; i++) {
        sum += s->eeprom[i];
    }
    s->eeprom[E1000_EEPROM_CHECKSUM_WORD] = (uint16_t)(E1000_EEPROM_SUM - sum);
}

static void e1000_eecd_write(E1000State *s, uint32_t val)
{
    uint32_t old = s->ee.eecd;
    const uint32_t wbits = E1000_EECD_SK | E1000_EECD_CS | E1000_EECD_DI |
                           E1000_EECD_REQ | E1000_EECD_FWE_MASK;
    s->ee.eecd = val & wbits;

    if (!(val & E1000_EECD_CS) || !(old & E1000_EECD_CS)) {
        /* Chip deselected, or selected anew: a new command starts. */
        s->ee.bits_in = 0;
        s->ee.val_in = 0;
        s->ee.reading = false;
        return;
    }
    if (!(!(old & E1000_EECD_SK) && (val & E1000_EECD_SK))) {
        return;     /* only rising clock edges shift */
    }
    if (s->ee.reading) {
        s->ee.out_pos++;
        return;
    }
    s->ee.val_in = (s->ee.val_in << 1) | !!(val & E1000_EECD_DI);
    if (++s->ee.bits_in == 3 + E1000_EEPROM_ADDR_BITS) {
        unsigned op = (s->ee.val_in >> E1000_EEPROM_ADDR_BITS) & 7;
        unsigned addr = s->ee.val_in & ((1u << E1000_EEPROM_ADDR_BITS) - 1);
        if (op == E1000_EEPROM_READ_OPCODE) {
            s->ee.reading = true;
            s->ee.out_pos = (int)addr * 16 - 1;
        } else {
            qnic_unimp("e1000: EEPROM opcode %u ignored (only READ is emulated)\n", op);
        }
    }
}

static uint32_t e1000_eecd_read(E1000State *s)
{
    uint32_t v = s->ee.eecd | E1000_EECD_PRES | E1000_EECD_GNT;
    if (!s->ee.reading || s->ee.out_pos < 0 || !(s->ee.eecd & E1000_EECD_CS)) {
        v |= E1000_EECD_DO;
    } else {
        unsigned pos = (unsigned)s->ee.out_pos;
        uint16_t w = s->eeprom[(pos >> 4) % E1000_EEPROM_WORDS];
        if ((w >> (15 - (pos & 15))) & 1) {
            v |= E1000_EECD_DO;
        }
    }
    return v;
}

/* ---------------------------------------------------------------- */
/* Statistics */

static void stat_inc(E1000State *s, unsigned off, uint32_t n)
{
    uint32_t v = REG(s, off);
    REG(s, off) = v + n < v ? 0xffffffff : v + n;   /* saturate */
}

static void stat_add64(E1000State *s, unsigned lo, uint64_t n)
{
    uint64_t v = REG(s, lo) | (uint64_t)REG(s, lo + 4) << 32;
    v += n;
    REG(s, lo) = (uint32_t)v;
    REG(s, lo + 4) = (uint32_t)(v >> 32);
}

static void stat_size(E1000State *s, unsigned base64, size_t len)
{
    /* PRC64..PRC1522 / PTC64..PTC1522: six consecutive buckets */
    static const size_t limits[] = { 64, 127, 255, 511, 1023 };
    unsigned i = 0;
    while (i < 5 && len > limits[i]) {
        i++;
    }
    stat_inc(s, base64 + 4 * i, 1);
}

/* ---------------------------------------------------------------- */
/* Transmit */

static void e1000_count_tx(E1000State *s, const uint8_t *dst, size_t len)
{
    len += E1000_FCS_LEN;
    stat_inc(s, E1000_GPTC, 1);
    stat_inc(s, E1000_TPT, 1);
    stat_add64(s, E1000_GOTCL, len);
    stat_add64(s, E1000_TOTL, len);
    stat_size(s, E1000_PTC64, len);
    if (qnic_eth_is_multicast(dst)) {
        stat_inc(s, qnic_eth_is_broadcast(dst) ? E1000_BPTC : E1000_MPTC, 1);
    }
}

static void e1000_send(E1000State *s, const struct iovec *iov, int iovcnt)
{
    uint8_t dst[6] = { 0 };
    size_t len = qnic_iov_size(iov, iovcnt);
    qnic_iov_to_buf(iov, iovcnt, 0, dst, 6);
    e1000_count_tx(s, dst, len);
    if (s->nic) {
        qnic_net_send_iov(s->nic->ncs[0], iov, iovcnt, NULL);
    }
}

static void e1000_tso_segment(void *opaque, const struct iovec *iov, int iovcnt)
{
    E1000State *s = opaque;
    s->tx_segments++;
    e1000_send(s, iov, iovcnt);
}

static bool e1000_vlan_insert_enabled(E1000State *s)
{
    return s->tx_vle && (REG(s, E1000_CTRL) & E1000_CTRL_VME);
}

static void e1000_tx_frame_done(E1000State *s)
{
    uint8_t *buf = s->tx_buf;
    size_t len = s->tx_len;

    if (s->tx_bad || len == 0) {
        return;     /* the error was logged where it happened */
    }
    if (s->tx_tse) {
        QnicPktTso p = {
            .mss = s->tso_ctx.mss,
            .flags = ((s->tx_popts & E1000_TXD_POPTS_IXSM) ? QNIC_PKT_CSUM_IP : 0) |
                     ((s->tx_popts & E1000_TXD_POPTS_TXSM) ? QNIC_PKT_CSUM_L4 : 0),
            .insert_vlan = e1000_vlan_insert_enabled(s),
            .vlan_tpid = REG(s, E1000_VET) & E1000_VET_MASK,
            .vlan_tci = s->tx_special,
        };
        int n = qnic_pkt_tso(buf, len, &p, e1000_tso_segment, s);
        if (n >= 0) {
            stat_inc(s, E1000_TSCTC, 1);
            return;
        }
        qnic_guest_error("e1000: TSO frame of %zu bytes (mss %u) is not segmentable "
                         "TCP/UDP over IP; sent unsegmented\n", len, s->tso_ctx.mss);
        stat_inc(s, E1000_TSCTFC, 1);
    } else if (s->tx_legacy) {
        if ((s->tx_cmd & E1000_TXD_CMD_IC) &&
            !qnic_pkt_csum_at(buf, len, s->tx_css, 0, s->tx_cso)) {
            qnic_guest_error("e1000: legacy checksum offsets css=%u cso=%u outside a "
                             "%zu-byte frame\n", s->tx_css, s->tx_cso, len);
        }
    } else {
        if ((s->tx_popts & E1000_TXD_POPTS_IXSM) &&
            !qnic_pkt_csum_at(buf, len, s->ctx.ipcss, s->ctx.ipcse, s->ctx.ipcso)) {
            qnic_guest_error("e1000: IP checksum context outside the frame\n");
        }
        if ((s->tx_popts & E1000_TXD_POPTS_TXSM) &&
            !qnic_pkt_csum_at(buf, len, s->ctx.tucss, s->ctx.tucse, s->ctx.tucso)) {
            qnic_guest_error("e1000: TCP/UDP checksum context outside the frame\n");
        }
    }
    if (e1000_vlan_insert_enabled(s)) {
        size_t n = qnic_pkt_vlan_insert(buf, len, E1000_TX_BUF_SIZE,
                                        REG(s, E1000_VET) & E1000_VET_MASK, s->tx_special);
        if (n) {
            len = n;
        }
    }
    struct iovec iov = { buf, len };
    e1000_send(s, &iov, 1);
}

static void e1000_tx_append(E1000State *s, uint64_t addr, size_t len)
{
    if (s->tx_bad || len == 0) {
        return;
    }
    if (len > E1000_TX_BUF_SIZE - s->tx_len) {
        qnic_guest_error("e1000: TX frame exceeds %d bytes; dropped\n", E1000_TX_BUF_SIZE);
        s->tx_bad = true;
        return;
    }
    if (!qnic_dma_read(&s->pci.dev, addr, s->tx_buf + s->tx_len, len)) {
        qnic_guest_error("e1000: TX buffer 0x%" PRIx64 "+%zu not readable; frame dropped\n",
                         addr, len);
        s->tx_bad = true;
        return;
    }
    s->tx_len += len;
}

/* Process one descriptor; returns true if it asked for a write-back (RS). */
static bool e1000_process_txd(E1000State *s, const uint8_t *d, bool *ide)
{
    uint32_t lower = qnic_ld32(d + E1000_TXDD_LEN_DTYP);
    uint8_t cmd = lower >> E1000_TXD_CMD_SHIFT;
    unsigned dtyp = (lower >> E1000_TXD_DTYP_SHIFT) & E1000_TXD_DTYP_MASK;
    bool dext = cmd & E1000_TXD_CMD_DEXT;
    size_t len;

    *ide = false;
    if (dext && dtyp == E1000_TXD_DTYP_CTX) {
        E1000TxCtx c = {
            .ipcss = d[E1000_TXC_IPCSS], .ipcso = d[E1000_TXC_IPCSO],
            .ipcse = qnic_ld16(d + E1000_TXC_IPCSE),
            .tucss = d[E1000_TXC_TUCSS], .tucso = d[E1000_TXC_TUCSO],
            .tucse = qnic_ld16(d + E1000_TXC_TUCSE),
            .paylen = lower & E1000_TXDD_LEN_MASK, .tucmd = cmd,
            .hdrlen = d[E1000_TXC_HDRLEN], .mss = qnic_ld16(d + E1000_TXC_MSS),
        };
        /* The hardware keeps the TSO and the checksum-only context apart
         * (migrate_tso_props=off models older QEMU, which shared one). */
        if ((cmd & E1000_TXD_CMD_TSE) || !s->prop_tso_props) {
            s->tso_ctx = c;
        }
        if (!(cmd & E1000_TXD_CMD_TSE) || !s->prop_tso_props) {
            s->ctx = c;
        }
        return cmd & E1000_TXD_CMD_RS;
    }
    if (dext && dtyp != E1000_TXD_DTYP_DATA) {
        qnic_guest_error("e1000: TX descriptor type %u unknown; skipped\n", dtyp);
        return cmd & E1000_TXD_CMD_RS;
    }

    if (!s->tx_in_frame) {
        s->tx_in_frame = true;
        s->tx_len = 0;
        s->tx_bad = false;
        s->tx_legacy = !dext;
        s->tx_cmd = cmd;
        s->tx_tse = dext && (cmd & E1000_TXD_CMD_TSE);
        s->tx_popts = dext ? d[E1000_TXDD_POPTS] : 0;
        s->tx_cso = d[E1000_TXD_CSO];
        s->tx_css = d[E1000_TXD_CSS];
    }
    /* VLAN: the hardware takes VLE/special from the last descriptor. */
    s->tx_vle = cmd & E1000_TXD_CMD_VLE;
    s->tx_special = qnic_ld16(d + E1000_TXD_SPECIAL);
    len = dext ? (lower & E1000_TXDD_LEN_MASK) : (lower & E1000_TXD_LEN_MASK);
    e1000_tx_append(s, qnic_ld64(d), len);
    *ide = cmd & E1000_TXD_CMD_IDE;
    if (cmd & E1000_TXD_CMD_EOP) {
        e1000_tx_frame_done(s);
        s->tx_in_frame = false;
        s->tx_len = 0;
    }
    return cmd & E1000_TXD_CMD_RS;
}

static void e1000_start_xmit(E1000State *s)
{
    uint32_t n = REG(s, E1000_TDLEN) / E1000_TXD_SIZE;
    uint32_t tdh = REG(s, E1000_TDH), tdt = REG(s, E1000_TDT);
    uint64_t base = (uint64_t)REG(s, E1000_TDBAH) << 32 | REG(s, E1000_TDBAL);
    uint32_t cause = 0;
    bool delayed = false;

    if (!(REG(s, E1000_TCTL) & E1000_TCTL_EN) || tdh == tdt) {
        return;
    }
    if (n == 0) {
        qnic_guest_error("e1000: TDT written with TDLEN 0\n");
        return;
    }
    if (tdh >= n) {
        qnic_guest_error("e1000: TDH %u beyond the %u-descriptor ring\n", tdh, n);
        return;
    }
    if (tdt >= n) {
        qnic_guest_error("e1000: TDT %u beyond the %u-descriptor ring\n", tdt, n);
    }
    /* Bounded: at most one pass over the ring per kick. */
    for (uint32_t budget = n; budget && tdh != tdt; budget--) {
        uint8_t d[E1000_TXD_SIZE];
        uint64_t da = base + (uint64_t)tdh * E1000_TXD_SIZE;
        bool ide;
        if (!qnic_dma_read(&s->pci.dev, da, d, sizeof(d))) {
            qnic_guest_error("e1000: TX descriptor at 0x%" PRIx64 " not readable\n", da);
            break;
        }
        if (e1000_process_txd(s, d, &ide)) {
            uint8_t st = d[E1000_TXD_STATUS] | E1000_TXD_STAT_DD;
            if (!qnic_dma_write(&s->pci.dev, da + E1000_TXD_STATUS, &st, 1)) {
                qnic_guest_error("e1000: TX descriptor write-back to 0x%" PRIx64 " failed\n", da);
            }
            if (ide && s->prop_mitigation && (REG(s, E1000_TIDV) & E1000_DELAY_MASK)) {
                delayed = true;
            } else {
                cause |= E1000_ICR_TXDW;
            }
        }
        tdh = (tdh + 1) % n;
    }
    REG(s, E1000_TDH) = tdh;
    if (tdh == tdt) {
        cause |= E1000_ICR_TXQE;
    }
    if (delayed && !(cause & E1000_ICR_TXDW)) {
        e1000_delay_cause(s, E1000_ICR_TXDW, REG(s, E1000_TIDV), REG(s, E1000_TADV),
                          s->tidv_timer, s->tadv_timer);
    } else if (cause & E1000_ICR_TXDW) {
        qnic_timer_del(s->tidv_timer);
        qnic_timer_del(s->tadv_timer);
    }
    if (cause) {
        e1000_set_ics(s, cause);
    }
}

/* ---------------------------------------------------------------- */
/* Receive */

static uint32_t crc32_table[256];

static void __attribute__((constructor)) e1000_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
        crc32_table[i] = c;
    }
}

static uint32_t eth_fcs(const uint8_t *b, size_t len)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        c = crc32_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
    }
    return ~c;
}

static bool e1000_rx_ready(E1000State *s)
{
    return (REG(s, E1000_STATUS) & E1000_STATUS_LU) && (REG(s, E1000_RCTL) & E1000_RCTL_EN) &&
           s->pci.dev.dma_enabled;
}

/* Descriptors owned by the hardware, or -1 if the ring registers are bad. */
static int e1000_rx_avail(E1000State *s, uint32_t *ring_size)
{
    uint32_t n = REG(s, E1000_RDLEN) / E1000_RXD_SIZE;
    uint32_t rdh = REG(s, E1000_RDH), rdt = REG(s, E1000_RDT);
    *ring_size = n;
    if (n == 0 || rdh >= n || rdt >= n) {
        return -1;
    }
    return (int)((rdt + n - rdh) % n);
}

static size_t e1000_rx_bufsize(E1000State *s)
{
    uint32_t rctl = REG(s, E1000_RCTL);
    unsigned bs = (rctl & E1000_RCTL_BSIZE_MASK) >> E1000_RCTL_BSIZE_SHIFT;
    if (rctl & E1000_RCTL_BSEX) {
        static const size_t ext[4] = { 2048, 16384, 8192, 4096 };  /* 00 reserved */
        return ext[bs];
    }
    static const size_t std[4] = { 2048, 1024, 512, 256 };
    return std[bs];
}

static bool e1000_can_receive(QnicNetClient *nc)
{
    E1000State *s = nc->opaque;
    uint32_t n;
    return e1000_rx_ready(s) && e1000_rx_avail(s, &n) > 0;
}

static bool e1000_rx_filter(E1000State *s, const uint8_t *buf, size_t len)
{
    uint32_t rctl = REG(s, E1000_RCTL);

    if ((rctl & E1000_RCTL_VFE) &&
        qnic_ld16be(buf + ETH_ALEN * 2) == (REG(s, E1000_VET) & E1000_VET_MASK)) {
        uint16_t vid = qnic_ld16be(buf + QNIC_ETH_HLEN) & QNIC_VLAN_VID_MASK;
        if (!(REG(s, E1000_VFTA + 4 * (vid >> 5)) & (1u << (vid & 31)))) {
            return false;
        }
    }
    if (!qnic_eth_is_multicast(buf)) {
        if (rctl & E1000_RCTL_UPE) {
            return true;
        }
    } else if (qnic_eth_is_broadcast(buf)) {
        if (rctl & E1000_RCTL_BAM) {
            return true;
        }
    } else {
        if (rctl & E1000_RCTL_MPE) {
            return true;
        }
        static const int mo_shift[4] = { 4, 3, 2, 0 };
        unsigned sh = mo_shift[(rctl & E1000_RCTL_MO_MASK) >> E1000_RCTL_MO_SHIFT];
        unsigned h = ((buf[4] | (unsigned)buf[5] << 8) >> sh) & E1000_MTA_HASH_MASK;
        if (REG(s, E1000_MTA + 4 * (h >> 5)) & (1u << (h & 31))) {
            return true;
        }
    }
    for (int i = 0; i < E1000_RA_ENTRIES; i++) {
        uint32_t lo = REG(s, E1000_RA + 8 * i), hi = REG(s, E1000_RA + 8 * i + 4);
        uint8_t ra[6] = { lo, lo >> 8, lo >> 16, lo >> 24, hi, hi >> 8 };
        if ((hi & E1000_RAH_AV) && !memcmp(buf, ra, 6)) {
            return true;
        }
    }
    return false;
}

static void e1000_rx_csum(E1000State *s, const uint8_t *buf, size_t len,
                          uint8_t *status, uint8_t *errors, uint16_t *csum)
{
    uint32_t rxcsum = REG(s, E1000_RXCSUM);
    size_t pcss = rxcsum & E1000_RXCSUM_PCSS_MASK;
    QnicPktCsumCheck ck;

    if (pcss < len) {
        /* The unadjusted sum of the packet from PCSS on. */
        *csum = (uint16_t)~qnic_csum_fold(qnic_csum_add(0, buf + pcss, len - pcss));
    }
    if (!(rxcsum & (E1000_RXCSUM_IPOFLD | E1000_RXCSUM_TUOFLD))) {
        *status |= E1000_RXD_STAT_IXSM;
        return;
    }
    qnic_pkt_check_csum(buf, len, &ck);
    if ((rxcsum & E1000_RXCSUM_IPOFLD) && ck.ip_checked) {
        *status |= E1000_RXD_STAT_IPCS;
        if (!ck.ip_ok) {
            *errors |= E1000_RXD_ERR_IPE;
        }
    }
    if ((rxcsum & E1000_RXCSUM_TUOFLD) && ck.l4_checked) {
        *status |= E1000_RXD_STAT_TCPCS;
        if (!ck.l4_ok) {
            *errors |= E1000_RXD_ERR_TCPE;
        }
    }
    if (!(*status & (E1000_RXD_STAT_IPCS | E1000_RXD_STAT_TCPCS))) {
        *status |= E1000_RXD_STAT_IXSM;
    }
}

/* A received frame on its way into the RX ring. */
typedef struct E1000RxFrame {
    size_t len;             /* the frame, padded and with its VLAN tag stripped */
    size_t total;           /* what goes into the ring: len, plus the FCS unless SECRC */
    uint8_t vlan_status;    /* E1000_RXD_STAT_VP when a tag was stripped */
    uint16_t special;       /* the stripped tag */
} E1000RxFrame;

/* Runts and frames longer than RCTL allows are dropped (false); with SBP an
 * overlong frame is cut to what the device stores (*size). */
static bool e1000_rx_size_ok(E1000State *s, uint32_t rctl, size_t *size)
{
    if (*size < QNIC_ETH_HLEN) {
        qnic_log(QNIC_LOG_TRACE_NET, "e1000: runt frame of %zu bytes dropped\n", *size);
        return false;
    }
    if ((*size > E1000_MAX_LPE_FRAME ||
         (*size > E1000_MAX_FRAME && !(rctl & E1000_RCTL_LPE))) && !(rctl & E1000_RCTL_SBP)) {
        stat_inc(s, E1000_ROC, 1);
        return false;
    }
    if (*size > E1000_MAX_LPE_FRAME) {
        *size = E1000_MAX_LPE_FRAME;    /* SBP: store what fits */
    }
    return true;
}

/* Copy the frame into s->rx_buf, pad a runt, strip the VLAN tag when CTRL.VME
 * asks and append the FCS unless RCTL.SECRC: false when the address or VLAN
 * filter drops it. */
static bool e1000_rx_prepare(E1000State *s, uint32_t rctl, const struct iovec *iov,
                             int iovcnt, size_t size, E1000RxFrame *f)
{
    uint8_t *buf = s->rx_buf;
    uint32_t vet = REG(s, E1000_VET) & E1000_VET_MASK;

    f->len = qnic_iov_to_buf(iov, iovcnt, 0, buf, size);
    if (f->len < E1000_MIN_FRAME) {
        memset(buf + f->len, 0, E1000_MIN_FRAME - f->len);
        f->len = E1000_MIN_FRAME;
        stat_inc(s, E1000_RUC, 1);
    }
    if (!e1000_rx_filter(s, buf, f->len)) {
        return false;
    }
    f->vlan_status = 0;
    f->special = 0;
    if ((REG(s, E1000_CTRL) & E1000_CTRL_VME) && qnic_ld16be(buf + ETH_ALEN * 2) == vet) {
        f->len = qnic_pkt_vlan_strip(buf, f->len, vet, &f->special);
        f->vlan_status = E1000_RXD_STAT_VP;
    }
    f->total = f->len;
    if (!(rctl & E1000_RCTL_SECRC)) {
        qnic_st32(buf + f->len, eth_fcs(buf, f->len));
        f->total += E1000_FCS_LEN;
    }
    return true;
}

/* Write the frame into `need` descriptors of bsize bytes from RDH on, the
 * last with EOP and the checksum result, and move RDH past them. An
 * unreadable descriptor drops the rest of the frame (false). */
static bool e1000_rx_write_descs(E1000State *s, const E1000RxFrame *f, size_t need,
                                 size_t bsize, uint32_t n)
{
    uint8_t *buf = s->rx_buf;
    uint64_t base = (uint64_t)REG(s, E1000_RDBAH) << 32 | REG(s, E1000_RDBAL);
    uint32_t rdh = REG(s, E1000_RDH);
    size_t off = 0;

    for (size_t i = 0; i < need; i++) {
        uint64_t da = base + (uint64_t)rdh * E1000_RXD_SIZE;
        uint8_t d[E1000_RXD_SIZE];
        size_t chunk = MIN(bsize, f->total - off);
        bool last = i == need - 1;
        if (!qnic_dma_read(&s->pci.dev, da, d, sizeof(d))) {
            qnic_guest_error("e1000: RX descriptor at 0x%" PRIx64 " not readable; "
                             "frame dropped\n", da);
            REG(s, E1000_RDH) = rdh;
            return false;
        }
        uint64_t addr = qnic_ld64(d + E1000_RXD_ADDR);
        if (addr == 0) {
            qnic_guest_error("e1000: RX descriptor %u has buffer address 0\n", rdh);
        } else if (!qnic_dma_write(&s->pci.dev, addr, buf + off, chunk)) {
            qnic_guest_error("e1000: RX buffer 0x%" PRIx64 " not writable\n", addr);
        }
        uint8_t status = E1000_RXD_STAT_DD | f->vlan_status, errors = 0;
        uint16_t csum = 0;
        if (last) {
            status |= E1000_RXD_STAT_EOP;
            e1000_rx_csum(s, buf, f->len, &status, &errors, &csum);
        }
        qnic_st16(d + E1000_RXD_LENGTH, (uint16_t)chunk);
        qnic_st16(d + E1000_RXD_CSUM, csum);
        d[E1000_RXD_STATUS] = status;
        d[E1000_RXD_ERRORS] = errors;
        qnic_st16(d + E1000_RXD_SPECIAL, f->special);
        /* write back the second half (length .. special) only */
        if (!qnic_dma_write(&s->pci.dev, da + E1000_RXD_LENGTH, d + E1000_RXD_LENGTH,
                            E1000_RXD_SIZE - E1000_RXD_LENGTH)) {
            qnic_guest_error("e1000: RX descriptor write-back to 0x%" PRIx64 " failed\n", da);
        }
        off += chunk;
        rdh = (rdh + 1) % n;
    }
    REG(s, E1000_RDH) = rdh;
    return true;
}

/* After a delivered frame: the receive counters, RXDMT0 when the free
 * descriptors fall to the RDMTS fraction of the ring, and the RX timers. */
static void e1000_rx_done(E1000State *s, uint32_t rctl, size_t len, uint32_t n)
{
    const uint8_t *buf = s->rx_buf;
    uint32_t rdh = REG(s, E1000_RDH);

    stat_inc(s, E1000_GPRC, 1);
    stat_inc(s, E1000_TPR, 1);
    stat_add64(s, E1000_GORCL, len + E1000_FCS_LEN);
    stat_add64(s, E1000_TORL, len + E1000_FCS_LEN);
    stat_size(s, E1000_PRC64, len + E1000_FCS_LEN);
    if (qnic_eth_is_multicast(buf)) {
        stat_inc(s, qnic_eth_is_broadcast(buf) ? E1000_BPRC : E1000_MPRC, 1);
    }

    uint32_t left = (REG(s, E1000_RDT) + n - rdh) % n;
    unsigned shift = 1 + ((rctl & E1000_RCTL_RDMTS_MASK) >> E1000_RCTL_RDMTS_SHIFT);
    if (left <= (n >> shift)) {
        e1000_set_ics(s, E1000_ICR_RXDMT0);
    }
    e1000_delay_cause(s, E1000_ICR_RXT0, REG(s, E1000_RDTR), REG(s, E1000_RADV),
                      s->rdtr_timer, s->radv_timer);
}

static ssize_t e1000_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    E1000State *s = nc->opaque;
    size_t size = qnic_iov_size(iov, iovcnt);
    uint32_t rctl = REG(s, E1000_RCTL);
    E1000RxFrame f;
    size_t bsize, need;
    uint32_t n;
    int avail;

    if (!e1000_rx_ready(s)) {
        return size;    /* receiver off or link down: the wire drops it */
    }
    if (!e1000_rx_size_ok(s, rctl, &size)) {
        return size;
    }
    avail = e1000_rx_avail(s, &n);
    if (avail <= 0) {
        stat_inc(s, E1000_RNBC, 1);
        return 0;       /* queued until the guest gives buffers (RDT write) */
    }
    if (!e1000_rx_prepare(s, rctl, iov, iovcnt, size, &f)) {
        return size;
    }
    bsize = e1000_rx_bufsize(s);
    need = (f.total + bsize - 1) / bsize;
    if (need > n - 1) {
        /* Can never fit in this ring: overrun. */
        qnic_guest_error("e1000: %zu-byte frame needs %zu descriptors, ring has %u\n",
                         f.total, need, n);
        stat_inc(s, E1000_MPC, 1);
        e1000_set_ics(s, E1000_ICR_RXO);
        return size;
    }
    if (need > (size_t)avail) {
        stat_inc(s, E1000_RNBC, 1);
        return 0;
    }
    if (e1000_rx_write_descs(s, &f, need, bsize, n)) {
        e1000_rx_done(s, rctl, f.len, n);
    }
    return size;
}

static void e1000_flush_rx(E1000State *s)
{
    if (s->nic && e1000_can_receive(s->nic->ncs[0])) {
        qnic_net_flush_queued(s->nic->ncs[0]);
    }
}

static void e1000_link_status_changed(QnicNetClient *nc)
{
    E1000State *s = nc->opaque;
    uint32_t old = REG(s, E1000_STATUS);

    if (nc->link_down) {
        e1000_link_down(s);
    } else if (e1000_have_autoneg(s) && !(s->phy[E1000_PHY_STATUS] & E1000_MII_SR_AN_COMPLETE)) {
        e1000_restart_autoneg(s);
    } else {
        e1000_link_up(s);
    }
    if (REG(s, E1000_STATUS) != old) {
        e1000_set_ics(s, E1000_ICR_LSC);
    }
    e1000_flush_rx(s);
}

/* ---------------------------------------------------------------- */
/* Registers */

static void e1000_reset_regs(E1000State *s)
{
    qnic_timer_del(s->autoneg_timer);
    qnic_timer_del(s->itr_timer);
    qnic_timer_del(s->rdtr_timer);
    qnic_timer_del(s->radv_timer);
    qnic_timer_del(s->tidv_timer);
    qnic_timer_del(s->tadv_timer);
    memset(s->mac, 0, sizeof(s->mac));
    memset(&s->ee, 0, sizeof(s->ee));
    memset(&s->ctx, 0, sizeof(s->ctx));
    memset(&s->tso_ctx, 0, sizeof(s->tso_ctx));
    s->tx_in_frame = false;
    s->tx_len = 0;
    s->ioaddr = 0;

    e1000_phy_reset(s);
    REG(s, E1000_CTRL) = E1000_CTRL_SWDPIN2 | E1000_CTRL_SWDPIN0 | E1000_CTRL_SPD_1000 |
                         E1000_CTRL_SLU;
    REG(s, E1000_STATUS) = E1000_STATUS_RESET_VALUE;
    REG(s, E1000_LEDCTL) = 0x0602;
    REG(s, E1000_PBA) = 0x00100030;
    REG(s, E1000_MANC) = 0x00222300;
    REG(s, E1000_VET) = s->prop_init_vet ? ETH_P_8021Q : 0;
    REG(s, E1000_MDIC) = E1000_MDIC_READY;
    /* RA[0] from the EEPROM's MAC, valid. */
    REG(s, E1000_RA) = s->eeprom[0] | (uint32_t)s->eeprom[1] << 16;
    REG(s, E1000_RA + 4) = s->eeprom[2] | E1000_RAH_AV;
    if (e1000_nc_link_down(s)) {
        e1000_link_down(s);
    }
    if (s->irq_level) {
        s->irq_level = 0;
        qnic_pci_set_irq(&s->pci, 0);
    }
}

static bool e1000_plain_reg(unsigned off)
{
    switch (off) {
    case E1000_CTRL_EXT: case E1000_FLA: case E1000_FCAL: case E1000_FCAH: case E1000_FCT:
    case E1000_FCTTV: case E1000_TXCW: case E1000_RXCW: case E1000_TCTL_EXT: case E1000_TIPG:
    case E1000_AIT: case E1000_LEDCTL: case E1000_PBA: case E1000_FCRTL: case E1000_FCRTH:
    case E1000_RDFH: case E1000_RDFT: case E1000_RDFHS: case E1000_RDFTS: case E1000_RDFPC:
    case E1000_RDBAH: case E1000_RXDCTL: case E1000_RSRPD: case E1000_TXDMAC:
    case E1000_TDFH: case E1000_TDFT: case E1000_TDFHS: case E1000_TDFTS: case E1000_TDFPC:
    case E1000_TDBAH: case E1000_TXDCTL: case E1000_TSPMT: case E1000_RXCSUM:
    case E1000_WUC: case E1000_WUFC: case E1000_WUS: case E1000_MANC: case E1000_IPAV:
    case E1000_WUPL:
        return true;
    }
    return (off >= E1000_MTA && off < E1000_MTA + 4 * E1000_MTA_ENTRIES) ||
           (off >= E1000_RA && off < E1000_RA + 8 * E1000_RA_ENTRIES) ||
           (off >= E1000_VFTA && off < E1000_VFTA + 4 * E1000_VFTA_ENTRIES) ||
           (off >= E1000_IP4AT && off < E1000_IP4AT + 0x20) ||
           (off >= E1000_IP6AT && off < E1000_IP6AT + 0x10) ||
           (off >= E1000_WUPM && off < E1000_WUPM + 0x80) ||
           (off >= E1000_FFLT && off < E1000_FFLT + 0x20) ||
           (off >= E1000_FFMT && off < E1000_FFMT + 0x400) ||
           (off >= E1000_FFVT && off < E1000_FFVT + 0x400);
}

static uint32_t e1000_reg_read(E1000State *s, unsigned off)
{
    uint32_t v;

    switch (off) {
    case E1000_EECD:
        return e1000_eecd_read(s);
    case E1000_ICR:
        v = REG(s, E1000_ICR);
        REG(s, E1000_ICR) = 0;
        e1000_update_irq(s);
        return v;
    case E1000_ICS:
        return REG(s, E1000_ICR);
    case E1000_IMC:
        return 0;
    case E1000_CTRL: case E1000_STATUS: case E1000_EERD: case E1000_MDIC: case E1000_VET:
    case E1000_ITR: case E1000_IMS: case E1000_RCTL: case E1000_TCTL:
    case E1000_RDBAL: case E1000_RDLEN: case E1000_RDH: case E1000_RDT: case E1000_RDTR:
    case E1000_RADV: case E1000_TDBAL: case E1000_TDLEN: case E1000_TDH: case E1000_TDT:
    case E1000_TIDV: case E1000_TADV:
        return REG(s, off);
    }
    if (off >= E1000_STATS_START && off < E1000_STATS_END) {
        /* Statistics clear on read; reading the high half of a 64-bit
         * counter clears both halves. */
        v = REG(s, off);
        REG(s, off) = 0;
        if (off == E1000_GORCH || off == E1000_GOTCH || off == E1000_TORH || off == E1000_TOTH) {
            REG(s, off - 4) = 0;
        }
        return v;
    }
    if (e1000_plain_reg(off)) {
        return REG(s, off);
    }
    qnic_unimp("e1000: read of unknown register 0x%05x\n", off);
    return 0;
}

static void e1000_ctrl_write(E1000State *s, uint32_t val)
{
    if (val & E1000_CTRL_RST) {
        /* Software reset: the MAC returns to its power-on state
         * (PCI config space and the PHY are untouched). */
        uint16_t phy[E1000_PHY_REGS];
        memcpy(phy, s->phy, sizeof(phy));
        e1000_reset_regs(s);
        memcpy(s->phy, phy, sizeof(phy));
        if (!(phy[E1000_PHY_STATUS] & E1000_MII_SR_LINK_STATUS)) {
            REG(s, E1000_STATUS) &= ~E1000_STATUS_LU;
        }
        return;
    }
    if (val & E1000_CTRL_PHY_RST) {
        e1000_phy_reset(s);
        if (e1000_nc_link_down(s)) {
            e1000_link_down(s);
        }
    }
    REG(s, E1000_CTRL) = val & ~(E1000_CTRL_RST | E1000_CTRL_PHY_RST);
}

/* EERD: a START reads the addressed EEPROM word at once. */
static void e1000_eerd_write(E1000State *s, uint32_t val)
{
    if (val & E1000_EERD_START) {
        unsigned a = (val & E1000_EERD_ADDR_MASK) >> E1000_EERD_ADDR_SHIFT;
        uint32_t data = a < E1000_EEPROM_WORDS ? s->eeprom[a] : 0;
        REG(s, E1000_EERD) = data << E1000_EERD_DATA_SHIFT |
                             a << E1000_EERD_ADDR_SHIFT | E1000_EERD_DONE;
    } else {
        REG(s, E1000_EERD) = val & E1000_EERD_ADDR_MASK;
    }
}

/* ICR, ICS, IMS, IMC, ITR: false when off is none of them. */
static bool e1000_irq_reg_write(E1000State *s, unsigned off, uint32_t val)
{
    switch (off) {
    case E1000_ICR:
        REG(s, E1000_ICR) &= ~val;
        e1000_update_irq(s);
        return true;
    case E1000_ICS:
        e1000_set_ics(s, val);
        return true;
    case E1000_IMS:
        REG(s, E1000_IMS) |= val & E1000_ICR_MASK;
        e1000_update_irq(s);
        return true;
    case E1000_IMC:
        REG(s, E1000_IMS) &= ~val;
        e1000_update_irq(s);
        return true;
    case E1000_ITR:
        REG(s, off) = val & E1000_ITR_MASK;
        return true;
    default:
        return false;
    }
}

/* A new RDT hands buffers to the device: frames queued for lack of them go. */
static void e1000_rdt_write(E1000State *s, uint32_t val)
{
    uint32_t n = REG(s, E1000_RDLEN) / E1000_RXD_SIZE;

    REG(s, E1000_RDT) = val & E1000_DH_DT_MASK;
    if (n == 0 || REG(s, E1000_RDT) >= n) {
        qnic_guest_error("e1000: RDT %u with a %u-descriptor ring\n", REG(s, E1000_RDT), n);
        return;
    }
    e1000_flush_rx(s);
}

/* The RX and TX rings: control, base, length, head, tail and the delay
 * timers. False when off is none of them. */
static bool e1000_ring_reg_write(E1000State *s, unsigned off, uint32_t val)
{
    switch (off) {
    case E1000_RCTL:
        REG(s, off) = val;
        e1000_flush_rx(s);
        return true;
    case E1000_RDBAL: case E1000_TDBAL:
        REG(s, off) = val & E1000_DBAL_MASK;
        return true;
    case E1000_RDLEN: case E1000_TDLEN:
        REG(s, off) = val & E1000_DLEN_MASK;
        return true;
    case E1000_RDH: case E1000_TDH:
        REG(s, off) = val & E1000_DH_DT_MASK;
        return true;
    case E1000_RDT:
        e1000_rdt_write(s, val);
        return true;
    case E1000_RDTR:
        REG(s, off) = val & E1000_DELAY_MASK;
        if ((val & E1000_RDTR_FPD) && qnic_timer_pending(s->rdtr_timer)) {
            e1000_rx_delay_cb(s);
        }
        return true;
    case E1000_RADV: case E1000_TIDV: case E1000_TADV:
        REG(s, off) = val & E1000_DELAY_MASK;
        return true;
    case E1000_TDT:
        REG(s, off) = val & E1000_DH_DT_MASK;
        e1000_start_xmit(s);
        return true;
    case E1000_TCTL:
        REG(s, off) = val;
        e1000_start_xmit(s);
        return true;
    default:
        return false;
    }
}

static void e1000_reg_write(E1000State *s, unsigned off, uint32_t val)
{
    switch (off) {
    case E1000_CTRL:
        e1000_ctrl_write(s, val);
        return;
    case E1000_STATUS:
        return;     /* read-only */
    case E1000_EECD:
        e1000_eecd_write(s, val);
        return;
    case E1000_EERD:
        e1000_eerd_write(s, val);
        return;
    case E1000_MDIC:
        e1000_mdic_write(s, val);
        return;
    case E1000_VET:
        REG(s, off) = val & E1000_VET_MASK;
        return;
    }
    if (e1000_irq_reg_write(s, off, val) || e1000_ring_reg_write(s, off, val)) {
        return;
    }
    if (off >= E1000_STATS_START && off < E1000_STATS_END) {
        return;     /* read-only counters */
    }
    if (e1000_plain_reg(off)) {
        REG(s, off) = val;
        return;
    }
    qnic_unimp("e1000: write 0x%x to unknown register 0x%05x\n", val, off);
}

static uint64_t e1000_mmio_read(void *opaque, uint64_t addr, unsigned size)
{
    return e1000_reg_read(opaque, (unsigned)addr & ~3u);
}

static void e1000_mmio_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    e1000_reg_write(opaque, (unsigned)addr & ~3u, (uint32_t)val);
}

static const QnicMemOps e1000_mmio_ops = {
    .read = e1000_mmio_read, .write = e1000_mmio_write,
    .valid_min = 1, .valid_max = 4,
    .impl_min = 4, .impl_max = 4,
};

/* IOADDR/IODATA: a window onto the MMIO registers through port I/O. */
static uint64_t e1000_io_read(void *opaque, uint64_t addr, unsigned size)
{
    E1000State *s = opaque;
    switch (addr) {
    case E1000_IOADDR:
        return s->ioaddr;
    case E1000_IODATA:
        if (s->ioaddr < E1000_MMIO_SIZE) {
            return e1000_reg_read(s, s->ioaddr & ~3u);
        }
        qnic_guest_error("e1000: IODATA read with IOADDR 0x%x out of range\n", s->ioaddr);
        return 0;
    default:
        return 0;
    }
}

static void e1000_io_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    E1000State *s = opaque;
    switch (addr) {
    case E1000_IOADDR:
        s->ioaddr = (uint32_t)val & (E1000_MMIO_SIZE - 1) & ~3u;
        return;
    case E1000_IODATA:
        e1000_reg_write(s, s->ioaddr, (uint32_t)val);
        return;
    default:
        qnic_guest_error("e1000: write to reserved I/O offset 0x%" PRIx64 "\n", addr);
    }
}

static const QnicMemOps e1000_io_ops = {
    .read = e1000_io_read, .write = e1000_io_write,
    .valid_min = 4, .valid_max = 4,
    .impl_min = 4, .impl_max = 4,
};

/* ---------------------------------------------------------------- */
/* Device state (qnic/state.h): the section "e1000", after "pci" */

/* The register file is saved up to the end of the flexible filter tables,
 * the last registers the model stores. */
#define E1000_SNAP_MAC_WORDS ((E1000_FFVT + 0x400) / 4)
#define E1000_NO_TIMER UINT64_MAX

typedef struct E1000Snap {
    uint32_t mac[E1000_SNAP_MAC_WORDS];     /* register offsets as in the device */
    uint16_t phy[E1000_PHY_REGS];
    uint16_t eeprom[E1000_EEPROM_WORDS];
    uint32_t ioaddr;
    uint32_t ee_eecd, ee_val_in, ee_bits_in, ee_out_pos;
    bool ee_reading;
    E1000TxCtx ctx, tso_ctx;
    bool tx_in_frame, tx_bad, tx_legacy, tx_tse, tx_vle;
    uint8_t tx_popts, tx_cso, tx_css, tx_cmd;
    uint16_t tx_special;
    uint32_t tx_len;
    uint8_t tx_frame[E1000_TX_BUF_SIZE];
    bool irq_level;
    /* virtual-clock deadlines in ns, E1000_NO_TIMER when not armed */
    uint64_t timer_autoneg, timer_itr, timer_rdtr, timer_radv, timer_tidv, timer_tadv;
} E1000Snap;

#define E1000_SREGS(n, off, cnt, lo, hi) \
    { .name = (n), .kind = QNIC_SF_UINT, .offset = offsetof(E1000Snap, mac) + (off), \
      .size = 4, .count = (cnt), .count_offset = QNIC_SF_NO_COUNT, .min = (lo), .max = (hi) }
#define E1000_SREG(n, off) E1000_SREGS(n, off, 0, 0, 0)
#define E1000_SREG_MAX(n, off, hi) E1000_SREGS(n, off, 0, 0, hi)

static const QnicStateField e1000_ctx_fields[] = {
    QNIC_STATE_UINT(E1000TxCtx, ipcss, 0), QNIC_STATE_UINT(E1000TxCtx, ipcso, 0),
    QNIC_STATE_UINT(E1000TxCtx, tucss, 0), QNIC_STATE_UINT(E1000TxCtx, tucso, 0),
    QNIC_STATE_UINT(E1000TxCtx, tucmd, 0), QNIC_STATE_UINT(E1000TxCtx, hdrlen, 0),
    QNIC_STATE_UINT(E1000TxCtx, ipcse, 0), QNIC_STATE_UINT(E1000TxCtx, tucse, 0),
    QNIC_STATE_UINT(E1000TxCtx, mss, 0),
    QNIC_STATE_UINT_RANGE(E1000TxCtx, paylen, 0, 0, E1000_TXDD_LEN_MASK),
    QNIC_STATE_END,
};

static const QnicStateDesc e1000_ctx_desc = {
    .name = "e1000-tx-ctx", .version = 1, .min_version = 1,
    .size = sizeof(E1000TxCtx), .fields = e1000_ctx_fields,
};

#define E1000_SCTX(f) \
    { .name = #f, .kind = QNIC_SF_STRUCT, .offset = offsetof(E1000Snap, f), \
      .size = sizeof(E1000TxCtx), .count_offset = QNIC_SF_NO_COUNT, .sub = &e1000_ctx_desc }

static const QnicStateField e1000_state_fields[] = {
    E1000_SREG("ctrl", E1000_CTRL), E1000_SREG("status", E1000_STATUS),
    E1000_SREG("eerd", E1000_EERD), E1000_SREG("mdic", E1000_MDIC),
    E1000_SREG_MAX("vet", E1000_VET, E1000_VET_MASK),
    E1000_SREG_MAX("icr", E1000_ICR, E1000_ICR_MASK),
    E1000_SREG_MAX("ims", E1000_IMS, E1000_ICR_MASK),
    E1000_SREG_MAX("itr", E1000_ITR, E1000_ITR_MASK),
    E1000_SREG("rctl", E1000_RCTL), E1000_SREG("tctl", E1000_TCTL),
    E1000_SREG("rdbal", E1000_RDBAL), E1000_SREG("rdbah", E1000_RDBAH),
    E1000_SREG("rdlen", E1000_RDLEN),
    E1000_SREG_MAX("rdh", E1000_RDH, E1000_DH_DT_MASK),
    E1000_SREG_MAX("rdt", E1000_RDT, E1000_DH_DT_MASK),
    E1000_SREG_MAX("rdtr", E1000_RDTR, E1000_DELAY_MASK),
    E1000_SREG_MAX("radv", E1000_RADV, E1000_DELAY_MASK),
    E1000_SREG("tdbal", E1000_TDBAL), E1000_SREG("tdbah", E1000_TDBAH),
    E1000_SREG("tdlen", E1000_TDLEN),
    E1000_SREG_MAX("tdh", E1000_TDH, E1000_DH_DT_MASK),
    E1000_SREG_MAX("tdt", E1000_TDT, E1000_DH_DT_MASK),
    E1000_SREG_MAX("tidv", E1000_TIDV, E1000_DELAY_MASK),
    E1000_SREG_MAX("tadv", E1000_TADV, E1000_DELAY_MASK),
    E1000_SREG("ctrl_ext", E1000_CTRL_EXT), E1000_SREG("fla", E1000_FLA),
    E1000_SREG("fcal", E1000_FCAL), E1000_SREG("fcah", E1000_FCAH),
    E1000_SREG("fct", E1000_FCT), E1000_SREG("fcttv", E1000_FCTTV),
    E1000_SREG("txcw", E1000_TXCW), E1000_SREG("rxcw", E1000_RXCW),
    E1000_SREG("tctl_ext", E1000_TCTL_EXT), E1000_SREG("tipg", E1000_TIPG),
    E1000_SREG("ait", E1000_AIT), E1000_SREG("ledctl", E1000_LEDCTL),
    E1000_SREG("pba", E1000_PBA), E1000_SREG("fcrtl", E1000_FCRTL),
    E1000_SREG("fcrth", E1000_FCRTH), E1000_SREG("rdfh", E1000_RDFH),
    E1000_SREG("rdft", E1000_RDFT), E1000_SREG("rdfhs", E1000_RDFHS),
    E1000_SREG("rdfts", E1000_RDFTS), E1000_SREG("rdfpc", E1000_RDFPC),
    E1000_SREG("rxdctl", E1000_RXDCTL), E1000_SREG("rsrpd", E1000_RSRPD),
    E1000_SREG("txdmac", E1000_TXDMAC), E1000_SREG("tdfh", E1000_TDFH),
    E1000_SREG("tdft", E1000_TDFT), E1000_SREG("tdfhs", E1000_TDFHS),
    E1000_SREG("tdfts", E1000_TDFTS), E1000_SREG("tdfpc", E1000_TDFPC),
    E1000_SREG("txdctl", E1000_TXDCTL), E1000_SREG("tspmt", E1000_TSPMT),
    E1000_SREG("rxcsum", E1000_RXCSUM), E1000_SREG("wuc", E1000_WUC),
    E1000_SREG("wufc", E1000_WUFC), E1000_SREG("wus", E1000_WUS),
    E1000_SREG("manc", E1000_MANC), E1000_SREG("ipav", E1000_IPAV),
    E1000_SREG("wupl", E1000_WUPL),
    E1000_SREGS("stats", E1000_STATS_START, (E1000_STATS_END - E1000_STATS_START) / 4, 0, 0),
    E1000_SREGS("mta", E1000_MTA, E1000_MTA_ENTRIES, 0, 0),
    E1000_SREGS("ra", E1000_RA, 2 * E1000_RA_ENTRIES, 0, 0),
    E1000_SREGS("vfta", E1000_VFTA, E1000_VFTA_ENTRIES, 0, 0),
    E1000_SREGS("ip4at", E1000_IP4AT, 0x20 / 4, 0, 0),
    E1000_SREGS("ip6at", E1000_IP6AT, 0x10 / 4, 0, 0),
    E1000_SREGS("wupm", E1000_WUPM, 0x80 / 4, 0, 0),
    E1000_SREGS("fflt", E1000_FFLT, 0x20 / 4, 0, 0),
    E1000_SREGS("ffmt", E1000_FFMT, 0x400 / 4, 0, 0),
    E1000_SREGS("ffvt", E1000_FFVT, 0x400 / 4, 0, 0),
    QNIC_STATE_UINT_ARRAY(E1000Snap, phy, 0),
    QNIC_STATE_UINT_ARRAY(E1000Snap, eeprom, 0),
    QNIC_STATE_UINT_RANGE(E1000Snap, ioaddr, 0, 0, E1000_MMIO_SIZE - 4),
    QNIC_STATE_UINT(E1000Snap, ee_eecd, 0),
    QNIC_STATE_UINT(E1000Snap, ee_val_in, 0),
    QNIC_STATE_UINT_RANGE(E1000Snap, ee_bits_in, 0, 0, 3 + E1000_EEPROM_ADDR_BITS),
    QNIC_STATE_UINT(E1000Snap, ee_out_pos, 0),
    QNIC_STATE_BOOL(E1000Snap, ee_reading, 0),
    E1000_SCTX(ctx), E1000_SCTX(tso_ctx),
    QNIC_STATE_BOOL(E1000Snap, tx_in_frame, 0), QNIC_STATE_BOOL(E1000Snap, tx_bad, 0),
    QNIC_STATE_BOOL(E1000Snap, tx_legacy, 0), QNIC_STATE_BOOL(E1000Snap, tx_tse, 0),
    QNIC_STATE_BOOL(E1000Snap, tx_vle, 0),
    QNIC_STATE_UINT(E1000Snap, tx_popts, 0), QNIC_STATE_UINT(E1000Snap, tx_cso, 0),
    QNIC_STATE_UINT(E1000Snap, tx_css, 0), QNIC_STATE_UINT(E1000Snap, tx_cmd, 0),
    QNIC_STATE_UINT(E1000Snap, tx_special, 0),
    { .name = "tx_frame", .kind = QNIC_SF_UINT, .offset = offsetof(E1000Snap, tx_frame),
      .size = 1, .count = E1000_TX_BUF_SIZE, .count_offset = offsetof(E1000Snap, tx_len) },
    QNIC_STATE_BOOL(E1000Snap, irq_level, 0),
    QNIC_STATE_UINT(E1000Snap, timer_autoneg, 0), QNIC_STATE_UINT(E1000Snap, timer_itr, 0),
    QNIC_STATE_UINT(E1000Snap, timer_rdtr, 0), QNIC_STATE_UINT(E1000Snap, timer_radv, 0),
    QNIC_STATE_UINT(E1000Snap, timer_tidv, 0), QNIC_STATE_UINT(E1000Snap, timer_tadv, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc e1000_state_desc = {
    .name = "e1000", .version = 1, .min_version = 1,
    .size = sizeof(E1000Snap), .fields = e1000_state_fields,
};

static uint64_t e1000_timer_save(const QnicTimer *t)
{
    return qnic_timer_pending(t) ? (uint64_t)qnic_timer_expire_time(t) : E1000_NO_TIMER;
}

static void e1000_timer_load(QnicTimer *t, uint64_t deadline)
{
    qnic_timer_del(t);
    if (deadline != E1000_NO_TIMER) {
        qnic_timer_mod(t, (int64_t)deadline);
    }
}

static void e1000_snap_fill(E1000State *s, E1000Snap *p)
{
    memcpy(p->mac, s->mac, sizeof(p->mac));
    memcpy(p->phy, s->phy, sizeof(p->phy));
    memcpy(p->eeprom, s->eeprom, sizeof(p->eeprom));
    p->ioaddr = s->ioaddr;
    p->ee_eecd = s->ee.eecd;
    p->ee_val_in = s->ee.val_in;
    p->ee_bits_in = (uint32_t)s->ee.bits_in;
    p->ee_out_pos = (uint32_t)s->ee.out_pos;
    p->ee_reading = s->ee.reading;
    p->ctx = s->ctx;
    p->tso_ctx = s->tso_ctx;
    p->tx_in_frame = s->tx_in_frame;
    p->tx_bad = s->tx_bad;
    p->tx_legacy = s->tx_legacy;
    p->tx_tse = s->tx_tse;
    p->tx_vle = s->tx_vle;
    p->tx_popts = s->tx_popts;
    p->tx_cso = s->tx_cso;
    p->tx_css = s->tx_css;
    p->tx_cmd = s->tx_cmd;
    p->tx_special = s->tx_special;
    p->tx_len = s->tx_in_frame ? (uint32_t)s->tx_len : 0;
    memcpy(p->tx_frame, s->tx_buf, p->tx_len);
    p->irq_level = s->irq_level;
    p->timer_autoneg = e1000_timer_save(s->autoneg_timer);
    p->timer_itr = e1000_timer_save(s->itr_timer);
    p->timer_rdtr = e1000_timer_save(s->rdtr_timer);
    p->timer_radv = e1000_timer_save(s->radv_timer);
    p->timer_tidv = e1000_timer_save(s->tidv_timer);
    p->timer_tadv = e1000_timer_save(s->tadv_timer);
}

#define SNAP_REG(p, off) ((p)->mac[(off) >> 2])

/* One descriptor ring: base aligned, length a multiple of 128 bytes
 * within what TDLEN/RDLEN hold, head and tail inside the ring. */
static bool e1000_snap_check_ring(const E1000Snap *p, const char *what, unsigned bal,
                                  unsigned len, unsigned head, unsigned tail, GError **errp)
{
    uint32_t n = SNAP_REG(p, len) / E1000_RXD_SIZE;

    if (SNAP_REG(p, bal) & ~E1000_DBAL_MASK) {
        qnic_error_setg(errp, "e1000: %s ring base 0x%08x is not 16-byte aligned",
                        what, SNAP_REG(p, bal));
        return false;
    }
    if (SNAP_REG(p, len) & ~E1000_DLEN_MASK) {
        qnic_error_setg(errp, "e1000: %s ring length 0x%x is not a multiple of 128 "
                        "below 1 MiB", what, SNAP_REG(p, len));
        return false;
    }
    if (n && (SNAP_REG(p, head) >= n || SNAP_REG(p, tail) >= n)) {
        qnic_error_setg(errp, "e1000: %s ring head %u / tail %u beyond its %u descriptors",
                        what, SNAP_REG(p, head), SNAP_REG(p, tail), n);
        return false;
    }
    return true;
}

static bool e1000_timer_check(uint64_t deadline, const char *name, GError **errp)
{
    if (deadline != E1000_NO_TIMER && deadline > INT64_MAX) {
        qnic_error_setg(errp, "e1000: %s timer deadline %" PRIu64 " out of range",
                        name, deadline);
        return false;
    }
    return true;
}

/* What spans fields, or is narrower than a field's type. */
static bool e1000_snap_check(const void *snap, GError **errp)
{
    const E1000Snap *p = snap;
    const uint32_t ee_bits = E1000_EECD_SK | E1000_EECD_CS | E1000_EECD_DI |
                             E1000_EECD_REQ | E1000_EECD_FWE_MASK;

    if (!e1000_snap_check_ring(p, "RX", E1000_RDBAL, E1000_RDLEN, E1000_RDH, E1000_RDT, errp) ||
        !e1000_snap_check_ring(p, "TX", E1000_TDBAL, E1000_TDLEN, E1000_TDH, E1000_TDT, errp)) {
        return false;
    }
    if (p->ioaddr & 3) {
        qnic_error_setg(errp, "e1000: IOADDR 0x%x is not dword aligned", p->ioaddr);
        return false;
    }
    if (p->ee_eecd & ~ee_bits) {
        qnic_error_setg(errp, "e1000: EECD shift state 0x%x has bits the device never "
                        "keeps (0x%x)", p->ee_eecd, p->ee_eecd & ~ee_bits);
        return false;
    }
    if (p->tx_len && !p->tx_in_frame) {
        qnic_error_setg(errp, "e1000: %u bytes of a TX frame but no frame in assembly",
                        p->tx_len);
        return false;
    }
    return e1000_timer_check(p->timer_autoneg, "autoneg", errp) &&
           e1000_timer_check(p->timer_itr, "itr", errp) &&
           e1000_timer_check(p->timer_rdtr, "rdtr", errp) &&
           e1000_timer_check(p->timer_radv, "radv", errp) &&
           e1000_timer_check(p->timer_tidv, "tidv", errp) &&
           e1000_timer_check(p->timer_tadv, "tadv", errp);
}

static void e1000_snap_apply(E1000State *s, const E1000Snap *p)
{
    memcpy(s->mac, p->mac, sizeof(p->mac));
    memcpy(s->phy, p->phy, sizeof(p->phy));
    memcpy(s->eeprom, p->eeprom, sizeof(p->eeprom));
    s->ioaddr = p->ioaddr;
    s->ee.eecd = p->ee_eecd;
    s->ee.val_in = p->ee_val_in;
    s->ee.bits_in = (int)p->ee_bits_in;
    s->ee.out_pos = (int)p->ee_out_pos;
    s->ee.reading = p->ee_reading;
    s->ctx = p->ctx;
    s->tso_ctx = p->tso_ctx;
    s->tx_in_frame = p->tx_in_frame;
    s->tx_bad = p->tx_bad;
    s->tx_legacy = p->tx_legacy;
    s->tx_tse = p->tx_tse;
    s->tx_vle = p->tx_vle;
    s->tx_popts = p->tx_popts;
    s->tx_cso = p->tx_cso;
    s->tx_css = p->tx_css;
    s->tx_cmd = p->tx_cmd;
    s->tx_special = p->tx_special;
    s->tx_len = p->tx_len;
    memcpy(s->tx_buf, p->tx_frame, p->tx_len);
    s->irq_level = p->irq_level;     /* the line itself is the PCI section's */
    e1000_timer_load(s->autoneg_timer, p->timer_autoneg);
    e1000_timer_load(s->itr_timer, p->timer_itr);
    e1000_timer_load(s->rdtr_timer, p->timer_rdtr);
    e1000_timer_load(s->radv_timer, p->timer_radv);
    e1000_timer_load(s->tidv_timer, p->timer_tidv);
    e1000_timer_load(s->tadv_timer, p->timer_tadv);
    /* The link is this side's backend's: a peer that is down here shows
     * as down, whatever the source saw. */
    if (e1000_nc_link_down(s)) {
        e1000_link_down(s);
    }
}

static bool e1000_save_state(QnicDevice *dev, GByteArray *out, GError **errp)
{
    E1000State *s = (E1000State *)dev;
    g_autofree E1000Snap *p = g_new0(E1000Snap, 1);

    e1000_snap_fill(s, p);
    qnic_pci_model_save_state(&s->pci, out, &e1000_state_desc, p);
    return true;
}

static bool e1000_load_state(QnicDevice *dev, QnicStateReader *r, GError **errp)
{
    E1000State *s = (E1000State *)dev;
    g_autofree E1000Snap *p = g_new0(E1000Snap, 1);

    if (!qnic_pci_model_load_state(&s->pci, r, &e1000_state_desc, p, e1000_snap_check, errp)) {
        return false;
    }
    e1000_snap_apply(s, p);
    return true;
}

/* ---------------------------------------------------------------- */
/* Device life cycle */

static const QnicNetClientOps e1000_net_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = e1000_receive_iov,
    .can_receive = e1000_can_receive,
    .link_status_changed = e1000_link_status_changed,
};

static bool e1000_realize(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    E1000State *s = (E1000State *)dev;
    s->model = &e1000_models[0];
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(e1000_models); i++) {
        if (g_str_equal(dev->cls->name, e1000_models[i].name)) {
            s->model = &e1000_models[i];
        }
    }
    QnicPciIds ids = {
        .vendor_id = E1000_VENDOR_INTEL,
        .device_id = s->model->device_id,
        .revision = E1000_REVISION,
        .class_code = 0x020000,             /* Ethernet controller */
        .subsystem_vendor_id = 0x1af4,      /* QEMU's default subsystem */
        .subsystem_id = 0x1100,
        .interrupt_pin = 1,
    };
    s->prop_autoneg = qnic_opts_get_bool(opts, "autonegotiation", true);
    s->prop_mitigation = qnic_opts_get_bool(opts, "mitigation", true);
    s->prop_init_vet = qnic_opts_get_bool(opts, "init-vet", true);
    s->prop_tso_props = qnic_opts_get_bool(opts, "migrate_tso_props", true);

    if (!qnic_pci_device_init(&s->pci, opts, &ids, "efi-e1000.rom", errp)) {
        return false;
    }
    qnic_region_init_io(&s->mmio, dev, &e1000_mmio_ops, s, "e1000-mmio", E1000_MMIO_SIZE);
    qnic_region_init_io(&s->io, dev, &e1000_io_ops, s, "e1000-io", E1000_IO_SIZE);
    qnic_pci_register_bar(&s->pci, 0, QNIC_PCI_BAR_MEM32, &s->mmio);
    qnic_pci_register_bar(&s->pci, 1, QNIC_PCI_BAR_IO, &s->io);

    s->nic = qnic_nic_new(dev->machine->cfg.backends, &e1000_net_ops, opts, dev->cls->name, 1, s, errp);
    if (!s->nic) {
        qnic_pci_device_exit(&s->pci);
        return false;
    }
    s->tx_buf = g_malloc(E1000_TX_BUF_SIZE);
    s->rx_buf = g_malloc(E1000_RX_BUF_SIZE + E1000_MIN_FRAME);
    s->autoneg_timer = qnic_timer_new(e1000_autoneg_done, s);
    s->itr_timer = qnic_timer_new(e1000_itr_timer_cb, s);
    s->rdtr_timer = qnic_timer_new(e1000_rx_delay_cb, s);
    s->radv_timer = qnic_timer_new(e1000_rx_delay_cb, s);
    s->tidv_timer = qnic_timer_new(e1000_tx_delay_cb, s);
    s->tadv_timer = qnic_timer_new(e1000_tx_delay_cb, s);
    e1000_eeprom_init(s, s->nic->mac);
    e1000_reset_regs(s);
    return true;
}

static void e1000_reset(QnicDevice *dev)
{
    E1000State *s = (E1000State *)dev;
    qnic_pci_device_reset(&s->pci);
    e1000_reset_regs(s);
}

static void e1000_unrealize(QnicDevice *dev)
{
    E1000State *s = (E1000State *)dev;
    qnic_timer_free(s->autoneg_timer);
    qnic_timer_free(s->itr_timer);
    qnic_timer_free(s->rdtr_timer);
    qnic_timer_free(s->radv_timer);
    qnic_timer_free(s->tidv_timer);
    qnic_timer_free(s->tadv_timer);
    qnic_nic_free(s->nic);
    s->nic = NULL;
    qnic_pci_device_exit(&s->pci);
    g_free(s->tx_buf);
    g_free(s->rx_buf);
}

#define E1000_CLASS(var, model_name)            \
    static const QnicDeviceClass var = {        \
        .name = model_name,                     \
        .bus = "pci",                           \
        .instance_size = sizeof(E1000State),    \
        .realize = e1000_realize,               \
        .reset = e1000_reset,                   \
        .unrealize = e1000_unrealize,           \
        .save_state = e1000_save_state,         \
        .load_state = e1000_load_state,         \
    };                                          \
    QNIC_DEVICE_REGISTER(var)

E1000_CLASS(e1000_class, "e1000")
E1000_CLASS(e1000_82544gc_class, "e1000-82544gc")
E1000_CLASS(e1000_82545em_class, "e1000-82545em")
