/*
 * The tap netdev (`-netdev tap,...`): frames between a NIC and a Linux tap
 * interface, one net client per tap queue. This file holds the option
 * handling (ifname/fd/fds/helper, scripts, vnet_hdr, queues, sndbuf,
 * vhost=on with vhostfd/vhostfds) and the data path shared with `-netdev
 * bridge`: reads are batched
 * per wakeup and pause while the peer is busy (resumed by the sent
 * callback), writes that meet EAGAIN are queued and resumed on POLLOUT, so
 * nothing is dropped. Where io_uring is available, frames up to a slot's
 * size are copied into a batch and written together once per main-loop
 * pass (tap-uring.c): one system call for many frames. When the tap carries virtio-net headers but the NIC
 * does not use them, the header is stripped on read and a zero header is
 * prepended on write. With vhost=on a vhost-net device per queue pair
 * (virtio/vhost-kernel.c) stands behind the clients; while the kernel moves
 * a queue's frames qnic does not read that tap queue.
 */
#include "tap-int.h"
#include "qnic/log.h"
#include "qnic/mainloop.h"
#include "qnic/vhost-kernel.h"

#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <unistd.h>
#include <sys/wait.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>

/* Largest frame a tap hands us: a 64 KiB GSO frame plus the largest vnet
 * header (with hash report) and some slack. */
#define TAP_BUF_SIZE (65536 + 64)
/* Frames read per wakeup before going back to the loop (fairness). */
#define TAP_READ_BATCH 64
#define TAP_MAX_QUEUES 256

typedef struct TapState TapState;

typedef struct TapQueue {
    TapState *ts;
    QnicNetClient *nc;
    int fd;
    QnicFdWatch *watch;
    bool read_poll;
    bool write_poll;
    bool host_vnet_hdr;       /* fd opened with IFF_VNET_HDR */
    int host_vnet_hdr_len;    /* TUNSETVNETHDRSZ value */
    bool using_vnet_hdr;      /* the peer's frames carry the header too */
    bool has_ufo;
    bool has_uso;
    bool detached;            /* IFF_DETACH_QUEUE in effect */
    bool vhost_owned;         /* the kernel's vhost-net moves its frames */
    uint8_t *buf;
    struct iovec *wiov;       /* [IOV_MAX]: a frame's iovecs behind the added header */
    QnicTapBatch *batch;      /* io_uring batched writes, or NULL: one writev per frame */
    QnicBH *batch_bh;         /* submits the batch once the loop pass is done */
    uint64_t read_errors;
} TapQueue;

struct TapState {
    char ifname[IFNAMSIZ];
    char *downscript;
    int nqueues;
    TapQueue *q;
    QnicVhostKernel *vhost;   /* vhost=on */
};

static const uint8_t zero_vnet_hdr[32];

static void tap_update_watch(TapQueue *q)
{
    GIOCondition cond = 0;

    if (!q->watch) {
        return;
    }
    if (q->read_poll && !q->vhost_owned) {
        cond |= G_IO_IN;
    }
    if (q->write_poll) {
        cond |= G_IO_OUT;
    }
    qnic_fd_watch_set(q->watch, cond);
}

static void tap_read_poll(TapQueue *q, bool on)
{
    if (q->read_poll != on) {
        q->read_poll = on;
        tap_update_watch(q);
    }
}

static void tap_write_poll(TapQueue *q, bool on)
{
    if (q->write_poll != on) {
        q->write_poll = on;
        tap_update_watch(q);
    }
}

static void tap_send_completed(QnicNetClient *nc, ssize_t ret)
{
    TapQueue *q = nc->opaque;

    if (q) {
        tap_read_poll(q, true);
    }
}

/* Bytes of vnet header to strip on read / add on write. */
static size_t tap_hdr_fixup_len(const TapQueue *q)
{
    return q->host_vnet_hdr && !q->using_vnet_hdr ? (size_t)q->host_vnet_hdr_len : 0;
}

