/*
 * virtio-net's data plane: frames between the guest's rings and the
 * netdev, one queue pair (RX ring, TX ring, NIC client queue) at a time.
 * It lives apart from the device (hw/net/virtio-net.c: config, features,
 * layout, realize) because it is the hot path and the part a reader checks
 * for hostile-guest handling: every descriptor chain comes from
 * qnic_vq_pop(), which has bounded and mapped it; RX fills buffers with no
 * allocation (preallocated iovec arrays, guest memory mapped directly) and
 * rolls the ring back when a frame does not fit; TX sends up to tx_burst
 * frames per run and stops when the backend queues one, until its
 * completion callback. Which frames pass and which pair RSS picks is
 * decided by virtio-net-ctrl.c's state.
 */
#include "virtio-net-internal.h"
#include "qnic/device.h"
#include "qnic/log.h"

/* ---- RX ---- */

static bool rx_ready(VirtioNetQueue *q)
{
    VirtioNet *n = q->n;

    return qnic_virtio_driver_ok(&n->vdev) && q->index < n->curr_pairs &&
           q->rx->enabled && qnic_vq_ready(q->rx);
}

bool virtio_net_can_receive(QnicNetClient *nc)
{
    VirtioNet *n = nc->opaque;
    VirtioNetQueue *q;

    if ((unsigned)nc->queue_index >= n->max_pairs) {
        return false;
    }
    q = &n->q[nc->queue_index];
    if (!rx_ready(q)) {
        return false;
    }
    if (qnic_vq_empty(q->rx)) {
        /* Ask for a kick when buffers arrive, then look once more. */
        qnic_vq_set_notification(q->rx, true);
        return !qnic_vq_empty(q->rx);
    }
    return true;
}

static ssize_t rx_deliver(VirtioNetQueue *q, const struct iovec *iov, int iovcnt, size_t size,
                          const uint8_t *eth, size_t eth_len, uint32_t hash, unsigned report)
{
    VirtioNet *n = q->n;
    QnicVirtQueue *vq = q->rx;
    uint8_t hdr[sizeof(struct virtio_net_hdr_v1_hash)] = { 0 };
    struct iovec hdr_iov[4];
    unsigned hdr_n = 0, i = 0;
    size_t payload = size - n->host_hdr_len;
    size_t total = n->guest_hdr_len + payload, off = 0;
    QnicVqMark mark = qnic_vq_mark(vq);

    if (n->host_hdr_len) {
        qnic_iov_to_buf(iov, iovcnt, 0, hdr, MIN(n->host_hdr_len, sizeof(struct virtio_net_hdr)));
    }
    if (n->hash_report && n->guest_hdr_len >= sizeof(struct virtio_net_hdr_v1_hash)) {
        qnic_st32(hdr + 12, hash);
        qnic_st16(hdr + 16, report);
    }
    while (off < total) {
        QnicVqElem *e = &q->rx_elem;
        QnicVqPopResult r = qnic_vq_pop(vq, e);
        size_t len, c;

        if (r != QNIC_VQ_POP_OK) {
            qnic_vq_rollback(vq, mark);
            if (r == QNIC_VQ_POP_EMPTY) {
                if (i && !n->mergeable) {
                    break;
                }
                /* Not enough buffers for the whole frame: wait for more. */
                qnic_vq_set_notification(vq, true);
                return 0;
            }
            return size;
        }
        if (e->in_num == 0 || e->out_num) {
            qnic_vq_rollback(vq, mark);
            qnic_virtio_error(&n->vdev, "RX buffer with device-readable descriptors");
            return size;
        }
        if (i == 0) {
            if (e->in_len < n->guest_hdr_len) {
                qnic_vq_rollback(vq, mark);
                qnic_virtio_error(&n->vdev, "RX buffer smaller than the vnet header");
                return size;
            }
            hdr_n = MIN(e->in_num, 4u);
            memcpy(hdr_iov, e->iov, hdr_n * sizeof(struct iovec));
        }
        len = MIN(e->in_len, total - off);
        /* header part */
        c = 0;
        if (off < n->guest_hdr_len) {
            struct iovec h = { hdr + off, n->guest_hdr_len - off };
            c = qnic_iov_copy(qnic_vq_elem_in(e), e->in_num, 0, &h, 1, 0, MIN(len, h.iov_len));
        }
        /* payload part */
        if (len > c) {
            size_t poff = off + c - n->guest_hdr_len;
            qnic_iov_copy(qnic_vq_elem_in(e), e->in_num, c, iov, iovcnt,
                          n->host_hdr_len + poff, len - c);
        }
        qnic_vq_fill(vq, e, len, i);
        i++;
        off += len;
        if (!n->mergeable) {
            break;
        }
    }
    if (off < total) {
        /* Without mergeable buffers a frame must fit one buffer. */
        qnic_vq_rollback(vq, mark);
        n->stat_rx_dropped++;
        qnic_guest_error("virtio-net: %zu-byte frame does not fit the RX buffer", total);
        return size;
    }
    if (n->mergeable) {
        uint8_t nb[2];
        qnic_st16(nb, i);
        struct iovec src = { nb, 2 };
        qnic_iov_copy(hdr_iov, hdr_n, 10, &src, 1, 0, 2);
    }
    qnic_vq_flush(vq, i);
    qnic_virtio_notify(&n->vdev, vq);
    (void)eth;
    (void)eth_len;
    return size;
}

