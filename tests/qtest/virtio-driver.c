/*
 * The qtest virtio driver (see virtio-driver.h): PCI capability walking,
 * legacy/modern/MMIO register access, feature negotiation, split and packed
 * rings (tests/lib/vring-driver.c) in guest RAM from qtest_guest_alloc, and
 * polling the used ring.
 */
#include "virtio-driver.h"
#include <glib.h>
#include <string.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/pci_regs.h>

static void qmem_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
    qtest_memread(opaque, gpa, buf, len);
}

static void qmem_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
    qtest_memwrite(opaque, gpa, buf, len);
}

/* qtest commands are serialised with the device: no fences needed. */
static void vd_reset_struct(VDev *d, QTestState *qts, VdTransport t)
{
    memset(d, 0, sizeof(*d));
    d->qts = qts;
    d->t = t;
    d->mem = (VringMem){ .read = qmem_read, .write = qmem_write, .opaque = qts };
}

const VringMem *vd_mem(VDev *d)
{
    return &d->mem;
}

int vd_pci_find(QTestState *qts, uint16_t device_id)
{
    for (int devfn = 0; devfn < 256; devfn++) {
        uint32_t id = qtest_pci_cfg_readl(qts, devfn, 0);
        if ((id & 0xffff) == 0x1af4 && (id >> 16) == device_id) {
            return devfn;
        }
    }
    return -1;
}

void vd_pci_init(VDev *d, QTestState *qts, int devfn, VdTransport t)
{
    vd_reset_struct(d, qts, t);
    d->devfn = devfn;
    qtest_pci_enable(qts, devfn, d->bars);
    d->io = d->bars[0];
    if (t == VD_PCI_MODERN) {
        uint8_t pos = qtest_pci_cfg_readb(qts, devfn, PCI_CAPABILITY_LIST);
        for (int guard = 0; pos && guard < 48; guard++) {
            uint8_t id = qtest_pci_cfg_readb(qts, devfn, pos);
            if (id == PCI_CAP_ID_VNDR) {
                uint8_t type = qtest_pci_cfg_readb(qts, devfn, pos + VIRTIO_PCI_CAP_CFG_TYPE);
                uint8_t bar = qtest_pci_cfg_readb(qts, devfn, pos + VIRTIO_PCI_CAP_BAR);
                uint32_t off = qtest_pci_cfg_readl(qts, devfn, pos + VIRTIO_PCI_CAP_OFFSET);
                uint64_t a = bar < 6 ? d->bars[bar] + off : 0;
                switch (type) {
                case VIRTIO_PCI_CAP_COMMON_CFG: d->common = a; break;
                case VIRTIO_PCI_CAP_ISR_CFG: d->isr = a; break;
                case VIRTIO_PCI_CAP_DEVICE_CFG: d->device = a; break;
                case VIRTIO_PCI_CAP_NOTIFY_CFG:
                    d->notify = a;
                    d->notify_mult = qtest_pci_cfg_readl(qts, devfn, pos + VIRTIO_PCI_NOTIFY_CAP_MULT);
                    break;
                }
            }
            pos = qtest_pci_cfg_readb(qts, devfn, pos + 1);
        }
        g_assert_cmphex(d->common, !=, 0);
        g_assert_cmphex(d->notify, !=, 0);
    } else {
        g_assert_cmphex(d->io, !=, 0);
    }
}

void vd_mmio_init(VDev *d, QTestState *qts, uint64_t base)
{
    vd_reset_struct(d, qts, VD_MMIO);
    d->mmio = base;
    g_assert_cmphex(qtest_readl(qts, base + VIRTIO_MMIO_MAGIC_VALUE), ==, 0x74726976);
    d->mmio_version = qtest_readl(qts, base + VIRTIO_MMIO_VERSION);
}

static bool legacy_like(VDev *d)
{
    return d->t == VD_PCI_LEGACY || (d->t == VD_MMIO && d->mmio_version == 1);
}

void vd_set_qts(VDev *d, QTestState *qts)
{
    d->qts = qts;
    d->mem.opaque = qts;
    for (unsigned i = 0; i < VD_MAX_QUEUES; i++) {
        d->q[i].vr.mem.opaque = qts;
    }
}

