/*
 * virtio-net driver of the test guest, for three transports (virtio-pci
 * legacy through the I/O BAR, virtio-pci modern through its vendor
 * capabilities, and virtio-mmio version 1 or 2) and both ring layouts
 * (split and packed). One receive and one transmit queue, single-descriptor
 * buffers of 2 KiB, no offloads: enough to check that a device moves frames
 * correctly, with MSI-X, INTx or polling. The rings themselves are the
 * shared driver-side library (tests/lib/vring-driver.c) over identity-mapped
 * RAM.
 */
#include "guest.h"
#include "vring-driver.h"
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_mmio.h>
#include <linux/pci_regs.h>

#define BUF_SIZE 2048
#define QSIZE_MAX 256

enum vt_kind { VT_LEGACY, VT_MODERN, VT_MMIO };

struct vq {
    uint16_t index;
    VringDriver vr;     /* the ring; vr.num is the queue size */
    uint8_t *bufs;
    uint16_t free_ids[QSIZE_MAX];
    uint16_t nfree;
    uint64_t notify_addr;   /* modern: MMIO address to write the queue index */
};

struct vnet {
    struct nic nic;
    enum vt_kind kind;
    struct pci_dev *pci;
    uint64_t io;            /* legacy: I/O port base; mmio: transport base */
    uint64_t common, isr, devcfg, notify_base;
    uint32_t notify_mult;
    bool mmio_v1, msix;
    unsigned gsi;           /* virtio-mmio interrupt (IOAPIC pin) */
    size_t hdr_len;
    uint64_t features;
    struct vq rxq, txq;
    unsigned rx_unkicked, tx_unkicked;
};

/* ---- transport register access ---- */

static uint8_t vt_get_status(struct vnet *v)
{
    switch (v->kind) {
    case VT_LEGACY: return inb(v->io + VIRTIO_PCI_STATUS);
    case VT_MODERN: return mmio_read8(v->common + VIRTIO_PCI_COMMON_STATUS);
    default: return (uint8_t)mmio_read32(v->io + VIRTIO_MMIO_STATUS);
    }
}

static void vt_set_status(struct vnet *v, uint8_t s)
{
    switch (v->kind) {
    case VT_LEGACY: outb(v->io + VIRTIO_PCI_STATUS, s); break;
    case VT_MODERN: mmio_write8(v->common + VIRTIO_PCI_COMMON_STATUS, s); break;
    default: mmio_write32(v->io + VIRTIO_MMIO_STATUS, s); break;
    }
}

