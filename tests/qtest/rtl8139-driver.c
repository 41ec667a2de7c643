/*
 * The qtest RTL8139 driver (see rtl8139-driver.h): register access through
 * BAR0 port I/O, bring-up sequences modelled on Linux's 8139too and 8139cp,
 * and helpers to move frames through the C-mode ring buffer and the C+
 * descriptor rings in guest RAM.
 */
#include "rtl8139-driver.h"

#include <string.h>

int rtld_find(QTestState *qts)
{
    for (int devfn = 0; devfn < 256; devfn += 8) {
        if (qtest_pci_cfg_readl(qts, devfn, 0) == (((uint32_t)RTL8139_DEVICE_ID << 16) | RTL8139_VENDOR_ID)) {
            return devfn;
        }
    }
    return -1;
}

void rtld_init(RtlDev *d, QTestState *qts)
{
    uint64_t bars[6];

    memset(d, 0, sizeof(*d));
    d->qts = qts;
    d->devfn = rtld_find(qts);
    g_assert_cmpint(d->devfn, >=, 0);
    qtest_pci_enable(qts, d->devfn, bars);
    d->io = (uint16_t)bars[0];
    d->mmio = bars[1];
    g_assert_cmpuint(d->io, !=, 0);
    g_assert_cmpuint(d->mmio, !=, 0);
}

uint8_t rtld_r8(RtlDev *d, uint8_t off) { return qtest_inb(d->qts, d->io + off); }
uint16_t rtld_r16(RtlDev *d, uint8_t off) { return qtest_inw(d->qts, d->io + off); }
uint32_t rtld_r32(RtlDev *d, uint8_t off) { return qtest_inl(d->qts, d->io + off); }
void rtld_w8(RtlDev *d, uint8_t off, uint8_t v) { qtest_outb(d->qts, d->io + off, v); }
void rtld_w16(RtlDev *d, uint8_t off, uint16_t v) { qtest_outw(d->qts, d->io + off, v); }
void rtld_w32(RtlDev *d, uint8_t off, uint32_t v) { qtest_outl(d->qts, d->io + off, v); }

void rtld_reset(RtlDev *d)
{
    rtld_w8(d, RTL_CR, RTL_CR_RST);
    for (int i = 0; i < 1000 && (rtld_r8(d, RTL_CR) & RTL_CR_RST); i++) {
        g_usleep(100);
    }
    g_assert_cmphex(rtld_r8(d, RTL_CR) & RTL_CR_RST, ==, 0);
}

/* 8139too: chip select, shift the read command (with leading zeros) out
 * MSB first, then clock 16 data bits in, sampling DO while SK is high. */
uint16_t rtld_eeprom_read(RtlDev *d, unsigned loc, unsigned addr_len)
{
    const uint8_t enb = RTL_9346_EEM_PROGRAM | RTL_9346_EECS;
    unsigned cmd = loc | (6u << addr_len);
    uint16_t v = 0;

    rtld_w8(d, RTL_9346CR, RTL_9346_EEM_PROGRAM);
    rtld_w8(d, RTL_9346CR, enb);
    for (int i = 4 + addr_len; i >= 0; i--) {
        uint8_t bit = (cmd >> i) & 1 ? RTL_9346_EEDI : 0;
        rtld_w8(d, RTL_9346CR, enb | bit);
        rtld_w8(d, RTL_9346CR, enb | bit | RTL_9346_EESK);
    }
    rtld_w8(d, RTL_9346CR, enb);
    for (int i = 0; i < 16; i++) {
        rtld_w8(d, RTL_9346CR, enb | RTL_9346_EESK);
        v = (v << 1) | (rtld_r8(d, RTL_9346CR) & RTL_9346_EEDO);
        rtld_w8(d, RTL_9346CR, enb);
    }
    rtld_w8(d, RTL_9346CR, RTL_9346_EEM_PROGRAM);
    rtld_w8(d, RTL_9346CR, RTL_9346_EEM_NORMAL);
    return v;
}

void rtld_eeprom_mac(RtlDev *d, uint8_t mac[6])
{
    unsigned alen = rtld_eeprom_read(d, 0, 8) == RTL_EEPROM_MAGIC ? 8 : 6;

    for (int i = 0; i < 3; i++) {
        uint16_t w = rtld_eeprom_read(d, RTL_EEPROM_MAC_WORD + i, alen);
        mac[2 * i] = w & 0xff;
        mac[2 * i + 1] = w >> 8;
    }
}

