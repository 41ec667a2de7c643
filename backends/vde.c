/*
 * The vde netdev (`-netdev vde,sock=DIR,port=N,group=G,mode=M`): frames to
 * and from a VDE switch (vde_switch from vde2, or any libvdeplug URL)
 * through libvdeplug. Reading pauses while the peer is busy and resumes on
 * the sent callback; a send that meets EAGAIN stays queued until the data
 * socket is writable. Without libvdeplug at build time (CONFIG_VDE unset)
 * the type still exists and says clearly why it cannot be used.
 */
#include "qnic-config.h"
#include "qnic/log.h"
#include "qnic/mainloop.h"
#include "qnic/net.h"

#ifdef CONFIG_VDE

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <libvdeplug.h>

#define VDE_BUF_SIZE 65536       /* vde_switch frames are far smaller */
#define VDE_READ_BATCH 64

typedef struct VdeState {
    QnicNetClient *nc;
    VDECONN *conn;
    int fd;
    QnicFdWatch *watch;
    bool read_poll, write_poll;
    uint8_t *buf;
    char *desc;
} VdeState;

static void vde_update_watch(VdeState *s)
{
    if (s->watch) {
        qnic_fd_watch_set(s->watch, (s->read_poll ? G_IO_IN : 0) |
                                    (s->write_poll ? G_IO_OUT : 0));
    }
}

static void vde_send_completed(QnicNetClient *nc, ssize_t ret)
{
    VdeState *s = nc->opaque;

    if (s && !s->read_poll) {
        s->read_poll = true;
        vde_update_watch(s);
    }
}

static void vde_readable(VdeState *s)
{
    for (int i = 0; i < VDE_READ_BATCH && s->read_poll; i++) {
        ssize_t n = vde_recv(s->conn, s->buf, VDE_BUF_SIZE, MSG_DONTWAIT);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (n == 0) {
            break;
        }
        /* libvdeplug answers a 1-byte read for a frame it discarded. */
        if (n < 14) {
            continue;
        }
        struct iovec frame = { .iov_base = s->buf, .iov_len = n };
        if (qnic_net_send_iov(s->nc, &frame, 1, vde_send_completed) == 0) {
            s->read_poll = false;
            vde_update_watch(s);
            break;
        }
    }
}

static void vde_fd_event(void *opaque, int fd, GIOCondition cond)
{
    VdeState *s = opaque;

    if ((cond & G_IO_OUT) && s->write_poll) {
        s->write_poll = false;
        vde_update_watch(s);
        qnic_net_flush_queued(s->nc);
    }
    if ((cond & (G_IO_IN | G_IO_ERR | G_IO_HUP)) && s->read_poll) {
        vde_readable(s);
    }
}

static ssize_t vde_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    VdeState *s = nc->opaque;
    size_t size = qnic_iov_size(iov, iovcnt);
    const void *data;
    g_autofree uint8_t *flat = NULL;
    ssize_t ret;

    if (!s) {
        return -EIO;
    }
    if (size > VDE_BUF_SIZE) {
        return -EMSGSIZE;
    }
    /* vde_send takes one buffer; most frames arrive as one iovec. */
    if (iovcnt == 1) {
        data = iov[0].iov_base;
    } else {
        flat = g_malloc(size ? size : 1);
        qnic_iov_to_buf(iov, iovcnt, 0, flat, size);
        data = flat;
    }
    do {
        ret = vde_send(s->conn, data, size, MSG_DONTWAIT);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            s->write_poll = true;
            vde_update_watch(s);
            return 0;
        }
        qnic_log(QNIC_LOG_TRACE_NET, "vde %s: send of %zu bytes failed: %s\n",
                 s->desc, size, g_strerror(errno));
        return -errno;
    }
    return size ? (ssize_t)size : 1;
}

static const QnicNetClientOps vde_ops = {
    .kind = QNIC_NET_CLIENT_VDE,
    .receive_iov = vde_receive_iov,
};

static void vde_state_free(VdeState *s)
{
    if (!s) {
        return;
    }
    if (s->nc) {
        s->nc->opaque = NULL;
    }
    qnic_fd_watch_remove(s->watch);
    if (s->conn) {
        vde_close(s->conn);
    }
    g_free(s->buf);
    g_free(s->desc);
    g_free(s);
}

static bool vde_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    const char *sock = qnic_opts_get(opts, "sock");
    const char *group = qnic_opts_get(opts, "group");
    uint64_t port = qnic_opts_get_uint(opts, "port", 0);
    uint64_t mode = qnic_opts_get_uint(opts, "mode", 0700);
    g_autofree char *group_copy = g_strdup(group);
    g_autofree char *sock_copy = g_strdup(sock);
    struct vde_open_args args = { 0 };
    VdeState *s;
    int fl;

    if (port > 65535) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "vde: Parameter 'port' expects a value between 0 and 65535");
        return false;
    }
    if (mode > 07777) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "vde: Parameter 'mode' expects a file mode (0 to 07777)");
        return false;
    }
    args.port = (int)port;
    args.group = group_copy;
    args.mode = (mode_t)mode;

    s = g_new0(VdeState, 1);
    s->conn = vde_open(sock_copy, (char *)"qnic", &args);
    if (!s->conn) {
        qnic_error_setg_errno(errp, errno, "vde: could not connect to the switch at %s",
                              sock && sock[0] ? sock : "the default socket");
        g_free(s);
        return false;
    }
    s->fd = vde_datafd(s->conn);
    fl = fcntl(s->fd, F_GETFL);
    if (fl >= 0) {
        fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
    }
    s->buf = g_malloc(VDE_BUF_SIZE);
    s->desc = g_strdup(nd->id ? nd->id : "vde");
    s->nc = qnic_net_client_new(nd->be, &vde_ops, "vde", nd->id, s);
    snprintf(s->nc->info_str, sizeof(s->nc->info_str), "sock=%s,fd=%d",
             sock ? sock : "", s->fd);
    s->read_poll = true;
    s->watch = qnic_fd_watch_add(s->fd, G_IO_IN, vde_fd_event, s);
    nd->state = s;
    nd->queues = 1;
    nd->ncs = g_new0(QnicNetClient *, 1);
    nd->ncs[0] = s->nc;
    return true;
}

static void vde_cleanup(QnicNetdev *nd)
{
    vde_state_free(nd->state);
    nd->state = NULL;
}

#else /* !CONFIG_VDE */

static bool vde_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    g_set_error(errp, QNIC_ERROR, QNIC_ERROR_UNSUPPORTED,
                "vde support is not available: qnic was built without libvdeplug "
                "(install libvdeplug-dev and rebuild)");
    return false;
}

static void vde_cleanup(QnicNetdev *nd)
{
}

#endif /* CONFIG_VDE */

static const QnicNetdevClass vde_netdev_class = {
    .type = "vde",
    .init = vde_init,
    .cleanup = vde_cleanup,
};
QNIC_NETDEV_REGISTER(vde_netdev_class)