static uint64_t vt_get_features(struct vnet *v)
{
    switch (v->kind) {
    case VT_LEGACY:
        return inl(v->io + VIRTIO_PCI_HOST_FEATURES);
    case VT_MODERN: {
        mmio_write32(v->common + VIRTIO_PCI_COMMON_DFSELECT, 0);
        uint64_t lo = mmio_read32(v->common + VIRTIO_PCI_COMMON_DF);
        mmio_write32(v->common + VIRTIO_PCI_COMMON_DFSELECT, 1);
        return lo | ((uint64_t)mmio_read32(v->common + VIRTIO_PCI_COMMON_DF) << 32);
    }
    default: {
        mmio_write32(v->io + VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        uint64_t lo = mmio_read32(v->io + VIRTIO_MMIO_DEVICE_FEATURES);
        mmio_write32(v->io + VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        return lo | ((uint64_t)mmio_read32(v->io + VIRTIO_MMIO_DEVICE_FEATURES) << 32);
    }
    }
}

static void vt_set_features(struct vnet *v, uint64_t f)
{
    switch (v->kind) {
    case VT_LEGACY:
        outl(v->io + VIRTIO_PCI_GUEST_FEATURES, (uint32_t)f);
        break;
    case VT_MODERN:
        mmio_write32(v->common + VIRTIO_PCI_COMMON_GFSELECT, 0);
        mmio_write32(v->common + VIRTIO_PCI_COMMON_GF, (uint32_t)f);
        mmio_write32(v->common + VIRTIO_PCI_COMMON_GFSELECT, 1);
        mmio_write32(v->common + VIRTIO_PCI_COMMON_GF, (uint32_t)(f >> 32));
        break;
    default:
        mmio_write32(v->io + VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        mmio_write32(v->io + VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
        mmio_write32(v->io + VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        mmio_write32(v->io + VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
        break;
    }
}

static uint8_t vt_config8(struct vnet *v, unsigned off)
{
    switch (v->kind) {
    case VT_LEGACY: return inb(v->io + VIRTIO_PCI_CONFIG_OFF(v->msix) + off);
    case VT_MODERN: return mmio_read8(v->devcfg + off);
    default: return mmio_read8(v->io + VIRTIO_MMIO_CONFIG + off);
    }
}

static uint8_t vt_isr(struct vnet *v)
{
    switch (v->kind) {
    case VT_LEGACY: return inb(v->io + VIRTIO_PCI_ISR);
    case VT_MODERN: return mmio_read8(v->isr);
    default: {
        uint32_t s = mmio_read32(v->io + VIRTIO_MMIO_INTERRUPT_STATUS);
        mmio_write32(v->io + VIRTIO_MMIO_INTERRUPT_ACK, s);
        return (uint8_t)s;
    }
    }
}

static uint16_t vt_queue_max(struct vnet *v, uint16_t idx)
{
    switch (v->kind) {
    case VT_LEGACY:
        outw(v->io + VIRTIO_PCI_QUEUE_SEL, idx);
        return inw(v->io + VIRTIO_PCI_QUEUE_NUM);
    case VT_MODERN:
        mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_SELECT, idx);
        return mmio_read16(v->common + VIRTIO_PCI_COMMON_Q_SIZE);
    default:
        mmio_write32(v->io + VIRTIO_MMIO_QUEUE_SEL, idx);
        return (uint16_t)mmio_read32(v->io + VIRTIO_MMIO_QUEUE_NUM_MAX);
    }
}

static void vt_notify(struct vnet *v, struct vq *q)
{
    switch (v->kind) {
    case VT_LEGACY: outw(v->io + VIRTIO_PCI_QUEUE_NOTIFY, q->index); break;
    case VT_MODERN: mmio_write16(q->notify_addr, q->index); break;
    default: mmio_write32(v->io + VIRTIO_MMIO_QUEUE_NOTIFY, q->index); break;
    }
}

/* ---- rings ---- */

/* Guest-physical addresses are pointers here. Ring fields the device reads
 * or writes concurrently (2 bytes: avail idx, packed flags, used idx) are
 * single volatile accesses; whole descriptors and used entries are read
 * only after the fence that follows such a field. */
static void gmem_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
    uint8_t *b = buf;

    if (len == 2) {
        uint16_t v = *(volatile uint16_t *)gpa;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
        return;
    }
    memcpy(buf, (const void *)gpa, len);
}

static void gmem_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
    const uint8_t *b = buf;

    if (len == 2) {
        *(volatile uint16_t *)gpa = (uint16_t)(b[0] | (b[1] << 8));
        return;
    }
    memcpy((void *)gpa, buf, len);
}

static void gmem_fence(void *opaque, VringFence kind)
{
    switch (kind) {
    case VRING_FENCE_WRITE: wmb(); break;
    case VRING_FENCE_READ: rmb(); break;
    default: mb(); break;
    }
}

static const VringMem guest_mem = { .read = gmem_read, .write = gmem_write, .fence = gmem_fence };

static bool vq_alloc(struct vnet *v, struct vq *q, uint16_t index, uint16_t max, bool packed)
{
    q->index = index;
    uint16_t size = max;
    if (!size) {
        return false;
    }
    if (v->kind != VT_LEGACY && !(v->kind == VT_MMIO && v->mmio_v1)) {
        /* Modern transports let the driver shrink the ring. */
        if (size > QSIZE_MAX) {
            size = QSIZE_MAX;
        }
    } else if (size > 1024) {
        report("virtio queue %u: device queue size %u too large", index, size);
        return false;
    }
    uint16_t track = size > QSIZE_MAX ? QSIZE_MAX : size;  /* buffers we actually post */
    q->bufs = alloc((size_t)track * BUF_SIZE, 4096);
    q->nfree = 0;
    for (int i = track - 1; i >= 0; i--) {
        q->free_ids[q->nfree++] = (uint16_t)i;
    }
    if (packed) {
        uint64_t desc = (uint64_t)alloc_page_aligned(sizeof(struct vring_packed_desc) * size);
        uint64_t drv = (uint64_t)alloc(sizeof(struct vring_packed_desc_event), 16);
        uint64_t dev = (uint64_t)alloc(sizeof(struct vring_packed_desc_event), 16);
        vring_driver_init(&q->vr, &guest_mem, size, true, desc, drv, dev);
    } else {
        /* Legacy layout: desc, avail, then used on the next 4 KiB boundary. */
        uint64_t mem = (uint64_t)alloc_page_aligned(vring_legacy_size(size, 4096));
        vring_driver_init(&q->vr, &guest_mem, size, false, mem, mem + 16ull * size,
                          mem + vring_legacy_used_offset(size, 4096));
    }
    return true;
}

static bool vq_setup(struct vnet *v, struct vq *q, int msix_vec)
{
    uint64_t desc = q->vr.desc, drv = q->vr.avail, dev = q->vr.used;
    switch (v->kind) {
    case VT_LEGACY:
        outw(v->io + VIRTIO_PCI_QUEUE_SEL, q->index);
        if (v->msix) {
            outw(v->io + VIRTIO_MSI_QUEUE_VECTOR, (uint16_t)msix_vec);
            if (inw(v->io + VIRTIO_MSI_QUEUE_VECTOR) != (uint16_t)msix_vec) {
                return false;
            }
        }
        outl(v->io + VIRTIO_PCI_QUEUE_PFN, (uint32_t)(desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT));
        return true;
    case VT_MODERN: {
        uint64_t c = v->common;
        mmio_write16(c + VIRTIO_PCI_COMMON_Q_SELECT, q->index);
        mmio_write16(c + VIRTIO_PCI_COMMON_Q_SIZE, q->vr.num);
        if (v->msix) {
            mmio_write16(c + VIRTIO_PCI_COMMON_Q_MSIX, (uint16_t)msix_vec);
            if (mmio_read16(c + VIRTIO_PCI_COMMON_Q_MSIX) != (uint16_t)msix_vec) {
                return false;
            }
        }
        mmio_write32(c + VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)desc);
        mmio_write32(c + VIRTIO_PCI_COMMON_Q_DESCHI, (uint32_t)(desc >> 32));
        mmio_write32(c + VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)drv);
        mmio_write32(c + VIRTIO_PCI_COMMON_Q_AVAILHI, (uint32_t)(drv >> 32));
        mmio_write32(c + VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)dev);
        mmio_write32(c + VIRTIO_PCI_COMMON_Q_USEDHI, (uint32_t)(dev >> 32));
        uint16_t noff = mmio_read16(c + VIRTIO_PCI_COMMON_Q_NOFF);
        q->notify_addr = v->notify_base + (uint64_t)noff * v->notify_mult;
        mmio_write16(c + VIRTIO_PCI_COMMON_Q_ENABLE, 1);
        return true;
    }
    default: {
        uint64_t b = v->io;
        mmio_write32(b + VIRTIO_MMIO_QUEUE_SEL, q->index);
        mmio_write32(b + VIRTIO_MMIO_QUEUE_NUM, q->vr.num);
        if (v->mmio_v1) {
            mmio_write32(b + VIRTIO_MMIO_QUEUE_ALIGN, 4096);
            mmio_write32(b + VIRTIO_MMIO_QUEUE_PFN, (uint32_t)(desc >> 12));
            return true;
        }
        mmio_write32(b + VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
        mmio_write32(b + VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
        mmio_write32(b + VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)drv);
        mmio_write32(b + VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(drv >> 32));
        mmio_write32(b + VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)dev);
        mmio_write32(b + VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(dev >> 32));
        mmio_write32(b + VIRTIO_MMIO_QUEUE_READY, 1);
        return true;
    }
    }
}

