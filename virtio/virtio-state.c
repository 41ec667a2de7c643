/*
 * The virtio core's device state (qnic/virtio.h, qnic/state.h): the
 * section "virtio" that every virtio device model writes between its
 * transport's section and its own. It exists apart from virtio.c because
 * loading is a checker of hostile input: every queue size, index, wrap
 * counter, vector and ring address in a stream is checked against the
 * queue layout the stream's features give and against guest RAM before
 * anything is applied, so an out-of-range value never reaches the ring
 * code, and the rings' host pointers are derived again from the checked
 * addresses instead of being trusted.
 */
#include "qnic/virtio.h"
#include "qnic/state.h"

#define VIRTIO_STATE_VERSION 1

typedef struct VqState {
    uint16_t num;
    bool enabled, started, broken, notification;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t vector;
    uint16_t last_avail_idx, shadow_avail_idx, used_idx, signalled_used;
    bool signalled_used_valid, avail_wrap, used_wrap;
    uint16_t inuse;
} VqState;

struct QnicVirtioState {
    uint64_t host_features, guest_features, driver_features;
    uint8_t status, isr;
    uint32_t config_generation;
    uint16_t config_vector;
    bool broken, legacy;
    uint32_t num_queues;
    VqState vqs[QNIC_VIRTIO_MAX_QUEUES];
};

