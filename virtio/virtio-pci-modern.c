/*
 * The modern (virtio 1.0) interface of the virtio PCI transport: the
 * common configuration structure, ISR, device configuration and
 * notification areas at QEMU 7.2's offsets in the 64-bit prefetchable
 * BAR4, the vendor capabilities that point at them, and the PCI
 * configuration access capability, a window through config space onto
 * BAR4. Apart from the legacy register file (virtio-pci-legacy.c) because
 * the two have nothing in common but the device behind them; each is a
 * switch on its own named offsets (linux/virtio_pci.h).
 */
#include "virtio-pci-internal.h"
#include "qnic/log.h"
#include <linux/virtio_pci.h>

/* ---- BAR4: common config, ISR, device config, notify ---- */

static uint64_t common_read(QnicVirtioPci *p, uint64_t addr, unsigned size)
{
    QnicVirtioDevice *vdev = p->vdev;
    QnicVirtQueue *vq = p->queue_sel < vdev->num_queues ? &vdev->vqs[p->queue_sel] : NULL;
    uint64_t features = qnic_virtio_modern_features(vdev);

    switch (addr) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        return p->dfselect;
    case VIRTIO_PCI_COMMON_DF:
        return p->dfselect < 2 ? (uint32_t)(features >> (32 * p->dfselect)) : 0;
    case VIRTIO_PCI_COMMON_GFSELECT:
        return p->gfselect;
    case VIRTIO_PCI_COMMON_GF:
        return p->gfselect < 2 ? (uint32_t)(vdev->driver_features >> (32 * p->gfselect)) : 0;
    case VIRTIO_PCI_COMMON_MSIX:
        return vdev->config_vector;
    case VIRTIO_PCI_COMMON_NUMQ:
        return vdev->num_queues;
    case VIRTIO_PCI_COMMON_STATUS:
        return vdev->status;
    case VIRTIO_PCI_COMMON_CFGGENERATION:
        return vdev->config_generation & 0xff;
    case VIRTIO_PCI_COMMON_Q_SELECT:
        return p->queue_sel;
    }
    if (!vq) {
        return 0;
    }
    switch (addr) {
    case VIRTIO_PCI_COMMON_Q_SIZE:
        return vq->num;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        return vq->vector;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        return vq->enabled;
    case VIRTIO_PCI_COMMON_Q_NOFF:
        return vq->index;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
        return (uint32_t)vq->desc_gpa;
    case VIRTIO_PCI_COMMON_Q_DESCHI:
        return vq->desc_gpa >> 32;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
        return (uint32_t)vq->avail_gpa;
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
        return vq->avail_gpa >> 32;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
        return (uint32_t)vq->used_gpa;
    case VIRTIO_PCI_COMMON_Q_USEDHI:
        return vq->used_gpa >> 32;
    case VIRTIO_PCI_COMMON_Q_RESET:
        return 0;   /* a queue reset completes synchronously */
    default:
        return 0;
    }
}