/* RSS and hash reports (net/rss.c): the frame's hash and report type, and
 * the pair software RSS gives it - q itself while the tap's eBPF program
 * steers (it already put the frame on the right queue) or when the chosen
 * pair cannot take it now. The headers are read in place when the first
 * buffer holds them. */
static VirtioNetQueue *rx_rss(VirtioNet *n, VirtioNetQueue *q, const struct iovec *iov,
                              int iovcnt, size_t size, uint32_t *hash, unsigned *report)
{
    uint8_t copy[QNIC_RSS_PARSE_MAX];
    size_t want = MIN(size - n->host_hdr_len, sizeof(copy)), len;
    const uint8_t *frame;

    if (iovcnt > 0 && iov[0].iov_len >= n->host_hdr_len + want) {
        frame = (const uint8_t *)iov[0].iov_base + n->host_hdr_len;
        len = want;
    } else {
        len = qnic_iov_to_buf(iov, iovcnt, n->host_hdr_len, copy, want);
        frame = copy;
    }
    *report = qnic_rss_hash(&n->rss, frame, len, hash);
    if (n->rss_enabled && !n->rss_ebpf_steering) {
        unsigned target = qnic_rss_queue(&n->rss, *report, *hash);
        if (target < n->curr_pairs && target != q->index && rx_ready(&n->q[target])) {
            return &n->q[target];
        }
    }
    return q;
}

ssize_t virtio_net_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    VirtioNet *n = nc->opaque;
    VirtioNetQueue *q;
    size_t size = qnic_iov_size(iov, iovcnt);
    uint8_t eth[ETH_HLEN + 4 + 40 + 4];
    size_t eth_len;
    uint32_t hash = 0;
    unsigned report = 0;
    ssize_t ret;

    if ((unsigned)nc->queue_index >= n->max_pairs) {
        return size;
    }
    q = &n->q[nc->queue_index];
    if (!rx_ready(q)) {
        return 0;
    }
    if (size < n->host_hdr_len) {
        return size;
    }
    eth_len = qnic_iov_to_buf(iov, iovcnt, n->host_hdr_len, eth, sizeof(eth));
    if (!virtio_net_rx_filter(n, eth, eth_len)) {
        n->stat_rx_filtered++;
        return size;
    }
    if (n->rss_enabled || n->hash_report) {
        q = rx_rss(n, q, iov, iovcnt, size, &hash, &report);
    }
    qnic_device_enter(n->dev);
    ret = rx_deliver(q, iov, iovcnt, size, eth, eth_len, hash, report);
    qnic_device_leave(n->dev);
    return ret;
}

/* ---- TX ---- */

static void tx_complete(QnicNetClient *nc, ssize_t ret)
{
    VirtioNet *n = nc->opaque;
    VirtioNetQueue *q;

    if ((unsigned)nc->queue_index >= n->max_pairs) {
        return;
    }
    q = &n->q[nc->queue_index];
    if (!q->tx_async) {
        return;
    }
    q->tx_async = false;
    qnic_device_enter(n->dev);
    qnic_vq_push(q->tx, &q->tx_elem, 0);
    qnic_virtio_notify(&n->vdev, q->tx);
    qnic_device_leave(n->dev);
    virtio_net_tx_schedule(q);
}

/* Send up to tx_burst frames; returns how many, or -1 when the backend
 * queued one (wait for tx_complete). */
