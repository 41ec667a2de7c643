/*
 * The AF_XDP netdev (`-netdev af-xdp,...`, QEMU 8.2's options and error
 * messages): frames between a NIC and the queues of an existing Linux
 * interface through XDP sockets, set up with libxdp. It exists because an
 * XDP socket takes frames from the driver (native mode) or from the generic
 * XDP hook (skb mode) straight into memory qnic shares with the kernel, with
 * no syscall per frame: receive needs none, transmit one per batch.
 *
 * Queue pair i of the netdev is the interface's queue start-queue + i and
 * has its own socket (XSK) and UMEM: XDP_NUM_FRAMES frames of
 * XDP_FRAME_SIZE bytes, half lent to the kernel for receive (fill and RX
 * rings), half for transmit (TX and completion rings); frames are handed
 * around as offsets from one preallocated stack, so nothing allocates per
 * frame. Receive reads the RX ring in batches and pauses while the peer is
 * busy (resumed by the sent callback); transmit fills the TX ring and a
 * bottom half wakes the kernel once per burst, and only when the ring says
 * it needs it (XDP_USE_NEED_WAKEUP). A frame that finds no free frame or
 * ring slot is queued by the net core and goes on when the socket is
 * writable again. With sock-fds= (inhibit=on) the sockets come from a
 * privileged parent and qnic only binds them; libxdp before 1.4 cannot put a
 * UMEM on a socket it did not open, so there qnic uses the kernel interface
 * (linux/if_xdp.h) for those. Without libxdp at build time the type exists
 * and refuses with a message saying so.
 */
#include "qnic/net.h"
#include "qnic/log.h"
#include "qnic/mainloop.h"
#include "qnic-config.h"

#include <errno.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <net/if.h>

#ifdef CONFIG_AF_XDP
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>
#include <xdp/libxdp.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif

/* UMEM chunk: one frame each, the page size XDP copy mode works with. */
#define XDP_FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE
/* Entries of each of the four rings (fill, RX, TX, completion). */
#define XDP_RING_SIZE 2048
/* Frames lent to the kernel for receive, and the rest for transmit. */
#define XDP_RX_FRAMES XDP_RING_SIZE
#define XDP_TX_FRAMES XDP_RING_SIZE
#define XDP_NUM_FRAMES (XDP_RX_FRAMES + XDP_TX_FRAMES)
/* RX descriptors taken per ring access, and per wakeup (fairness). */
#define XDP_RX_BATCH 64
#define XDP_RX_BURST 256
/* sendto() calls per kick: the kernel sends at most 32 frames per call in
 * copy mode, so this drains a full TX ring. */
#define XDP_KICK_TRIES (XDP_RING_SIZE / 32 + 1)
#define XDP_MAX_QUEUES 1024

typedef struct AfXdpState AfXdpState;

typedef struct AfXdpQueue {
    AfXdpState *s;
    QnicNetClient *nc;
    int queue_id;                   /* the interface's queue */
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    struct xsk_ring_prod fq, tx;
    struct xsk_ring_cons cq, rx;
    uint8_t *area;                  /* the UMEM, XDP_NUM_FRAMES frames */
    uint64_t *pool;                 /* free frames (offsets), a stack */
    uint32_t n_pool;
    uint32_t rx_lent;               /* frames in the fill or RX ring */
    uint32_t tx_out;                /* frames in the TX or completion ring */
    int fd;
    void *raw_map[4];               /* sock-fds without libxdp's help: rings */
    size_t raw_len[4];
    QnicFdWatch *watch;
    QnicBH *kick_bh;
    bool read_poll, write_poll;
    uint64_t oversize_drops, tx_errors;
} AfXdpQueue;

struct AfXdpState {
    char ifname[IFNAMSIZ];
    int ifindex;
    uint32_t xdp_flags;             /* attach flags of the program we loaded */
    bool inhibit;
    int nqueues;                    /* queues set up so far */
    AfXdpQueue *q;
};

/* What the options asked for, checked. */
typedef struct AfXdpConfig {
    int64_t queues;
    int64_t start_queue;
    const char *mode;               /* NULL: native, then skb */
    bool force_copy;
    bool inhibit;
    int *sock_fds;                  /* [queues] or NULL */
} AfXdpConfig;

