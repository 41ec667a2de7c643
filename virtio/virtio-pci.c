/*
 * The virtio PCI transport with the layout of QEMU 7.2, so a guest (and a
 * test that compares against QEMU) sees the same device: the legacy (0.9.5)
 * register block in I/O BAR0, MSI-X in its own 4 KiB BAR1, and the modern
 * (1.0) structures in a 16 KiB 64-bit prefetchable BAR4 found through vendor
 * capabilities: common config at 0x0000, ISR at 0x1000, device config at
 * 0x2000 and notifications at 0x3000 (queue_notify_off = queue index,
 * multiplier 4), plus the PCI configuration access capability. Which halves
 * exist depends on the model (transitional / non-transitional) and on
 * disable-legacy / disable-modern. Register dispatch is one switch per block.
 */
#include "qnic/virtio.h"
#include "qnic/machine.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include <linux/virtio_pci.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MODERN_BAR 4
#define MSIX_BAR 1
#define LEGACY_BAR 0
#define MODERN_REGION_SIZE 0x1000u
#define COMMON_OFF 0x0000u
#define ISR_OFF 0x1000u
#define DEVICE_OFF 0x2000u
#define NOTIFY_OFF 0x3000u
#define MODERN_BAR_SIZE 0x4000u
#define NOTIFY_MULT 4u

static QnicVirtioPci *vp_of(QnicVirtioDevice *vdev)
{
    return vdev->transport;
}

/* ---- interrupts ---- */

static void vp_notify(QnicVirtioDevice *vdev, uint16_t vector)
{
    QnicVirtioPci *p = vp_of(vdev);

    if (qnic_msix_enabled(&p->pci)) {
        if (vector != QNIC_VIRTIO_NO_VECTOR && vector < p->nvectors) {
            qnic_msix_notify(&p->pci, vector);
        }
        return;
    }
    /* INTx follows the whole ISR: a configuration change (bit 1 alone)
     * must raise the line too, or a link change goes unnoticed. */
    qnic_pci_set_irq(&p->pci, vdev->isr != 0);
}

static void vp_update_irq(QnicVirtioDevice *vdev)
{
    QnicVirtioPci *p = vp_of(vdev);

    if (!qnic_msix_enabled(&p->pci)) {
        qnic_pci_set_irq(&p->pci, vdev->isr != 0);
    }
}

/* The irqfd the embedder routes this queue's MSI-X message through, only
 * while a message would really be delivered now: MSI-X on, a valid vector,
 * not masked, bus mastering on (what msi_send's DMA requires). Anything
 * else (INTx, masked, no route) goes through vp_notify, which keeps the
 * ISR, the PBA and INTx right. */
static int vp_guest_notifier(QnicVirtioDevice *vdev, unsigned idx)
{
    QnicVirtioPci *p = vp_of(vdev);
    uint16_t v = vdev->vqs[idx].vector;
    uint64_t addr;
    uint32_t data;

    if (!qnic_msix_enabled(&p->pci) || v == QNIC_VIRTIO_NO_VECTOR || v >= p->nvectors ||
        qnic_msix_is_masked(&p->pci, v) ||
        !(qnic_pci_get_word(&p->pci, PCI_COMMAND) & PCI_COMMAND_MASTER)) {
        return -1;
    }
    qnic_msix_message(&p->pci, v, &addr, &data);
    return qnic_machine_msi_irqfd(p->pci.dev.machine, addr, data);
}

static void vp_guest_notifiers_changed(QnicVirtioPci *p, unsigned vector, bool all)
{
    QnicVirtioDevice *vdev = p->vdev;

    for (unsigned i = 0; i < vdev->num_queues; i++) {
        if (all || vdev->vqs[i].vector == vector) {
            qnic_virtio_guest_notifier_changed(vdev, i);
        }
    }
}

static void vp_msix_vector_changed(QnicPciDevice *d, unsigned vector, bool masked)
{
    vp_guest_notifiers_changed((QnicVirtioPci *)d, vector, false);
}

static int vp_take_host_notifier(QnicVirtioDevice *vdev, unsigned idx);
static void vp_return_host_notifier(QnicVirtioDevice *vdev, unsigned idx);