/* Make buffer `id` (len bytes, device-writable or not) available: one
 * descriptor, in slot `id` of a split ring. */
static void vq_add(struct vq *q, uint16_t id, uint32_t len, bool device_writes)
{
    VringBuf b = { .addr = (uint64_t)(q->bufs + (size_t)id * BUF_SIZE), .len = len,
                   .write = device_writes };

    vring_add_at(&q->vr, id, &b, 1);
}

/* ---- the NIC ops ---- */

static void tx_reclaim(struct vnet *v)
{
    uint16_t id;
    uint32_t len;
    while (vring_get_used(&v->txq.vr, &id, &len)) {
        if (id < QSIZE_MAX && v->txq.nfree < QSIZE_MAX) {
            v->txq.free_ids[v->txq.nfree++] = id;
        }
    }
}

static bool vnet_tx(struct nic *n, const void *frame, size_t len)
{
    struct vnet *v = n->priv;
    tx_reclaim(v);
    if (!v->txq.nfree || len + v->hdr_len > BUF_SIZE) {
        n->tx_full++;
        return false;
    }
    uint16_t id = v->txq.free_ids[--v->txq.nfree];
    uint8_t *buf = v->txq.bufs + (size_t)id * BUF_SIZE;
    memset(buf, 0, v->hdr_len);     /* no offloads: flags 0, gso NONE */
    memcpy(buf + v->hdr_len, frame, len);
    vq_add(&v->txq, id, (uint32_t)(len + v->hdr_len), false);
    /* Each kick is a VM exit (a few microseconds to tens of them on a
     * nested PVM host): tx-batch=N kicks once per N frames, and always when
     * the ring is low. */
    if (!n->tx_defer || ++v->tx_unkicked >= n->tx_batch || v->txq.nfree < 8) {
        v->tx_unkicked = 0;
        if (vring_kick_wanted(&v->txq.vr)) {
            uint64_t t0 = rdtsc();
            vt_notify(v, &v->txq);
            n->kick_cycles += rdtsc() - t0;
            n->kicks++;
        }
    }
    n->tx_frames++;
    return true;
}

