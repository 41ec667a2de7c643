/*
 * The virtio-mmio transport (virtio 1.2 section 4.2), version 1 (legacy,
 * page-frame queue addresses) with force-legacy=on as QEMU defaults, and
 * version 2 (modern) with force-legacy=off. QEMU's pc machine has no
 * virtio-mmio slots, so qnic places transports itself: slot i (in creation
 * order) sits at 0xfeb00000 + 0x200 * i and raises GSI 5 + i, up to 8 slots,
 * and qnic_virtio_mmio_cmdline() formats the matching
 * `virtio_mmio.device=512@0xfeb00000:5` kernel parameter.
 */
#include "qnic/virtio.h"
#include "qnic/machine.h"
#include "qnic/log.h"
#include "qnic/state.h"
#include <linux/virtio_mmio.h>

#define MMIO_MAGIC 0x74726976u          /* "virt" */
#define MMIO_VENDOR 0x554d4551u         /* "QEMU", what QEMU's transport reports */

static QnicVirtioMmio *vm_of(QnicVirtioDevice *vdev)
{
    return vdev->transport;
}

static void vm_update_irq(QnicVirtioDevice *vdev)
{
    QnicVirtioMmio *m = vm_of(vdev);

    /* The ISR is the interrupt status register here. */
    if (m->dev.machine) {
        qnic_machine_set_gsi(m->dev.machine, m->gsi, vdev->isr != 0);
    }
}

static void vm_notify(QnicVirtioDevice *vdev, uint16_t vector)
{
    vm_update_irq(vdev);
}

static const QnicVirtioTransportOps vm_tops = {
    .notify = vm_notify,
    .update_irq = vm_update_irq,
};

static QnicVirtQueue *vm_vq(QnicVirtioMmio *m)
{
    return m->queue_sel < m->vdev->num_queues ? &m->vdev->vqs[m->queue_sel] : NULL;
}

static uint64_t mmio_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicVirtioMmio *m = opaque;
    QnicVirtioDevice *vdev = m->vdev;
    QnicVirtQueue *vq = vm_vq(m);

    if (addr >= VIRTIO_MMIO_CONFIG) {
        return qnic_virtio_config_read(vdev, addr - VIRTIO_MMIO_CONFIG, size);
    }
    if (size != 4) {
        qnic_guest_error("virtio-mmio: %u-byte register read at 0x%" PRIx64, size, addr);
        return 0;
    }
    switch (addr) {
    case VIRTIO_MMIO_MAGIC_VALUE:
        return MMIO_MAGIC;
    case VIRTIO_MMIO_VERSION:
        return m->legacy ? 1 : 2;
    case VIRTIO_MMIO_DEVICE_ID:
        return vdev->device_id;
    case VIRTIO_MMIO_VENDOR_ID:
        return MMIO_VENDOR;
    case VIRTIO_MMIO_DEVICE_FEATURES:
        if (m->legacy) {
            return m->host_features_sel ? 0 : (uint32_t)vdev->host_features;
        }
        return m->host_features_sel < 2 ?
            (uint32_t)(qnic_virtio_modern_features(vdev) >> (32 * m->host_features_sel)) : 0;
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return vq ? vq->num_max : 0;
    case VIRTIO_MMIO_QUEUE_PFN:
        if (!m->legacy) {
            break;
        }
        return vq && vq->enabled ? vq->desc_gpa / m->guest_page_size : 0;
    case VIRTIO_MMIO_QUEUE_READY:
        if (m->legacy) {
            break;
        }
        return vq ? vq->enabled : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS:
        return vdev->isr;
    case VIRTIO_MMIO_STATUS:
        return vdev->status;
    case VIRTIO_MMIO_CONFIG_GENERATION:
        return m->legacy ? 0 : vdev->config_generation;
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
        return m->legacy ? 0 : 0xffffffffu;   /* no shared memory regions */
    }
    qnic_guest_error("virtio-mmio: read of write-only or unknown register 0x%" PRIx64, addr);
    return 0;
}