static void tap_send(TapQueue *q)
{
    uint8_t scratch[sizeof(zero_vnet_hdr)];

    for (int i = 0; i < TAP_READ_BATCH && q->read_poll && !q->vhost_owned; i++) {
        size_t strip = tap_hdr_fixup_len(q);
        struct iovec iov[2];
        int n = 0;
        ssize_t len;

        if (strip > sizeof(scratch)) {
            strip = sizeof(scratch);
        }
        if (strip) {
            iov[n].iov_base = scratch;
            iov[n++].iov_len = strip;
        }
        iov[n].iov_base = q->buf;
        iov[n++].iov_len = TAP_BUF_SIZE;
        len = readv(q->fd, iov, n);
        if (len < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                if (q->read_errors++ == 0) {
                    qnic_warn("tap %s: read failed: %s", q->ts->ifname, g_strerror(errno));
                }
            }
            break;
        }
        if ((size_t)len <= strip) {
            continue;   /* nothing but a header: not a frame */
        }
        struct iovec frame = { .iov_base = q->buf, .iov_len = len - strip };
        qnic_log(QNIC_LOG_TRACE_NET, "tap %s q%d: read %zu bytes\n",
                 q->ts->ifname, q->nc->queue_index, frame.iov_len);
        if (qnic_net_send_iov(q->nc, &frame, 1, tap_send_completed) == 0) {
            /* The peer holds a copy; read no more until it drains. */
            tap_read_poll(q, false);
            break;
        }
    }
}

/* Write what the batch holds; false when the tap refused part of it
 * (it waits for POLLOUT, and so do new frames). */
static bool tap_batch_flush(TapQueue *q)
{
    int r;

    if (!q->batch || !qnic_tap_batch_waiting(q->batch)) {
        return true;
    }
    r = qnic_tap_batch_submit(q->batch);
    if (r == 0) {
        return true;
    }
    tap_write_poll(q, true);
    return false;
}

static void tap_batch_bh(void *opaque)
{
    tap_batch_flush(opaque);
}

static void tap_fd_event(void *opaque, int fd, GIOCondition cond)
{
    TapQueue *q = opaque;

    if ((cond & G_IO_OUT) && q->write_poll) {
        tap_write_poll(q, false);
        if (tap_batch_flush(q)) {
            qnic_net_flush_queued(q->nc);
        }
    }
    if ((cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && q->read_poll && !q->vhost_owned) {
        tap_send(q);
    }
}

static ssize_t tap_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    TapQueue *q = nc->opaque;
    struct iovec *v;
    size_t add, size;
    int n = 0;
    ssize_t ret;

    if (!q || q->fd < 0) {
        return -EIO;
    }
    if (iovcnt < 0 || iovcnt >= IOV_MAX) {
        qnic_log(QNIC_LOG_TRACE_NET, "tap %s: frame with %d iovecs refused\n",
                 q->ts->ifname, iovcnt);
        return -EINVAL;
    }
    size = qnic_iov_size(iov, iovcnt);
    add = tap_hdr_fixup_len(q);
    if (add > sizeof(zero_vnet_hdr)) {
        return -EINVAL;
    }
    if (q->batch) {
        if (q->write_poll) {
            return 0;       /* earlier frames wait for the tap: queue behind them */
        }
        if (qnic_tap_batch_full(q->batch) && !tap_batch_flush(q)) {
            return 0;
        }
        if (qnic_tap_batch_add(q->batch, zero_vnet_hdr, add, iov, iovcnt, size)) {
            qnic_bh_schedule(q->batch_bh);
            return size ? (ssize_t)size : 1;
        }
        /* Too large for a slot: written on its own, after what waits. */
        if (!tap_batch_flush(q)) {
            return 0;
        }
    }
    if (add) {
        /* The NIC's iovecs stay as they are; the header goes in front of
         * a copy of them in the queue's own array (no allocation). */
        v = q->wiov;
        v[n].iov_base = (void *)zero_vnet_hdr;
        v[n++].iov_len = add;
        memcpy(&v[n], iov, iovcnt * sizeof(*iov));
        n += iovcnt;
    } else {
        v = (struct iovec *)iov;
        n = iovcnt;
    }

    do {
        ret = writev(q->fd, v, n);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* The tap's queue is full: keep the frame queued and go on
             * when the fd is writable. */
            tap_write_poll(q, true);
            return 0;
        }
        qnic_log(QNIC_LOG_TRACE_NET, "tap %s: write of %zu bytes failed: %s\n",
                 q->ts->ifname, size, g_strerror(errno));
        return -errno;
    }
    return size ? (ssize_t)size : 1;
}

