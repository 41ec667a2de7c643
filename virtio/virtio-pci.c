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
 *
 * This file is the PCI device common to both interfaces: IDs, interrupts
 * (MSI-X or INTx), ioeventfds, device status and reset, the PCI config
 * hooks and realize. The legacy register file is virtio-pci-legacy.c, the
 * modern interface virtio-pci-modern.c (virtio-pci-internal.h).
 */
#include "virtio-pci-internal.h"
#include "qnic/machine.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "qnic/state.h"
#include <linux/virtio_pci.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

uint16_t virtio_pci_check_vector(QnicVirtioPci *p, uint16_t v)
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
 * DRIVER_OK write, before virtio_pci_set_status starts them): start them here. */
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

void virtio_pci_set_status(QnicVirtioPci *p, uint8_t val)
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

/* ---- PCI config hooks ---- */

static void vp_config_write(QnicPciDevice *d, uint32_t addr, uint32_t val, unsigned len)
{
    QnicVirtioPci *p = (QnicVirtioPci *)d;

    if (addr < PCI_COMMAND + 2 && addr + len > PCI_COMMAND) {
        /* bus mastering gates MSI-X delivery (vp_guest_notifier) */
        vp_guest_notifiers_changed(p, 0, true);
    }
    virtio_pci_modern_cfg_write(p, addr, len);
}

static uint32_t vp_config_read(QnicPciDevice *d, uint32_t addr, unsigned len, uint32_t val)
{
    return virtio_pci_modern_cfg_read((QnicVirtioPci *)d, addr, len, val);
}

/* ---- realize ---- */

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
        if (!virtio_pci_modern_init(p, errp)) {
            qnic_pci_device_exit(d);
            return false;
        }
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
        virtio_pci_legacy_init(p, vectors);
    }
    if (p->modern_enabled) {
        vdev->host_features |= 1ull << VIRTIO_F_VERSION_1;
    }
    return true;
}

void qnic_virtio_pci_reset(QnicVirtioPci *p)
{
    virtio_pci_set_status(p, 0);
}

void qnic_virtio_pci_unrealize(QnicVirtioPci *p)
{
    vp_ioeventfd_stop(p);
    qnic_pci_device_exit(&p->pci);
}


/* ---- device state ---- */

struct QnicVirtioPciState {
    bool legacy_enabled, modern_enabled;
    uint32_t nvectors;
    uint32_t dfselect, gfselect;
    uint16_t queue_sel, legacy_queue_sel;
};

static const QnicStateField vp_state_fields[] = {
    QNIC_STATE_BOOL(QnicVirtioPciState, legacy_enabled, 0),
    QNIC_STATE_BOOL(QnicVirtioPciState, modern_enabled, 0),
    QNIC_STATE_UINT(QnicVirtioPciState, nvectors, 0),
    QNIC_STATE_UINT(QnicVirtioPciState, dfselect, 0),
    QNIC_STATE_UINT(QnicVirtioPciState, gfselect, 0),
    QNIC_STATE_UINT(QnicVirtioPciState, queue_sel, 0),
    QNIC_STATE_UINT(QnicVirtioPciState, legacy_queue_sel, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc vp_state_desc = {
    .name = "virtio-pci", .version = 1, .min_version = 1,
    .size = sizeof(QnicVirtioPciState), .fields = vp_state_fields,
};

void qnic_virtio_pci_state_save(QnicVirtioPci *p, GByteArray *out)
{
    QnicVirtioPciState s = {
        .legacy_enabled = p->legacy_enabled, .modern_enabled = p->modern_enabled,
        .nvectors = p->nvectors, .dfselect = p->dfselect, .gfselect = p->gfselect,
        .queue_sel = p->queue_sel, .legacy_queue_sel = p->legacy_queue_sel,
    };

    qnic_state_write(out, &vp_state_desc, &s);
}

QnicVirtioPciState *qnic_virtio_pci_state_read(QnicVirtioPci *p, QnicStateReader *r,
                                               GError **errp)
{
    g_autoptr(QnicVirtioPciState) s = g_new0(QnicVirtioPciState, 1);

    if (!qnic_state_read(r, &vp_state_desc, s, errp)) {
        return NULL;
    }
    /* The same device on both sides: the BAR layout follows from these. */
    if (s->legacy_enabled != p->legacy_enabled || s->modern_enabled != p->modern_enabled ||
        s->nvectors != p->nvectors) {
        qnic_error_setg(errp, "virtio-pci: the stream's device (legacy %s, modern %s, %u "
                        "vectors) is not this one (legacy %s, modern %s, %u vectors)",
                        s->legacy_enabled ? "on" : "off", s->modern_enabled ? "on" : "off",
                        s->nvectors, p->legacy_enabled ? "on" : "off",
                        p->modern_enabled ? "on" : "off", p->nvectors);
        return NULL;
    }
    return g_steal_pointer(&s);
}

void qnic_virtio_pci_state_begin(QnicVirtioPci *p)
{
    vp_ioeventfd_stop(p);
}

void qnic_virtio_pci_state_apply(QnicVirtioPci *p, const QnicVirtioPciState *s)
{
    p->dfselect = s->dfselect;
    p->gfselect = s->gfselect;
    p->queue_sel = s->queue_sel;
    p->legacy_queue_sel = s->legacy_queue_sel;
    if (p->vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
        vp_ioeventfd_start(p);
    }
    vp_update_irq(p->vdev);
    vp_guest_notifiers_changed(p, 0, true);
}

void qnic_virtio_pci_state_free(QnicVirtioPciState *s)
{
    g_free(s);
}
