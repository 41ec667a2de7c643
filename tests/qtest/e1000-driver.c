/*
 * The qtest e1000 driver (see e1000-driver.h): register access through
 * BAR0, EEPROM and PHY access the way Linux's e1000 does it, and descriptor
 * rings in guest memory from the qtest allocator.
 */
#include "e1000-driver.h"

#include <string.h>

int e1kd_find(QTestState *qts)
{
    for (int devfn = 0; devfn < 256; devfn++) {
        uint32_t id = qtest_pci_cfg_readl(qts, devfn, 0);
        if ((id & 0xffff) != E1000_VENDOR_INTEL) {
            continue;
        }
        uint16_t dev = id >> 16;
        if (dev == E1000_DEV_ID_82540EM || dev == E1000_DEV_ID_82544GC ||
            dev == E1000_DEV_ID_82545EM) {
            return devfn;
        }
    }
    return -1;
}

void e1kd_init(E1kDev *d, QTestState *qts)
{
    uint64_t bars[6];
    memset(d, 0, sizeof(*d));
    d->qts = qts;
    d->devfn = e1kd_find(qts);
    g_assert_cmpint(d->devfn, >=, 0);
    d->device_id = qtest_pci_cfg_readw(qts, d->devfn, 2);
    qtest_pci_enable(qts, d->devfn, bars);
    d->mmio = bars[0];
    d->io = (uint16_t)bars[1];
    g_assert_cmphex(d->mmio, !=, 0);
}

void e1kd_free(E1kDev *d)
{
    g_free(d->tx_bufs);
    g_free(d->rx_bufs);
    d->tx_bufs = d->rx_bufs = NULL;
}

uint32_t e1kd_rd(E1kDev *d, uint32_t off)
{
    return qtest_readl(d->qts, d->mmio + off);
}

void e1kd_wr(E1kDev *d, uint32_t off, uint32_t val)
{
    qtest_writel(d->qts, d->mmio + off, val);
}

void e1kd_reset(E1kDev *d)
{
    e1kd_wr(d, E1000_IMC, 0xffffffff);
    e1kd_wr(d, E1000_RCTL, 0);
    e1kd_wr(d, E1000_TCTL, E1000_TCTL_PSP);
    e1kd_wr(d, E1000_CTRL, e1kd_rd(d, E1000_CTRL) | E1000_CTRL_RST);
    e1kd_wr(d, E1000_IMC, 0xffffffff);
    e1kd_rd(d, E1000_ICR);
}

uint16_t e1kd_eeprom_eerd(E1kDev *d, unsigned addr)
{
    e1kd_wr(d, E1000_EERD, (addr << E1000_EERD_ADDR_SHIFT) | E1000_EERD_START);
    for (int i = 0; i < 100; i++) {
        uint32_t v = e1kd_rd(d, E1000_EERD);
        if (v & E1000_EERD_DONE) {
            return v >> E1000_EERD_DATA_SHIFT;
        }
    }
    g_assert_not_reached();
}

static void ee_clock(E1kDev *d, uint32_t *eecd)
{
    e1kd_wr(d, E1000_EECD, *eecd | E1000_EECD_SK);
    *eecd = e1kd_rd(d, E1000_EECD) & ~E1000_EECD_SK;
}

static void ee_shift_out(E1kDev *d, uint32_t *eecd, uint32_t data, int bits)
{
    for (int i = bits - 1; i >= 0; i--) {
        *eecd &= ~E1000_EECD_DI;
        if (data & (1u << i)) {
            *eecd |= E1000_EECD_DI;
        }
        e1kd_wr(d, E1000_EECD, *eecd);
        ee_clock(d, eecd);
        e1kd_wr(d, E1000_EECD, *eecd);
    }
    *eecd &= ~E1000_EECD_DI;
    e1kd_wr(d, E1000_EECD, *eecd);
}

uint16_t e1kd_eeprom_bitbang(E1kDev *d, unsigned addr)
{
    uint32_t eecd = e1kd_rd(d, E1000_EECD);
    uint16_t data = 0;
    const uint32_t keep = E1000_EECD_REQ | E1000_EECD_FWE_MASK;

    /* acquire: REQ, wait for GNT */
    eecd = (eecd & keep) | E1000_EECD_REQ;
    e1kd_wr(d, E1000_EECD, eecd);
    g_assert_true(e1kd_rd(d, E1000_EECD) & E1000_EECD_GNT);
    /* select */
    eecd |= E1000_EECD_CS;
    e1kd_wr(d, E1000_EECD, eecd);
    ee_shift_out(d, &eecd, E1000_EEPROM_READ_OPCODE, 3);
    ee_shift_out(d, &eecd, addr, E1000_EEPROM_ADDR_BITS);
    for (int i = 0; i < 16; i++) {
        data <<= 1;
        e1kd_wr(d, E1000_EECD, (eecd & keep) | E1000_EECD_CS | E1000_EECD_SK);
        uint32_t v = e1kd_rd(d, E1000_EECD);
        if (v & E1000_EECD_DO) {
            data |= 1;
        }
        e1kd_wr(d, E1000_EECD, (eecd & keep) | E1000_EECD_CS);
    }
    /* standby + release */
    e1kd_wr(d, E1000_EECD, eecd & keep & ~E1000_EECD_CS);
    e1kd_wr(d, E1000_EECD, eecd & E1000_EECD_FWE_MASK);
    return data;
}