static bool tap_has_vnet_hdr(QnicNetClient *nc)
{
    TapQueue *q = nc->opaque;
    return q && q->host_vnet_hdr;
}

static bool tap_has_vnet_hdr_len(QnicNetClient *nc, int len)
{
    TapQueue *q = nc->opaque;

    if (!q || !q->host_vnet_hdr) {
        return false;
    }
    if (len == q->host_vnet_hdr_len) {
        return true;
    }
    return qnic_tap_probe_vnet_hdr_len(q->fd, len);
}

static bool tap_has_ufo(QnicNetClient *nc)
{
    TapQueue *q = nc->opaque;
    return q && q->has_ufo;
}

static bool tap_has_uso(QnicNetClient *nc)
{
    TapQueue *q = nc->opaque;
    return q && q->has_uso;
}

static void tap_using_vnet_hdr(QnicNetClient *nc, bool enable)
{
    TapQueue *q = nc->opaque;

    if (!q) {
        return;
    }
    if (enable && !q->host_vnet_hdr) {
        qnic_warn("tap %s: peer asked for vnet headers, but the tap has none", q->ts->ifname);
        return;
    }
    q->using_vnet_hdr = enable;
}

static void tap_set_vnet_hdr_len(QnicNetClient *nc, int len)
{
    TapQueue *q = nc->opaque;

    if (!q || !q->host_vnet_hdr) {
        return;
    }
    if (len < (int)sizeof(struct virtio_net_hdr) || len > (int)sizeof(zero_vnet_hdr)) {
        qnic_warn("tap %s: vnet header length %d refused", q->ts->ifname, len);
        return;
    }
    qnic_tap_fd_set_vnet_hdr_len(q->fd, len);
    q->host_vnet_hdr_len = len;
}

static void tap_set_offload(QnicNetClient *nc, bool csum, bool tso4, bool tso6,
                            bool ecn, bool ufo, bool uso4, bool uso6)
{
    TapQueue *q = nc->opaque;
    unsigned flags = 0;

    if (!q || !q->host_vnet_hdr) {
        return;   /* without headers the kernel must finish every frame */
    }
    if (csum) {
        flags |= TUN_F_CSUM;
        if (tso4) {
            flags |= TUN_F_TSO4;
        }
        if (tso6) {
            flags |= TUN_F_TSO6;
        }
        if (ecn) {
            flags |= TUN_F_TSO_ECN;
        }
        if (ufo) {
            flags |= TUN_F_UFO;
        }
        if (uso4) {
            flags |= TUN_F_USO4;
        }
        if (uso6) {
            flags |= TUN_F_USO6;
        }
    }
    if (qnic_tap_fd_set_offload(q->fd, flags) < 0 && (flags & (TUN_F_UFO | TUN_F_USO4 | TUN_F_USO6))) {
        /* Kernels that dropped UFO or predate USO refuse the whole set;
         * the rest is still worth having. */
        flags &= ~(TUN_F_UFO | TUN_F_USO4 | TUN_F_USO6);
        if (qnic_tap_fd_set_offload(q->fd, flags) < 0) {
            qnic_warn("tap %s: TUNSETOFFLOAD 0x%x failed", q->ts->ifname, flags);
        }
    }
}

/* IFF_DETACH_QUEUE / IFF_ATTACH_QUEUE: a detached queue gets no flows
 * from the kernel's steering. Only meaningful on a multiqueue tap. */
static int tap_set_queue_enabled(QnicNetClient *nc, bool enable)
{
    TapQueue *q = nc->opaque;
    struct ifreq ifr = { 0 };

    /* The kernel refuses to attach an attached queue (EINVAL): make the
     * call idempotent, as callers re-apply a pair count they may repeat. */
    if (q->ts->nqueues < 2 || q->detached == !enable) {
        return 0;
    }
    ifr.ifr_flags = enable ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    if (ioctl(q->fd, TUNSETQUEUE, &ifr) < 0) {
        qnic_warn("tap %s: cannot %s queue %d: %s", q->ts->ifname,
                  enable ? "attach" : "detach", nc->queue_index, g_strerror(errno));
        return -errno;
    }
    q->detached = !enable;
    return 0;
}