static void mmio_reset_state(QnicVirtioMmio *m)
{
    qnic_virtio_reset(m->vdev);
    m->host_features_sel = m->guest_features_sel = 0;
    m->queue_sel = 0;
    m->guest_page_size = 4096;
    m->queue_align = 4096;
}

/* A write to one of the registers of the selected queue; false when the
 * register does not exist in this version or no queue is selected. */
static bool mmio_write_queue(QnicVirtioMmio *m, QnicVirtQueue *vq, uint64_t addr, uint64_t val)
{
    QnicVirtioDevice *vdev = m->vdev;

    if (!vq) {
        return false;
    }
    switch (addr) {
    case VIRTIO_MMIO_QUEUE_NUM:
        if (val == 0 || val > vq->num_max ||
            (!QNIC_IS_POW2(val) && !qnic_virtio_has_feature(vdev, VIRTIO_F_RING_PACKED))) {
            qnic_guest_error("virtio-mmio: invalid queue size %" PRIu64, val);
        } else if (vq->enabled) {
            qnic_guest_error("virtio-mmio: queue size changed while enabled");
        } else {
            vq->num = val;
        }
        return true;
    case VIRTIO_MMIO_QUEUE_ALIGN:
        if (!m->legacy) {
            return false;
        }
        if (!QNIC_IS_POW2(val) || val > 0x10000) {
            qnic_guest_error("virtio-mmio: queue align %" PRIu64, val);
        } else {
            m->queue_align = val;
        }
        return true;
    case VIRTIO_MMIO_QUEUE_PFN:
        if (!m->legacy) {
            return false;
        }
        if (val == 0) {
            qnic_vq_reset(vq);
        } else {
            uint64_t align = m->queue_align;
            uint16_t num = vq->num;
            qnic_vq_reset(vq);
            vq->num = num;
            qnic_vq_set_legacy_addr(vq, (uint64_t)val * m->guest_page_size, align);
            vq->enabled = true;
            qnic_virtio_queue_start(vdev, vq->index);
        }
        return true;
    case VIRTIO_MMIO_QUEUE_READY:
        if (m->legacy) {
            return false;
        }
        if (val & 1) {
            vq->enabled = true;
            if (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
                qnic_virtio_queue_start(vdev, vq->index);
            }
        } else {
            qnic_virtio_queue_reset(vdev, vq->index);
        }
        return true;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
    case VIRTIO_MMIO_QUEUE_USED_LOW:
    case VIRTIO_MMIO_QUEUE_USED_HIGH:
        if (m->legacy) {
            return false;
        }
        if (vq->enabled) {
            qnic_guest_error("virtio-mmio: queue address written while ready");
            return true;
        }
        switch (addr) {
        case VIRTIO_MMIO_QUEUE_DESC_LOW: qnic_set_lo32(&vq->desc_gpa, val); break;
        case VIRTIO_MMIO_QUEUE_DESC_HIGH: qnic_set_hi32(&vq->desc_gpa, val); break;
        case VIRTIO_MMIO_QUEUE_AVAIL_LOW: qnic_set_lo32(&vq->avail_gpa, val); break;
        case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: qnic_set_hi32(&vq->avail_gpa, val); break;
        case VIRTIO_MMIO_QUEUE_USED_LOW: qnic_set_lo32(&vq->used_gpa, val); break;
        default: qnic_set_hi32(&vq->used_gpa, val); break;
        }
        return true;
    }
    return false;
}

/* A write to a device-wide register; false when it is not one (or does
 * not exist in this version). */