static size_t vnet_rx(struct nic *n, void *out, size_t max)
{
    struct vnet *v = n->priv;
    uint16_t id;
    uint32_t len;
    if (!vring_get_used(&v->rxq.vr, &id, &len)) {
        return 0;
    }
    size_t flen = 0;
    if (id >= QSIZE_MAX || id >= v->rxq.vr.num) {
        report("warning=\"virtio rx: bad used id %u\"", id);
        return 0;
    }
    if (len > v->hdr_len && len <= BUF_SIZE) {
        flen = len - v->hdr_len;
        if (flen > max) {
            flen = max;
        }
        memcpy(out, v->rxq.bufs + (size_t)id * BUF_SIZE + v->hdr_len, flen);
    }
    vq_add(&v->rxq, id, BUF_SIZE, true);
    /* The device still holds most of the ring: kick for refills in batches. */
    if (++v->rx_unkicked >= 32) {
        v->rx_unkicked = 0;
        if (vring_kick_wanted(&v->rxq.vr)) {
            vt_notify(v, &v->rxq);
        }
    }
    if (flen) {
        n->rx_frames++;
    }
    /* A zero-length result would read as "nothing pending": report at least
     * a runt so the caller keeps draining. */
    return flen ? flen : 1;
}

static void vnet_flush(struct nic *n)
{
    struct vnet *v = n->priv;
    if (v->tx_unkicked) {
        v->tx_unkicked = 0;
        uint64_t t0 = rdtsc();
        vt_notify(v, &v->txq);
        n->kick_cycles += rdtsc() - t0;
        n->kicks++;
    }
}

static const struct nic_ops vnet_ops = { .tx = vnet_tx, .rx = vnet_rx, .flush = vnet_flush };

static void vnet_irq_msix(void *opaque)
{
    struct vnet *v = opaque;
    v->nic.irqs++;
}

static void vnet_irq_isr(void *opaque)
{
    struct vnet *v = opaque;
    if (vt_isr(v)) {
        v->nic.irqs++;
    }
}

/* ---- common initialisation (virtio 1.x section 3.1) ---- */