static const QnicVirtioTransportOps vp_tops = {
    .notify = vp_notify,
    .update_irq = vp_update_irq,
    .take_host_notifier = vp_take_host_notifier,
    .return_host_notifier = vp_return_host_notifier,
    .guest_notifier = vp_guest_notifier,
};

static uint16_t vp_check_vector(QnicVirtioPci *p, uint16_t v)
{
    if (v != QNIC_VIRTIO_NO_VECTOR && v >= p->nvectors) {
        qnic_guest_error("virtio-pci: MSI-X vector %u of %u", v, p->nvectors);
        return QNIC_VIRTIO_NO_VECTOR;
    }
    return v;
}

/* ---- ioeventfd: queue notifications handled on the loop ---- */

static void vp_notify_fd(void *opaque, int fd, GIOCondition cond)
{
    QnicVirtQueue *vq = opaque;
    QnicVirtioPci *p = (QnicVirtioPci *)vq->dev;
    uint64_t cnt;

    if (read(fd, &cnt, sizeof(cnt)) != sizeof(cnt)) {
        return;
    }
    qnic_device_enter(vq->dev);
    qnic_virtio_queue_kick(p->vdev, vq->index);
    qnic_device_leave(vq->dev);
}

static bool vp_ioeventfd_wanted(QnicVirtioPci *p)
{
    /* Only worth it when the accelerator takes the write in the kernel;
     * otherwise dispatch would signal the fd just for us to read it back. */
    return p->ioeventfd && p->pci.dev.machine && p->pci.dev.machine->mem.ioeventfd_in_kernel;
}

static void vp_ioeventfd_start(QnicVirtioPci *p)
{
    QnicVirtioDevice *vdev = p->vdev;

    if (!vp_ioeventfd_wanted(p) || p->notify_fds) {
        return;
    }
    p->notify_fds = g_new(int, vdev->num_queues);
    p->notify_watches = g_new0(struct QnicFdWatch *, vdev->num_queues);
    p->notify_taken = g_new0(bool, vdev->num_queues);
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        p->notify_fds[i] = fd;
        if (fd < 0) {
            continue;
        }
        p->notify_watches[i] = qnic_fd_watch_add(fd, G_IO_IN, vp_notify_fd, &vdev->vqs[i]);
        if (p->modern_enabled) {
            qnic_region_add_ioeventfd(&p->modern_bar, NOTIFY_OFF + NOTIFY_MULT * i, 0, false, 0, fd);
        }
        if (p->legacy_enabled) {
            qnic_region_add_ioeventfd(&p->legacy_bar, VIRTIO_PCI_QUEUE_NOTIFY, 2, true, i, fd);
        }
    }
}

static void vp_ioeventfd_stop(QnicVirtioPci *p)
{
    if (!p->notify_fds) {
        return;
    }
    for (unsigned i = 0; i < p->vdev->num_queues; i++) {
        int fd = p->notify_fds[i];
        if (fd < 0) {
            continue;
        }
        if (p->modern_enabled) {
            qnic_region_del_ioeventfd(&p->modern_bar, NOTIFY_OFF + NOTIFY_MULT * i, 0, false, 0, fd);
        }
        if (p->legacy_enabled) {
            qnic_region_del_ioeventfd(&p->legacy_bar, VIRTIO_PCI_QUEUE_NOTIFY, 2, true, i, fd);
        }
        if (p->notify_watches[i]) {
            qnic_fd_watch_remove(p->notify_watches[i]);
        }
        /* A backend holding it keeps its own copy, which goes quiet now. */
        close(fd);
    }
    g_clear_pointer(&p->notify_fds, g_free);
    g_clear_pointer(&p->notify_watches, g_free);
    g_clear_pointer(&p->notify_taken, g_free);
}

/* vhost: the backend reads the ioeventfd itself, so a kick never wakes
 * qnic. The ioeventfds may not exist yet (vhost starts from inside the
 * DRIVER_OK write, before vp_set_status starts them): start them here. */