/* ---- event-loop plumbing ---- */

static void xdp_fd_event(void *opaque, int fd, GIOCondition cond);

static void xdp_update_watch(AfXdpQueue *q)
{
    GIOCondition cond = (q->read_poll ? G_IO_IN : 0) | (q->write_poll ? G_IO_OUT : 0);

    if (!q->watch) {
        q->watch = qnic_fd_watch_add(q->fd, cond, xdp_fd_event, q);
    } else {
        qnic_fd_watch_set(q->watch, cond);
    }
}

static void xdp_read_poll(AfXdpQueue *q, bool on)
{
    if (q->read_poll != on) {
        q->read_poll = on;
        xdp_update_watch(q);
    }
}

static void xdp_write_poll(AfXdpQueue *q, bool on)
{
    if (q->write_poll != on) {
        q->write_poll = on;
        xdp_update_watch(q);
    }
}

/* ---- frames ---- */

static void xdp_pool_put(AfXdpQueue *q, uint64_t addr)
{
    /* RX descriptors point past the headroom: give back the chunk. */
    q->pool[q->n_pool++] = addr & ~(uint64_t)(XDP_FRAME_SIZE - 1);
}

/* Frames the kernel finished sending go back to the pool. */
static void xdp_reclaim_tx(AfXdpQueue *q)
{
    uint32_t idx = 0;
    uint32_t n = xsk_ring_cons__peek(&q->cq, XDP_RING_SIZE, &idx);

    for (uint32_t i = 0; i < n; i++) {
        xdp_pool_put(q, *xsk_ring_cons__comp_addr(&q->cq, idx + i));
    }
    if (n) {
        xsk_ring_cons__release(&q->cq, n);
        q->tx_out -= n;
    }
}

/* Lend free frames to the kernel for receive, up to the RX share. */
static void xdp_refill(AfXdpQueue *q)
{
    uint32_t n = XDP_RX_FRAMES - q->rx_lent;
    uint32_t idx = 0;

    if (n > q->n_pool) {
        n = q->n_pool;
    }
    if (!n || xsk_ring_prod__reserve(&q->fq, n, &idx) != n) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        *xsk_ring_prod__fill_addr(&q->fq, idx + i) = q->pool[--q->n_pool];
    }
    xsk_ring_prod__submit(&q->fq, n);
    q->rx_lent += n;
    if (xsk_ring_prod__needs_wakeup(&q->fq)) {
        /* the driver sleeps until told there are buffers again */
        recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
    }
}

/* Entries in the TX ring the kernel has not taken yet. */
static uint32_t xdp_tx_queued(AfXdpQueue *q)
{
    return *q->tx.producer - __atomic_load_n(q->tx.consumer, __ATOMIC_ACQUIRE);
}

/* Have the kernel send what the TX ring holds: one sendto() per 32 frames
 * in copy mode, none when the ring does not ask for a wake-up. */
static void xdp_kick_tx(AfXdpQueue *q)
{
    for (int i = 0; i < XDP_KICK_TRIES && xdp_tx_queued(q); i++) {
        uint32_t before = xdp_tx_queued(q);

        if (!xsk_ring_prod__needs_wakeup(&q->tx)) {
            break;
        }
        if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0) {
            if (errno == EBUSY) {
                q->tx_errors++;         /* one frame dropped by the device */
            } else if (errno != EAGAIN && errno != EINTR) {
                if (q->tx_errors++ == 0) {
                    qnic_warn("af-xdp %s queue %d: send failed: %s", q->s->ifname,
                              q->queue_id, g_strerror(errno));
                }
                break;                  /* the next frame or event retries */
            }
        }
        xdp_reclaim_tx(q);
        if (xdp_tx_queued(q) == before) {
            break;                      /* no room in the completion ring yet */
        }
    }
    xdp_reclaim_tx(q);
}

static void xdp_kick_bh(void *opaque)
{
    xdp_kick_tx(opaque);
}

/* ---- wire to NIC ---- */