/* vhost=on: the one vhost-net device (every queue pair) behind each
 * client; NULL without vhost=on. */
static QnicVhostDev *tap_get_vhost(QnicNetClient *nc)
{
    TapQueue *q = nc->opaque;

    if (!q || !q->ts->vhost) {
        return NULL;
    }
    return qnic_vhost_kernel_dev(q->ts->vhost);
}

/* vhost-net took or gave back queue pair `pair` (= tap queue `pair`). */
static void tap_vhost_attach(void *opaque, unsigned pair, bool attached)
{
    QnicNetdev *nd = opaque;
    TapState *ts = nd->state;
    TapQueue *q;

    if (!ts || pair >= (unsigned)ts->nqueues) {
        return;
    }
    q = &ts->q[pair];
    q->vhost_owned = attached;
    qnic_log(QNIC_LOG_TRACE_NET, "tap %s q%u: %s\n", ts->ifname, pair,
             attached ? "handed to vhost-net" : "back from vhost-net");
    if (!attached) {
        /* whatever the kernel left in the tap is ours to read again */
        q->read_poll = true;
    }
    tap_update_watch(q);
}

/* The steering program runs in tun for every frame the kernel sends to
 * the VMM and returns the queue (modulo the attached ones); -1 detaches
 * it and the kernel's automatic flow steering is back. */
static int tap_set_steering_ebpf(QnicNetClient *nc, int prog_fd)
{
    TapQueue *q = nc->opaque;

    if (q->ts->nqueues < 2) {
        return -ENOTSUP;
    }
    if (ioctl(q->fd, TUNSETSTEERINGEBPF, &prog_fd) < 0) {
        return -errno;
    }
    return 0;
}

static const QnicNetClientOps tap_ops = {
    .set_steering_ebpf = tap_set_steering_ebpf,
    .set_queue_enabled = tap_set_queue_enabled,
    .kind = QNIC_NET_CLIENT_TAP,
    .receive_iov = tap_receive_iov,
    .has_vnet_hdr = tap_has_vnet_hdr,
    .has_vnet_hdr_len = tap_has_vnet_hdr_len,
    .has_ufo = tap_has_ufo,
    .has_uso = tap_has_uso,
    .using_vnet_hdr = tap_using_vnet_hdr,
    .set_vnet_hdr_len = tap_set_vnet_hdr_len,
    .set_offload = tap_set_offload,
    .get_vhost = tap_get_vhost,
};

/* Run an ifup/ifdown script with the interface name as its argument. */
static bool tap_run_script(const char *script, const char *ifname, GError **errp)
{
    g_autoptr(GError) local = NULL;
    char *argv[] = { (char *)script, (char *)ifname, NULL };
    int status = 0;

    if (access(script, R_OK | X_OK) < 0) {
        qnic_error_setg_errno(errp, errno, "network script %s cannot be run", script);
        return false;
    }
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL,
                      NULL, NULL, &status, &local)) {
        qnic_error_setg(errp, "network script %s could not be started: %s",
                        script, local->message);
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        qnic_error_setg(errp, "network script %s failed with status %d", script,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return false;
    }
    return true;
}

static bool script_is_none(const char *s)
{
    return !s || !s[0] || !strcmp(s, "no");
}

