/*
 * The transport-independent virtio core: feature negotiation (legacy 32-bit
 * without FEATURES_OK, modern 64-bit with FEATURES_OK and VERSION_1), the
 * status state machine, device reset, the configuration space and its
 * generation counter, queue start/reset, and interrupt requests handed to
 * the transport. It is where a driver that breaks the rules is caught and
 * the device is marked NEEDS_RESET.
 */
#include "qnic/virtio.h"
#include "qnic/log.h"
#include <stdarg.h>

static void vq_broken(QnicVirtQueue *vq, void *opaque)
{
    QnicVirtioDevice *vdev = opaque;

    qnic_virtio_error(vdev, "queue %u broken", vq->index);
}

static void vq_irq(QnicVirtQueue *vq, void *opaque)
{
    QnicVirtioDevice *vdev = opaque;

    vdev->isr |= 1;
    if (vdev->tops && vdev->tops->notify) {
        vdev->tops->notify(vdev, vq->vector);
    }
}

void qnic_virtio_init(QnicVirtioDevice *vdev, QnicDevice *dev, uint16_t device_id,
                      unsigned config_len, unsigned num_queues, const uint16_t *queue_sizes,
                      const QnicVirtioDeviceOps *ops, void *opaque)
{
    memset(vdev, 0, sizeof(*vdev));
    vdev->dev = dev;
    vdev->device_id = device_id;
    vdev->config_len = config_len;
    vdev->config = g_malloc0(config_len ? config_len : 1);
    vdev->max_queues = num_queues;
    vdev->vqs = g_new0(QnicVirtQueue, num_queues ? num_queues : 1);
    qnic_virtio_set_num_queues(vdev, num_queues, queue_sizes);
    vdev->config_vector = QNIC_VIRTIO_NO_VECTOR;
    vdev->ops = ops;
    vdev->opaque = opaque;
}

void qnic_virtio_set_num_queues(QnicVirtioDevice *vdev, unsigned num, const uint16_t *sizes)
{
    num = MIN(num, vdev->max_queues);
    for (unsigned i = 0; i < num; i++) {
        qnic_vq_init(&vdev->vqs[i], vdev->dev, i, sizes[i]);
        vdev->vqs[i].broken_cb = vq_broken;
        vdev->vqs[i].notify = vq_irq;
        vdev->vqs[i].opaque = vdev;
    }
    vdev->num_queues = num;
}

void qnic_virtio_cleanup(QnicVirtioDevice *vdev)
{
    g_clear_pointer(&vdev->config, g_free);
    g_clear_pointer(&vdev->vqs, g_free);
    vdev->num_queues = vdev->max_queues = 0;
}

void qnic_virtio_reset(QnicVirtioDevice *vdev)
{
    if (vdev->ops && vdev->ops->reset) {
        vdev->ops->reset(vdev);
    }
    vdev->status = 0;
    vdev->isr = 0;
    vdev->guest_features = 0;
    vdev->driver_features = 0;
    vdev->broken = false;
    vdev->legacy = false;
    vdev->config_vector = QNIC_VIRTIO_NO_VECTOR;
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        qnic_vq_reset(&vdev->vqs[i]);
    }
    if (vdev->tops && vdev->tops->update_irq) {
        vdev->tops->update_irq(vdev);
    }
}

uint64_t qnic_virtio_modern_features(const QnicVirtioDevice *vdev)
{
    return vdev->host_features & ~vdev->legacy_features;
}

uint32_t qnic_virtio_legacy_features(const QnicVirtioDevice *vdev)
{
    return (uint32_t)vdev->host_features;
}

static void apply_features(QnicVirtioDevice *vdev, uint64_t val)
{
    vdev->guest_features = val;
    if (vdev->ops && vdev->ops->set_features) {
        vdev->ops->set_features(vdev, val);
    }
}

