/*
 * Intel 8254x (e1000: 82540EM 8086:100e, 82544GC 8086:100c, 82545EM
 * 8086:100f) driver of the test guest: legacy descriptors, one RX and one TX
 * ring of 64 entries, 2 KiB buffers, CRC stripped by the device, INTx or
 * polling. Register offsets and bits are from the 8254x Software Developer's
 * Manual; the chip has no MSI in the models emulated here.
 */
#include "guest.h"

#define E1000_CTRL 0x0000
#define E1000_STATUS 0x0008
#define E1000_EERD 0x0014
#define E1000_ICR 0x00c0
#define E1000_IMS 0x00d0
#define E1000_IMC 0x00d8
#define E1000_RCTL 0x0100
#define E1000_TCTL 0x0400
#define E1000_TIPG 0x0410
#define E1000_RDBAL 0x2800
#define E1000_RDBAH 0x2804
#define E1000_RDLEN 0x2808
#define E1000_RDH 0x2810
#define E1000_RDT 0x2818
#define E1000_TDBAL 0x3800
#define E1000_TDBAH 0x3804
#define E1000_TDLEN 0x3808
#define E1000_TDH 0x3810
#define E1000_TDT 0x3818
#define E1000_MTA 0x5200
#define E1000_RAL0 0x5400
#define E1000_RAH0 0x5404

#define CTRL_SLU (1u << 6)
#define CTRL_ASDE (1u << 5)
#define CTRL_RST (1u << 26)
#define EERD_START 1u
#define EERD_DONE (1u << 4)
#define RAH_AV (1u << 31)
#define RCTL_EN (1u << 1)
#define RCTL_BAM (1u << 15)
#define RCTL_SECRC (1u << 26)
#define TCTL_EN (1u << 1)
#define TCTL_PSP (1u << 3)
#define TCTL_CT_SHIFT 4
#define TCTL_COLD_SHIFT 12
#define ICR_TXDW (1u << 0)
#define ICR_LSC (1u << 2)
#define ICR_RXDMT0 (1u << 4)
#define ICR_RXO (1u << 6)
#define ICR_RXT0 (1u << 7)
#define TXD_CMD_EOP 0x01
#define TXD_CMD_IFCS 0x02
#define TXD_CMD_RS 0x08
#define DESC_DD 0x01
#define RXD_EOP 0x02

#define NDESC 64
#define BUFSZ 2048

struct e1000_rx_desc {
    uint64_t addr;
    uint16_t length, csum;
    uint8_t status, errors;
    uint16_t special;
};
struct e1000_tx_desc {
    uint64_t addr;
    uint16_t length;
    uint8_t cso, cmd, status, css;
    uint16_t special;
};
_Static_assert(sizeof(struct e1000_rx_desc) == 16, "rx desc");
_Static_assert(sizeof(struct e1000_tx_desc) == 16, "tx desc");

struct e1000 {
    struct nic nic;
    struct pci_dev *pci;
    uint64_t mmio;
    volatile struct e1000_rx_desc *rx;
    volatile struct e1000_tx_desc *tx;
    uint8_t *rxbuf, *txbuf;
    unsigned rx_cur, tx_tail, tx_unkicked;
    bool tx_busy[NDESC];
};

static uint32_t rd(struct e1000 *e, uint32_t reg) { return mmio_read32(e->mmio + reg); }
static void wr(struct e1000 *e, uint32_t reg, uint32_t v) { mmio_write32(e->mmio + reg, v); }

static void e1000_flush(struct nic *n)
{
    struct e1000 *e = n->priv;
    if (!e->tx_unkicked) {
        return;
    }
    e->tx_unkicked = 0;
    wmb();
    uint64_t t0 = rdtsc();
    wr(e, E1000_TDT, e->tx_tail);
    n->kick_cycles += rdtsc() - t0;
    n->kicks++;
}

static bool e1000_tx(struct nic *n, const void *frame, size_t len)
{
    struct e1000 *e = n->priv;
    unsigned i = e->tx_tail;
    volatile struct e1000_tx_desc *d = &e->tx[i];
    if (len > BUFSZ || (e->tx_busy[i] && !(d->status & DESC_DD))) {
        n->tx_full++;
        return false;
    }
    memcpy(e->txbuf + (size_t)i * BUFSZ, frame, len);
    d->addr = (uint64_t)(e->txbuf + (size_t)i * BUFSZ);
    d->length = (uint16_t)len;
    d->cso = d->css = 0;
    d->special = 0;
    d->status = 0;
    d->cmd = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
    e->tx_busy[i] = true;
    e->tx_tail = (i + 1) % NDESC;
    /* TDT is the doorbell: with tx-batch=N (blaster) write it once per N
     * frames, and always when the next slot is still in flight. */
    bool next_busy = e->tx_busy[e->tx_tail] && !(e->tx[e->tx_tail].status & DESC_DD);
    if (++e->tx_unkicked >= n->tx_batch || !n->tx_defer || next_busy) {
        e1000_flush(n);
    }
    n->tx_frames++;
    return true;
}

static size_t e1000_rx(struct nic *n, void *out, size_t max)
{
    struct e1000 *e = n->priv;
    unsigned i = e->rx_cur;
    volatile struct e1000_rx_desc *d = &e->rx[i];
    if (!(d->status & DESC_DD)) {
        return 0;
    }
    rmb();
    size_t len = d->length;
    bool whole = (d->status & RXD_EOP) && !d->errors && len && len <= BUFSZ;
    if (len > max) {
        len = max;
    }
    if (whole) {
        memcpy(out, e->rxbuf + (size_t)i * BUFSZ, len);
        n->rx_frames++;
    }
    d->status = 0;
    e->rx_cur = (i + 1) % NDESC;
    wmb();
    wr(e, E1000_RDT, i);    /* hand the descriptor we just emptied back */
    return whole ? len : 1;
}