static void xdp_rx_sent(QnicNetClient *nc, ssize_t ret)
{
    AfXdpQueue *q = nc->opaque;

    if (q) {
        xdp_read_poll(q, true);
    }
}

/* One batch from the RX ring to the peer; false when reading must stop
 * (ring empty or peer busy). */
static bool xdp_rx_batch(AfXdpQueue *q)
{
    uint32_t idx = 0;
    uint32_t n = xsk_ring_cons__peek(&q->rx, XDP_RX_BATCH, &idx);
    bool more = n == XDP_RX_BATCH;

    for (uint32_t i = 0; i < n; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
        struct iovec iov = {
            .iov_base = xsk_umem__get_data(q->area, d->addr),
            .iov_len = d->len,
        };

        ssize_t ret = qnic_net_send_iov(q->nc, &iov, 1, xdp_rx_sent);

        /* delivered, or copied into the peer's queue: the frame is free
         * (only now: a peer answering at once must not reuse it early) */
        xdp_pool_put(q, d->addr);
        if (ret == 0) {
            xdp_read_poll(q, false);
            xsk_ring_cons__cancel(&q->rx, n - i - 1);
            n = i + 1;
            more = false;
            break;
        }
    }
    if (n) {
        xsk_ring_cons__release(&q->rx, n);
        q->rx_lent -= n;
        xdp_refill(q);
    }
    return more;
}

static void xdp_rx(AfXdpQueue *q)
{
    for (int done = 0; q->read_poll && done < XDP_RX_BURST; done += XDP_RX_BATCH) {
        if (!xdp_rx_batch(q)) {
            break;
        }
    }
}

static void xdp_fd_event(void *opaque, int fd, GIOCondition cond)
{
    AfXdpQueue *q = opaque;

    if ((cond & G_IO_OUT) && q->write_poll) {
        xdp_write_poll(q, false);
        xdp_kick_tx(q);
        qnic_net_flush_queued(q->nc);
    }
    if ((cond & (G_IO_IN | G_IO_ERR | G_IO_HUP)) && q->read_poll) {
        xdp_rx(q);
    }
}

/* ---- NIC to wire ---- */

/* A free frame and a TX ring slot (*idx), or false. */
static bool xdp_tx_reserve(AfXdpQueue *q, uint32_t *idx)
{
    xdp_reclaim_tx(q);
    return q->n_pool && xsk_ring_prod__reserve(&q->tx, 1, idx) == 1;
}

static ssize_t xdp_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    AfXdpQueue *q = nc->opaque;
    size_t size = qnic_iov_size(iov, iovcnt);
    struct xdp_desc *d;
    uint32_t idx = 0;
    uint64_t addr;

    if (!q || q->fd < 0) {
        return -EIO;
    }
    if (size == 0) {
        return 1;
    }
    if (size > XDP_FRAME_SIZE) {
        /* no multi-buffer frames: one frame is one UMEM chunk */
        if (q->oversize_drops++ == 0) {
            qnic_warn("af-xdp %s queue %d: %zu-byte frame dropped, the most is %d",
                      q->s->ifname, q->queue_id, size, XDP_FRAME_SIZE);
        }
        return -EMSGSIZE;
    }
    if (!xdp_tx_reserve(q, &idx)) {
        /* full: push the ring out; if that freed nothing, come back when
         * the socket is writable */
        xdp_kick_tx(q);
        if (!xdp_tx_reserve(q, &idx)) {
            xdp_write_poll(q, true);
            return 0;
        }
    }
    addr = q->pool[--q->n_pool];
    qnic_iov_to_buf(iov, iovcnt, 0, q->area + addr, size);
    d = xsk_ring_prod__tx_desc(&q->tx, idx);
    d->addr = addr;
    d->len = size;
    d->options = 0;
    xsk_ring_prod__submit(&q->tx, 1);
    q->tx_out++;
    /* one wake-up for the whole burst the NIC is sending */
    qnic_bh_schedule(q->kick_bh);
    return size;
}

static const QnicNetClientOps xdp_ops = {
    .kind = QNIC_NET_CLIENT_OTHER,
    .receive_iov = xdp_receive_iov,
};

