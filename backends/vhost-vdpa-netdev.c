/*
 * `-netdev vhost-vdpa,id=N,vhostdev=/dev/vhost-vdpa-M | vhostfd=F
 * [,queues=Q][,x-svq=on|off]`: the NIC's data rings run in a vDPA device
 * (virtio/vhost-vdpa.c). The netdev opens the device (through the opener
 * of qnic/vhost-vdpa.h, which tests replace with the simulator), brings it
 * up at creation as QEMU does, and offers one client per queue pair; the
 * clients carry no frames: they let virtio-net find the vhost device
 * behind them (qnic_vhost_net_get). qnic always shadows the control queue
 * (commands are applied by qnic and forwarded), so x-svq=on changes
 * nothing here; the data rings are the device's own in both cases.
 */
#include "qnic/net.h"
#include "qnic/vhost-vdpa.h"
#include "qnic/log.h"
#include <limits.h>
#include <linux/virtio_net.h>
#include <stdio.h>

typedef struct VdpaNetdev {
    QnicNetdev *nd;
    QnicVhostVdpa *v;
    void *dev;                  /* the opener's handle */
    const QnicVdpaOpener *opener;
} VdpaNetdev;

static ssize_t vdpa_nc_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    /* Frames travel through the device's rings, never through here (a NIC
     * without vhost support on this netdev drops them, as in QEMU). */
    return qnic_iov_size(iov, iovcnt);
}

static bool vdpa_nc_true(QnicNetClient *nc) { return true; }
static bool vdpa_nc_hdr_len(QnicNetClient *nc, int len) { return true; }

static QnicVhostDev *vdpa_nc_get_vhost(QnicNetClient *nc)
{
    return nc->opaque;
}

static const QnicNetClientOps vdpa_nc_ops = {
    .kind = QNIC_NET_CLIENT_VHOST_VDPA,
    .receive_iov = vdpa_nc_receive,
    .has_vnet_hdr = vdpa_nc_true,
    .has_vnet_hdr_len = vdpa_nc_hdr_len,
    .has_ufo = vdpa_nc_true,
    .get_vhost = vdpa_nc_get_vhost,
};

static bool parse_fd(const char *s, int *fd, GError **errp)
{
    uint64_t v;

    if (!qnic_parse_uint(s, &v, NULL) || v > INT_MAX) {
        qnic_error_setg_invalid(errp, "Invalid file descriptor '%s'", s);
        return false;
    }
    *fd = (int)v;
    return true;
}

/* vhostdev= or vhostfd=, exactly one (QEMU 7.2's messages). */
static bool open_device(VdpaNetdev *s, QnicOpts *opts, const QnicVdpaOps **ops, GError **errp)
{
    const char *path = qnic_opts_get(opts, "vhostdev");
    const char *fd_str = qnic_opts_get(opts, "vhostfd");
    int fd = -1;

    if (path && fd_str) {
        qnic_error_setg_invalid(errp, "vhost-vdpa: vhostdev= and vhostfd= are mutually "
                                "exclusive");
        return false;
    }
    if (!path && !fd_str) {
        qnic_error_setg_invalid(errp, "vhost-vdpa: neither vhostdev= nor vhostfd= was "
                                "specified");
        return false;
    }
    if (fd_str && !parse_fd(fd_str, &fd, errp)) {
        return false;
    }
    s->opener = qnic_vhost_vdpa_opener();
    s->dev = s->opener->open(s->opener->ctx, path, fd, ops, errp);
    return s->dev != NULL;
}

/* The device's link (its config status) is the netdev's link. */
static void link_changed(void *opaque, bool up)
{
    VdpaNetdev *s = opaque;

    qnic_log(QNIC_LOG_TRACE_NET, "vhost-vdpa netdev '%s': the device's link is %s", s->nd->id,
             up ? "up" : "down");
    qnic_net_set_link(s->nd->ncs[0], up);
}

static bool vhost_vdpa_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    VdpaNetdev *s = g_new0(VdpaNetdev, 1);
    unsigned queues = (unsigned)qnic_opts_get_uint(opts, "queues", 1);
    const QnicVdpaOps *ops = NULL;
    const QnicVdpaInfo *info;
    QnicVhostDev *hd;

    nd->state = s;
    s->nd = nd;
    if (!open_device(s, opts, &ops, errp)) {
        return false;
    }
    s->v = qnic_vhost_vdpa_new(ops, s->dev, queues, nd->id, errp);
    if (!s->v) {
        return false;
    }
    hd = qnic_vhost_vdpa_dev(s->v);
    info = qnic_vhost_vdpa_info(s->v);
    nd->queues = queues;
    nd->ncs = g_new0(QnicNetClient *, queues);
    for (unsigned i = 0; i < queues; i++) {
        nd->ncs[i] = qnic_net_client_new(nd->be, &vdpa_nc_ops, "vhost-vdpa", nd->id, hd);
        nd->ncs[i]->queue_index = i;
        snprintf(nd->ncs[i]->info_str, sizeof(nd->ncs[i]->info_str),
                 "vhost-vdpa: %u of %u queue pairs%s", i, info->max_pairs,
                 info->has_cvq ? ", shadow control queue" : "");
    }
    if (!(info->status & VIRTIO_NET_S_LINK_UP)) {
        qnic_net_set_link(nd->ncs[0], false);
    }
    qnic_vhost_vdpa_set_link_handler(s->v, link_changed, s);
    return true;
}

static void vhost_vdpa_cleanup(QnicNetdev *nd)
{
    VdpaNetdev *s = nd->state;

    if (!s) {
        return;
    }
    for (int i = 0; nd->ncs && i < nd->queues; i++) {
        if (nd->ncs[i]) {
            nd->ncs[i]->opaque = NULL;
        }
    }
    qnic_vhost_vdpa_free(s->v);
    if (s->dev && s->opener->close) {
        s->opener->close(s->opener->ctx, s->dev);
    }
    g_free(s);
    nd->state = NULL;
}

static const QnicNetdevClass vhost_vdpa_netdev_class = {
    .type = "vhost-vdpa",
    .init = vhost_vdpa_init,
    .cleanup = vhost_vdpa_cleanup,
};
QNIC_NETDEV_REGISTER(vhost_vdpa_netdev_class)
