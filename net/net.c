/*
 * Net clients and the frame path between a NIC and its backend: peering,
 * sending with flow control (a busy receiver gets the frame queued and the
 * sender's completion callback runs when the receiver flushes), purging on
 * deletion, link state, and the vnet-header negotiation calls a NIC makes
 * on its peer. The semantics follow QEMU's net/ so that devices and
 * backends written against QEMU's model behave the same here.
 */
#include "net-internal.h"
#include "qnic/net-filter.h"
#include "qnic/log.h"

static ssize_t net_client_deliver(QnicNetClient *sender, const struct iovec *iov,
                                  int iovcnt, void *opaque)
{
    QnicNetClient *nc = opaque;
    ssize_t ret;

    if (G_UNLIKELY(!nc->be->vm_running)) {
        return 0;               /* held, see qnic_net_set_vm_running */
    }
    if (nc->link_down) {
        /* A NIC without a cable: the frame goes nowhere, the sender is
         * told it went out. */
        return qnic_iov_size(iov, iovcnt);
    }
    if (nc->receive_disabled) {
        return 0;
    }
    if (nc->ops->can_receive && !nc->ops->can_receive(nc)) {
        return 0;
    }
    if (!nc->ops->receive_iov) {
        return qnic_iov_size(iov, iovcnt);
    }
    ret = nc->ops->receive_iov(nc, iov, iovcnt);
    if (ret == 0) {
        nc->receive_disabled = true;
    }
    return ret;
}

QnicNetClient *qnic_net_client_new(QnicBackends *be, const QnicNetClientOps *ops,
                                   const char *model, const char *name, void *opaque)
{
    QnicNetClient *nc = g_new0(QnicNetClient, 1);

    g_assert(be);
    nc->be = be;
    nc->ops = ops;
    nc->model = g_strdup(model);
    nc->name = g_strdup(name ? name : model);
    nc->opaque = opaque;
    nc->incoming = qnic_net_queue_new(net_client_deliver, nc);
    nc->rx_filter_notify = true;
    be->clients = g_list_append(be->clients, nc);
    return nc;
}

/* The filters attached to nc stay (until deleted by id) without it. */
static void filters_forget_client(QnicNetClient *nc)
{
    for (GList *l = nc->filters; l; l = l->next) {
        QnicNetFilter *f = l->data;
        g_ptr_array_remove(f->clients, nc);
    }
    g_list_free(nc->filters);
    nc->filters = NULL;
}

void qnic_net_client_free(QnicNetClient *nc)
{
    if (!nc) {
        return;
    }
    filters_forget_client(nc);
    if (nc->peer) {
        QnicNetClient *peer = nc->peer;
        /* Frames this client sent and the peer has not taken yet: its
         * owner is going away, nobody waits for their completion. */
        qnic_net_queue_purge(peer->incoming, nc, false);
        peer->peer = NULL;
        nc->peer = NULL;
    }
    /* Frames waiting for this client: their senders resume. */
    qnic_net_queue_purge(nc->incoming, NULL, true);
    if (nc->ops && nc->ops->cleanup) {
        nc->ops->cleanup(nc);
    }
    nc->be->clients = g_list_remove(nc->be->clients, nc);
    qnic_net_queue_free(nc->incoming);
    g_free(nc->name);
    g_free(nc->model);
    g_free(nc);
}

void qnic_net_client_set_peer(QnicNetClient *a, QnicNetClient *b)
{
    if (a->peer && a->peer != b) {
        qnic_net_queue_purge(a->peer->incoming, a, true);
        qnic_net_queue_purge(a->incoming, a->peer, true);
        a->peer->peer = NULL;
    }
    a->peer = b;
    if (b) {
        if (b->peer && b->peer != a) {
            qnic_net_queue_purge(b->peer->incoming, b, true);
            qnic_net_queue_purge(b->incoming, b->peer, true);
            b->peer->peer = NULL;
        }
        b->peer = a;
    }
}

QnicNetClient *qnic_net_client_find(QnicBackends *be, const char *name)
{
    for (GList *l = be->clients; l; l = l->next) {
        QnicNetClient *nc = l->data;
        if (nc->ops->kind != QNIC_NET_CLIENT_NIC && g_strcmp0(nc->name, name) == 0) {
            return nc;
        }
    }
    return NULL;
}

QnicNetClient *qnic_net_client_find_link(QnicBackends *be, const char *name)
{
    QnicNetClient *nc = qnic_net_client_find(be, name);

    for (GList *l = be->clients; l && !nc; l = l->next) {
        QnicNetClient *c = l->data;
        if (g_strcmp0(c->name, name) == 0) {
            nc = c;
        }
    }
    return nc;
}

