/*
 * The packet queue behind every net client's "incoming" side: frames a
 * receiver could not take yet wait here, in order, each with its sender and
 * optional completion callback. Flushing delivers them until the receiver
 * is busy again; purging drops those of one sender (a deleted client) and
 * tells the sender so it stops waiting. Frames without a completion
 * callback are fire-and-forget: beyond a bound in frames and in bytes they
 * are dropped and counted.
 */
#include "net-internal.h"
#include "qnic/log.h"

typedef struct QnicNetPacket {
    QnicNetClient *sender;
    QnicNetSentFunc *sent_cb;
    size_t size;
    uint8_t data[];
} QnicNetPacket;

struct QnicNetQueue {
    QnicNetQueueDeliverFunc *deliver;
    void *opaque;
    GQueue packets;          /* QnicNetPacket * */
    unsigned max;
    size_t max_bytes;        /* bound on callback-less frames' bytes */
    size_t bytes;            /* every queued frame's bytes */
    uint64_t dropped;
    bool delivering;         /* re-entry guard: a receiver that sends back */
};

QnicNetQueue *qnic_net_queue_new(QnicNetQueueDeliverFunc *deliver, void *opaque)
{
    QnicNetQueue *q = g_new0(QnicNetQueue, 1);
    q->deliver = deliver;
    q->opaque = opaque;
    q->max = QNIC_NET_QUEUE_DEFAULT_MAX;
    q->max_bytes = QNIC_NET_QUEUE_DEFAULT_MAX_BYTES;
    g_queue_init(&q->packets);
    return q;
}

void qnic_net_queue_free(QnicNetQueue *q)
{
    if (!q) {
        return;
    }
    qnic_net_queue_purge(q, NULL, false);
    g_free(q);
}

void qnic_net_queue_set_max(QnicNetQueue *q, unsigned max)
{
    q->max = max;
}

unsigned qnic_net_queue_len(const QnicNetQueue *q)
{
    return q->packets.length;
}

size_t qnic_net_queue_bytes(const QnicNetQueue *q)
{
    return q->bytes;
}

uint64_t qnic_net_queue_dropped(const QnicNetQueue *q)
{
    return q->dropped;
}

bool qnic_net_queue_append_iov(QnicNetQueue *q, QnicNetClient *sender,
                               const struct iovec *iov, int iovcnt,
                               QnicNetSentFunc *sent_cb)
{
    size_t size = qnic_iov_size(iov, iovcnt);

    /* A sender with a callback throttles itself (it waits for the callback
     * before sending more), so only callback-less frames can pile up. */
    if (!sent_cb && (q->packets.length >= q->max || q->bytes + size > q->max_bytes)) {
        q->dropped++;
        qnic_log(QNIC_LOG_TRACE_NET, "net: queue full (%u frames, %zu bytes), dropping a frame from %s\n",
                 q->packets.length, q->bytes, sender && sender->name ? sender->name : "?");
        return false;
    }
    QnicNetPacket *p = g_malloc(sizeof(*p) + size);
    p->sender = sender;
    p->sent_cb = sent_cb;
    p->size = size;
    qnic_iov_to_buf(iov, iovcnt, 0, p->data, size);
    q->bytes += size;
    g_queue_push_tail(&q->packets, p);
    return true;
}

static ssize_t queue_deliver(QnicNetQueue *q, QnicNetClient *sender,
                             const struct iovec *iov, int iovcnt)
{
    ssize_t ret;

    q->delivering = true;
    ret = q->deliver(sender, iov, iovcnt, q->opaque);
    q->delivering = false;
    return ret;
}

ssize_t qnic_net_queue_send_iov(QnicNetQueue *q, QnicNetClient *sender,
                                const struct iovec *iov, int iovcnt,
                                QnicNetSentFunc *sent_cb, bool can_deliver)
{
    ssize_t ret;

    /* Keep order: while anything is queued (or we are inside a delivery),
     * a new frame goes behind it. The older frames are pushed first so that
     * a queued return (0) always means "the callback runs later", never
     * "it already ran". */
    if (!q->delivering && can_deliver && q->packets.length > 0) {
        qnic_net_queue_flush(q);
    }
    if (q->delivering || !can_deliver || q->packets.length > 0) {
        qnic_net_queue_append_iov(q, sender, iov, iovcnt, sent_cb);
        return 0;
    }
    ret = queue_deliver(q, sender, iov, iovcnt);
    if (ret == 0) {
        qnic_net_queue_append_iov(q, sender, iov, iovcnt, sent_cb);
        return 0;
    }
    return ret;
}

bool qnic_net_queue_flush(QnicNetQueue *q)
{
    /* Bounded by the queue length at entry plus what deliveries append;
     * a receiver that never says busy still drains in finite steps because
     * re-entrant sends during delivery only append. */
    if (q->delivering) {
        return false;
    }
    while (!g_queue_is_empty(&q->packets)) {
        QnicNetPacket *p = g_queue_pop_head(&q->packets);
        struct iovec iov = { .iov_base = p->data, .iov_len = p->size };
        ssize_t ret;

        q->bytes -= p->size;
        ret = queue_deliver(q, p->sender, &iov, 1);
        if (ret == 0) {
            q->bytes += p->size;
            g_queue_push_head(&q->packets, p);
            return false;
        }
        if (p->sent_cb) {
            p->sent_cb(p->sender, ret);
        }
        g_free(p);
    }
    return true;
}

void qnic_net_queue_purge(QnicNetQueue *q, QnicNetClient *from, bool notify)
{
    GQueue dropped = G_QUEUE_INIT;
    GList *l = q->packets.head;

    /* Unlink first, notify after: a callback may send again, and what it
     * sends must not be purged with the old frames. */
    while (l) {
        GList *next = l->next;
        QnicNetPacket *p = l->data;
        if (!from || p->sender == from) {
            q->bytes -= p->size;
            g_queue_unlink(&q->packets, l);
            g_queue_push_tail_link(&dropped, l);
        }
        l = next;
    }
    while (!g_queue_is_empty(&dropped)) {
        QnicNetPacket *p = g_queue_pop_head(&dropped);
        if (notify && p->sent_cb) {
            p->sent_cb(p->sender, 0);
        }
        g_free(p);
    }
}