static uint32_t mdic_wait(E1kDev *d)
{
    for (int i = 0; i < 100; i++) {
        uint32_t v = e1kd_rd(d, E1000_MDIC);
        if (v & E1000_MDIC_READY) {
            return v;
        }
    }
    g_assert_not_reached();
}

uint32_t e1kd_phy_read(E1kDev *d, unsigned reg, uint16_t *val)
{
    e1kd_wr(d, E1000_MDIC, (reg << E1000_MDIC_REG_SHIFT) |
            (E1000_PHY_ADDR << E1000_MDIC_PHY_SHIFT) | E1000_MDIC_OP_READ);
    uint32_t v = mdic_wait(d);
    if (val) {
        *val = v & 0xffff;
    }
    return v;
}

uint32_t e1kd_phy_write(E1kDev *d, unsigned reg, uint16_t val)
{
    e1kd_wr(d, E1000_MDIC, val | (reg << E1000_MDIC_REG_SHIFT) |
            (E1000_PHY_ADDR << E1000_MDIC_PHY_SHIFT) | E1000_MDIC_OP_WRITE);
    return mdic_wait(d);
}

void e1kd_start(E1kDev *d, unsigned tx_n, unsigned rx_n, uint32_t rctl_extra)
{
    QTestState *qts = d->qts;
    d->tx_n = tx_n;
    d->rx_n = rx_n;
    d->rx_bufsize = E1KD_BUF;
    d->tx_ring = qtest_guest_alloc(qts, tx_n * 16, 128);
    d->rx_ring = qtest_guest_alloc(qts, rx_n * 16, 128);
    qtest_memset(qts, d->tx_ring, 0, tx_n * 16);
    qtest_memset(qts, d->rx_ring, 0, rx_n * 16);
    d->tx_bufs = g_new0(uint64_t, tx_n);
    d->rx_bufs = g_new0(uint64_t, rx_n);
    for (unsigned i = 0; i < tx_n; i++) {
        d->tx_bufs[i] = qtest_guest_alloc(qts, E1KD_BUF, 64);
    }
    for (unsigned i = 0; i < rx_n; i++) {
        uint8_t desc[16] = { 0 };
        d->rx_bufs[i] = qtest_guest_alloc(qts, E1KD_BUF, 64);
        for (int k = 0; k < 8; k++) {
            desc[k] = d->rx_bufs[i] >> (8 * k);
        }
        qtest_memwrite(qts, d->rx_ring + 16 * i, desc, 16);
    }
    d->tx_tail = 0;
    d->rx_next = 0;

    e1kd_wr(d, E1000_TDBAL, (uint32_t)d->tx_ring);
    e1kd_wr(d, E1000_TDBAH, (uint32_t)(d->tx_ring >> 32));
    e1kd_wr(d, E1000_TDLEN, tx_n * 16);
    e1kd_wr(d, E1000_TDH, 0);
    e1kd_wr(d, E1000_TDT, 0);
    e1kd_wr(d, E1000_TCTL, E1000_TCTL_EN | E1000_TCTL_PSP | (0x0f << 4) | (0x40 << 12));

    e1kd_wr(d, E1000_RDBAL, (uint32_t)d->rx_ring);
    e1kd_wr(d, E1000_RDBAH, (uint32_t)(d->rx_ring >> 32));
    e1kd_wr(d, E1000_RDLEN, rx_n * 16);
    e1kd_wr(d, E1000_RDH, 0);
    e1kd_wr(d, E1000_RDT, 0);
    e1kd_wr(d, E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_SECRC | rctl_extra);
    e1kd_wr(d, E1000_RDT, rx_n - 1);
}

static unsigned tx_post(E1kDev *d, const uint8_t desc[16])
{
    unsigned i = d->tx_tail;
    qtest_memwrite(d->qts, d->tx_ring + 16 * i, desc, 16);
    d->tx_tail = (i + 1) % d->tx_n;
    return i;
}