void vd_set_status(VDev *d, uint8_t s)
{
    switch (d->t) {
    case VD_PCI_LEGACY: qtest_outb(d->qts, d->io + VIRTIO_PCI_STATUS, s); break;
    case VD_PCI_MODERN: qtest_writeb(d->qts, d->common + VIRTIO_PCI_COMMON_STATUS, s); break;
    case VD_MMIO: qtest_writel(d->qts, d->mmio + VIRTIO_MMIO_STATUS, s); break;
    }
}

uint8_t vd_get_status(VDev *d)
{
    switch (d->t) {
    case VD_PCI_LEGACY: return qtest_inb(d->qts, d->io + VIRTIO_PCI_STATUS);
    case VD_PCI_MODERN: return qtest_readb(d->qts, d->common + VIRTIO_PCI_COMMON_STATUS);
    default: return qtest_readl(d->qts, d->mmio + VIRTIO_MMIO_STATUS);
    }
}

uint64_t vd_device_features(VDev *d)
{
    uint64_t f = 0;

    switch (d->t) {
    case VD_PCI_LEGACY:
        return qtest_inl(d->qts, d->io + VIRTIO_PCI_HOST_FEATURES);
    case VD_PCI_MODERN:
        for (int i = 0; i < 2; i++) {
            qtest_writel(d->qts, d->common + VIRTIO_PCI_COMMON_DFSELECT, i);
            f |= (uint64_t)qtest_readl(d->qts, d->common + VIRTIO_PCI_COMMON_DF) << (32 * i);
        }
        return f;
    default:
        for (int i = 0; i < 2; i++) {
            qtest_writel(d->qts, d->mmio + VIRTIO_MMIO_DEVICE_FEATURES_SEL, i);
            f |= (uint64_t)qtest_readl(d->qts, d->mmio + VIRTIO_MMIO_DEVICE_FEATURES) << (32 * i);
        }
        return f;
    }
}

static void write_features(VDev *d, uint64_t f)
{
    switch (d->t) {
    case VD_PCI_LEGACY:
        qtest_outl(d->qts, d->io + VIRTIO_PCI_GUEST_FEATURES, (uint32_t)f);
        break;
    case VD_PCI_MODERN:
        for (int i = 0; i < 2; i++) {
            qtest_writel(d->qts, d->common + VIRTIO_PCI_COMMON_GFSELECT, i);
            qtest_writel(d->qts, d->common + VIRTIO_PCI_COMMON_GF, (uint32_t)(f >> (32 * i)));
        }
        break;
    default:
        for (int i = 0; i < 2; i++) {
            qtest_writel(d->qts, d->mmio + VIRTIO_MMIO_DRIVER_FEATURES_SEL, i);
            qtest_writel(d->qts, d->mmio + VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> (32 * i)));
        }
        break;
    }
}

bool vd_negotiate(VDev *d, uint64_t want)
{
    uint64_t offered;

    vd_set_status(d, 0);
    vd_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    vd_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    offered = vd_device_features(d);
    d->features = want & offered;
    if (want & (1ull << 63) && want == ~0ull) {
        d->features = offered;
    }
    write_features(d, d->features);
    if (legacy_like(d)) {
        return true;
    }
    vd_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                  VIRTIO_CONFIG_S_FEATURES_OK);
    return vd_get_status(d) & VIRTIO_CONFIG_S_FEATURES_OK;
}

/* Write raw features without masking, then FEATURES_OK (malformed tests). */
bool vd_negotiate_raw(VDev *d, uint64_t f);
bool vd_negotiate_raw(VDev *d, uint64_t f)
{
    vd_set_status(d, 0);
    vd_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    d->features = f;
    write_features(d, f);
    vd_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                  VIRTIO_CONFIG_S_FEATURES_OK);
    return vd_get_status(d) & VIRTIO_CONFIG_S_FEATURES_OK;
}

/* A modern transport's queue registers: size, the three ring addresses
 * (low word, high word 4 bytes on) and enable. Size and enable are 16-bit
 * on PCI, 32-bit on MMIO. */
typedef struct {
    uint64_t size, desc, avail, used, enable;
    bool wide;
} QueueRegs;