void qnic_net_set_vm_running(QnicBackends *be, bool running)
{
    if (be->vm_running == running) {
        return;
    }
    be->vm_running = running;
    if (!running) {
        return;
    }
    /* What waited for the VM goes now, NICs first (frames for the guest),
     * whose completions wake the backends. The list may change under
     * the callbacks: walk a copy. */
    GList *copy = g_list_copy(be->clients);
    for (int pass = 0; pass < 2; pass++) {
        for (GList *l = copy; l; l = l->next) {
            QnicNetClient *nc = l->data;
            bool nic = nc->ops->kind == QNIC_NET_CLIENT_NIC;
            if (g_list_find(be->clients, nc) && nic == (pass == 0)) {
                qnic_net_flush_queued(nc);
            }
        }
    }
    g_list_free(copy);
}

void qnic_net_set_rx_filter_hook(QnicBackends *be, QnicNetRxFilterHook *hook, void *opaque)
{
    be->rx_filter_hook = hook;
    be->rx_filter_opaque = opaque;
}

void qnic_net_rx_filter_changed(QnicNetClient *nic)
{
    QnicBackends *be = nic->be;

    if (nic->rx_filter_notify && be->rx_filter_hook) {
        nic->rx_filter_notify = false;
        be->rx_filter_hook(nic, be->rx_filter_opaque);
    }
}

void qnic_net_set_stream_hook(QnicBackends *be, QnicNetStreamHook *hook, void *opaque)
{
    be->stream_hook = hook;
    be->stream_opaque = opaque;
}

void qnic_net_stream_changed(QnicBackends *be, const char *netdev_id,
                             const struct sockaddr_storage *peer)
{
    if (be->stream_hook) {
        be->stream_hook(netdev_id, peer, be->stream_opaque);
    }
}

void qnic_net_rx_filter_notify_enable(QnicNetClient *nic)
{
    nic->rx_filter_notify = true;
}

void qnic_rx_filter_info_clear(QnicRxFilterInfo *info)
{
    g_free(info->path);
    if (info->unicast_table) {
        g_array_free(info->unicast_table, TRUE);
    }
    if (info->multicast_table) {
        g_array_free(info->multicast_table, TRUE);
    }
    if (info->vlan_table) {
        g_array_free(info->vlan_table, TRUE);
    }
    memset(info, 0, sizeof(*info));
}

GList *qnic_net_clients(QnicBackends *be)
{
    return be->clients;
}

bool qnic_net_vm_running(QnicBackends *be)
{
    return be->vm_running;
}

bool qnic_net_can_send(QnicNetClient *sender)
{
    QnicNetClient *peer = sender->peer;

    if (G_UNLIKELY(!sender->be->vm_running)) {
        return false;
    }
    if (!peer) {
        return true;
    }
    if (peer->receive_disabled) {
        return false;
    }
    if (peer->ops->can_receive && !peer->ops->can_receive(peer)) {
        return false;
    }
    return true;
}

/* The filters attached to nc see the frame (only netdev clients have any). */
static void run_filters(QnicNetClient *nc, QnicNetFilterDirection dir,
                        const struct iovec *iov, int iovcnt)
{
    for (GList *l = nc->filters; l; l = l->next) {
        QnicNetFilter *f = l->data;
        if (f->enabled && (f->direction & dir)) {
            f->cls->receive_iov(f, nc, dir, iov, iovcnt);
        }
    }
}

ssize_t qnic_net_send_iov(QnicNetClient *sender, const struct iovec *iov, int iovcnt,
                          QnicNetSentFunc *sent_cb)
{
    size_t len = qnic_iov_size(iov, iovcnt);
    QnicNetClient *peer;
    ssize_t ret;

    if (!sender) {
        return -EINVAL;
    }
    peer = sender->peer;
    /* No peer or no cable: dropped as the wire would, reported sent so a
     * NIC completes its descriptors. */
    if (sender->link_down || !peer) {
        sender->tx.drops++;
        return len;
    }
    if (G_UNLIKELY(len > QNIC_NET_MAX_FRAME)) {
        sender->tx.drops++;
        sender->be->oversize_drops++;
        qnic_guest_error("net: %s sent a %zu-byte frame, over the %d-byte limit: dropped\n",
                         sender->name, len, QNIC_NET_MAX_FRAME);
        return len;
    }
    if (G_UNLIKELY(sender->filters || peer->filters)) {
        run_filters(sender, QNIC_NET_FILTER_TX, iov, iovcnt);
        run_filters(peer, QNIC_NET_FILTER_RX, iov, iovcnt);
    }
    ret = qnic_net_queue_send_iov(peer->incoming, sender, iov, iovcnt, sent_cb,
                                  qnic_net_can_send(sender));
    sender->tx.frames++;
    sender->tx.bytes += len;
    sender->tx.backpressure += ret == 0;
    return ret;
}

uint64_t qnic_net_oversize_drops(QnicBackends *be)
{
    return be->oversize_drops;
}

