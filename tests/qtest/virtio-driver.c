/*
 * The qtest virtio driver (see virtio-driver.h): PCI capability walking,
 * legacy/modern/MMIO register access, feature negotiation, split and packed
 * rings in guest RAM from qtest_guest_alloc, and polling the used ring.
 */
#include "virtio-driver.h"
#include <glib.h>
#include <string.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/pci_regs.h>

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
    memset(d, 0, sizeof(*d));
    d->qts = qts;
    d->t = t;
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
    memset(d, 0, sizeof(*d));
    d->qts = qts;
    d->t = VD_MMIO;
    d->mmio = base;
    g_assert_cmphex(qtest_readl(qts, base + VIRTIO_MMIO_MAGIC_VALUE), ==, 0x74726976);
    d->mmio_version = qtest_readl(qts, base + VIRTIO_MMIO_VERSION);
}

static bool legacy_like(VDev *d)
{
    return d->t == VD_PCI_LEGACY || (d->t == VD_MMIO && d->mmio_version == 1);
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

static void setup_one(VDev *d, unsigned i, unsigned size)
{
    QTestState *qts = d->qts;
    VdQueue *q = &d->q[i];
    unsigned num;

    memset(q, 0, sizeof(*q));
    q->index = i;
    q->packed = d->features & (1ull << VIRTIO_F_RING_PACKED);
    q->avail_wrap = q->used_wrap = true;
    switch (d->t) {
    case VD_PCI_LEGACY:
        qtest_outw(qts, d->io + VIRTIO_PCI_QUEUE_SEL, i);
        num = qtest_inw(qts, d->io + VIRTIO_PCI_QUEUE_NUM);
        g_assert_cmpuint(num, >, 0);
        q->num = num;
        q->desc = qtest_guest_alloc(qts, vring_size(num, 4096), 4096);
        qtest_memset(qts, q->desc, 0, vring_size(num, 4096));
        q->avail = q->desc + 16ull * num;
        q->used = (q->avail + 6 + 2ull * num + 4095) & ~4095ull;
        qtest_outl(qts, d->io + VIRTIO_PCI_QUEUE_PFN, q->desc >> 12);
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
    q->num = num;
    if (d->t == VD_MMIO && d->mmio_version == 1) {
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_QUEUE_NUM, num);
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_QUEUE_ALIGN, 4096);
        q->desc = qtest_guest_alloc(qts, vring_size(num, 4096), 4096);
        qtest_memset(qts, q->desc, 0, vring_size(num, 4096));
        q->avail = q->desc + 16ull * num;
        q->used = (q->avail + 6 + 2ull * num + 4095) & ~4095ull;
        qtest_writel(qts, d->mmio + VIRTIO_MMIO_QUEUE_PFN, q->desc >> 12);
        return;
    }
    q->desc = qtest_guest_alloc(qts, 16ull * num, 4096);
    q->avail = qtest_guest_alloc(qts, 6 + 2ull * num, 4096);
    q->used = qtest_guest_alloc(qts, 6 + 8ull * num, 4096);
    qtest_memset(qts, q->desc, 0, 16ull * num);
    qtest_memset(qts, q->avail, 0, 6 + 2ull * num);
    qtest_memset(qts, q->used, 0, 6 + 8ull * num);
    if (d->t == VD_PCI_MODERN) {
        uint64_t c = d->common;
        qtest_writew(qts, c + VIRTIO_PCI_COMMON_Q_SIZE, num);
        qtest_writel(qts, c + VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)q->desc);
        qtest_writel(qts, c + VIRTIO_PCI_COMMON_Q_DESCHI, q->desc >> 32);
        qtest_writel(qts, c + VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)q->avail);
        qtest_writel(qts, c + VIRTIO_PCI_COMMON_Q_AVAILHI, q->avail >> 32);
        qtest_writel(qts, c + VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)q->used);
        qtest_writel(qts, c + VIRTIO_PCI_COMMON_Q_USEDHI, q->used >> 32);
        qtest_writew(qts, c + VIRTIO_PCI_COMMON_Q_ENABLE, 1);
    } else {
        uint64_t m = d->mmio;
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_NUM, num);
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)q->desc);
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_DESC_HIGH, q->desc >> 32);
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)q->avail);
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_AVAIL_HIGH, q->avail >> 32);
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)q->used);
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_USED_HIGH, q->used >> 32);
        qtest_writel(qts, m + VIRTIO_MMIO_QUEUE_READY, 1);
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

void vd_write_desc(VDev *d, unsigned qi, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                   uint16_t next)
{
    uint8_t b[16];
    VdQueue *q = &d->q[qi];

    memcpy(b, &addr, 8);
    memcpy(b + 8, &len, 4);
    memcpy(b + 12, &flags, 2);
    memcpy(b + 14, &next, 2);
    qtest_memwrite(d->qts, q->desc + 16ull * i, b, 16);
}

void vd_set_avail_idx(VDev *d, unsigned qi, uint16_t idx)
{
    qtest_writew(d->qts, d->q[qi].avail + 2, idx);
}

void vd_publish_avail(VDev *d, unsigned qi, uint16_t head)
{
    VdQueue *q = &d->q[qi];

    qtest_writew(d->qts, q->avail + 4 + 2ull * (q->avail_idx % q->num), head);
    q->avail_idx++;
    vd_set_avail_idx(d, qi, q->avail_idx);
}