static void write_queue_regs(VDev *d, VdQueue *q, uint64_t base, const QueueRegs *r)
{
    QTestState *qts = d->qts;
    const uint64_t addr[3][2] = { { r->desc, q->vr.desc }, { r->avail, q->vr.avail },
                                  { r->used, q->vr.used } };

    if (r->wide) {
        qtest_writel(qts, base + r->size, q->vr.num);
    } else {
        qtest_writew(qts, base + r->size, q->vr.num);
    }
    for (int i = 0; i < 3; i++) {
        qtest_writel(qts, base + addr[i][0], (uint32_t)addr[i][1]);
        qtest_writel(qts, base + addr[i][0] + 4, addr[i][1] >> 32);
    }
    if (r->wide) {
        qtest_writel(qts, base + r->enable, 1);
    } else {
        qtest_writew(qts, base + r->enable, 1);
    }
}

static const QueueRegs pci_queue_regs = {
    VIRTIO_PCI_COMMON_Q_SIZE, VIRTIO_PCI_COMMON_Q_DESCLO, VIRTIO_PCI_COMMON_Q_AVAILLO,
    VIRTIO_PCI_COMMON_Q_USEDLO, VIRTIO_PCI_COMMON_Q_ENABLE, false,
};
static const QueueRegs mmio_queue_regs = {
    VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_AVAIL_LOW,
    VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_READY, true,
};

/* Legacy layout (PCI legacy, MMIO v1): one block, used ring page-aligned. */
static void alloc_legacy_ring(VDev *d, VdQueue *q, unsigned num, bool packed)
{
    uint64_t base = qtest_guest_alloc(d->qts, vring_legacy_size(num, 4096), 4096);

    qtest_memset(d->qts, base, 0, vring_legacy_size(num, 4096));
    vring_driver_init(&q->vr, &d->mem, num, packed, base, base + 16ull * num,
               base + vring_legacy_used_offset(num, 4096));
}

/* Modern layout: three separate areas (the packed event areas fit in the
 * split rings' sizes). */
static void alloc_modern_ring(VDev *d, VdQueue *q, unsigned num, bool packed)
{
    QTestState *qts = d->qts;
    uint64_t desc = qtest_guest_alloc(qts, 16ull * num, 4096);
    uint64_t avail = qtest_guest_alloc(qts, vring_split_avail_size(num), 4096);
    uint64_t used = qtest_guest_alloc(qts, vring_split_used_size(num), 4096);

    qtest_memset(qts, desc, 0, 16ull * num);
    qtest_memset(qts, avail, 0, vring_split_avail_size(num));
    qtest_memset(qts, used, 0, vring_split_used_size(num));
    vring_driver_init(&q->vr, &d->mem, num, packed, desc, avail, used);
}

static void setup_one(VDev *d, unsigned i, unsigned size)
{
    QTestState *qts = d->qts;
    VdQueue *q = &d->q[i];
    bool packed = d->features & (1ull << VIRTIO_F_RING_PACKED);
    unsigned num;

    memset(q, 0, sizeof(*q));
    q->index = i;
    switch (d->t) {
    case VD_PCI_LEGACY:
        qtest_outw(qts, d->io + VIRTIO_PCI_QUEUE_SEL, i);
        num = qtest_inw(qts, d->io + VIRTIO_PCI_QUEUE_NUM);
        g_assert_cmpuint(num, >, 0);
        alloc_legacy_ring(d, q, num, packed);
        qtest_outl(qts, d->io + VIRTIO_PCI_QUEUE_PFN, q->vr.desc >> 12);
        return;
    case VD_PCI_MODERN:
        qtest_writew(qts, d->common + VIRTIO_PCI_COMMON_Q_SELECT, i);
        num = qtest_readw(qts, d->common + VIRTIO_PCI_COMMON_Q_SIZE);
        break;
    default:
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_QUEUE_SEL, i);
        num = qtest_readl(qts, d->mmio + VIRTIO_MMIO_QUEUE_NUM_MAX);
        break;
    }
    g_assert_cmpuint(num, >, 0);
    if (size && size < num) {
        num = size;
    }
    if (d->t == VD_MMIO && d->mmio_version == 1) {
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_QUEUE_NUM, num);
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_QUEUE_ALIGN, 4096);
        alloc_legacy_ring(d, q, num, packed);
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_QUEUE_PFN, q->vr.desc >> 12);
        return;
    }
    alloc_modern_ring(d, q, num, packed);
    if (d->t == VD_PCI_MODERN) {
        write_queue_regs(d, q, d->common, &pci_queue_regs);
    } else {
        write_queue_regs(d, q, d->mmio, &mmio_queue_regs);
    }
}