static int vp_take_host_notifier(QnicVirtioDevice *vdev, unsigned idx)
{
    QnicVirtioPci *p = vp_of(vdev);

    vp_ioeventfd_start(p);
    if (!p->notify_fds || idx >= vdev->num_queues || p->notify_fds[idx] < 0) {
        return -1;
    }
    if (!p->notify_taken[idx]) {
        qnic_fd_watch_remove(p->notify_watches[idx]);
        p->notify_watches[idx] = NULL;
        p->notify_taken[idx] = true;
    }
    return p->notify_fds[idx];
}

/* Kicks the backend left unread are seen by the new watch (level
 * triggered) and processed by qnic. */
static void vp_return_host_notifier(QnicVirtioDevice *vdev, unsigned idx)
{
    QnicVirtioPci *p = vp_of(vdev);

    if (!p->notify_fds || idx >= vdev->num_queues || !p->notify_taken[idx]) {
        return;
    }
    p->notify_taken[idx] = false;
    p->notify_watches[idx] = qnic_fd_watch_add(p->notify_fds[idx], G_IO_IN, vp_notify_fd,
                                               &vdev->vqs[idx]);
}

static void vp_set_status(QnicVirtioPci *p, uint8_t val)
{
    QnicVirtioDevice *vdev = p->vdev;

    if (val == 0) {
        vp_ioeventfd_stop(p);
        qnic_virtio_reset(vdev);
        p->queue_sel = 0;
        p->legacy_queue_sel = 0;
        p->dfselect = p->gfselect = 0;
        return;
    }
    qnic_virtio_set_status(vdev, val);
    if (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
        vp_ioeventfd_start(p);
    }
}

/* ---- legacy I/O BAR0 ---- */

static unsigned legacy_config_off(QnicVirtioPci *p)
{
    return VIRTIO_PCI_CONFIG_OFF(qnic_msix_enabled(&p->pci));
}

static uint64_t legacy_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicVirtioPci *p = opaque;
    QnicVirtioDevice *vdev = p->vdev;
    unsigned cfg = legacy_config_off(p);
    QnicVirtQueue *vq = p->legacy_queue_sel < vdev->num_queues ? &vdev->vqs[p->legacy_queue_sel] : NULL;

    if (addr >= cfg) {
        return qnic_virtio_config_read(vdev, addr - cfg, size);
    }
    switch (addr) {
    case VIRTIO_PCI_HOST_FEATURES:
        return qnic_virtio_legacy_features(vdev);
    case VIRTIO_PCI_GUEST_FEATURES:
        return (uint32_t)vdev->guest_features;
    case VIRTIO_PCI_QUEUE_PFN:
        return vq && vq->enabled ? vq->desc_gpa >> VIRTIO_PCI_QUEUE_ADDR_SHIFT : 0;
    case VIRTIO_PCI_QUEUE_NUM:
        return vq ? vq->num_max : 0;
    case VIRTIO_PCI_QUEUE_SEL:
        return p->legacy_queue_sel;
    case VIRTIO_PCI_STATUS:
        return vdev->status;
    case VIRTIO_PCI_ISR:
        return qnic_virtio_read_isr(vdev);
    case VIRTIO_MSI_CONFIG_VECTOR:
        return vdev->config_vector;
    case VIRTIO_MSI_QUEUE_VECTOR:
        return vq ? vq->vector : QNIC_VIRTIO_NO_VECTOR;
    default:
        return 0;
    }
}