/* ---- setup ---- */

static int xdp_libxdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);

    /* failures reach the user as this netdev's error; the detail is a trace */
    qnic_log(QNIC_LOG_TRACE_NET, "libxdp: %s", msg);
    return 0;
}

/* libbpf's notes while libxdp loads its program ("skipping unrecognized
 * data section") would reach stderr: they go to the trace log, and only
 * while this file calls into libxdp (others in the process keep theirs). */
static int xdp_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);

    qnic_log(QNIC_LOG_TRACE_NET, "libbpf: %s", msg);
    return 0;
}

/* The frames of the UMEM and the stack of free ones. */
static bool xdp_area_create(AfXdpQueue *q, int index, GError **errp)
{
    q->area = mmap(NULL, (size_t)XDP_NUM_FRAMES * XDP_FRAME_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q->area == MAP_FAILED) {
        q->area = NULL;
        qnic_error_setg_errno(errp, errno, "failed to create umem for %s queue_index: %d",
                              q->s->ifname, index);
        return false;
    }
    q->pool = g_new(uint64_t, XDP_NUM_FRAMES);
    for (uint32_t i = 0; i < XDP_NUM_FRAMES; i++) {
        q->pool[i] = (uint64_t)(XDP_NUM_FRAMES - 1 - i) * XDP_FRAME_SIZE;
    }
    q->n_pool = XDP_NUM_FRAMES;
    return true;
}

/* The UMEM and its fill/completion rings (on sock_fd when handed one). */
static bool xdp_umem_create(AfXdpQueue *q, int index, int sock_fd, GError **errp)
{
    const struct xsk_umem_config cfg = {
        .fill_size = XDP_RING_SIZE,
        .comp_size = XDP_RING_SIZE,
        .frame_size = XDP_FRAME_SIZE,
        .frame_headroom = 0,
    };
    size_t size = (size_t)XDP_NUM_FRAMES * XDP_FRAME_SIZE;
    int ret;

#ifdef CONFIG_XSK_UMEM_CREATE_WITH_FD
    if (sock_fd >= 0) {
        ret = xsk_umem__create_with_fd(&q->umem, sock_fd, q->area, size, &q->fq, &q->cq, &cfg);
    } else
#endif
    {
        ret = xsk_umem__create(&q->umem, q->area, size, &q->fq, &q->cq, &cfg);
    }
    if (ret) {
        q->umem = NULL;
        qnic_error_setg_errno(errp, -ret, "failed to create umem for %s queue_index: %d",
                              q->s->ifname, index);
        return false;
    }
    return true;
}

#ifndef CONFIG_XSK_UMEM_CREATE_WITH_FD
/* sock-fds with a libxdp older than 1.4, which cannot put a UMEM on a
 * socket it did not open: the kernel's interface (linux/if_xdp.h) directly.
 * Map ring `slot` of the socket and point r at it (the producer and
 * consumer ring types of xsk.h share one layout). */
static bool xdp_raw_ring(AfXdpQueue *q, int slot, off_t pgoff, const struct xdp_ring_offset *o,
                         size_t entry, bool producer, struct xsk_ring_prod *r)
{
    size_t len = o->desc + XDP_RING_SIZE * entry;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, pgoff);

    if (m == MAP_FAILED) {
        return false;
    }
    q->raw_map[slot] = m;
    q->raw_len[slot] = len;
    r->mask = XDP_RING_SIZE - 1;
    r->size = XDP_RING_SIZE;
    r->producer = (__u32 *)(m + o->producer);
    r->consumer = (__u32 *)(m + o->consumer);
    r->ring = m + o->desc;
    r->flags = (__u32 *)(m + o->flags);
    r->cached_prod = *r->producer;
    /* a producer sees the consumer a ring ahead (xsk.h's free count) */
    r->cached_cons = *r->consumer + (producer ? XDP_RING_SIZE : 0);
    return true;
}