void vd_setup_queues(VDev *d, unsigned n, unsigned size)
{
    g_assert_cmpuint(n, <=, VD_MAX_QUEUES);
    d->nq = n;
    for (unsigned i = 0; i < n; i++) {
        setup_one(d, i, size);
    }
}

void vd_driver_ok(VDev *d)
{
    vd_set_status(d, vd_get_status(d) | VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                  VIRTIO_CONFIG_S_DRIVER_OK);
}

static uint64_t config_base(VDev *d, bool *io)
{
    *io = false;
    switch (d->t) {
    case VD_PCI_LEGACY:
        *io = true;
        /* MSI-X is never enabled by this driver: config at offset 20. */
        return d->io + VIRTIO_PCI_CONFIG_OFF(false);
    case VD_PCI_MODERN:
        return d->device;
    default:
        return d->mmio + VIRTIO_MMIO_CONFIG;
    }
}

uint8_t vd_config_readb(VDev *d, unsigned off)
{
    bool io;
    uint64_t b = config_base(d, &io);
    return io ? qtest_inb(d->qts, b + off) : qtest_readb(d->qts, b + off);
}

uint16_t vd_config_readw(VDev *d, unsigned off)
{
    bool io;
    uint64_t b = config_base(d, &io);
    return io ? qtest_inw(d->qts, b + off) : qtest_readw(d->qts, b + off);
}

uint32_t vd_config_readl(VDev *d, unsigned off)
{
    bool io;
    uint64_t b = config_base(d, &io);
    return io ? qtest_inl(d->qts, b + off) : qtest_readl(d->qts, b + off);
}

uint8_t vd_read_isr(VDev *d)
{
    switch (d->t) {
    case VD_PCI_LEGACY: return qtest_inb(d->qts, d->io + VIRTIO_PCI_ISR);
    case VD_PCI_MODERN: return qtest_readb(d->qts, d->isr);
    default: {
        uint32_t v = qtest_readl(d->qts, d->mmio + VIRTIO_MMIO_INTERRUPT_STATUS);
        qtest_writel(d->qts, d->mmio + VIRTIO_MMIO_INTERRUPT_ACK, v);
        return v;
    }
    }
}

uint16_t vd_num_queues(VDev *d)
{
    g_assert(d->t == VD_PCI_MODERN);
    return qtest_readw(d->qts, d->common + VIRTIO_PCI_COMMON_NUMQ);
}

uint16_t vd_add(VDev *d, unsigned qi, const VdBuf *bufs, unsigned n, bool indirect)
{
    VringDriver *r = &d->q[qi].vr;

    if (indirect) {
        return vring_add_indirect(r, qtest_guest_alloc(d->qts, 16ull * n, 16), bufs, n);
    }
    return vring_add(r, bufs, n);
}

void vd_kick(VDev *d, unsigned qi)
{
    switch (d->t) {
    case VD_PCI_LEGACY:
        qtest_outw(d->qts, d->io + VIRTIO_PCI_QUEUE_NOTIFY, qi);
        break;
    case VD_PCI_MODERN: {
        uint16_t off;
        qtest_writew(d->qts, d->common + VIRTIO_PCI_COMMON_Q_SELECT, qi);
        off = qtest_readw(d->qts, d->common + VIRTIO_PCI_COMMON_Q_NOFF);
        qtest_writew(d->qts, d->notify + (uint64_t)off * d->notify_mult, qi);
        break;
    }
    default:
        qtest_writel(d->qts, d->mmio + VIRTIO_MMIO_QUEUE_NOTIFY, qi);
        break;
    }
}

bool vd_get_used(VDev *d, unsigned qi, uint16_t *id, uint32_t *len, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    do {
        if (vring_get_used(&d->q[qi].vr, id, len)) {
            return true;
        }
        g_usleep(1000);
    } while (g_get_monotonic_time() < end);
    return false;
}