static void legacy_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicVirtioPci *p = opaque;
    QnicVirtioDevice *vdev = p->vdev;
    unsigned cfg = legacy_config_off(p);
    QnicVirtQueue *vq = p->legacy_queue_sel < vdev->num_queues ? &vdev->vqs[p->legacy_queue_sel] : NULL;

    vdev->legacy = true;
    if (addr >= cfg) {
        qnic_virtio_config_write(vdev, addr - cfg, size, val);
        return;
    }
    switch (addr) {
    case VIRTIO_PCI_GUEST_FEATURES:
        qnic_virtio_set_legacy_features(vdev, val);
        break;
    case VIRTIO_PCI_QUEUE_PFN:
        if (val == 0) {
            /* The legacy way to reset the device. */
            vp_set_status(p, 0);
        } else if (vq) {
            /* The vector survives, as in QEMU: a driver may select it
             * before writing the PFN (the test guest does). */
            uint16_t vector = vq->vector;
            qnic_vq_reset(vq);
            vq->vector = vector;
            qnic_vq_set_legacy_addr(vq, (uint64_t)(uint32_t)val << VIRTIO_PCI_QUEUE_ADDR_SHIFT,
                                    VIRTIO_PCI_VRING_ALIGN);
            vq->enabled = true;
            qnic_virtio_queue_start(vdev, vq->index);
        } else {
            qnic_guest_error("virtio-pci: legacy PFN for queue %u of %u", p->legacy_queue_sel,
                             vdev->num_queues);
        }
        break;
    case VIRTIO_PCI_QUEUE_SEL:
        p->legacy_queue_sel = val;
        break;
    case VIRTIO_PCI_QUEUE_NOTIFY:
        qnic_virtio_queue_kick(vdev, val & 0xffff);
        break;
    case VIRTIO_PCI_STATUS:
        vp_set_status(p, val & 0xff);
        break;
    case VIRTIO_MSI_CONFIG_VECTOR:
        if (qnic_msix_enabled(&p->pci)) {
            vdev->config_vector = vp_check_vector(p, val);
        }
        break;
    case VIRTIO_MSI_QUEUE_VECTOR:
        if (qnic_msix_enabled(&p->pci) && vq) {
            vq->vector = vp_check_vector(p, val);
            qnic_virtio_guest_notifier_changed(vdev, vq->index);
        }
        break;
    default:
        qnic_guest_error("virtio-pci: legacy write to read-only offset 0x%" PRIx64, addr);
        break;
    }
}

static const QnicMemOps legacy_ops = {
    .read = legacy_read,
    .write = legacy_write,
    .valid_min = 1, .valid_max = 4,
    .impl_min = 1, .impl_max = 4,
    .valid_unaligned = true,
};

/* ---- modern BAR4 ---- */

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
        vdev->config_vector = vp_check_vector(p, val);
        return;
    case VIRTIO_PCI_COMMON_STATUS:
        vp_set_status(p, val & 0xff);
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
        vq->vector = vp_check_vector(p, val);
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

