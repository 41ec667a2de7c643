/*
 * The generic half of vhost (see qnic/vhost.h): which rings go to the
 * backend and in which order the backend hears about them, the kick and
 * call eventfds, interrupts raised from call events, and taking rings back
 * on stop, reset, queue reset or backend loss. Backend kinds only supply
 * the message transport (QnicVhostOps).
 */
#include "qnic/vhost.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

QnicVhostDev *qnic_vhost_dev_new(const QnicVhostOps *ops, void *be, unsigned nvqs)
{
    QnicVhostDev *hd = g_new0(QnicVhostDev, 1);

    hd->ops = ops;
    hd->be = be;
    hd->nvqs = nvqs;
    hd->vqs = g_new0(QnicVhostVq, nvqs);
    for (unsigned i = 0; i < nvqs; i++) {
        hd->vqs[i].hd = hd;
        hd->vqs[i].idx = i;
        hd->vqs[i].kick_fd = hd->vqs[i].call_fd = hd->vqs[i].guest_fd = -1;
    }
    return hd;
}

void qnic_vhost_dev_free(QnicVhostDev *hd)
{
    if (!hd) {
        return;
    }
    hd->connected = false;
    qnic_vhost_dev_stop(hd);
    g_free(hd->vqs);
    g_free(hd);
}

void qnic_vhost_set_event_handler(QnicVhostDev *hd, QnicVhostEventFunc *cb, void *opaque)
{
    hd->event = cb;
    hd->event_opaque = opaque;
}

uint64_t qnic_vhost_get_features(const QnicVhostDev *hd, const int *bits, uint64_t offered)
{
    for (const int *b = bits; *b >= 0; b++) {
        if (!(hd->backend_features & (1ull << *b))) {
            offered &= ~(1ull << *b);
        }
    }
    return offered;
}

/* The backend completed buffers and signalled qnic's call eventfd (no
 * irqfd for the queue now): interrupt the driver through the transport,
 * which sets the ISR for INTx or the PBA bit of a masked vector. The
 * backend applied the driver's suppression (flags / used_event) before
 * signalling. */