static void common_write(QnicVirtioPci *p, uint64_t addr, uint64_t val, unsigned size)
{
    QnicVirtioDevice *vdev = p->vdev;
    QnicVirtQueue *vq = p->queue_sel < vdev->num_queues ? &vdev->vqs[p->queue_sel] : NULL;

    switch (addr) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        p->dfselect = val;
        return;
    case VIRTIO_PCI_COMMON_GFSELECT:
        p->gfselect = val;
        return;
    case VIRTIO_PCI_COMMON_GF:
        qnic_virtio_set_driver_features(vdev, p->gfselect, val);
        return;
    case VIRTIO_PCI_COMMON_MSIX:
        vdev->config_vector = virtio_pci_check_vector(p, val);
        return;
    case VIRTIO_PCI_COMMON_STATUS:
        virtio_pci_set_status(p, val & 0xff);
        return;
    case VIRTIO_PCI_COMMON_Q_SELECT:
        p->queue_sel = val;
        return;
    case VIRTIO_PCI_COMMON_DF:
    case VIRTIO_PCI_COMMON_NUMQ:
    case VIRTIO_PCI_COMMON_CFGGENERATION:
    case VIRTIO_PCI_COMMON_Q_NOFF:
        qnic_guest_error("virtio-pci: write to read-only common config field 0x%" PRIx64, addr);
        return;
    }
    if (!vq) {
        qnic_guest_error("virtio-pci: queue register write with queue_select %u of %u",
                         p->queue_sel, vdev->num_queues);
        return;
    }
    if (vq->enabled && addr != VIRTIO_PCI_COMMON_Q_MSIX && addr != VIRTIO_PCI_COMMON_Q_RESET &&
        addr != VIRTIO_PCI_COMMON_Q_ENABLE) {
        qnic_guest_error("virtio-pci: queue %u register 0x%" PRIx64 " written while enabled",
                         vq->index, addr);
        return;
    }
    switch (addr) {
    case VIRTIO_PCI_COMMON_Q_SIZE:
        if (val == 0 || val > vq->num_max ||
            (!QNIC_IS_POW2(val) && !qnic_virtio_has_feature(vdev, VIRTIO_F_RING_PACKED))) {
            qnic_guest_error("virtio-pci: invalid queue size %" PRIu64 " (max %u)", val,
                             vq->num_max);
            return;
        }
        vq->num = val;
        break;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        vq->vector = virtio_pci_check_vector(p, val);
        qnic_virtio_guest_notifier_changed(vdev, vq->index);
        break;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        if (val != 1) {
            qnic_guest_error("virtio-pci: queue_enable written with %" PRIu64, val);
            return;
        }
        if (vq->enabled) {
            return;
        }
        vq->enabled = true;
        if (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
            /* Re-enable after a per-queue reset. */
            if (qnic_virtio_queue_start(vdev, vq->index) && vdev->ops->queue_enable) {
                vdev->ops->queue_enable(vdev, vq->index);
            }
        }
        break;
    case VIRTIO_PCI_COMMON_Q_DESCLO: qnic_set_lo32(&vq->desc_gpa, val); break;
    case VIRTIO_PCI_COMMON_Q_DESCHI: qnic_set_hi32(&vq->desc_gpa, val); break;
    case VIRTIO_PCI_COMMON_Q_AVAILLO: qnic_set_lo32(&vq->avail_gpa, val); break;
    case VIRTIO_PCI_COMMON_Q_AVAILHI: qnic_set_hi32(&vq->avail_gpa, val); break;
    case VIRTIO_PCI_COMMON_Q_USEDLO: qnic_set_lo32(&vq->used_gpa, val); break;
    case VIRTIO_PCI_COMMON_Q_USEDHI: qnic_set_hi32(&vq->used_gpa, val); break;
    case VIRTIO_PCI_COMMON_Q_RESET:
        if (val == 1) {
            if (!qnic_virtio_has_feature(vdev, VIRTIO_F_RING_RESET)) {
                qnic_guest_error("virtio-pci: queue_reset without RING_RESET");
                return;
            }
            qnic_virtio_queue_reset(vdev, vq->index);
        }
        break;
    default:
        qnic_guest_error("virtio-pci: write to unknown common config offset 0x%" PRIx64, addr);
        break;
    }
}

static uint64_t modern_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicVirtioPci *p = opaque;
    unsigned off = addr & (MODERN_REGION_SIZE - 1);

    switch (addr & ~(uint64_t)(MODERN_REGION_SIZE - 1)) {
    case COMMON_OFF:
        return common_read(p, off, size);
    case ISR_OFF:
        return off == 0 ? qnic_virtio_read_isr(p->vdev) : 0;
    case DEVICE_OFF:
        return qnic_virtio_config_read(p->vdev, off, size);
    default:
        return 0;   /* notify area reads as zero */
    }
}

static void modern_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicVirtioPci *p = opaque;
    unsigned off = addr & (MODERN_REGION_SIZE - 1);

    switch (addr & ~(uint64_t)(MODERN_REGION_SIZE - 1)) {
    case COMMON_OFF:
        common_write(p, off, val, size);
        break;
    case ISR_OFF:
        qnic_guest_error("virtio-pci: write to the read-only ISR");
        break;
    case DEVICE_OFF:
        qnic_virtio_config_write(p->vdev, off, size, val);
        break;
    case NOTIFY_OFF:
        if (off % NOTIFY_MULT == 0 && off / NOTIFY_MULT < p->vdev->num_queues) {
            qnic_virtio_queue_kick(p->vdev, off / NOTIFY_MULT);
        } else {
            qnic_guest_error("virtio-pci: notify at 0x%x matches no queue", off);
        }
        break;
    }
}

static const QnicMemOps modern_ops = {
    .read = modern_read,
    .write = modern_write,
    .valid_min = 1, .valid_max = 4,
    .impl_min = 1, .impl_max = 4,
    .valid_unaligned = false,
};


/* ---- PCI config hooks: the VIRTIO_PCI_CAP_PCI_CFG window ---- */