static void write_packed_desc(QTestState *qts, uint64_t a, uint64_t addr, uint32_t len,
                              uint16_t id, uint16_t flags)
{
    uint8_t b[16];

    memcpy(b, &addr, 8);
    memcpy(b + 8, &len, 4);
    memcpy(b + 12, &id, 2);
    memcpy(b + 14, &flags, 2);
    qtest_memwrite(qts, a, b, 16);
}

uint16_t vd_add(VDev *d, unsigned qi, const VdBuf *bufs, unsigned n, bool indirect)
{
    VdQueue *q = &d->q[qi];
    QTestState *qts = d->qts;

    if (q->packed) {
        uint16_t id = q->next_id++ % q->num;
        uint16_t av = (q->avail_wrap ? 1u << VRING_PACKED_DESC_F_AVAIL : 0) |
                      (q->avail_wrap ? 0 : 1u << VRING_PACKED_DESC_F_USED);
        unsigned head = q->last_used, slots;
        (void)head;
        if (indirect) {
            uint64_t t = qtest_guest_alloc(qts, 16ull * n, 16);
            for (unsigned i = 0; i < n; i++) {
                write_packed_desc(qts, t + 16ull * i, bufs[i].addr, bufs[i].len, 0,
                                  bufs[i].write ? VRING_DESC_F_WRITE : 0);
            }
            write_packed_desc(qts, q->desc + 16ull * q->next_desc, t, 16 * n, id,
                              VRING_DESC_F_INDIRECT | av);
            slots = 1;
        } else {
            /* Write the tail first and the head's flags last. */
            unsigned start = q->next_desc;
            bool wrap = q->avail_wrap;
            for (unsigned i = n; i-- > 0;) {
                unsigned s = start + i;
                bool w = wrap;
                uint16_t a;
                if (s >= q->num) {
                    s -= q->num;
                    w = !w;
                }
                a = (w ? 1u << VRING_PACKED_DESC_F_AVAIL : 0) | (w ? 0 : 1u << VRING_PACKED_DESC_F_USED);
                write_packed_desc(qts, q->desc + 16ull * s, bufs[i].addr, bufs[i].len, id,
                                  (bufs[i].write ? VRING_DESC_F_WRITE : 0) |
                                  (i + 1 < n ? VRING_DESC_F_NEXT : 0) | a);
            }
            slots = n;
        }
        q->chain_len[id] = slots;
        q->next_desc += slots;
        if (q->next_desc >= q->num) {
            q->next_desc -= q->num;
            q->avail_wrap = !q->avail_wrap;
        }
        return id;
    }
    {
        uint16_t head = q->next_desc % q->num;
        if (indirect) {
            uint64_t t = qtest_guest_alloc(qts, 16ull * n, 16);
            for (unsigned i = 0; i < n; i++) {
                uint8_t b[16];
                uint16_t fl = (bufs[i].write ? VRING_DESC_F_WRITE : 0) |
                              (i + 1 < n ? VRING_DESC_F_NEXT : 0);
                uint16_t nx = i + 1;
                memcpy(b, &bufs[i].addr, 8);
                memcpy(b + 8, &bufs[i].len, 4);
                memcpy(b + 12, &fl, 2);
                memcpy(b + 14, &nx, 2);
                qtest_memwrite(qts, t + 16ull * i, b, 16);
            }
            vd_write_desc(d, qi, head, t, 16 * n, VRING_DESC_F_INDIRECT, 0);
            q->next_desc++;
        } else {
            for (unsigned i = 0; i < n; i++) {
                unsigned cur = (q->next_desc + i) % q->num;
                unsigned nx = (q->next_desc + i + 1) % q->num;
                vd_write_desc(d, qi, cur, bufs[i].addr, bufs[i].len,
                              (bufs[i].write ? VRING_DESC_F_WRITE : 0) |
                              (i + 1 < n ? VRING_DESC_F_NEXT : 0), nx);
            }
            q->next_desc += n;
        }
        vd_publish_avail(d, qi, head);
        return head;
    }
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

static bool try_used(VDev *d, VdQueue *q, uint16_t *id, uint32_t *len)
{
    QTestState *qts = d->qts;

    if (q->packed) {
        uint64_t a = q->desc + 16ull * q->last_used;
        uint16_t flags = qtest_readw(qts, a + 14);
        bool av = flags & (1u << VRING_PACKED_DESC_F_AVAIL);
        bool us = flags & (1u << VRING_PACKED_DESC_F_USED);
        if (av != us || us != q->used_wrap) {
            return false;
        }
        *id = qtest_readw(qts, a + 12);
        *len = qtest_readl(qts, a + 8);
        q->last_used += q->chain_len[*id % q->num] ? q->chain_len[*id % q->num] : 1;
        if (q->last_used >= q->num) {
            q->last_used -= q->num;
            q->used_wrap = !q->used_wrap;
        }
        return true;
    }
    if (qtest_readw(qts, q->used + 2) == q->last_used) {
        return false;
    }
    {
        uint64_t e = q->used + 4 + 8ull * (q->last_used % q->num);
        *id = qtest_readl(qts, e);
        *len = qtest_readl(qts, e + 4);
        q->last_used++;
        return true;
    }
}

bool vd_get_used(VDev *d, unsigned qi, uint16_t *id, uint32_t *len, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    do {
        if (try_used(d, &d->q[qi], id, len)) {
            return true;
        }
        g_usleep(1000);
    } while (g_get_monotonic_time() < end);
    return false;
}