static bool xdp_raw_open(AfXdpQueue *q, int index, int fd, const AfXdpConfig *c, GError **errp)
{
    struct xdp_umem_reg reg = {
        .addr = (uintptr_t)q->area,
        .len = (uint64_t)XDP_NUM_FRAMES * XDP_FRAME_SIZE,
        .chunk_size = XDP_FRAME_SIZE,
    };
    struct sockaddr_xdp sxdp = {
        .sxdp_family = AF_XDP,
        .sxdp_ifindex = q->s->ifindex,
        .sxdp_queue_id = q->queue_id,
        .sxdp_flags = XDP_USE_NEED_WAKEUP | (c->force_copy ? XDP_COPY : 0),
    };
    struct xdp_mmap_offsets off;
    socklen_t len = sizeof(off);
    int n = XDP_RING_SIZE;

    q->fd = fd;
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) ||
        setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof(n)) ||
        setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof(n)) ||
        getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) ||
        !xdp_raw_ring(q, 0, XDP_UMEM_PGOFF_FILL_RING, &off.fr, sizeof(uint64_t), true, &q->fq) ||
        !xdp_raw_ring(q, 1, XDP_UMEM_PGOFF_COMPLETION_RING, &off.cr, sizeof(uint64_t), false,
                      (struct xsk_ring_prod *)(void *)&q->cq)) {
        qnic_error_setg_errno(errp, errno, "failed to create umem for %s queue_index: %d",
                              q->s->ifname, index);
        return false;
    }
    if (setsockopt(fd, SOL_XDP, XDP_RX_RING, &n, sizeof(n)) ||
        setsockopt(fd, SOL_XDP, XDP_TX_RING, &n, sizeof(n)) ||
        getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) ||
        !xdp_raw_ring(q, 2, XDP_PGOFF_RX_RING, &off.rx, sizeof(struct xdp_desc), false,
                      (struct xsk_ring_prod *)(void *)&q->rx) ||
        !xdp_raw_ring(q, 3, XDP_PGOFF_TX_RING, &off.tx, sizeof(struct xdp_desc), true, &q->tx) ||
        bind(fd, (struct sockaddr *)&sxdp, sizeof(sxdp))) {
        qnic_error_setg_errno(errp, errno, "failed to create AF_XDP socket for %s queue_id: %d",
                              q->s->ifname, q->queue_id);
        return false;
    }
    return true;
}
#endif

/* The socket, bound to the interface's queue; mode unset tries native
 * first, then skb, as QEMU does. */