static bool mmio_write_device(QnicVirtioMmio *m, uint64_t addr, uint64_t val)
{
    QnicVirtioDevice *vdev = m->vdev;

    switch (addr) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        m->host_features_sel = val;
        return true;
    case VIRTIO_MMIO_DRIVER_FEATURES:
        if (!m->legacy) {
            qnic_virtio_set_driver_features(vdev, m->guest_features_sel, val);
        } else if (m->guest_features_sel == 0) {
            qnic_virtio_set_legacy_features(vdev, val);
        }
        return true;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        m->guest_features_sel = val;
        return true;
    case VIRTIO_MMIO_GUEST_PAGE_SIZE:
        if (!m->legacy) {
            return false;
        }
        if (!QNIC_IS_POW2(val) || val < 512) {
            qnic_guest_error("virtio-mmio: guest page size %" PRIu64, val);
        } else {
            m->guest_page_size = val;
        }
        return true;
    case VIRTIO_MMIO_QUEUE_SEL:
        m->queue_sel = val;
        return true;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
        qnic_virtio_queue_kick(vdev, val & 0xffff);
        return true;
    case VIRTIO_MMIO_INTERRUPT_ACK:
        vdev->isr &= ~val;
        vm_update_irq(vdev);
        return true;
    case VIRTIO_MMIO_STATUS:
        if ((val & 0xff) == 0) {
            mmio_reset_state(m);
        } else {
            if (m->legacy) {
                vdev->legacy = true;
            }
            qnic_virtio_set_status(vdev, val & 0xff);
        }
        return true;
    }
    return false;
}

static void mmio_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicVirtioMmio *m = opaque;

    if (addr >= VIRTIO_MMIO_CONFIG) {
        qnic_virtio_config_write(m->vdev, addr - VIRTIO_MMIO_CONFIG, size, val);
        return;
    }
    if (size != 4) {
        qnic_guest_error("virtio-mmio: %u-byte register write at 0x%" PRIx64, size, addr);
        return;
    }
    if (!mmio_write_device(m, addr, val) && !mmio_write_queue(m, vm_vq(m), addr, val)) {
        qnic_guest_error("virtio-mmio: write to read-only or unknown register 0x%" PRIx64,
                         addr);
    }
}

static const QnicMemOps mmio_ops = {
    .read = mmio_read,
    .write = mmio_write,
    .valid_min = 1, .valid_max = 4,
    .impl_min = 1, .impl_max = 4,
};

bool qnic_virtio_mmio_realize(QnicVirtioMmio *m, QnicVirtioDevice *vdev, QnicOpts *opts,
                              GError **errp)
{
    QnicMachine *machine = m->dev.machine;

    if (!machine) {
        qnic_error_setg(errp, "virtio-mmio: no machine");
        return false;
    }
    if (machine->next_mmio_slot >= QNIC_VIRTIO_MMIO_SLOTS) {
        qnic_error_setg(errp, "No 'virtio-mmio-bus' bus found for device '%s'",
                        m->dev.cls ? m->dev.cls->name : "virtio-net-device");
        return false;
    }
    m->vdev = vdev;
    vdev->transport = m;
    vdev->tops = &vm_tops;
    m->legacy = qnic_opts_get_bool(opts, "force-legacy", true);
    m->slot = machine->next_mmio_slot++;
    m->base = QNIC_VIRTIO_MMIO_BASE + (uint64_t)QNIC_VIRTIO_MMIO_SIZE * m->slot;
    m->gsi = QNIC_VIRTIO_MMIO_GSI_BASE + m->slot;
    m->guest_page_size = 4096;
    m->queue_align = 4096;
    if (!m->legacy) {
        vdev->host_features |= 1ull << VIRTIO_F_VERSION_1;
    }
    qnic_region_init_io(&m->region, &m->dev, &mmio_ops, m, "virtio-mmio", QNIC_VIRTIO_MMIO_SIZE);
    qnic_as_map(&machine->mem, &m->region, m->base, 0);
    return true;
}

void qnic_virtio_mmio_reset(QnicVirtioMmio *m)
{
    mmio_reset_state(m);
}

void qnic_virtio_mmio_unrealize(QnicVirtioMmio *m)
{
    qnic_as_unmap(&m->region);
    if (m->dev.machine) {
        qnic_machine_set_gsi(m->dev.machine, m->gsi, 0);
    }
}