bool qnic_tap_netdev_setup(QnicNetdev *nd, const char *model,
                           const QnicTapQueueSetup *queues, int nqueues,
                           const char *ifname, const char *downscript,
                           GError **errp)
{
    TapState *ts = g_new0(TapState, 1);

    g_strlcpy(ts->ifname, ifname ? ifname : "", sizeof(ts->ifname));
    ts->downscript = script_is_none(downscript) ? NULL : g_strdup(downscript);
    ts->nqueues = nqueues;
    ts->q = g_new0(TapQueue, nqueues);
    nd->state = ts;
    nd->queues = nqueues;
    nd->ncs = g_new0(QnicNetClient *, nqueues);

    for (int i = 0; i < nqueues; i++) {
        TapQueue *q = &ts->q[i];
        int fl = fcntl(queues[i].fd, F_GETFL);

        q->ts = ts;
        q->fd = queues[i].fd;
        if (fl >= 0) {
            fcntl(q->fd, F_SETFL, fl | O_NONBLOCK);
        }
        q->host_vnet_hdr = queues[i].vnet_hdr;
        q->host_vnet_hdr_len = sizeof(struct virtio_net_hdr);
        if (q->host_vnet_hdr) {
            /* A handed-in fd may carry any length; start from the classic
             * 10-byte header as the NIC expects until it says otherwise. */
            qnic_tap_fd_set_vnet_hdr_len(q->fd, q->host_vnet_hdr_len);
            q->has_ufo = qnic_tap_probe_offload(q->fd, TUN_F_CSUM | TUN_F_UFO);
            q->has_uso = qnic_tap_probe_offload(q->fd, TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6);
            /* No offloads until the NIC negotiates them: the kernel then
             * hands us only complete, checksummed frames. */
            qnic_tap_fd_set_offload(q->fd, 0);
        }
        q->buf = g_malloc(TAP_BUF_SIZE);
        q->wiov = g_new(struct iovec, IOV_MAX);
        q->batch = qnic_tap_batch_new(q->fd);
        q->batch_bh = qnic_bh_new(tap_batch_bh, q);
        q->nc = qnic_net_client_new(nd->be, &tap_ops, model, nd->id, q);
        q->nc->queue_index = i;
        snprintf(q->nc->info_str, sizeof(q->nc->info_str), "ifname=%s%s%s,vnet_hdr=%s",
                 ts->ifname, ts->downscript ? ",downscript=" : "",
                 ts->downscript ? ts->downscript : "", q->host_vnet_hdr ? "on" : "off");
        nd->ncs[i] = q->nc;
        q->read_poll = true;
        q->watch = qnic_fd_watch_add(q->fd, G_IO_IN, tap_fd_event, q);
    }
    return true;
}

void qnic_tap_netdev_cleanup(QnicNetdev *nd)
{
    TapState *ts = nd->state;

    if (!ts) {
        return;
    }
    /* the kernel lets go of the taps before they close */
    qnic_vhost_kernel_free(ts->vhost);
    ts->vhost = NULL;
    for (int i = 0; i < ts->nqueues; i++) {
        TapQueue *q = &ts->q[i];

        if (q->nc) {
            /* The clients may outlive us briefly (the core frees them and
             * purges their queues, which calls our callbacks). */
            q->nc->opaque = NULL;
        }
        qnic_fd_watch_remove(q->watch);
        q->watch = NULL;
        if (q->batch && q->fd >= 0) {
            /* frames already reported sent still go out */
            tap_batch_flush(q);
        }
        qnic_tap_batch_free(q->batch);
        q->batch = NULL;
        qnic_bh_free(q->batch_bh);
        q->batch_bh = NULL;
        if (q->fd >= 0) {
            close(q->fd);
            q->fd = -1;
        }
        g_free(q->buf);
        g_free(q->wiov);
    }
    if (ts->downscript && ts->ifname[0]) {
        g_autoptr(GError) err = NULL;
        if (!tap_run_script(ts->downscript, ts->ifname, &err)) {
            qnic_warn("%s", err->message);
        }
    }
    g_free(ts->downscript);
    g_free(ts->q);
    g_free(ts);
    nd->state = NULL;
}

static bool parse_fd(const char *s, int *fd, GError **errp)
{
    uint64_t v;

    if (!qnic_parse_uint(s, &v, NULL) || v > INT_MAX) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "Invalid file descriptor '%s'", s);
        return false;
    }
    *fd = (int)v;
    return true;
}

static void close_setups(QnicTapQueueSetup *qs, int n, bool close_fds)
{
    for (int i = 0; close_fds && i < n; i++) {
        if (qs[i].fd >= 0) {
            close(qs[i].fd);
        }
    }
    g_free(qs);
}

/* The tap queues tap_init opened or was handed, while it checks options. */
typedef struct TapSetup {
    QnicOpts *opts;
    QnicTapQueueSetup *qs;
    int n;                  /* queues in qs */
    bool user_fds;          /* fd=/fds=: the caller's, never closed here */
    char name[IFNAMSIZ];    /* the interface */
    const char *downscript; /* NULL: none */
} TapSetup;