static bool cfg_window(QnicVirtioPci *p, unsigned *bar_off, unsigned *len)
{
    const uint8_t *c = p->pci.config + p->cfg_cap;
    uint32_t off = qnic_ld32(c + VIRTIO_PCI_CAP_OFFSET);
    uint32_t l = qnic_ld32(c + VIRTIO_PCI_CAP_LENGTH);

    if (c[VIRTIO_PCI_CAP_BAR] != MODERN_BAR || (l != 1 && l != 2 && l != 4) ||
        off >= MODERN_BAR_SIZE || MODERN_BAR_SIZE - off < l || (off & (l - 1))) {
        return false;
    }
    *bar_off = off;
    *len = l;
    return true;
}

void virtio_pci_modern_cfg_write(QnicVirtioPci *p, uint32_t addr, unsigned len)
{
    QnicPciDevice *d = &p->pci;
    unsigned data = p->cfg_cap + 16, off, l;

    if (!p->cfg_cap || addr + len <= data || addr >= data + 4) {
        return;
    }
    if (cfg_window(p, &off, &l)) {
        uint32_t v = qnic_ld32(d->config + data);
        d->dev.in_io++;
        modern_write(p, off, l == 4 ? v : v & ((1u << (8 * l)) - 1), l);
        d->dev.in_io--;
    }
}

uint32_t virtio_pci_modern_cfg_read(QnicVirtioPci *p, uint32_t addr, unsigned len, uint32_t val)
{
    QnicPciDevice *d = &p->pci;
    unsigned data = p->cfg_cap + 16, off, l;
    uint8_t buf[4];

    if (!p->cfg_cap || addr + len <= data || addr >= data + 4) {
        return val;
    }
    if (!cfg_window(p, &off, &l)) {
        return val;
    }
    d->dev.in_io++;
    qnic_st32(buf, modern_read(p, off, l));
    d->dev.in_io--;
    memcpy(d->config + data, buf, l);
    /* Rebuild the value the core computed from the updated bytes. */
    {
        uint32_t v = 0;
        for (unsigned i = 0; i < len; i++) {
            v |= (uint32_t)d->config[addr + i] << (8 * i);
        }
        return v;
    }
}

/* ---- capabilities ---- */

static uint8_t add_vendor_cap(QnicVirtioPci *p, uint8_t type, uint8_t caplen, uint32_t off,
                              uint32_t len, GError **errp)
{
    uint8_t pos = qnic_pci_add_capability(&p->pci, PCI_CAP_ID_VNDR, 0, caplen, errp);

    if (!pos) {
        return 0;
    }
    qnic_pci_set_byte(&p->pci, pos + VIRTIO_PCI_CAP_LEN, caplen);
    qnic_pci_set_byte(&p->pci, pos + VIRTIO_PCI_CAP_CFG_TYPE, type);
    qnic_pci_set_byte(&p->pci, pos + VIRTIO_PCI_CAP_BAR, type == VIRTIO_PCI_CAP_PCI_CFG ? 0 : MODERN_BAR);
    qnic_pci_set_long(&p->pci, pos + VIRTIO_PCI_CAP_OFFSET, off);
    qnic_pci_set_long(&p->pci, pos + VIRTIO_PCI_CAP_LENGTH, len);
    return pos;
}


bool virtio_pci_modern_init(QnicVirtioPci *p, GError **errp)
{
    QnicPciDevice *d = &p->pci;
    uint8_t notify;

    qnic_region_init_io(&p->modern_bar, &d->dev, &modern_ops, p, "virtio-pci-modern",
                        MODERN_BAR_SIZE);
    if (!add_vendor_cap(p, VIRTIO_PCI_CAP_COMMON_CFG, 16, COMMON_OFF, MODERN_REGION_SIZE, errp) ||
        !add_vendor_cap(p, VIRTIO_PCI_CAP_ISR_CFG, 16, ISR_OFF, MODERN_REGION_SIZE, errp) ||
        !add_vendor_cap(p, VIRTIO_PCI_CAP_DEVICE_CFG, 16, DEVICE_OFF, MODERN_REGION_SIZE, errp) ||
        !(notify = add_vendor_cap(p, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, NOTIFY_OFF,
                                  MODERN_REGION_SIZE, errp)) ||
        !(p->cfg_cap = add_vendor_cap(p, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0, errp))) {
        return false;
    }
    qnic_pci_set_long(d, notify + VIRTIO_PCI_NOTIFY_CAP_MULT, NOTIFY_MULT);
    /* The cfg access window: bar, offset, length and data are writable. */
    d->wmask[p->cfg_cap + VIRTIO_PCI_CAP_BAR] = 0xff;
    memset(d->wmask + p->cfg_cap + VIRTIO_PCI_CAP_OFFSET, 0xff, 12);
    qnic_pci_register_bar(d, MODERN_BAR, QNIC_PCI_BAR_MEM64 | QNIC_PCI_BAR_PREFETCH,
                          &p->modern_bar);
    return true;
}