static struct nic *vnet_init(struct vnet *v, const char *want)
{
    bool want_packed = want && !strcmp(want, "virtio-packed");
    bool modern = v->kind == VT_MODERN || (v->kind == VT_MMIO && !v->mmio_v1);
    vt_set_status(v, 0);
    for (int i = 0; i < 1000 && vt_get_status(v); i++) {
        udelay(10);
    }
    vt_set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    vt_set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    uint64_t offered = vt_get_features(v);
    uint64_t wanted = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS);
    if (modern) {
        if (!(offered & (1ull << VIRTIO_F_VERSION_1))) {
            report("virtio error=\"modern transport without VERSION_1\"");
            return NULL;
        }
        wanted |= 1ull << VIRTIO_F_VERSION_1;
        if (offered & (1ull << VIRTIO_F_RING_PACKED)) {
            wanted |= 1ull << VIRTIO_F_RING_PACKED;
        }
    }
    v->features = offered & wanted;
    bool packed = v->features & (1ull << VIRTIO_F_RING_PACKED);
    if (want_packed && !packed) {
        report("virtio error=\"nic=virtio-packed but device does not offer RING_PACKED\"");
        return NULL;
    }
    vt_set_features(v, v->features);
    if (modern) {
        vt_set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
        if (!(vt_get_status(v) & VIRTIO_CONFIG_S_FEATURES_OK)) {
            report("virtio error=\"device refused features 0x%lx\"", v->features);
            return NULL;
        }
    }
    v->hdr_len = modern ? sizeof(struct virtio_net_hdr_v1) : sizeof(struct virtio_net_hdr);

    /* Interrupts: MSI-X on PCI when present, else INTx/IOAPIC, else poll. */
    const char *pref = irq_pref();
    v->nic.irq_mode = "poll";
    int msix_vec = VIRTIO_MSI_NO_VECTOR;
    if (v->pci && v->pci->msix_cap && (!strcmp(pref, "auto") || !strcmp(pref, "msix"))) {
        int vec = irq_alloc_vector(vnet_irq_msix, v);
        if (pci_msix_set(v->pci, 0, vec)) {
            pci_msix_enable(v->pci);
            v->msix = true;
            msix_vec = 0;
            v->nic.irq_mode = "msix";
        }
    }
    if (!v->msix && (!strcmp(pref, "auto") || !strcmp(pref, "intx"))) {
        int vec = irq_alloc_vector(vnet_irq_isr, v);
        bool ok = v->pci ? pci_intx_route(v->pci, vec) : (v->gsi && ioapic_route(v->gsi, vec));
        if (ok) {
            v->nic.irq_mode = "intx";
        }
    }
    if (v->msix && v->kind == VT_MODERN) {
        mmio_write16(v->common + VIRTIO_PCI_COMMON_MSIX, VIRTIO_MSI_NO_VECTOR);
    } else if (v->msix) {
        outw(v->io + VIRTIO_MSI_CONFIG_VECTOR, VIRTIO_MSI_NO_VECTOR);
    }
    v->nic.priv = v;

    if (!vq_alloc(v, &v->rxq, 0, vt_queue_max(v, 0), packed) || !vq_alloc(v, &v->txq, 1, vt_queue_max(v, 1), packed)) {
        report("virtio error=\"queues unavailable\"");
        return NULL;
    }
    if (!vq_setup(v, &v->rxq, msix_vec) || !vq_setup(v, &v->txq, msix_vec)) {
        report("virtio error=\"queue setup refused (msix vector?)\"");
        return NULL;
    }
    for (int i = 0; i < 6; i++) {
        v->nic.mac[i] = (v->features & (1ull << VIRTIO_NET_F_MAC)) ? vt_config8(v, i) : (uint8_t)(0x52 + i);
    }
    /* Post every RX buffer before DRIVER_OK so the device can deliver at once. */
    uint16_t nrx = v->rxq.vr.num > QSIZE_MAX ? QSIZE_MAX : v->rxq.vr.num;
    for (uint16_t i = 0; i < nrx; i++) {
        vq_add(&v->rxq, i, BUF_SIZE, true);
    }
    v->rxq.nfree = 0;
    vt_set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | (modern ? VIRTIO_CONFIG_S_FEATURES_OK : 0) |
                         VIRTIO_CONFIG_S_DRIVER_OK);
    vt_notify(v, &v->rxq);
    if (vt_get_status(v) & VIRTIO_CONFIG_S_NEEDS_RESET) {
        report("virtio error=\"device needs reset after DRIVER_OK\"");
        return NULL;
    }
    v->nic.ops = &vnet_ops;
    report("virtio transport=%s ring=%s features=0x%lx qsize=%u/%u hdr=%zu", v->kind == VT_LEGACY ? "legacy"
           : v->kind == VT_MODERN ? "modern" : v->mmio_v1 ? "mmio-v1" : "mmio-v2", packed ? "packed" : "split",
           v->features, v->rxq.vr.num, v->txq.vr.num, v->hdr_len);
    return &v->nic;
}