static bool xdp_socket_create(AfXdpQueue *q, const AfXdpConfig *c, GError **errp)
{
    struct xsk_socket_config cfg = {
        .rx_size = XDP_RING_SIZE,
        .tx_size = XDP_RING_SIZE,
        .libxdp_flags = c->inhibit ? XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD : 0,
        .bind_flags = XDP_USE_NEED_WAKEUP | (c->force_copy ? XDP_COPY : 0),
    };
    bool skb = c->mode && !strcmp(c->mode, "skb");
    int ret;

    cfg.xdp_flags = XDP_FLAGS_UPDATE_IF_NOEXIST | (skb ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
    ret = xsk_socket__create(&q->xsk, q->s->ifname, q->queue_id, q->umem, &q->rx, &q->tx, &cfg);
    if (ret && !c->mode) {
        cfg.xdp_flags = XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE;
        ret = xsk_socket__create(&q->xsk, q->s->ifname, q->queue_id, q->umem, &q->rx, &q->tx,
                                 &cfg);
    }
    if (ret) {
        q->xsk = NULL;
        qnic_error_setg_errno(errp, -ret, "failed to create AF_XDP socket for %s queue_id: %d",
                              q->s->ifname, q->queue_id);
        return false;
    }
    q->s->xdp_flags = cfg.xdp_flags & ~XDP_FLAGS_UPDATE_IF_NOEXIST;
    q->fd = xsk_socket__fd(q->xsk);
    return true;
}

static bool xdp_queue_open(QnicNetdev *nd, AfXdpState *s, int i, const AfXdpConfig *c,
                           GError **errp)
{
    AfXdpQueue *q = &s->q[i];

    q->s = s;
    q->fd = -1;
    q->queue_id = (int)(i + (c->start_queue > 0 ? c->start_queue : 0));
    q->nc = qnic_net_client_new(nd->be, &xdp_ops, "af-xdp", nd->id, q);
    q->nc->queue_index = i;
    snprintf(q->nc->info_str, sizeof(q->nc->info_str), "af-xdp%d to %s", i, s->ifname);
    nd->ncs[i] = q->nc;
    nd->queues = i + 1;
    s->nqueues = i + 1;
    if (!xdp_area_create(q, i, errp)) {
        return false;
    }
#ifndef CONFIG_XSK_UMEM_CREATE_WITH_FD
    if (c->sock_fds) {
        if (!xdp_raw_open(q, i, c->sock_fds[i], c, errp)) {
            return false;
        }
    } else
#endif
    if (!xdp_umem_create(q, i, c->sock_fds ? c->sock_fds[i] : -1, errp) ||
        !xdp_socket_create(q, c, errp)) {
        return false;
    }
    q->kick_bh = qnic_bh_new(xdp_kick_bh, q);
    xdp_refill(q);
    q->read_poll = true;
    xdp_update_watch(q);
    return true;
}

static void xdp_queue_close(AfXdpQueue *q)
{
    if (q->nc) {
        q->nc->opaque = NULL;   /* the core frees the client after us */
    }
    qnic_fd_watch_remove(q->watch);
    q->watch = NULL;
    qnic_bh_free(q->kick_bh);
    q->kick_bh = NULL;
    if (q->xsk) {
        xsk_socket__delete(q->xsk);     /* closes q->fd */
        q->xsk = NULL;
    } else if (q->fd >= 0) {
        for (int i = 0; i < 4; i++) {
            if (q->raw_map[i]) {
                munmap(q->raw_map[i], q->raw_len[i]);
            }
        }
        close(q->fd);                   /* handed in: ours now, as in QEMU */
    }
    q->fd = -1;
    if (q->umem) {
        xsk_umem__delete(q->umem);
        q->umem = NULL;
    }
    if (q->area) {
        munmap(q->area, (size_t)XDP_NUM_FRAMES * XDP_FRAME_SIZE);
        q->area = NULL;
    }
    g_free(q->pool);
    q->pool = NULL;
}

static void xdp_cleanup(QnicNetdev *nd)
{
    AfXdpState *s = nd->state;
    uint32_t prog_id = 0;

    if (!s) {
        return;
    }
    libbpf_print_fn_t old_print = libbpf_set_print(xdp_libbpf_print);

    for (int i = 0; i < s->nqueues; i++) {
        xdp_queue_close(&s->q[i]);
    }
    /* The program we loaded goes with the last socket. */
    if (!s->inhibit && s->xdp_flags &&
        bpf_xdp_query_id(s->ifindex, s->xdp_flags, &prog_id) == 0 && prog_id &&
        bpf_xdp_detach(s->ifindex, s->xdp_flags, NULL) != 0) {
        qnic_warn("af-xdp: unable to remove XDP program from '%s', ifindex: %d",
                  s->ifname, s->ifindex);
    }
    libbpf_set_print(old_print);
    g_free(s->q);
    g_free(s);
    nd->state = NULL;
}

/* sock-fds=a:b:...: one open, unbound AF_XDP socket per queue. */
static int *xdp_parse_sock_fds(const char *str, int64_t queues, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(str, ":", -1);
    int64_t n = g_strv_length(parts);
    g_autofree int *fds = NULL;

    if (n != queues) {
        qnic_error_setg_invalid(errp, "expected %" PRId64 " socket fds, got %" PRId64, queues, n);
        return NULL;
    }
    fds = g_new(int, n);
    for (int64_t i = 0; i < n; i++) {
        uint64_t v;
        int domain = 0;
        socklen_t len = sizeof(domain);

        if (!g_ascii_isdigit(parts[i][0]) || !qnic_parse_uint(parts[i], &v, NULL) || v > INT_MAX) {
            qnic_error_setg_invalid(errp, "Invalid file descriptor number '%s'", parts[i]);
            return NULL;
        }
        fds[i] = (int)v;
        if (getsockopt(fds[i], SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_XDP) {
            qnic_error_setg_invalid(errp, "sock-fds: fd %d is not an AF_XDP socket", fds[i]);
            return NULL;
        }
    }
    return g_steal_pointer(&fds);
}

/* The option checks of QEMU 8.2, in its order. */
static bool xdp_check_opts(QnicOpts *opts, AfXdpConfig *c, int *ifindex, GError **errp)
{
    const char *ifname = qnic_opts_get(opts, "ifname");
    const char *fds = qnic_opts_get(opts, "sock-fds");

    *ifindex = (int)if_nametoindex(ifname);
    if (!*ifindex) {
        qnic_error_setg_errno(errp, errno, "failed to get ifindex for '%s'", ifname);
        return false;
    }
    c->queues = qnic_opts_get_int(opts, "queues", 1);
    if (c->queues < 1) {
        qnic_error_setg_invalid(errp, "invalid number of queues (%" PRId64 ") for '%s'",
                                c->queues, ifname);
        return false;
    }
    if (c->queues > XDP_MAX_QUEUES) {
        qnic_error_setg_invalid(errp, "invalid number of queues (%" PRId64 ") for '%s': "
                                "at most %d", c->queues, ifname, XDP_MAX_QUEUES);
        return false;
    }
    c->start_queue = qnic_opts_get_int(opts, "start-queue", 0);
    c->mode = qnic_opts_get(opts, "mode");
    c->force_copy = qnic_opts_get_bool(opts, "force-copy", false);
    c->inhibit = qnic_opts_get_bool(opts, "inhibit", false);
    if (c->inhibit != (fds != NULL)) {
        qnic_error_setg_invalid(errp, "'inhibit=on' requires 'sock-fds' and vice versa");
        return false;
    }
    if (fds) {
        c->sock_fds = xdp_parse_sock_fds(fds, c->queues, errp);
        if (!c->sock_fds) {
            return false;
        }
    }
    return true;
}

static bool xdp_setup(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    AfXdpConfig c = { 0 };
    AfXdpState *s;
    uint32_t prog_id = 0;
    int ifindex, ret;
    bool ok = true;

    libxdp_set_print(xdp_libxdp_print);
    if (!xdp_check_opts(opts, &c, &ifindex, errp)) {
        g_free(c.sock_fds);
        return false;
    }
    s = g_new0(AfXdpState, 1);
    g_strlcpy(s->ifname, qnic_opts_get(opts, "ifname"), sizeof(s->ifname));
    s->ifindex = ifindex;
    s->inhibit = c.inhibit;
    s->q = g_new0(AfXdpQueue, c.queues);
    nd->state = s;
    nd->ncs = g_new0(QnicNetClient *, c.queues);
    for (int i = 0; ok && i < c.queues; i++) {
        ok = xdp_queue_open(nd, s, i, &c, errp);
    }
    g_free(c.sock_fds);
    if (!ok) {
        return false;       /* the registry calls xdp_cleanup */
    }
    ret = bpf_xdp_query_id(s->ifindex, s->xdp_flags, &prog_id);
    if (ret || !prog_id) {
        qnic_error_setg_errno(errp, ret ? -ret : ENOENT,
                              "no XDP program loaded on '%s', ifindex: %d", s->ifname, s->ifindex);
        return false;
    }
    return true;
}

static bool xdp_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    libbpf_print_fn_t old_print = libbpf_set_print(xdp_libbpf_print);
    bool ok = xdp_setup(nd, opts, errp);

    libbpf_set_print(old_print);
    return ok;
}

#else /* !CONFIG_AF_XDP */

static bool xdp_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    qnic_error_setg(errp, "af-xdp is not available: qnic was built without libxdp "
                    "(install libxdp-dev and rebuild)");
    return false;
}

static void xdp_cleanup(QnicNetdev *nd)
{
}

#endif

static const QnicNetdevClass af_xdp_netdev_class = {
    .type = "af-xdp",
    .init = xdp_init,
    .cleanup = xdp_cleanup,
};
QNIC_NETDEV_REGISTER(af_xdp_netdev_class)