void qnic_virtio_set_legacy_features(QnicVirtioDevice *vdev, uint32_t val)
{
    uint32_t offered = qnic_virtio_legacy_features(vdev);

    vdev->legacy = true;
    if (val & (1u << QNIC_VIRTIO_F_BAD_FEATURE)) {
        /* A driver acking everything: fall back to the minimum, as the
         * legacy spec intends BAD_FEATURE to be used. */
        qnic_guest_error("virtio: legacy driver acked BAD_FEATURE");
        val = 0;
    }
    if (val & ~offered) {
        qnic_guest_error("virtio: legacy driver acked unoffered features 0x%x", val & ~offered);
        val &= offered;
    }
    apply_features(vdev, val);
}

void qnic_virtio_set_driver_features(QnicVirtioDevice *vdev, unsigned sel, uint32_t val)
{
    if (vdev->status & VIRTIO_CONFIG_S_FEATURES_OK) {
        qnic_guest_error("virtio: feature write after FEATURES_OK ignored");
        return;
    }
    if (sel == 0) {
        vdev->driver_features = (vdev->driver_features & ~0xffffffffull) | val;
    } else if (sel == 1) {
        vdev->driver_features = (vdev->driver_features & 0xffffffffull) | ((uint64_t)val << 32);
    } else if (val) {
        qnic_guest_error("virtio: driver features select %u out of range", sel);
    }
}

static bool features_ok(QnicVirtioDevice *vdev)
{
    uint64_t f = vdev->driver_features;
    uint64_t offered = qnic_virtio_modern_features(vdev);

    if (f & ~offered) {
        qnic_guest_error("virtio: driver accepted unoffered features 0x%" PRIx64,
                         f & ~offered);
        return false;
    }
    if (!(f & (1ull << VIRTIO_F_VERSION_1))) {
        qnic_guest_error("virtio: modern driver did not accept VERSION_1");
        return false;
    }
    if (vdev->ops && vdev->ops->validate_features && !vdev->ops->validate_features(vdev, f)) {
        return false;
    }
    apply_features(vdev, f);
    return true;
}

bool qnic_virtio_queue_start(QnicVirtioDevice *vdev, unsigned idx)
{
    QnicVirtQueue *vq;

    if (idx >= vdev->num_queues) {
        return false;
    }
    vq = &vdev->vqs[idx];
    if (!vq->enabled || vq->num == 0) {
        return false;
    }
    if (vq->desc) {
        return true;
    }
    return qnic_vq_start(vq, vdev->guest_features);
}