char *qnic_virtio_mmio_cmdline(const QnicVirtioMmio *m)
{
    return g_strdup_printf("virtio_mmio.device=%u@0x%" PRIx64 ":%u", QNIC_VIRTIO_MMIO_SIZE,
                           m->base, m->gsi);
}

char *qnic_virtio_mmio_cmdline_all(QnicMachine *machine)
{
    GString *s = g_string_new("");

    for (guint i = 0; machine->devices && i < machine->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(machine->devices, i);
        if (d->cls && d->cls->bus && !strcmp(d->cls->bus, "virtio-mmio")) {
            char *one = qnic_virtio_mmio_cmdline((QnicVirtioMmio *)d);
            if (s->len) {
                g_string_append_c(s, ' ');
            }
            g_string_append(s, one);
            g_free(one);
        }
    }
    return g_string_free(s, FALSE);
}

/* ---- device state ---- */

struct QnicVirtioMmioState {
    bool legacy;
    uint32_t host_features_sel, guest_features_sel;
    uint32_t guest_page_size;
    uint32_t queue_align;
    uint16_t queue_sel;
};

static const QnicStateField vm_state_fields[] = {
    QNIC_STATE_BOOL(QnicVirtioMmioState, legacy, 0),
    QNIC_STATE_UINT(QnicVirtioMmioState, host_features_sel, 0),
    QNIC_STATE_UINT(QnicVirtioMmioState, guest_features_sel, 0),
    /* what the register writes accept (mmio_write_device/queue) */
    QNIC_STATE_UINT_RANGE(QnicVirtioMmioState, guest_page_size, 0, 512, 0x80000000u),
    QNIC_STATE_UINT_RANGE(QnicVirtioMmioState, queue_align, 0, 1, 0x10000),
    QNIC_STATE_UINT(QnicVirtioMmioState, queue_sel, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc vm_state_desc = {
    .name = "virtio-mmio", .version = 1, .min_version = 1,
    .size = sizeof(QnicVirtioMmioState), .fields = vm_state_fields,
};

void qnic_virtio_mmio_state_save(QnicVirtioMmio *m, GByteArray *out)
{
    QnicVirtioMmioState s = {
        .legacy = m->legacy, .host_features_sel = m->host_features_sel,
        .guest_features_sel = m->guest_features_sel, .guest_page_size = m->guest_page_size,
        .queue_align = m->queue_align, .queue_sel = m->queue_sel,
    };

    qnic_state_write(out, &vm_state_desc, &s);
}

QnicVirtioMmioState *qnic_virtio_mmio_state_read(QnicVirtioMmio *m, QnicStateReader *r,
                                                 GError **errp)
{
    g_autoptr(QnicVirtioMmioState) s = g_new0(QnicVirtioMmioState, 1);

    if (!qnic_state_read(r, &vm_state_desc, s, errp)) {
        return NULL;
    }
    if (s->legacy != m->legacy) {
        qnic_error_setg(errp, "virtio-mmio: the stream is of a version %d transport, this "
                        "one is version %d", s->legacy ? 1 : 2, m->legacy ? 1 : 2);
        return NULL;
    }
    if (!QNIC_IS_POW2(s->guest_page_size) || !QNIC_IS_POW2(s->queue_align)) {
        qnic_error_setg(errp, "virtio-mmio: guest page size %u or queue align %u is not a "
                        "power of two", s->guest_page_size, s->queue_align);
        return NULL;
    }
    return g_steal_pointer(&s);
}

void qnic_virtio_mmio_state_apply(QnicVirtioMmio *m, const QnicVirtioMmioState *s)
{
    m->host_features_sel = s->host_features_sel;
    m->guest_features_sel = s->guest_features_sel;
    m->guest_page_size = s->guest_page_size;
    m->queue_align = s->queue_align;
    m->queue_sel = s->queue_sel;
    vm_update_irq(m->vdev);
}

void qnic_virtio_mmio_state_free(QnicVirtioMmioState *s)
{
    g_free(s);
}
