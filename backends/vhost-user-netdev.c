/*
 * `-netdev vhost-user,id=N,chardev=ID[,queues=N]`: the data plane of the
 * NIC on this netdev runs in another process that speaks vhost-user on the
 * chardev's Unix socket. At startup qnic waits for the connection (as QEMU
 * does) and negotiates; the netdev's clients, one per queue pair, carry no
 * frames: they only let virtio-net find the vhost device behind them
 * (qnic_vhost_net_get). The link is up while a negotiated backend is
 * connected. When it goes (EOF, a malformed reply, a timeout) the link
 * goes down and the rings come back to qnic; a listening server chardev
 * or a client with reconnect=N brings the next backend in, which is
 * negotiated again and, if the driver is running, given the rings again.
 */
#include "qnic/net.h"
#include "qnic/chardev.h"
#include "qnic/vhost-user-frontend.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include <stdio.h>

typedef struct VhostUserNetdev {
    QnicNetdev *nd;
    QnicChardev *chr;
    QnicVhostUser *vu;
    QnicFdWatch *watch;         /* the socket, outside requests */
    QnicBH *lost_bh;
} VhostUserNetdev;

static ssize_t vhu_nc_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    /* Frames travel through the rings in the backend, never through here
     * (a NIC without vhost support on this netdev drops them, as QEMU's
     * vhost-user netdev cannot carry them either). */
    return qnic_iov_size(iov, iovcnt);
}

static bool vhu_nc_true(QnicNetClient *nc) { return true; }
static bool vhu_nc_hdr_len(QnicNetClient *nc, int len) { return true; }

/* Every client of the netdev stands for the one vhost-user device. */
static QnicVhostDev *vhu_nc_get_vhost(QnicNetClient *nc)
{
    return nc->opaque;
}

static const QnicNetClientOps vhu_nc_ops = {
    .kind = QNIC_NET_CLIENT_VHOST_USER,
    .receive_iov = vhu_nc_receive,
    .has_vnet_hdr = vhu_nc_true,
    .has_vnet_hdr_len = vhu_nc_hdr_len,
    .has_ufo = vhu_nc_true,
    .get_vhost = vhu_nc_get_vhost,
};

static void set_link(VhostUserNetdev *s, bool up)
{
    if (s->nd->ncs && s->nd->ncs[0]) {
        qnic_net_set_link(s->nd->ncs[0], up);
    }
}

static void drop_connection(VhostUserNetdev *s)
{
    if (s->watch) {
        qnic_fd_watch_remove(s->watch);
        s->watch = NULL;
    }
    qnic_vhost_backend_lost(qnic_vhost_user_dev(s->vu));
    qnic_vhost_user_disconnect(s->vu);
    set_link(s, false);
    qnic_chardev_disconnect(s->chr);
}

static void lost_bh_cb(void *opaque)
{
    drop_connection(opaque);
}

static void sock_readable(void *opaque, int fd, GIOCondition cond)
{
    VhostUserNetdev *s = opaque;

    if (!qnic_vhost_user_readable(s->vu)) {
        /* Not from inside the watch's own dispatch: remove it in a BH. */
        qnic_fd_watch_set(s->watch, 0);
        qnic_bh_schedule(s->lost_bh);
    }
}

static void vu_failed(void *opaque)
{
    drop_connection(opaque);
}

static bool attach(VhostUserNetdev *s, GError **errp)
{
    int fd = qnic_chardev_fd(s->chr);

    if (!qnic_vhost_user_connect(s->vu, fd, errp)) {
        return false;
    }
    s->watch = qnic_fd_watch_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, sock_readable, s);
    return true;
}

static void chr_opened(void *opaque, QnicChardev *chr)
{
    VhostUserNetdev *s = opaque;
    GError *err = NULL;

    if (!attach(s, &err)) {
        qnic_report_ratelimited("vhost-user netdev '%s': backend on %s: %s", s->nd->id,
                                qnic_chardev_describe(chr), err->message);
        g_error_free(err);
        qnic_bh_cancel(s->lost_bh);
        drop_connection(s);
        return;
    }
    qnic_log(QNIC_LOG_TRACE_NET, "vhost-user netdev '%s': backend connected on %s", s->nd->id,
             qnic_chardev_describe(chr));
    set_link(s, true);
    /* virtio-net restarts the rings if its driver is running; it sets the
     * link down again if the new backend lacks negotiated features. */
    qnic_vhost_backend_ready(qnic_vhost_user_dev(s->vu));
}

static bool vhost_user_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    VhostUserNetdev *s = g_new0(VhostUserNetdev, 1);
    const char *chr_id = qnic_opts_get(opts, "chardev");
    unsigned queues = (unsigned)qnic_opts_get_uint(opts, "queues", 1);
    QnicVhostDev *hd;

    s->nd = nd;
    nd->state = s;
    s->chr = qnic_chardev_find(qnic_backends_chardevs(nd->be), chr_id);
    if (!s->chr) {
        qnic_error_setg_invalid(errp, "chardev \"%s\" not found", chr_id);
        return false;
    }
    if (!qnic_chardev_claim(s->chr, errp)) {
        s->chr = NULL;
        return false;
    }
    s->lost_bh = qnic_bh_new(lost_bh_cb, s);
    s->vu = qnic_vhost_user_new(nd->id, queues, vu_failed, s);
    hd = qnic_vhost_user_dev(s->vu);

    nd->queues = queues;
    nd->ncs = g_new0(QnicNetClient *, queues);
    for (unsigned i = 0; i < queues; i++) {
        nd->ncs[i] = qnic_net_client_new(nd->be, &vhu_nc_ops, "vhost-user", nd->id, hd);
        nd->ncs[i]->queue_index = i;
        snprintf(nd->ncs[i]->info_str, sizeof(nd->ncs[i]->info_str), "vhost-user%u to %s", i,
                 chr_id);
    }
    /* QEMU waits for the backend before the machine starts. */
    if (!qnic_chardev_wait_connected(s->chr, errp)) {
        return false;
    }
    if (!attach(s, errp)) {
        g_prefix_error(errp, "vhost-user backend on %s: ", qnic_chardev_describe(s->chr));
        return false;
    }
    hd->connected = true;
    qnic_chardev_set_handler(s->chr, chr_opened, s);
    return true;
}

static void vhost_user_cleanup(QnicNetdev *nd)
{
    VhostUserNetdev *s = nd->state;

    if (!s) {
        return;
    }
    if (s->watch) {
        qnic_fd_watch_remove(s->watch);
    }
    if (s->vu) {
        /* clients point at the vhost device: they go with the netdev */
        for (int i = 0; nd->ncs && i < nd->queues; i++) {
            if (nd->ncs[i]) {
                nd->ncs[i]->opaque = NULL;
            }
        }
        qnic_vhost_user_free(s->vu);
    }
    if (s->lost_bh) {
        qnic_bh_free(s->lost_bh);
    }
    if (s->chr) {
        qnic_chardev_release(s->chr);
        qnic_chardev_disconnect(s->chr);
    }
    g_free(s);
    nd->state = NULL;
}

static const QnicNetdevClass vhost_user_netdev_class = {
    .type = "vhost-user",
    .init = vhost_user_init,
    .cleanup = vhost_user_cleanup,
};
QNIC_NETDEV_REGISTER(vhost_user_netdev_class)