static const struct nic_ops e1000_ops = { .tx = e1000_tx, .rx = e1000_rx, .flush = e1000_flush };

static void e1000_irq(void *opaque)
{
    struct e1000 *e = opaque;
    if (rd(e, E1000_ICR)) {     /* read-to-clear deasserts the line */
        e->nic.irqs++;
    }
}

static uint16_t eeprom_read(struct e1000 *e, uint8_t addr)
{
    wr(e, E1000_EERD, ((uint32_t)addr << 8) | EERD_START);
    for (int i = 0; i < 10000; i++) {
        uint32_t v = rd(e, E1000_EERD);
        if (v & EERD_DONE) {
            return (uint16_t)(v >> 16);
        }
        udelay(1);
    }
    return 0xffff;
}

struct nic *e1000_probe(struct pci_dev *d)
{
    pci_enable(d);
    if (!d->bar[0] || d->bar_io[0]) {
        report("e1000 error=\"BAR0 is not memory\"");
        return NULL;
    }
    struct e1000 *e = alloc(sizeof(*e), 16);
    e->nic.model = "e1000";
    e->nic.priv = e;
    e->nic.ops = &e1000_ops;
    e->pci = d;
    e->mmio = d->bar[0];

    wr(e, E1000_IMC, 0xffffffff);
    wr(e, E1000_CTRL, rd(e, E1000_CTRL) | CTRL_RST);
    udelay(1000);
    for (int i = 0; i < 1000 && (rd(e, E1000_CTRL) & CTRL_RST); i++) {
        udelay(10);
    }
    wr(e, E1000_IMC, 0xffffffff);
    (void)rd(e, E1000_ICR);
    wr(e, E1000_CTRL, (rd(e, E1000_CTRL) | CTRL_SLU | CTRL_ASDE) & ~((1u << 3) | (1u << 31) | (1u << 7)));

    uint32_t ral = rd(e, E1000_RAL0), rah = rd(e, E1000_RAH0);
    if (!(rah & RAH_AV) || (!ral && !(rah & 0xffff))) {
        uint16_t w[3];
        for (int i = 0; i < 3; i++) {
            w[i] = eeprom_read(e, (uint8_t)i);
        }
        ral = w[0] | ((uint32_t)w[1] << 16);
        rah = w[2] | RAH_AV;
        wr(e, E1000_RAL0, ral);
        wr(e, E1000_RAH0, rah);
    }
    for (int i = 0; i < 4; i++) {
        e->nic.mac[i] = (uint8_t)(ral >> (8 * i));
    }
    e->nic.mac[4] = (uint8_t)rah;
    e->nic.mac[5] = (uint8_t)(rah >> 8);
    for (int i = 0; i < 128; i++) {
        wr(e, E1000_MTA + 4 * i, 0);
    }

    e->rx = alloc_page_aligned(NDESC * sizeof(struct e1000_rx_desc));
    e->tx = alloc_page_aligned(NDESC * sizeof(struct e1000_tx_desc));
    e->rxbuf = alloc_page_aligned(NDESC * BUFSZ);
    e->txbuf = alloc_page_aligned(NDESC * BUFSZ);
    for (int i = 0; i < NDESC; i++) {
        e->rx[i].addr = (uint64_t)(e->rxbuf + (size_t)i * BUFSZ);
    }
    wr(e, E1000_RDBAL, (uint32_t)(uint64_t)e->rx);
    wr(e, E1000_RDBAH, (uint32_t)((uint64_t)e->rx >> 32));
    wr(e, E1000_RDLEN, NDESC * sizeof(struct e1000_rx_desc));
    wr(e, E1000_RDH, 0);
    wr(e, E1000_RDT, NDESC - 1);
    wr(e, E1000_TDBAL, (uint32_t)(uint64_t)e->tx);
    wr(e, E1000_TDBAH, (uint32_t)((uint64_t)e->tx >> 32));
    wr(e, E1000_TDLEN, NDESC * sizeof(struct e1000_tx_desc));
    wr(e, E1000_TDH, 0);
    wr(e, E1000_TDT, 0);
    wr(e, E1000_TIPG, 10 | (8 << 10) | (6 << 20));
    wr(e, E1000_TCTL, TCTL_EN | TCTL_PSP | (0x0f << TCTL_CT_SHIFT) | (0x40 << TCTL_COLD_SHIFT));
    wr(e, E1000_RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);   /* BSIZE 00 = 2048 */

    e->nic.irq_mode = "poll";
    const char *pref = irq_pref();
    if (!strcmp(pref, "auto") || !strcmp(pref, "intx") || !strcmp(pref, "msix")) {
        int vec = irq_alloc_vector(e1000_irq, e);
        if (pci_intx_route(d, vec)) {
            e->nic.irq_mode = "intx";
            wr(e, E1000_IMS, ICR_RXT0 | ICR_TXDW | ICR_LSC | ICR_RXO | ICR_RXDMT0);
        }
    }
    report("e1000 device=%04x status=0x%x", d->device, rd(e, E1000_STATUS));
    return &e->nic;
}