static int tx_flush(VirtioNetQueue *q)
{
    VirtioNet *n = q->n;
    int count = 0;

    if (q->tx_async || !qnic_virtio_driver_ok(&n->vdev) || !q->tx->enabled) {
        return 0;
    }
    while (count < n->tx_burst) {
        QnicVqElem *e = &q->tx_elem;
        QnicVqPopResult r = qnic_vq_pop(q->tx, e);
        unsigned sn;
        ssize_t ret;

        if (r != QNIC_VQ_POP_OK) {
            break;
        }
        if (e->out_num == 0 || e->out_len < n->guest_hdr_len) {
            qnic_virtio_error(&n->vdev, "TX buffer without a vnet header");
            break;
        }
        if (n->host_hdr_len == n->guest_hdr_len) {
            sn = qnic_iov_tail(q->tx_send, QNIC_VQ_MAX_SG, qnic_vq_elem_out(e), e->out_num, 0);
        } else {
            /* The peer takes plain frames or a shorter header: send its
             * part of the header, then the frame. */
            sn = 0;
            if (n->host_hdr_len) {
                qnic_iov_to_buf(qnic_vq_elem_out(e), e->out_num, 0, q->tx_hdr, n->host_hdr_len);
                q->tx_send[0].iov_base = q->tx_hdr;
                q->tx_send[0].iov_len = n->host_hdr_len;
                sn = 1;
            }
            sn += qnic_iov_tail(q->tx_send + sn, QNIC_VQ_MAX_SG - sn, qnic_vq_elem_out(e), e->out_num,
                           n->guest_hdr_len);
        }
        if (q->index >= n->curr_pairs) {
            ret = 1;    /* a queue the driver did not enable: drop */
        } else {
            ret = qnic_net_send_iov(q->nc, q->tx_send, sn, tx_complete);
        }
        if (ret == 0) {
            q->tx_async = true;
            qnic_vq_set_notification(q->tx, false);
            qnic_virtio_notify(&n->vdev, q->tx);
            return -1;
        }
        qnic_vq_push(q->tx, e, 0);
        count++;
    }
    if (count) {
        qnic_virtio_notify(&n->vdev, q->tx);
    }
    return count;
}

static void tx_run(VirtioNetQueue *q)
{
    VirtioNet *n = q->n;
    int ret;

    q->tx_waiting = false;
    qnic_device_enter(n->dev);
    ret = tx_flush(q);
    if (ret >= 0) {
        if (ret >= n->tx_burst) {
            virtio_net_tx_schedule(q);       /* more to do: yield to the loop first */
        } else {
            qnic_vq_set_notification(q->tx, true);
            if (!qnic_vq_empty(q->tx) && qnic_virtio_driver_ok(&n->vdev)) {
                qnic_vq_set_notification(q->tx, false);
                virtio_net_tx_schedule(q);
            }
        }
    }
    qnic_device_leave(n->dev);
}

/* The TX bottom half and the tx=timer timer. */
static void tx_run_cb(void *opaque)
{
    tx_run(opaque);
}

void virtio_net_tx_schedule(VirtioNetQueue *q)
{
    if (q->tx_waiting) {
        return;
    }
    q->tx_waiting = true;
    if (q->n->tx_timer_mode) {
        qnic_timer_mod(q->tx_timer, qnic_clock_ns() + q->n->tx_timeout);
    } else {
        qnic_bh_schedule(q->tx_bh);
    }
}

void virtio_net_handle_tx(VirtioNet *n, VirtioNetQueue *q)
{
    if (q->tx_async) {
        return;
    }
    if (n->tx_timer_mode && q->tx_waiting) {
        /* A second kick while the timer runs: flush now, as QEMU does. */
        qnic_timer_del(q->tx_timer);
        tx_run(q);
        return;
    }
    qnic_vq_set_notification(q->tx, false);
    virtio_net_tx_schedule(q);
}

void virtio_net_tx_stop(VirtioNetQueue *q)
{
    q->tx_waiting = false;
    qnic_bh_cancel(q->tx_bh);
    qnic_timer_del(q->tx_timer);
    if (q->tx_async && q->nc) {
        /* Drop what the backend still holds from us: its ring is gone. */
        qnic_net_purge_queued(q->nc);
    }
    q->tx_async = false;
}

void virtio_net_queue_init(VirtioNet *n, unsigned i)
{
    VirtioNetQueue *q = &n->q[i];

    q->n = n;
    q->index = i;
    q->rx = &n->vdev.vqs[2 * i];
    q->tx = &n->vdev.vqs[2 * i + 1];
    q->nc = n->nic->ncs[i];
    q->tx_bh = qnic_bh_new(tx_run_cb, q);
    q->tx_timer = qnic_timer_new(tx_run_cb, q);
    q->tx_elem.iov = q->tx_iov;
    q->tx_elem.iov_cap = QNIC_VQ_MAX_SG;
    q->rx_elem.iov = q->rx_iov;
    q->rx_elem.iov_cap = QNIC_VQ_MAX_SG;
}

void virtio_net_queue_cleanup(VirtioNetQueue *q)
{
    virtio_net_tx_stop(q);
    qnic_bh_free(q->tx_bh);
    qnic_timer_free(q->tx_timer);
}