void rtld_c_start(RtlDev *d, unsigned rblen, uint32_t rcr, uint32_t tcr_extra, uint16_t imr)
{
    d->rx_len = 8192u << rblen;
    d->rx_ring = qtest_guest_alloc(d->qts, d->rx_len + 16 + 2048, 4096);
    qtest_memset(d->qts, d->rx_ring, 0, d->rx_len + 16 + 2048);
    d->rx_cur = 0;
    for (int i = 0; i < 4; i++) {
        if (!d->tx_buf[i]) {
            d->tx_buf[i] = qtest_guest_alloc(d->qts, 2048, 16);
        }
        rtld_w32(d, RTL_TSAD0 + 4 * i, (uint32_t)d->tx_buf[i]);
    }
    d->tx_cur = 0;
    rtld_w32(d, RTL_RBSTART, (uint32_t)d->rx_ring);
    rtld_w8(d, RTL_CR, RTL_CR_RE | RTL_CR_TE);
    rtld_w32(d, RTL_RCR, rcr | (rblen << RTL_RCR_RBLEN_SHIFT));
    rtld_w32(d, RTL_TCR, tcr_extra);
    rtld_w32(d, RTL_MPC, 0);
    rtld_w16(d, RTL_IMR, imr);
}

uint32_t rtld_c_tx(RtlDev *d, const void *frame, size_t len)
{
    unsigned slot = d->tx_cur;

    g_assert_cmpuint(len, <=, 2048);
    qtest_memwrite(d->qts, d->tx_buf[slot], frame, len);
    rtld_w32(d, RTL_TSD0 + 4 * slot, (uint32_t)len);
    d->tx_cur = (slot + 1) & 3;
    return rtld_r32(d, RTL_TSD0 + 4 * slot);
}

int rtld_c_rx(RtlDev *d, void *buf, size_t cap, uint16_t *status, uint32_t *crc)
{
    uint8_t hdr[4], fcs[4];
    uint32_t len;

    if (rtld_r8(d, RTL_CR) & RTL_CR_BUFE) {
        return -1;
    }
    /* the ring was allocated with the WRAP slack, read linearly as 8139too */
    qtest_memread(d->qts, d->rx_ring + d->rx_cur, hdr, 4);
    len = hdr[2] | (hdr[3] << 8);
    if (status) {
        *status = hdr[0] | (hdr[1] << 8);
    }
    g_assert_cmpuint(len, >=, 4);
    g_assert_cmpuint(len, <=, 1522 + 4);
    if (buf) {
        qtest_memread(d->qts, d->rx_ring + d->rx_cur + 4, buf, MIN(cap, len - 4));
    }
    qtest_memread(d->qts, d->rx_ring + d->rx_cur + 4 + len - 4, fcs, 4);
    if (crc) {
        *crc = fcs[0] | (fcs[1] << 8) | (fcs[2] << 16) | ((uint32_t)fcs[3] << 24);
    }
    d->rx_cur = ((d->rx_cur + len + 4 + 3) & ~3u) % d->rx_len;
    rtld_w16(d, RTL_CAPR, (uint16_t)(d->rx_cur - 16));
    return (int)len - 4;
}

int rtld_c_rx_wait(RtlDev *d, void *buf, size_t cap, uint16_t *status, int timeout_ms)
{
    for (int i = 0; i <= timeout_ms; i++) {
        int n = rtld_c_rx(d, buf, cap, status, NULL);
        if (n >= 0) {
            return n;
        }
        g_usleep(1000);
    }
    return -1;
}

static void rtld_cp_rx_desc(RtlDev *d, unsigned i)
{
    uint64_t a = d->cp_rx_ring + 16 * i;
    uint32_t dw0 = RTL_CPD_OWN | RTLD_CP_BUF | (i == RTLD_CP_RING - 1 ? RTL_CPD_EOR : 0);

    qtest_writel(d->qts, a, dw0);
    qtest_writel(d->qts, a + 4, 0);
    qtest_writel(d->qts, a + 8, (uint32_t)d->cp_rx_bufs[i]);
    qtest_writel(d->qts, a + 12, (uint32_t)(d->cp_rx_bufs[i] >> 32));
}