/* Undo a setup that failed: close what tap_init opened itself. */
static bool tap_setup_fail(TapSetup *t)
{
    close_setups(t->qs, t->n, !t->user_fds);
    t->qs = NULL;
    return false;
}

static bool tap_opts_invalid(GError **errp, const char *msg)
{
    g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID, "%s", msg);
    return false;
}

/* Options that open the tap another way are refused with fd= and fds=. */
static bool tap_opts_set(QnicOpts *opts)
{
    return qnic_opts_is_set(opts, "ifname") || qnic_opts_is_set(opts, "script") ||
           qnic_opts_is_set(opts, "downscript") || qnic_opts_is_set(opts, "vnet_hdr") ||
           qnic_opts_get(opts, "helper");
}

/* vhost=, vhostfd= and vhostfds= against each other and fd=/fds=. */
static bool tap_check_vhost_opts(QnicOpts *opts, GError **errp)
{
    bool has_vhostfd = qnic_opts_get(opts, "vhostfd") != NULL;
    bool has_vhostfds = qnic_opts_get(opts, "vhostfds") != NULL;
    bool vhost_off = qnic_opts_is_set(opts, "vhost") && !qnic_opts_get_bool(opts, "vhost", false);

    if (vhost_off && (has_vhostfd || has_vhostfds)) {
        return tap_opts_invalid(errp, "vhostfd= and vhostfds= are invalid with vhost=off");
    }
    if (has_vhostfd && has_vhostfds) {
        return tap_opts_invalid(errp, "vhostfd= and vhostfds= are mutually exclusive");
    }
    if (has_vhostfd && qnic_opts_get(opts, "fds")) {
        return tap_opts_invalid(errp, "vhostfd= is for one queue; use vhostfds= with fds=");
    }
    if (has_vhostfds && qnic_opts_get(opts, "fd")) {
        return tap_opts_invalid(errp, "vhostfds= is for several queues; use vhostfd= with fd=");
    }
    return true;
}

/* fd=N: one tap queue the caller opened. */
static bool tap_setup_fd(TapSetup *t, const char *fd_str, GError **errp)
{
    if (tap_opts_set(t->opts) || qnic_opts_is_set(t->opts, "queues") ||
        qnic_opts_get(t->opts, "fds")) {
        return tap_opts_invalid(errp, "ifname=, script=, downscript=, vnet_hdr=, helper=, "
                                "queues= and fds= are invalid with fd=");
    }
    t->user_fds = true;
    t->qs = g_new0(QnicTapQueueSetup, 1);
    if (!parse_fd(fd_str, &t->qs[0].fd, errp) ||
        !qnic_tap_fd_info(t->qs[0].fd, t->name, sizeof(t->name), &t->qs[0].vnet_hdr, errp)) {
        return tap_setup_fail(t);
    }
    t->n = 1;
    return true;
}

/* fds=N:M:...: the queues of one multiqueue tap the caller opened. */
static bool tap_setup_fds(TapSetup *t, const char *fds_str, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(fds_str, ":", 0);
    int count = g_strv_length(parts);
    uint64_t nqueues = qnic_opts_get_uint(t->opts, "queues", 1);

    if (tap_opts_set(t->opts)) {
        return tap_opts_invalid(errp, "ifname=, script=, downscript=, vnet_hdr= and helper= "
                                "are invalid with fds=");
    }
    if (count < 1 || count > TAP_MAX_QUEUES) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "fds= needs 1 to %d file descriptors", TAP_MAX_QUEUES);
        return false;
    }
    if (qnic_opts_is_set(t->opts, "queues") && nqueues != (uint64_t)count) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "queues=%" G_GUINT64_FORMAT " does not match the %d fds of fds=",
                    nqueues, count);
        return false;
    }
    t->user_fds = true;
    t->qs = g_new0(QnicTapQueueSetup, count);
    for (int i = 0; i < count; i++) {
        QnicTapQueueSetup *q = &t->qs[i];
        char qname[IFNAMSIZ];

        if (!parse_fd(parts[i], &q->fd, errp) ||
            !qnic_tap_fd_info(q->fd, qname, sizeof(qname), &q->vnet_hdr, errp)) {
            return tap_setup_fail(t);
        }
        if (i == 0) {
            g_strlcpy(t->name, qname, sizeof(t->name));
        } else if (strcmp(t->name, qname) || q->vnet_hdr != t->qs[0].vnet_hdr) {
            g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                        "fds= must be queues of one tap with the same vnet_hdr "
                        "(fd %d is %s, fd %d is %s)", t->qs[0].fd, t->name, q->fd, qname);
            return tap_setup_fail(t);
        }
    }
    t->n = count;
    return true;
}