void qnic_virtio_set_status(QnicVirtioDevice *vdev, uint8_t val)
{
    uint8_t old = vdev->status;

    if (val == 0) {
        qnic_virtio_reset(vdev);
        return;
    }
    if (!vdev->legacy && (val & VIRTIO_CONFIG_S_FEATURES_OK) &&
        !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
        if (!features_ok(vdev)) {
            /* The driver reads the status back and sees FEATURES_OK clear. */
            val &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        }
    }
    if (!vdev->legacy && (val & VIRTIO_CONFIG_S_DRIVER_OK) &&
        !(val & VIRTIO_CONFIG_S_FEATURES_OK) &&
        qnic_virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
        qnic_guest_error("virtio: DRIVER_OK without FEATURES_OK");
    }
    /* Bits the driver cleared stay clear, except NEEDS_RESET which only
     * a reset removes. */
    vdev->status = val | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
    if ((val & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
        for (unsigned i = 0; i < vdev->num_queues; i++) {
            qnic_virtio_queue_start(vdev, i);
        }
    }
    if (vdev->ops && vdev->ops->set_status) {
        vdev->ops->set_status(vdev, old, vdev->status);
    }
}

uint8_t qnic_virtio_read_isr(QnicVirtioDevice *vdev)
{
    uint8_t v = vdev->isr;

    vdev->isr = 0;
    if (vdev->tops && vdev->tops->update_irq) {
        vdev->tops->update_irq(vdev);
    }
    return v;
}

uint32_t qnic_virtio_config_read(QnicVirtioDevice *vdev, unsigned off, unsigned len)
{
    uint8_t b[4] = { 0 };

    if (len > 4 || off > vdev->config_len || len > vdev->config_len - off) {
        return len >= 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
    }
    if (vdev->ops && vdev->ops->get_config) {
        vdev->ops->get_config(vdev);
    }
    memcpy(b, vdev->config + off, len);
    return qnic_ld32(b);
}

void qnic_virtio_config_write(QnicVirtioDevice *vdev, unsigned off, unsigned len, uint32_t val)
{
    uint8_t b[4];

    if (len > 4 || off > vdev->config_len || len > vdev->config_len - off) {
        qnic_guest_error("virtio: config write at %u+%u outside %u bytes", off, len,
                         vdev->config_len);
        return;
    }
    if (vdev->ops && vdev->ops->get_config) {
        vdev->ops->get_config(vdev);
    }
    qnic_st32(b, val);
    memcpy(vdev->config + off, b, len);
    if (vdev->ops && vdev->ops->set_config) {
        vdev->ops->set_config(vdev, off, len);
    }
}

void qnic_virtio_queue_kick(QnicVirtioDevice *vdev, unsigned idx)
{
    QnicVirtQueue *vq;

    if (idx >= vdev->num_queues) {
        qnic_guest_error("virtio: notify for queue %u of %u", idx, vdev->num_queues);
        return;
    }
    vq = &vdev->vqs[idx];
    if (vdev->broken || !vq->enabled) {
        return;
    }
    if (!vq->desc && !qnic_virtio_queue_start(vdev, idx)) {
        return;
    }
    if (vdev->ops && vdev->ops->handle_queue) {
        vdev->ops->handle_queue(vdev, idx);
    }
}

void qnic_virtio_queue_reset(QnicVirtioDevice *vdev, unsigned idx)
{
    if (idx >= vdev->num_queues) {
        return;
    }
    if (vdev->ops && vdev->ops->queue_reset) {
        vdev->ops->queue_reset(vdev, idx);
    }
    qnic_vq_reset(&vdev->vqs[idx]);
}

int qnic_virtio_take_host_notifier(QnicVirtioDevice *vdev, unsigned idx)
{
    if (idx >= vdev->num_queues || !vdev->tops || !vdev->tops->take_host_notifier) {
        return -1;
    }
    return vdev->tops->take_host_notifier(vdev, idx);
}

void qnic_virtio_return_host_notifier(QnicVirtioDevice *vdev, unsigned idx)
{
    if (idx < vdev->max_queues && vdev->tops && vdev->tops->return_host_notifier) {
        vdev->tops->return_host_notifier(vdev, idx);
    }
}

int qnic_virtio_guest_notifier(QnicVirtioDevice *vdev, unsigned idx)
{
    if (idx >= vdev->num_queues || !vdev->tops || !vdev->tops->guest_notifier) {
        return -1;
    }
    return vdev->tops->guest_notifier(vdev, idx);
}

void qnic_virtio_guest_notifier_changed(QnicVirtioDevice *vdev, unsigned idx)
{
    if (idx < vdev->num_queues && vdev->ops && vdev->ops->guest_notifier_changed) {
        vdev->ops->guest_notifier_changed(vdev, idx);
    }
}

void qnic_virtio_notify(QnicVirtioDevice *vdev, QnicVirtQueue *vq)
{
    if (vdev->broken) {
        return;
    }
    qnic_vq_notify(vq);
}

void qnic_virtio_notify_config(QnicVirtioDevice *vdev)
{
    vdev->config_generation++;
    if (!(vdev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        return;
    }
    vdev->isr |= 2;
    if (vdev->tops && vdev->tops->notify) {
        vdev->tops->notify(vdev, vdev->config_vector);
    }
}

void qnic_virtio_error(QnicVirtioDevice *vdev, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qnic_guest_error("virtio: %s: %s", vdev->dev && vdev->dev->cls ? vdev->dev->cls->name : "device",
                     msg);
    g_free(msg);
    vdev->stat_errors++;
    if (vdev->broken) {
        return;
    }
    vdev->broken = true;
    if (qnic_virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
        vdev->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        qnic_virtio_notify_config(vdev);
    }
}