void rtld_cp_start(RtlDev *d, uint16_t cpcr, uint32_t rcr, uint32_t tcr_extra, uint16_t imr)
{
    d->cp_rx_ring = qtest_guest_alloc(d->qts, 16 * RTLD_CP_RING, 256);
    d->cp_tx_ring = qtest_guest_alloc(d->qts, 16 * RTLD_CP_RING, 256);
    qtest_memset(d->qts, d->cp_tx_ring, 0, 16 * RTLD_CP_RING);
    for (unsigned i = 0; i < RTLD_CP_RING; i++) {
        d->cp_rx_bufs[i] = qtest_guest_alloc(d->qts, RTLD_CP_BUF, 64);
        d->cp_tx_bufs[i] = qtest_guest_alloc(d->qts, RTLD_CP_BUF, 64);
        rtld_cp_rx_desc(d, i);
    }
    /* the last TX descriptor carries EOR */
    qtest_writel(d->qts, d->cp_tx_ring + 16 * (RTLD_CP_RING - 1), RTL_CPD_EOR);
    d->cp_tx_idx = d->cp_rx_idx = 0;

    rtld_w16(d, RTL_CPCR, cpcr | RTL_CPCR_RXENB | RTL_CPCR_TXENB);
    rtld_w32(d, RTL_RDSAR_LO, (uint32_t)d->cp_rx_ring);
    rtld_w32(d, RTL_RDSAR_HI, (uint32_t)(d->cp_rx_ring >> 32));
    rtld_w32(d, RTL_TNPDS_LO, (uint32_t)d->cp_tx_ring);
    rtld_w32(d, RTL_TNPDS_HI, (uint32_t)(d->cp_tx_ring >> 32));
    rtld_w8(d, RTL_CR, RTL_CR_RE | RTL_CR_TE);
    rtld_w32(d, RTL_RCR, rcr);
    rtld_w32(d, RTL_TCR, tcr_extra);
    rtld_w16(d, RTL_IMR, imr);
}

uint32_t rtld_cp_tx(RtlDev *d, const void *frame, size_t len, uint32_t flags, uint32_t dw1)
{
    unsigned i = d->cp_tx_idx;
    uint64_t a = d->cp_tx_ring + 16 * i;
    uint32_t eor = i == RTLD_CP_RING - 1 ? RTL_CPD_EOR : 0;
    uint64_t buf = d->cp_tx_bufs[i];

    if (len > RTLD_CP_BUF) {
        /* large sends use a buffer of their own */
        buf = qtest_guest_alloc(d->qts, len, 64);
    }
    qtest_memwrite(d->qts, buf, frame, len);
    qtest_writel(d->qts, a + 4, dw1);
    qtest_writel(d->qts, a + 8, (uint32_t)buf);
    qtest_writel(d->qts, a + 12, (uint32_t)(buf >> 32));
    qtest_writel(d->qts, a, RTL_CPD_OWN | eor | RTL_CPD_FS | RTL_CPD_LS | flags | (uint32_t)len);
    rtld_w8(d, RTL_TPPOLL, RTL_TPPOLL_NPQ);
    d->cp_tx_idx = (i + 1) % RTLD_CP_RING;
    return qtest_readl(d->qts, a);
}

int rtld_cp_rx(RtlDev *d, void *buf, size_t cap, uint32_t *dw0, uint32_t *dw1)
{
    unsigned i = d->cp_rx_idx;
    uint64_t a = d->cp_rx_ring + 16 * i;
    uint32_t w0 = qtest_readl(d->qts, a), len;

    if (w0 & RTL_CPD_OWN) {
        return -1;
    }
    if (dw0) {
        *dw0 = w0;
    }
    if (dw1) {
        *dw1 = qtest_readl(d->qts, a + 4);
    }
    len = w0 & RTL_CPRX_LEN_MASK;
    g_assert_cmpuint(len, >=, 4);
    g_assert_cmpuint(len, <=, RTLD_CP_BUF);
    if (buf) {
        qtest_memread(d->qts, d->cp_rx_bufs[i], buf, MIN(cap, len - 4));
    }
    rtld_cp_rx_desc(d, i);
    d->cp_rx_idx = (i + 1) % RTLD_CP_RING;
    return (int)len - 4;
}

uint32_t rtld_crc32(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t crc = 0xffffffffu;

    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
        }
    }
    return ~crc;
}