/* helper=PATH: a bridge helper opens the tap and hands it over. */
static bool tap_setup_helper(TapSetup *t, const char *helper, GError **errp)
{
    const char *br = qnic_opts_get(t->opts, "br");
    bool vnet_want = qnic_opts_get_bool(t->opts, "vnet_hdr", false);
    int fd;

    if (qnic_opts_is_set(t->opts, "ifname") || qnic_opts_is_set(t->opts, "script") ||
        qnic_opts_is_set(t->opts, "downscript") ||
        (qnic_opts_is_set(t->opts, "queues") && qnic_opts_get_uint(t->opts, "queues", 1) > 1)) {
        return tap_opts_invalid(errp, "ifname=, script=, downscript= and queues= are invalid "
                                "with helper=");
    }
    fd = qnic_bridge_run_helper(helper, br ? br : QNIC_BRIDGE_DEFAULT_BR, errp);
    if (fd < 0) {
        return false;
    }
    t->qs = g_new0(QnicTapQueueSetup, 1);
    t->qs[0].fd = fd;
    t->n = 1;
    if (!qnic_tap_fd_info(fd, t->name, sizeof(t->name), &t->qs[0].vnet_hdr, errp)) {
        return tap_setup_fail(t);
    }
    if (qnic_opts_is_set(t->opts, "vnet_hdr") && vnet_want && !t->qs[0].vnet_hdr) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_UNSUPPORTED,
                    "vnet_hdr=on requested, but the helper's tap has no vnet header");
        return tap_setup_fail(t);
    }
    return true;
}

/* ifname= (or a name the kernel picks), queues=, then the up script. */
static bool tap_setup_open(TapSetup *t, const char *script, GError **errp)
{
    const char *ifname = qnic_opts_get(t->opts, "ifname");
    uint64_t nqueues = qnic_opts_get_uint(t->opts, "queues", 1);
    bool vnet;

    if (nqueues < 1 || nqueues > TAP_MAX_QUEUES) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "Parameter 'queues' expects a value between 1 and %d", TAP_MAX_QUEUES);
        return false;
    }
    if (qnic_opts_is_set(t->opts, "vnet_hdr")) {
        /* on when unsupported fails in qnic_tap_open */
        vnet = qnic_opts_get_bool(t->opts, "vnet_hdr", false);
    } else {
        vnet = qnic_tap_kernel_has_vnet_hdr();
    }
    t->qs = g_new0(QnicTapQueueSetup, nqueues);
    for (uint64_t i = 0; i < nqueues; i++) {
        t->qs[i].fd = qnic_tap_open(i == 0 ? (ifname ? ifname : "") : t->name, vnet,
                                    nqueues > 1, t->name, sizeof(t->name), errp);
        if (t->qs[i].fd < 0) {
            return tap_setup_fail(t);
        }
        t->qs[i].vnet_hdr = vnet;
        t->n++;
    }
    if (!script_is_none(script) && !tap_run_script(script, t->name, errp)) {
        return tap_setup_fail(t);
    }
    return true;
}

static bool tap_setup_sndbuf(TapSetup *t, GError **errp)
{
    uint64_t sndbuf = qnic_opts_get_uint(t->opts, "sndbuf", 0);

    if (!qnic_opts_is_set(t->opts, "sndbuf") && t->user_fds) {
        return true;    /* the caller's fds keep their own */
    }
    for (int i = 0; i < t->n; i++) {
        if (!qnic_tap_set_sndbuf(t->qs[i].fd, sndbuf, errp)) {
            return tap_setup_fail(t);
        }
    }
    return true;
}