static const QnicStateField vq_fields[] = {
    QNIC_STATE_UINT(VqState, num, 0),
    QNIC_STATE_BOOL(VqState, enabled, 0),
    QNIC_STATE_BOOL(VqState, started, 0),
    QNIC_STATE_BOOL(VqState, broken, 0),
    QNIC_STATE_BOOL(VqState, notification, 0),
    QNIC_STATE_UINT(VqState, desc_gpa, 0),
    QNIC_STATE_UINT(VqState, avail_gpa, 0),
    QNIC_STATE_UINT(VqState, used_gpa, 0),
    QNIC_STATE_UINT(VqState, vector, 0),
    QNIC_STATE_UINT(VqState, last_avail_idx, 0),
    QNIC_STATE_UINT(VqState, shadow_avail_idx, 0),
    QNIC_STATE_UINT(VqState, used_idx, 0),
    QNIC_STATE_UINT(VqState, signalled_used, 0),
    QNIC_STATE_BOOL(VqState, signalled_used_valid, 0),
    QNIC_STATE_BOOL(VqState, avail_wrap, 0),
    QNIC_STATE_BOOL(VqState, used_wrap, 0),
    QNIC_STATE_UINT(VqState, inuse, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc vq_desc = {
    .name = "virtqueue", .version = 1, .min_version = 1,
    .size = sizeof(VqState), .fields = vq_fields,
};

static const QnicStateField virtio_fields[] = {
    QNIC_STATE_UINT(QnicVirtioState, host_features, 0),
    QNIC_STATE_UINT(QnicVirtioState, guest_features, 0),
    QNIC_STATE_UINT(QnicVirtioState, driver_features, 0),
    QNIC_STATE_UINT(QnicVirtioState, status, 0),
    QNIC_STATE_UINT_RANGE(QnicVirtioState, isr, 0, 0, 3),
    QNIC_STATE_UINT(QnicVirtioState, config_generation, 0),
    QNIC_STATE_UINT(QnicVirtioState, config_vector, 0),
    QNIC_STATE_BOOL(QnicVirtioState, broken, 0),
    QNIC_STATE_BOOL(QnicVirtioState, legacy, 0),
    QNIC_STATE_STRUCT_VARRAY(QnicVirtioState, vqs, num_queues, vq_desc, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc virtio_desc = {
    .name = "virtio", .version = VIRTIO_STATE_VERSION, .min_version = 1,
    .size = sizeof(QnicVirtioState), .fields = virtio_fields,
};

static void vq_save(const QnicVirtQueue *vq, VqState *q)
{
    q->num = vq->num;
    q->enabled = vq->enabled;
    q->started = vq->desc != NULL;
    q->broken = vq->broken;
    q->notification = vq->notification;
    q->desc_gpa = vq->desc_gpa;
    q->avail_gpa = vq->avail_gpa;
    q->used_gpa = vq->used_gpa;
    q->vector = vq->vector;
    q->shadow_avail_idx = vq->shadow_avail_idx;
    q->used_idx = vq->used_idx;
    q->signalled_used = vq->signalled_used;
    q->signalled_used_valid = vq->signalled_used_valid;
    q->used_wrap = vq->used_wrap;
    /* Elements in flight go back to the driver's side of the ring. */
    qnic_vq_inflight_rewound(vq, &q->last_avail_idx, &q->avail_wrap);
    q->inuse = 0;
}

void qnic_virtio_state_save(QnicVirtioDevice *vdev, GByteArray *out)
{
    g_autofree QnicVirtioState *s = g_new0(QnicVirtioState, 1);

    s->host_features = vdev->host_features;
    s->guest_features = vdev->guest_features;
    s->driver_features = vdev->driver_features;
    s->status = vdev->status;
    s->isr = vdev->isr;
    s->config_generation = vdev->config_generation;
    s->config_vector = vdev->config_vector;
    s->broken = vdev->broken;
    s->legacy = vdev->legacy;
    s->num_queues = MIN(vdev->num_queues, QNIC_VIRTIO_MAX_QUEUES);
    for (unsigned i = 0; i < s->num_queues; i++) {
        vq_save(&vdev->vqs[i], &s->vqs[i]);
    }
    qnic_state_write(out, &virtio_desc, s);
}

static bool vector_ok(uint16_t v, unsigned nvectors)
{
    return v == QNIC_VIRTIO_NO_VECTOR || v < nvectors;
}

/* Indices against the ring: a split ring's are free-running 16-bit
 * counters no further apart than the queue size, in the order used <=
 * last avail <= shadow avail; a packed ring's are slots below the size. */
static const char *vq_check_indices(const VqState *q, bool packed)
{
    if (q->inuse > q->num) {
        return "more buffers in use than the queue holds";
    }
    if (packed) {
        if (q->last_avail_idx >= q->num) {
            return "avail index beyond the queue size";
        }
        if (q->used_idx >= q->num) {
            return "used index beyond the queue size";
        }
        return NULL;
    }
    if ((uint16_t)(q->last_avail_idx - q->used_idx) > q->num) {
        return "used index ahead of the avail index";
    }
    if ((uint16_t)(q->last_avail_idx - q->used_idx) < q->inuse) {
        return "more buffers in use than were made available";
    }
    if ((uint16_t)(q->shadow_avail_idx - q->last_avail_idx) > q->num) {
        return "avail index moved past the queue size";
    }
    return NULL;
}

static bool vq_check(QnicVirtioDevice *vdev, unsigned i, const VqState *q, uint16_t num_max,
                     bool packed, unsigned nvectors, GError **errp)
{
    const char *why = NULL;

    if (q->num == 0 || q->num > num_max) {
        why = "size out of range";
    } else if (!vector_ok(q->vector, nvectors)) {
        why = "MSI-X vector out of range";
    } else if (q->started && !q->enabled) {
        why = "rings mapped on a disabled queue";
    } else if (q->started && !qnic_vq_rings_in_ram(vdev->dev, q->num, packed, q->desc_gpa,
                                                   q->avail_gpa, q->used_gpa, NULL, NULL,
                                                   NULL)) {
        why = "rings misaligned or not in guest RAM";
    } else {
        why = vq_check_indices(q, packed);
    }
    if (why) {
        qnic_error_setg(errp, "virtio: queue %u: %s (size %u of %u, avail %u, used %u, "
                        "vector %u)", i, why, q->num, num_max, q->last_avail_idx, q->used_idx,
                        q->vector);
        return false;
    }
    return true;
}

/* The queues the device has with `features`: its own layout, or now's. */
static unsigned layout(QnicVirtioDevice *vdev, uint64_t features, uint16_t *sizes)
{
    if (vdev->ops && vdev->ops->queue_layout) {
        return vdev->ops->queue_layout(vdev, features, sizes);
    }
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        sizes[i] = vdev->vqs[i].num_max;
    }
    return vdev->num_queues;
}

static bool state_check(QnicVirtioDevice *vdev, const QnicVirtioState *s, unsigned nvectors,
                        GError **errp)
{
    g_autofree uint16_t *sizes = g_new0(uint16_t, QNIC_VIRTIO_MAX_QUEUES);
    bool packed = s->guest_features & (1ull << VIRTIO_F_RING_PACKED);
    unsigned nq;

    if (s->guest_features & ~vdev->host_features) {
        qnic_error_setg(errp, "virtio: the driver accepted features 0x%" PRIx64 " this "
                        "device does not offer (it offers 0x%" PRIx64 ")",
                        s->guest_features & ~vdev->host_features, vdev->host_features);
        return false;
    }
    if (!vector_ok(s->config_vector, nvectors)) {
        qnic_error_setg(errp, "virtio: config MSI-X vector %u of %u", s->config_vector,
                        nvectors);
        return false;
    }
    nq = layout(vdev, s->guest_features, sizes);
    if (s->num_queues != nq || nq > vdev->max_queues) {
        qnic_error_setg(errp, "virtio: %u queues in the stream, the device has %u with the "
                        "driver's features", s->num_queues, nq);
        return false;
    }
    for (unsigned i = 0; i < nq; i++) {
        if (!vq_check(vdev, i, &s->vqs[i], sizes[i], packed, nvectors, errp)) {
            return false;
        }
    }
    return true;
}

QnicVirtioState *qnic_virtio_state_read(QnicVirtioDevice *vdev, QnicStateReader *r,
                                        unsigned nvectors, GError **errp)
{
    g_autoptr(QnicVirtioState) s = g_new0(QnicVirtioState, 1);

    if (!qnic_state_read(r, &virtio_desc, s, errp) || !state_check(vdev, s, nvectors, errp)) {
        return NULL;
    }
    return g_steal_pointer(&s);
}

uint64_t qnic_virtio_state_features(const QnicVirtioState *s)
{
    return s->guest_features;
}

uint8_t qnic_virtio_state_status(const QnicVirtioState *s)
{
    return s->status;
}

static void vq_apply(QnicVirtQueue *vq, const VqState *q, uint64_t features)
{
    qnic_vq_reset(vq);
    vq->num = q->num;
    vq->enabled = q->enabled;
    vq->broken = q->broken;
    vq->notification = q->notification;
    vq->desc_gpa = q->desc_gpa;
    vq->avail_gpa = q->avail_gpa;
    vq->used_gpa = q->used_gpa;
    vq->vector = q->vector;
    vq->last_avail_idx = q->last_avail_idx;
    vq->shadow_avail_idx = q->shadow_avail_idx;
    vq->used_idx = q->used_idx;
    vq->signalled_used = q->signalled_used;
    vq->signalled_used_valid = q->signalled_used_valid;
    vq->avail_wrap = q->avail_wrap;
    vq->used_wrap = q->used_wrap;
    vq->inuse = vq->inuse_descs = q->inuse;
    if (!q->started) {
        return;
    }
    vq->packed = features & (1ull << VIRTIO_F_RING_PACKED);
    vq->event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
    vq->indirect = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
    vq->in_order = features & (1ull << VIRTIO_F_IN_ORDER);
    /* checked by state_check: the rings are RAM */
    if (!qnic_vq_rings_in_ram(vq->dev, vq->num, vq->packed, vq->desc_gpa, vq->avail_gpa,
                              vq->used_gpa, &vq->desc, &vq->avail, &vq->used)) {
        vq->desc = vq->avail = vq->used = NULL;
    }
}

void qnic_virtio_state_apply(QnicVirtioDevice *vdev, const QnicVirtioState *s)
{
    vdev->guest_features = s->guest_features;
    vdev->driver_features = s->driver_features;
    vdev->status = s->status;
    vdev->isr = s->isr;
    vdev->config_generation = s->config_generation;
    vdev->config_vector = s->config_vector;
    vdev->broken = s->broken;
    vdev->legacy = s->legacy;
    for (unsigned i = 0; i < s->num_queues && i < vdev->num_queues; i++) {
        vq_apply(&vdev->vqs[i], &s->vqs[i], s->guest_features);
    }
    if (vdev->tops && vdev->tops->update_irq) {
        vdev->tops->update_irq(vdev);
    }
}

void qnic_virtio_state_free(QnicVirtioState *s)
{
    g_free(s);
}