/* ---- PCI probe ---- */

static uint64_t cap_addr(struct pci_dev *d, uint8_t cap)
{
    uint8_t bar = pci_cfg_read8(d, cap + offsetof(struct virtio_pci_cap, bar));
    uint32_t off = pci_cfg_read32(d, cap + offsetof(struct virtio_pci_cap, offset));
    if (bar > 5 || !d->bar[bar] || d->bar_io[bar]) {
        return 0;
    }
    return d->bar[bar] + off;
}

struct nic *virtio_pci_probe(struct pci_dev *d, const char *want)
{
    struct vnet *v = alloc(sizeof(*v), 16);
    v->nic.model = "virtio-net-pci";
    v->pci = d;
    if (d->device == 0x1000 && d->subsys_device != VIRTIO_ID_NET) {
        return NULL;    /* a transitional device of another type */
    }
    pci_enable(d);
    bool want_legacy = want && !strcmp(want, "virtio-legacy");
    uint8_t caps[6] = { 0 };
    for (uint8_t c = pci_find_cap(d, PCI_CAP_ID_VNDR, 0); c; c = pci_find_cap(d, PCI_CAP_ID_VNDR, c)) {
        uint8_t type = pci_cfg_read8(d, c + offsetof(struct virtio_pci_cap, cfg_type));
        if (type < 6 && !caps[type]) {
            caps[type] = c;
        }
    }
    bool have_modern = caps[VIRTIO_PCI_CAP_COMMON_CFG] && caps[VIRTIO_PCI_CAP_NOTIFY_CFG] && caps[VIRTIO_PCI_CAP_ISR_CFG];
    bool have_legacy = d->bar_io[0] && d->bar[0];
    if (have_modern && !want_legacy) {
        v->kind = VT_MODERN;
        v->common = cap_addr(d, caps[VIRTIO_PCI_CAP_COMMON_CFG]);
        v->isr = cap_addr(d, caps[VIRTIO_PCI_CAP_ISR_CFG]);
        v->notify_base = cap_addr(d, caps[VIRTIO_PCI_CAP_NOTIFY_CFG]);
        v->notify_mult = pci_cfg_read32(d, caps[VIRTIO_PCI_CAP_NOTIFY_CFG] + sizeof(struct virtio_pci_cap));
        v->devcfg = caps[VIRTIO_PCI_CAP_DEVICE_CFG] ? cap_addr(d, caps[VIRTIO_PCI_CAP_DEVICE_CFG]) : 0;
        if (!v->common || !v->isr || !v->notify_base) {
            report("virtio error=\"modern capability points at a missing BAR\"");
            return NULL;
        }
    } else if (have_legacy && (want_legacy || !have_modern)) {
        v->kind = VT_LEGACY;
        v->io = d->bar[0];
    } else {
        report("virtio slot=%u: no %s interface", d->slot, want_legacy ? "legacy" : "usable");
        return NULL;
    }
    return vnet_init(v, want);
}

/* ---- virtio-mmio probe ---- */

struct nic *virtio_mmio_probe(uint64_t base, unsigned gsi, const char *want)
{
    if (mmio_read32(base + VIRTIO_MMIO_MAGIC_VALUE) != 0x74726976) {
        return NULL;
    }
    uint32_t version = mmio_read32(base + VIRTIO_MMIO_VERSION);
    uint32_t devid = mmio_read32(base + VIRTIO_MMIO_DEVICE_ID);
    if (devid != VIRTIO_ID_NET || (version != 1 && version != 2)) {
        return NULL;
    }
    struct vnet *v = alloc(sizeof(*v), 16);
    v->nic.model = "virtio-net-mmio";
    v->kind = VT_MMIO;
    v->io = base;
    v->mmio_v1 = version == 1;
    if (v->mmio_v1) {
        mmio_write32(base + VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
    }
    v->gsi = gsi;
    return vnet_init(v, want);
}