/* vhost=on: a vhost-net device for the queues (*vk stays NULL without). */
static bool tap_setup_vhost(QnicNetdev *nd, TapSetup *t, QnicVhostKernel **vk, GError **errp)
{
    const char *vhostfd_str = qnic_opts_get(t->opts, "vhostfd");
    const char *vhostfds_str = qnic_opts_get(t->opts, "vhostfds");
    bool vhost_off = qnic_opts_is_set(t->opts, "vhost") &&
                     !qnic_opts_get_bool(t->opts, "vhost", false);
    bool vhost = qnic_opts_get_bool(t->opts, "vhost", false) ||
                 qnic_opts_get_bool(t->opts, "vhostforce", false) || vhostfd_str || vhostfds_str;
    g_autofree int *vhost_fds = NULL;
    g_autofree int *tap_fds = NULL;

    *vk = NULL;
    if (!vhost || vhost_off) {
        return true;
    }
    if (vhostfd_str || vhostfds_str) {
        g_auto(GStrv) parts = g_strsplit(vhostfd_str ? vhostfd_str : vhostfds_str, ":", 0);
        int count = g_strv_length(parts);

        if (count != t->n || (vhostfd_str && count != 1)) {
            g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                        "%s= has %d file descriptors but the tap has %d queues",
                        vhostfd_str ? "vhostfd" : "vhostfds", count, t->n);
            return tap_setup_fail(t);
        }
        vhost_fds = g_new(int, t->n);
        for (int i = 0; i < t->n; i++) {
            if (!parse_fd(parts[i], &vhost_fds[i], errp)) {
                return tap_setup_fail(t);
            }
        }
    }
    tap_fds = g_new(int, t->n);
    for (int i = 0; i < t->n; i++) {
        /* the tap carries the header the kernel reads and writes */
        if (!t->qs[i].vnet_hdr) {
            g_set_error(errp, QNIC_ERROR, QNIC_ERROR_UNSUPPORTED,
                        "vhost-net needs a tap with a virtio-net header (vnet_hdr)");
            return tap_setup_fail(t);
        }
        tap_fds[i] = t->qs[i].fd;
    }
    *vk = qnic_vhost_kernel_new(t->n, tap_fds, vhost_fds, tap_vhost_attach, nd, errp);
    return *vk ? true : tap_setup_fail(t);
}

/* The ways to get the tap's queues (fd=, fds=, helper=, or open them),
 * then the options that apply to all of them. */
static bool tap_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    const char *fd_str = qnic_opts_get(opts, "fd");
    const char *fds_str = qnic_opts_get(opts, "fds");
    const char *helper = qnic_opts_get(opts, "helper");
    const char *script = qnic_opts_get(opts, "script");
    TapSetup t = { .opts = opts, .downscript = qnic_opts_get(opts, "downscript") };
    QnicVhostKernel *vk;
    bool ok;

    if (!tap_check_vhost_opts(opts, errp)) {
        return false;
    }
    if (!qnic_opts_is_set(opts, "script")) {
        script = QNIC_TAP_DEFAULT_SCRIPT;
    }
    if (!qnic_opts_is_set(opts, "downscript")) {
        t.downscript = QNIC_TAP_DEFAULT_DOWNSCRIPT;
    }
    if (fd_str) {
        ok = tap_setup_fd(&t, fd_str, errp);
    } else if (fds_str) {
        ok = tap_setup_fds(&t, fds_str, errp);
    } else if (helper) {
        ok = tap_setup_helper(&t, helper, errp);
    } else {
        ok = tap_setup_open(&t, script, errp);
    }
    if (fd_str || fds_str || helper) {
        t.downscript = NULL;    /* qnic did not bring the interface up */
    }
    if (!ok || !tap_setup_sndbuf(&t, errp) || !tap_setup_vhost(nd, &t, &vk, errp)) {
        return false;
    }
    qnic_tap_netdev_setup(nd, "tap", t.qs, t.n, t.name, t.downscript, errp);
    ((TapState *)nd->state)->vhost = vk;
    g_free(t.qs);
    return true;
}

static void tap_cleanup(QnicNetdev *nd)
{
    qnic_tap_netdev_cleanup(nd);
}

static const QnicNetdevClass tap_netdev_class = {
    .type = "tap",
    .init = tap_init,
    .cleanup = tap_cleanup,
};
QNIC_NETDEV_REGISTER(tap_netdev_class)