ssize_t qnic_net_send(QnicNetClient *sender, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    return qnic_net_send_iov(sender, &iov, 1, NULL);
}

void qnic_net_flush_queued(QnicNetClient *receiver)
{
    receiver->receive_disabled = false;
    /* Frames for us may wait inside the peer (a hub, on its other ports'
     * queues): it moves them on first. */
    if (receiver->peer && receiver->peer->ops->peer_flushed) {
        receiver->peer->ops->peer_flushed(receiver->peer);
    }
    qnic_net_queue_flush(receiver->incoming);
}

void qnic_net_purge_queued(QnicNetClient *nc)
{
    if (nc->peer) {
        qnic_net_queue_purge(nc->peer->incoming, nc, true);
    }
}

/* The owner hears about every request, a repeated one too, as in QEMU:
 * e1000 restarts autonegotiation on an "up" that finds the link up but
 * not negotiated, rtl8139 raises its link interrupt each time. */
static void set_link_one(QnicNetClient *nc, bool up)
{
    nc->link_down = !up;
    if (nc->ops->link_status_changed) {
        nc->ops->link_status_changed(nc);
    }
}

void qnic_net_set_link(QnicNetClient *nc, bool up)
{
    /* Every queue of the same NIC/netdev shares one link. */
    GList *queues = NULL;
    for (GList *l = nc->be->clients; l; l = l->next) {
        QnicNetClient *q = l->data;
        if (q == nc || (q->opaque == nc->opaque && nc->opaque &&
                        q->ops == nc->ops && g_strcmp0(q->name, nc->name) == 0)) {
            queues = g_list_prepend(queues, q);
        }
    }
    for (GList *l = queues; l; l = l->next) {
        QnicNetClient *q = l->data;
        set_link_one(q, up);
        /* A backend's link also shows on the NIC it feeds (the guest sees
         * the cable go); a NIC's link does not change its backend. */
        if (q->peer && q->peer->ops->kind == QNIC_NET_CLIENT_NIC &&
            q->ops->kind != QNIC_NET_CLIENT_NIC) {
            set_link_one(q->peer, up);
        }
    }
    g_list_free(queues);
}

bool qnic_net_peer_has_vnet_hdr(QnicNetClient *nc)
{
    QnicNetClient *p = nc->peer;
    return p && p->ops->has_vnet_hdr && p->ops->has_vnet_hdr(p);
}

bool qnic_net_peer_has_vnet_hdr_len(QnicNetClient *nc, int len)
{
    QnicNetClient *p = nc->peer;
    return p && p->ops->has_vnet_hdr_len && p->ops->has_vnet_hdr_len(p, len);
}

bool qnic_net_peer_has_ufo(QnicNetClient *nc)
{
    QnicNetClient *p = nc->peer;
    return p && p->ops->has_ufo && p->ops->has_ufo(p);
}

bool qnic_net_peer_has_uso(QnicNetClient *nc)
{
    QnicNetClient *p = nc->peer;
    return p && p->ops->has_uso && p->ops->has_uso(p);
}

void qnic_net_peer_using_vnet_hdr(QnicNetClient *nc, bool enable)
{
    QnicNetClient *p = nc->peer;
    if (p && p->ops->using_vnet_hdr) {
        p->ops->using_vnet_hdr(p, enable);
        /* The basic header until set_vnet_hdr_len says otherwise. */
        nc->vnet_hdr_len = p->vnet_hdr_len = enable ? 10 : 0;
    }
}

void qnic_net_peer_set_vnet_hdr_len(QnicNetClient *nc, int len)
{
    QnicNetClient *p = nc->peer;
    if (p && p->ops->set_vnet_hdr_len) {
        p->ops->set_vnet_hdr_len(p, len);
        if (nc->vnet_hdr_len) {
            nc->vnet_hdr_len = p->vnet_hdr_len = len;
        }
    }
}

void qnic_net_peer_set_offload(QnicNetClient *nc, bool csum, bool tso4, bool tso6,
                               bool ecn, bool ufo, bool uso4, bool uso6)
{
    QnicNetClient *p = nc->peer;
    if (p && p->ops->set_offload) {
        p->ops->set_offload(p, csum, tso4, tso6, ecn, ufo, uso4, uso6);
    }
}

int qnic_net_peer_set_queue_enabled(QnicNetClient *nc, bool enable)
{
    QnicNetClient *peer = nc->peer;

    if (!peer || !peer->ops->set_queue_enabled) {
        return 0;
    }
    return peer->ops->set_queue_enabled(peer, enable);
}

int qnic_net_peer_set_steering_ebpf(QnicNetClient *nc, int prog_fd)
{
    QnicNetClient *peer = nc->peer;

    if (!peer || !peer->ops->set_steering_ebpf) {
        return -ENOTSUP;
    }
    return peer->ops->set_steering_ebpf(peer, prog_fd);
}