static void vp_config_write(QnicPciDevice *d, uint32_t addr, uint32_t val, unsigned len)
{
    QnicVirtioPci *p = (QnicVirtioPci *)d;
    unsigned data = p->cfg_cap + 16, off, l;

    if (addr < PCI_COMMAND + 2 && addr + len > PCI_COMMAND) {
        /* bus mastering gates MSI-X delivery (vp_guest_notifier) */
        vp_guest_notifiers_changed(p, 0, true);
    }
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

static uint32_t vp_config_read(QnicPciDevice *d, uint32_t addr, unsigned len, uint32_t val)
{
    QnicVirtioPci *p = (QnicVirtioPci *)d;
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

/* ---- realize ---- */

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

bool qnic_virtio_pci_realize(QnicVirtioPci *p, QnicVirtioDevice *vdev, QnicOpts *opts,
                             QnicVirtioPciKind kind, const QnicVirtioPciInfo *info,
                             unsigned vectors, GError **errp)
{
    QnicPciIds ids = { 0 };
    QnicPciDevice *d = &p->pci;

    p->vdev = vdev;
    vdev->transport = p;
    vdev->tops = &vp_tops;
    switch (kind) {
    case QNIC_VIRTIO_PCI_TRANSITIONAL:
        p->legacy_enabled = p->modern_enabled = true;
        break;
    case QNIC_VIRTIO_PCI_NON_TRANSITIONAL:
        p->legacy_enabled = false;
        p->modern_enabled = true;
        break;
    default:
        /* disable-legacy=auto means legacy stays on conventional PCI. */
        p->legacy_enabled = qnic_opts_get_onoffauto(opts, "disable-legacy", -1) != 1;
        p->modern_enabled = !qnic_opts_get_bool(opts, "disable-modern", false);
        break;
    }
    if (!p->legacy_enabled && !p->modern_enabled) {
        qnic_error_setg_invalid(errp, "device cannot work as neither modern nor legacy mode is enabled");
        return false;
    }
    p->ioeventfd = qnic_opts_get_bool(opts, "ioeventfd", true);
    p->nvectors = vectors;

    ids.vendor_id = QNIC_VIRTIO_PCI_VENDOR_ID;
    ids.subsystem_vendor_id = QNIC_VIRTIO_PCI_VENDOR_ID;
    if (p->legacy_enabled) {
        ids.device_id = info->legacy_device_id;
        ids.revision = 0;
        ids.subsystem_id = vdev->device_id;
    } else {
        ids.device_id = 0x1040 + vdev->device_id;
        ids.revision = 1;
        /* QEMU's non-transitional subsystem ID. */
        ids.subsystem_id = 0x1100;
    }
    ids.class_code = info->class_code;
    ids.interrupt_pin = 1;
    if (!qnic_pci_device_init(d, opts, &ids, info->default_rom, errp)) {
        return false;
    }

    if (p->modern_enabled) {
        uint8_t notify;

        qnic_region_init_io(&p->modern_bar, &d->dev, &modern_ops, p, "virtio-pci-modern",
                            MODERN_BAR_SIZE);
        if (!add_vendor_cap(p, VIRTIO_PCI_CAP_COMMON_CFG, 16, COMMON_OFF, MODERN_REGION_SIZE, errp) ||
            !add_vendor_cap(p, VIRTIO_PCI_CAP_ISR_CFG, 16, ISR_OFF, MODERN_REGION_SIZE, errp) ||
            !add_vendor_cap(p, VIRTIO_PCI_CAP_DEVICE_CFG, 16, DEVICE_OFF, MODERN_REGION_SIZE, errp) ||
            !(notify = add_vendor_cap(p, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, NOTIFY_OFF,
                                      MODERN_REGION_SIZE, errp)) ||
            !(p->cfg_cap = add_vendor_cap(p, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0, errp))) {
            qnic_pci_device_exit(d);
            return false;
        }
        qnic_pci_set_long(d, notify + VIRTIO_PCI_NOTIFY_CAP_MULT, NOTIFY_MULT);
        /* The cfg access window: bar, offset, length and data are writable. */
        d->wmask[p->cfg_cap + VIRTIO_PCI_CAP_BAR] = 0xff;
        memset(d->wmask + p->cfg_cap + VIRTIO_PCI_CAP_OFFSET, 0xff, 12);
        qnic_pci_register_bar(d, MODERN_BAR,
                              QNIC_PCI_BAR_MEM64 | QNIC_PCI_BAR_PREFETCH, &p->modern_bar);
        d->config_write = vp_config_write;
        d->config_read = vp_config_read;
    }
    if (vectors > 0 && !qnic_msix_init_exclusive_bar(d, vectors, MSIX_BAR, errp)) {
        qnic_pci_device_exit(d);
        return false;
    }
    /* Both watch what moves a queue's guest notifier (vp_guest_notifier). */
    d->msix_vector_changed = vp_msix_vector_changed;
    d->config_write = vp_config_write;
    if (p->legacy_enabled) {
        uint64_t size = qnic_pow2ceil(VIRTIO_PCI_CONFIG_OFF(vectors > 0) + vdev->config_len);
        qnic_region_init_io(&p->legacy_bar, &d->dev, &legacy_ops, p, "virtio-pci-legacy", size);
        qnic_pci_register_bar(d, LEGACY_BAR, QNIC_PCI_BAR_IO, &p->legacy_bar);
        vdev->host_features |= 1ull << QNIC_VIRTIO_F_BAD_FEATURE;
        vdev->legacy_features |= 1ull << QNIC_VIRTIO_F_BAD_FEATURE;
    }
    if (p->modern_enabled) {
        vdev->host_features |= 1ull << VIRTIO_F_VERSION_1;
    }
    return true;
}

void qnic_virtio_pci_reset(QnicVirtioPci *p)
{
    vp_set_status(p, 0);
}

void qnic_virtio_pci_unrealize(QnicVirtioPci *p)
{
    vp_ioeventfd_stop(p);
    qnic_pci_device_exit(&p->pci);
}