static void call_ready(void *opaque, int fd, GIOCondition cond)
{
    QnicVhostVq *hv = opaque;
    QnicVirtioDevice *vdev = hv->hd->vdev;
    QnicVirtQueue *vq;
    uint64_t cnt;

    if (read(fd, &cnt, sizeof(cnt)) != sizeof(cnt) || !vdev) {
        return;
    }
    if (vdev->broken || !(vdev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        return;
    }
    vq = &vdev->vqs[hv->idx];
    hv->calls_relayed++;
    vq->stat_notifies++;
    vdev->isr |= 1;
    if (vdev->tops && vdev->tops->notify) {
        vdev->tops->notify(vdev, vq->vector);
    }
}

static void vq_close(QnicVhostDev *hd, QnicVhostVq *hv)
{
    if (hv->call_watch) {
        qnic_fd_watch_remove(hv->call_watch);
        hv->call_watch = NULL;
    }
    if (hv->call_fd >= 0) {
        close(hv->call_fd);
        hv->call_fd = -1;
    }
    hv->guest_fd = -1;          /* the transport's */
    if (hv->kick_fd >= 0 && hv->kick_owned) {
        close(hv->kick_fd);
    } else if (hv->kick_fd >= 0 && hd->vdev) {
        /* the backend is done with it: kicks go through qnic again */
        qnic_virtio_return_host_notifier(hd->vdev, hv->idx);
    }
    hv->kick_fd = -1;
    hv->started = hv->enabled = false;
}

/* The backend's own kick, not a relayed notification: buffers the driver
 * made available before the ring was handed over or enabled. */
static void kick_backend(QnicVhostVq *hv)
{
    uint64_t one = 1;

    if (hv->started && hv->kick_fd >= 0 && write(hv->kick_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the backend has a kick */
    }
}

bool qnic_vhost_vq_start(QnicVhostDev *hd, unsigned idx, GError **errp)
{
    QnicVirtioDevice *vdev = hd->vdev;
    QnicVirtQueue *vq;
    QnicVhostVq *hv;
    unsigned base;

    if (!hd->started || !vdev || idx >= hd->nvqs || idx >= vdev->num_queues) {
        return true;
    }
    vq = &vdev->vqs[idx];
    hv = &hd->vqs[idx];
    if (hv->started || !vq->enabled || !vq->num || !vq->desc) {
        return true;    /* not set up by the driver: nothing to hand over */
    }
    base = vq->last_avail_idx;
    if (vq->packed) {
        base = (vq->last_avail_idx & 0x7fff) | (vq->avail_wrap ? 0x8000 : 0);
    }
    /* The transport's ioeventfd when it has one: the guest's notification
     * then reaches the backend in the kernel, never waking qnic. */
    hv->kick_fd = qnic_virtio_take_host_notifier(vdev, idx);
    hv->kick_owned = hv->kick_fd < 0;
    if (hv->kick_owned) {
        hv->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    hv->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (hv->kick_fd < 0 || hv->call_fd < 0) {
        qnic_error_setg_errno(errp, errno, "vhost: eventfd");
        vq_close(hd, hv);
        return false;
    }
    /* The vector's irqfd when it is deliverable now, else qnic's eventfd;
     * qnic_vhost_vq_update_call follows the driver's changes. */
    hv->guest_fd = qnic_virtio_guest_notifier(vdev, idx);
    if (!hd->ops->set_vring_num(hd, idx, vq->num, errp) ||
        !hd->ops->set_vring_base(hd, idx, base, errp) ||
        !hd->ops->set_vring_addr(hd, idx, (uint64_t)(uintptr_t)vq->desc,
                                 (uint64_t)(uintptr_t)vq->avail,
                                 (uint64_t)(uintptr_t)vq->used, errp) ||
        !hd->ops->set_vring_kick(hd, idx, hv->kick_fd, errp) ||
        !hd->ops->set_vring_call(hd, idx, hv->guest_fd >= 0 ? hv->guest_fd : hv->call_fd, errp)) {
        vq_close(hd, hv);
        return false;
    }
    hv->call_watch = qnic_fd_watch_add(hv->call_fd, G_IO_IN, call_ready, hv);
    hv->started = true;
    hv->kicks_relayed = hv->calls_relayed = 0;
    hv->call_switches = 0;
    qnic_log(QNIC_LOG_VHOST, "vhost: %s: queue %u started: kick=%s call=%s", hd->ops->name, idx,
             hv->kick_owned ? "relayed" : "ioeventfd", hv->guest_fd >= 0 ? "irqfd" : "relayed");
    kick_backend(hv);
    return true;
}

/* Where the backend stands when it cannot tell us: what it completed,
 * as published in the used ring. */
static void restore_from_used(QnicVirtQueue *vq)
{
    if (!vq->used || vq->packed) {
        /* packed: the last index the backend reported (or handed to it) */
        return;
    }
    vq->last_avail_idx = qnic_ld16(vq->used + 2);
}

void qnic_vhost_vq_stop(QnicVhostDev *hd, unsigned idx)
{
    QnicVirtioDevice *vdev = hd->vdev;
    QnicVhostVq *hv;
    QnicVirtQueue *vq;
    GError *err = NULL;
    unsigned base;

    if (!vdev || idx >= hd->nvqs || !hd->vqs[idx].started) {
        return;
    }
    hv = &hd->vqs[idx];
    vq = &vdev->vqs[idx];
    if (hd->connected && hv->enabled && hd->ops->set_vring_enable) {
        hd->ops->set_vring_enable(hd, idx, false, NULL);
    }
    if (hd->connected && hd->ops->get_vring_base(hd, idx, &base, &err)) {
        if (vq->packed) {
            vq->last_avail_idx = base & 0x7fff;
            vq->avail_wrap = base & 0x8000;
            vq->used_idx = vq->last_avail_idx;
            vq->used_wrap = vq->avail_wrap;
        } else {
            vq->last_avail_idx = base;
            vq->used_idx = vq->used ? qnic_ld16(vq->used + 2) : base;
        }
    } else {
        if (err) {
            qnic_warn("vhost: %s: queue %u: %s (restarting it from the used index)",
                      hd->ops->name, idx, err->message);
            g_clear_error(&err);
        }
        restore_from_used(vq);
        if (!vq->packed) {
            vq->used_idx = vq->last_avail_idx;
        }
    }
    vq->shadow_avail_idx = vq->last_avail_idx;
    vq->inuse = vq->inuse_descs = 0;
    if (!vq->packed && (uint16_t)(vq->last_avail_idx - vq->used_idx) <= vq->num) {
        /* What the backend took and has not used yet: in flight, so a
         * saved state gives it back (qnic_vq_inflight_rewound). */
        vq->inuse = vq->inuse_descs = (uint16_t)(vq->last_avail_idx - vq->used_idx);
    }
    vq->signalled_used_valid = false;
    qnic_log(QNIC_LOG_VHOST, "vhost: %s: queue %u stopped: kick=%s call=%s kicks_relayed=%" PRIu64
             " calls_relayed=%" PRIu64 " call_switches=%u", hd->ops->name, idx,
             hv->kick_owned ? "relayed" : "ioeventfd", hv->guest_fd >= 0 ? "irqfd" : "relayed",
             hv->kicks_relayed, hv->calls_relayed, hv->call_switches);
    vq_close(hd, hv);
}

bool qnic_vhost_dev_start(QnicVhostDev *hd, QnicVirtioDevice *vdev, unsigned nvqs,
                          uint64_t features, GError **errp)
{
    QnicMachine *m = vdev->dev ? vdev->dev->machine : NULL;

    if (hd->started) {
        return true;
    }
    if (!hd->connected) {
        qnic_error_setg(errp, "vhost: %s backend is not connected", hd->ops->name);
        return false;
    }
    if (!m || m->ram_fd < 0) {
        qnic_error_setg(errp, "vhost: guest RAM is not shareable (no memfd)");
        return false;
    }
    if (!hd->ops->set_features(hd, features, errp) || !hd->ops->set_mem_table(hd, m, errp)) {
        return false;
    }
    hd->acked_features = features;
    hd->vdev = vdev;
    hd->started = true;
    hd->stat_starts++;
    for (unsigned i = 0; i < nvqs && i < hd->nvqs; i++) {
        if (!qnic_vhost_vq_start(hd, i, errp)) {
            qnic_vhost_dev_stop(hd);
            return false;
        }
    }
    if (hd->ops->dev_start && !hd->ops->dev_start(hd, errp)) {
        qnic_vhost_dev_stop(hd);
        return false;
    }
    return true;
}

void qnic_vhost_dev_stop(QnicVhostDev *hd)
{
    if (!hd->started) {
        return;
    }
    if (hd->connected && hd->ops->dev_suspend) {
        hd->ops->dev_suspend(hd);
    }
    for (unsigned i = 0; i < hd->nvqs; i++) {
        qnic_vhost_vq_stop(hd, i);
    }
    if (hd->connected && hd->ops->dev_reset) {
        hd->ops->dev_reset(hd);
    }
    hd->started = false;
    hd->vdev = NULL;
}

bool qnic_vhost_set_vring_enable(QnicVhostDev *hd, unsigned idx, bool enable, GError **errp)
{
    QnicVhostVq *hv;

    if (idx >= hd->nvqs || !hd->vqs[idx].started) {
        return true;
    }
    hv = &hd->vqs[idx];
    if (hv->enabled == enable) {
        return true;
    }
    if (hd->ops->set_vring_enable && !hd->ops->set_vring_enable(hd, idx, enable, errp)) {
        return false;
    }
    hv->enabled = enable;
    if (enable) {
        kick_backend(hv);
    }
    return true;
}

void qnic_vhost_kick(QnicVhostDev *hd, unsigned idx)
{
    if (idx < hd->nvqs && hd->vqs[idx].started && hd->vqs[idx].kick_fd >= 0) {
        hd->stat_kicks++;
        hd->vqs[idx].kicks_relayed++;
        kick_backend(&hd->vqs[idx]);
    }
}

void qnic_vhost_vq_update_call(QnicVhostDev *hd, unsigned idx)
{
    QnicVhostVq *hv;
    GError *err = NULL;
    int want;

    if (!hd || !hd->started || !hd->connected || !hd->vdev || idx >= hd->nvqs ||
        !hd->vqs[idx].started) {
        return;
    }
    hv = &hd->vqs[idx];
    want = qnic_virtio_guest_notifier(hd->vdev, idx);
    if (want == hv->guest_fd) {
        return;
    }
    if (!hd->ops->set_vring_call(hd, idx, want >= 0 ? want : hv->call_fd, &err)) {
        /* the backend is failing; its loss is reported from a BH */
        qnic_warn("vhost: %s: queue %u: SET_VRING_CALL: %s", hd->ops->name, idx, err->message);
        g_error_free(err);
        return;
    }
    hv->guest_fd = want;
    hv->call_switches++;
    qnic_log(QNIC_LOG_VHOST, "vhost: %s: queue %u: call=%s (vector %u)", hd->ops->name, idx,
             want >= 0 ? "irqfd" : "relayed", hd->vdev->vqs[idx].vector);
    if (want >= 0) {
        /* Calls that reached qnic's eventfd before the switch (while the
         * vector was masked) are delivered now; the transport also replays
         * the pending bit. */
        call_ready(hv, hv->call_fd, G_IO_IN);
    }
}

bool qnic_vhost_takes_ctrl(const QnicVhostDev *hd)
{
    return hd && hd->ops->send_ctrl;
}

bool qnic_vhost_send_ctrl(QnicVhostDev *hd, uint8_t cls, uint8_t cmd, const void *data,
                          size_t len, GError **errp)
{
    if (!qnic_vhost_takes_ctrl(hd) || !hd->connected) {
        return true;
    }
    return hd->ops->send_ctrl(hd, cls, cmd, data, len, errp);
}

void qnic_vhost_backend_ready(QnicVhostDev *hd)
{
    hd->connected = true;
    if (hd->event) {
        hd->event(hd->event_opaque, true);
    }
}

void qnic_vhost_backend_lost(QnicVhostDev *hd)
{
    /* The connection may have been marked dead already (a failed request):
     * the device hears about it here either way. */
    hd->connected = false;
    qnic_vhost_dev_stop(hd);
    if (hd->event) {
        hd->event(hd->event_opaque, false);
    }
}

QnicVhostDev *qnic_vhost_net_get(QnicNetClient *nc)
{
    if (!nc || !nc->ops || !nc->ops->get_vhost) {
        return NULL;
    }
    return nc->ops->get_vhost(nc);
}

unsigned qnic_vhost_max_tx_queue_size(const QnicVhostDev *hd)
{
    if (!hd || !hd->ops->max_tx_queue_size) {
        return QNIC_VHOST_TX_QUEUE_SIZE;
    }
    return hd->ops->max_tx_queue_size;
}