unsigned e1kd_tx_legacy(E1kDev *d, const void *frame, size_t len, uint8_t cmd_extra,
                        uint8_t cso, uint8_t css, uint16_t special)
{
    uint8_t desc[16] = { 0 };
    g_assert_cmpuint(len, <=, E1KD_BUF);
    uint64_t buf = d->tx_bufs[d->tx_tail];
    qtest_memwrite(d->qts, buf, frame, len);
    for (int k = 0; k < 8; k++) {
        desc[k] = buf >> (8 * k);
    }
    desc[8] = len & 0xff;
    desc[9] = len >> 8;
    desc[E1000_TXD_CSO] = cso;
    desc[E1000_TXD_CMD] = E1000_TXD_CMD_EOP | E1000_TXD_CMD_RS | E1000_TXD_CMD_IFCS | cmd_extra;
    desc[E1000_TXD_CSS] = css;
    desc[14] = special & 0xff;
    desc[15] = special >> 8;
    unsigned i = tx_post(d, desc);
    e1kd_wr(d, E1000_TDT, d->tx_tail);
    return i;
}

unsigned e1kd_tx_context(E1kDev *d, uint8_t ipcss, uint8_t ipcso, uint16_t ipcse,
                         uint8_t tucss, uint8_t tucso, uint16_t tucse,
                         uint8_t tucmd, uint32_t paylen, uint8_t hdrlen, uint16_t mss)
{
    uint8_t desc[16] = { 0 };
    uint32_t cl = (paylen & 0xfffff) | (uint32_t)(tucmd | E1000_TXD_CMD_DEXT) << 24;
    desc[0] = ipcss;
    desc[1] = ipcso;
    desc[2] = ipcse & 0xff;
    desc[3] = ipcse >> 8;
    desc[4] = tucss;
    desc[5] = tucso;
    desc[6] = tucse & 0xff;
    desc[7] = tucse >> 8;
    for (int k = 0; k < 4; k++) {
        desc[8 + k] = cl >> (8 * k);
    }
    desc[13] = hdrlen;
    desc[14] = mss & 0xff;
    desc[15] = mss >> 8;
    return tx_post(d, desc);
}

unsigned e1kd_tx_data(E1kDev *d, const void *frame, size_t len, size_t chunk,
                      uint8_t dcmd, uint8_t popts, uint16_t special)
{
    const uint8_t *f = frame;
    unsigned last = 0;
    g_assert_cmpuint(chunk, <=, E1KD_BUF);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = MIN(chunk, len - off);
        uint8_t desc[16] = { 0 };
        uint64_t buf = d->tx_bufs[d->tx_tail];
        qtest_memwrite(d->qts, buf, f + off, n);
        for (int k = 0; k < 8; k++) {
            desc[k] = buf >> (8 * k);
        }
        uint8_t cmd = dcmd | E1000_TXD_CMD_DEXT | E1000_TXD_CMD_RS | E1000_TXD_CMD_IFCS;
        if (off + n == len) {
            cmd |= E1000_TXD_CMD_EOP;
        }
        uint32_t ld = (uint32_t)n | (uint32_t)E1000_TXD_DTYP_DATA << E1000_TXD_DTYP_SHIFT |
                      (uint32_t)cmd << 24;
        for (int k = 0; k < 4; k++) {
            desc[8 + k] = ld >> (8 * k);
        }
        desc[E1000_TXDD_POPTS] = popts;
        desc[14] = special & 0xff;
        desc[15] = special >> 8;
        last = tx_post(d, desc);
    }
    e1kd_wr(d, E1000_TDT, d->tx_tail);
    return last;
}

uint8_t e1kd_tx_status(E1kDev *d, unsigned i)
{
    return qtest_readb(d->qts, d->tx_ring + 16 * i + E1000_TXD_STATUS);
}

int e1kd_rx(E1kDev *d, void *buf, size_t cap, uint8_t *status, uint8_t *errors,
            uint16_t *special)
{
    uint8_t desc[16];
    uint64_t da = d->rx_ring + 16 * d->rx_next;
    qtest_memread(d->qts, da, desc, 16);
    if (!(desc[E1000_RXD_STATUS] & E1000_RXD_STAT_DD)) {
        return -1;
    }
    int len = desc[8] | desc[9] << 8;
    if (buf) {
        qtest_memread(d->qts, d->rx_bufs[d->rx_next], buf, MIN((size_t)len, cap));
    }
    if (status) {
        *status = desc[E1000_RXD_STATUS];
    }
    if (errors) {
        *errors = desc[E1000_RXD_ERRORS];
    }
    if (special) {
        *special = desc[14] | desc[15] << 8;
    }
    /* give it back: clear status, advance RDT to this descriptor */
    qtest_writeb(d->qts, da + E1000_RXD_STATUS, 0);
    e1kd_wr(d, E1000_RDT, d->rx_next);
    d->rx_next = (d->rx_next + 1) % d->rx_n;
    return len;
}
