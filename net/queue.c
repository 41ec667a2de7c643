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
    struct QnicNetPacket *next;
    QnicNetClient *sender;
    QnicNetSentFunc *sent_cb;
    size_t size;
    size_t cap;              /* bytes data[] can hold */
    uint8_t data[];
} QnicNetPacket;

/* A queued frame's buffer is kept for the next one when the queue drains,
 * so that a receiver that is busy again and again (a tap meeting EAGAIN, a
 * NIC out of RX buffers) costs no allocation per frame once warm. Bounded
 * per queue in buffers and bytes; buffers start at a size that fits a
 * full Ethernet frame, so small and MTU-sized frames share them. */
#define NET_QUEUE_SPARE_MAX 64
#define NET_QUEUE_SPARE_MAX_BYTES (1u << 20)
#define NET_QUEUE_MIN_BUF 2048

typedef struct PacketList {
    QnicNetPacket *head, *tail;
    unsigned len;
} PacketList;

struct QnicNetQueue {
    QnicNetQueueDeliverFunc *deliver;
    void *opaque;
    PacketList packets;
    unsigned max;
    size_t max_bytes;        /* bound on callback-less frames' bytes */
    size_t bytes;            /* every queued frame's bytes */
    uint64_t dropped;
    bool delivering;         /* re-entry guard: a receiver that sends back */
    QnicNetPacket *spare;    /* drained buffers for reuse */
    unsigned nspare;
    size_t spare_bytes;
};

static void list_push_tail(PacketList *l, QnicNetPacket *p)
{
    p->next = NULL;
    if (l->tail) {
        l->tail->next = p;
    } else {
        l->head = p;
    }
    l->tail = p;
    l->len++;
}

static void list_push_head(PacketList *l, QnicNetPacket *p)
{
    p->next = l->head;
    l->head = p;
    if (!l->tail) {
        l->tail = p;
    }
    l->len++;
}

static QnicNetPacket *list_pop_head(PacketList *l)
{
    QnicNetPacket *p = l->head;

    if (p) {
        l->head = p->next;
        if (!l->head) {
            l->tail = NULL;
        }
        l->len--;
        p->next = NULL;
    }
    return p;
}

/* A buffer for `size` bytes: a spare one that fits, else a new one. */
static QnicNetPacket *packet_get(QnicNetQueue *q, size_t size)
{
    QnicNetPacket **pp, *p;

    for (pp = &q->spare; *pp; pp = &(*pp)->next) {
        if ((*pp)->cap >= size) {
            p = *pp;
            *pp = p->next;
            q->nspare--;
            q->spare_bytes -= p->cap;
            return p;
        }
    }
    p = g_malloc(sizeof(*p) + MAX(size, NET_QUEUE_MIN_BUF));
    p->cap = MAX(size, NET_QUEUE_MIN_BUF);
    return p;
}

static void packet_put(QnicNetQueue *q, QnicNetPacket *p)
{
    if (q->nspare >= NET_QUEUE_SPARE_MAX || q->spare_bytes + p->cap > NET_QUEUE_SPARE_MAX_BYTES) {
        g_free(p);
        return;
    }
    p->next = q->spare;
    q->spare = p;
    q->nspare++;
    q->spare_bytes += p->cap;
}

QnicNetQueue *qnic_net_queue_new(QnicNetQueueDeliverFunc *deliver, void *opaque)
{
    QnicNetQueue *q = g_new0(QnicNetQueue, 1);
    q->deliver = deliver;
    q->opaque = opaque;
    q->max = QNIC_NET_QUEUE_DEFAULT_MAX;
    q->max_bytes = QNIC_NET_QUEUE_DEFAULT_MAX_BYTES;
    return q;
}

void qnic_net_queue_free(QnicNetQueue *q)
{
    if (!q) {
        return;
    }
    qnic_net_queue_purge(q, NULL, false);
    while (q->spare) {
        QnicNetPacket *p = q->spare;
        q->spare = p->next;
        g_free(p);
    }
    g_free(q);
}

void qnic_net_queue_set_max(QnicNetQueue *q, unsigned max)
{
    q->max = max;
}

unsigned qnic_net_queue_len(const QnicNetQueue *q)
{
    return q->packets.len;
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
    if (!sent_cb && (q->packets.len >= q->max || q->bytes + size > q->max_bytes)) {
        q->dropped++;
        qnic_log(QNIC_LOG_TRACE_NET, "net: queue full (%u frames, %zu bytes), dropping a frame from %s\n",
                 q->packets.len, q->bytes, sender && sender->name ? sender->name : "?");
        return false;
    }
    QnicNetPacket *p = packet_get(q, size);
    p->sender = sender;
    p->sent_cb = sent_cb;
    p->size = size;
    qnic_iov_to_buf(iov, iovcnt, 0, p->data, size);
    q->bytes += size;
    list_push_tail(&q->packets, p);
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
    if (!q->delivering && can_deliver && q->packets.len > 0) {
        qnic_net_queue_flush(q);
    }
    if (q->delivering || !can_deliver || q->packets.len > 0) {
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
    while (q->packets.head) {
        QnicNetPacket *p = list_pop_head(&q->packets);
        struct iovec iov = { .iov_base = p->data, .iov_len = p->size };
        ssize_t ret;

        q->bytes -= p->size;
        ret = queue_deliver(q, p->sender, &iov, 1);
        if (ret == 0) {
            q->bytes += p->size;
            list_push_head(&q->packets, p);
            return false;
        }
        if (p->sent_cb) {
            p->sent_cb(p->sender, ret);
        }
        packet_put(q, p);
    }
    return true;
}

void qnic_net_queue_purge(QnicNetQueue *q, QnicNetClient *from, bool notify)
{
    PacketList keep = { 0 }, dropped = { 0 };
    QnicNetPacket *p;

    /* Unlink first, notify after: a callback may send again, and what it
     * sends must not be purged with the old frames. */
    while ((p = list_pop_head(&q->packets))) {
        if (!from || p->sender == from) {
            q->bytes -= p->size;
            list_push_tail(&dropped, p);
        } else {
            list_push_tail(&keep, p);
        }
    }
    q->packets = keep;
    while ((p = list_pop_head(&dropped))) {
        if (notify && p->sent_cb) {
            p->sent_cb(p->sender, 0);
        }
        packet_put(q, p);
    }
}
