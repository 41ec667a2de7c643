/*
 * Realtek RTL8139 driver of the test guest: the receive ring is one 8 KiB
 * buffer (plus slack, WRAP mode, so a frame never splits), transmit uses the
 * four TSAD/TSD slots in turn. Registers are reached through I/O BAR0.
 * Offsets and bits are from the RTL8139 datasheet.
 */
#include "guest.h"

#define RTL_IDR0 0x00
#define RTL_MAR0 0x08
#define RTL_TSD0 0x10
#define RTL_TSAD0 0x20
#define RTL_RBSTART 0x30
#define RTL_CR 0x37
#define RTL_CAPR 0x38
#define RTL_IMR 0x3c
#define RTL_ISR 0x3e
#define RTL_TCR 0x40
#define RTL_RCR 0x44
#define RTL_CONFIG1 0x52

#define CR_RST 0x10
#define CR_RE 0x08
#define CR_TE 0x04
#define CR_BUFE 0x01
#define ISR_ROK 0x01
#define ISR_RER 0x02
#define ISR_TOK 0x04
#define ISR_TER 0x08
#define ISR_RXOVW 0x10
#define RCR_APM 0x02
#define RCR_AM 0x04
#define RCR_AB 0x08
#define RCR_WRAP 0x80
#define TSD_OWN (1u << 13)
#define RX_ROK 0x0001

#define RXBUF_LEN 8192
#define RXBUF_ALLOC (RXBUF_LEN + 16 + 2048)

struct rtl {
    struct nic nic;
    uint16_t io;
    uint8_t *rxbuf;
    uint8_t *txbuf[4];
    unsigned rx_off, tx_cur;
    bool tx_busy[4];
};

static bool rtl_tx(struct nic *n, const void *frame, size_t len)
{
    struct rtl *r = n->priv;
    unsigned i = r->tx_cur;
    uint32_t tsd = inl(r->io + RTL_TSD0 + 4 * i);
    if (len > 1792 || (r->tx_busy[i] && !(tsd & TSD_OWN))) {
        n->tx_full++;
        return false;
    }
    memcpy(r->txbuf[i], frame, len);
    outl(r->io + RTL_TSAD0 + 4 * i, (uint32_t)(uint64_t)r->txbuf[i]);
    outl(r->io + RTL_TSD0 + 4 * i, (uint32_t)len);   /* OWN=0 starts the DMA */
    r->tx_busy[i] = true;
    r->tx_cur = (i + 1) % 4;
    n->tx_frames++;
    return true;
}

static size_t rtl_rx(struct nic *n, void *out, size_t max)
{
    struct rtl *r = n->priv;
    if (inb(r->io + RTL_CR) & CR_BUFE) {
        return 0;
    }
    uint8_t *p = r->rxbuf + r->rx_off;
    uint16_t status = (uint16_t)(p[0] | (p[1] << 8));
    uint16_t len = (uint16_t)(p[2] | (p[3] << 8));   /* includes the 4-byte CRC */
    if (!(status & RX_ROK) || len < 4 + 14 || len > 1792) {
        /* A corrupt header: restart reception rather than walk garbage. */
        report("warning=\"rtl8139 bad rx header status=0x%x len=%u\"", status, len);
        outb(r->io + RTL_CR, CR_TE);
        outb(r->io + RTL_CR, CR_RE | CR_TE);
        r->rx_off = 0;
        outw(r->io + RTL_CAPR, (uint16_t)(RXBUF_LEN - 16));
        return 1;
    }
    size_t flen = len - 4u;
    if (flen > max) {
        flen = max;
    }
    memcpy(out, p + 4, flen);
    r->rx_off = (r->rx_off + len + 4 + 3) & ~3u;
    r->rx_off %= RXBUF_LEN;
    outw(r->io + RTL_CAPR, (uint16_t)(r->rx_off - 16));
    outw(r->io + RTL_ISR, ISR_ROK | ISR_RXOVW | ISR_RER);
    n->rx_frames++;
    return flen;
}

static const struct nic_ops rtl_ops = { .tx = rtl_tx, .rx = rtl_rx };

static void rtl_irq(void *opaque)
{
    struct rtl *r = opaque;
    uint16_t isr = inw(r->io + RTL_ISR);
    if (isr) {
        outw(r->io + RTL_ISR, isr);     /* write-1-to-clear */
        r->nic.irqs++;
    }
}

struct nic *rtl8139_probe(struct pci_dev *d)
{
    pci_enable(d);
    if (!d->bar[0] || !d->bar_io[0]) {
        report("rtl8139 error=\"BAR0 is not I/O\"");
        return NULL;
    }
    struct rtl *r = alloc(sizeof(*r), 16);
    r->nic.model = "rtl8139";
    r->nic.priv = r;
    r->nic.ops = &rtl_ops;
    r->io = (uint16_t)d->bar[0];
    outb(r->io + RTL_CONFIG1, 0);
    outb(r->io + RTL_CR, CR_RST);
    for (int i = 0; i < 10000 && (inb(r->io + RTL_CR) & CR_RST); i++) {
        udelay(10);
    }
    for (int i = 0; i < 6; i++) {
        r->nic.mac[i] = inb(r->io + RTL_IDR0 + i);
    }
    r->rxbuf = alloc(RXBUF_ALLOC, 4096);
    for (int i = 0; i < 4; i++) {
        r->txbuf[i] = alloc(2048, 4096);
    }
    outl(r->io + RTL_RBSTART, (uint32_t)(uint64_t)r->rxbuf);
    outl(r->io + RTL_MAR0, 0);
    outl(r->io + RTL_MAR0 + 4, 0);
    outb(r->io + RTL_CR, CR_RE | CR_TE);
    outl(r->io + RTL_RCR, RCR_APM | RCR_AM | RCR_AB | RCR_WRAP);
    outl(r->io + RTL_TCR, 0x03000000);     /* standard inter-frame gap */
    outw(r->io + RTL_CAPR, (uint16_t)(RXBUF_LEN - 16));
    outw(r->io + RTL_IMR, 0);
    outw(r->io + RTL_ISR, 0xffff);

    r->nic.irq_mode = "poll";
    const char *pref = irq_pref();
    if (!strcmp(pref, "auto") || !strcmp(pref, "intx") || !strcmp(pref, "msix")) {
        int vec = irq_alloc_vector(rtl_irq, r);
        if (pci_intx_route(d, vec)) {
            r->nic.irq_mode = "intx";
            outw(r->io + RTL_IMR, ISR_ROK | ISR_RER | ISR_TOK | ISR_TER | ISR_RXOVW);
        }
    }
    return &r->nic;
}
