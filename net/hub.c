/*
 * Hubs: a hub is an Ethernet repeater with numbered ports; a frame entering
 * one port leaves through every other port. `-netdev hubport,id=,hubid=N`
 * creates a port (a netdev a NIC can use); `netdev=ID` plugs an existing
 * netdev into the port instead. Legacy `-net` options are wired through hub
 * 0. Flow control: a port can take a frame only while at least one other
 * port's receiver can; when a receiver behind a port flushes, the frames
 * waiting at the other ports move on.
 */
#include "net-internal.h"
#include "qnic/log.h"

typedef struct QnicHub QnicHub;

typedef struct QnicHubPort {
    QnicNetClient *nc;
    QnicHub *hub;
    int index;
    QnicNetdev *plugged;      /* netdev= given: that netdev is our peer */
    QnicNetdevNotifier plugged_gone;   /* clears plugged when it is deleted */
} QnicHubPort;

struct QnicHub {
    int id;
    int next_port;
    GList *ports;             /* QnicHubPort * */
};

static QnicHub *hub_find(QnicBackends *be, int id)
{
    for (GList *l = be->hubs; l; l = l->next) {
        QnicHub *h = l->data;
        if (h->id == id) {
            return h;
        }
    }
    return NULL;
}

static QnicHub *hub_get(QnicBackends *be, int id)
{
    QnicHub *h = hub_find(be, id);
    if (!h) {
        h = g_new0(QnicHub, 1);
        h->id = id;
        be->hubs = g_list_append(be->hubs, h);
    }
    return h;
}

static ssize_t hub_port_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    QnicHubPort *src = nc->opaque;
    size_t len = qnic_iov_size(iov, iovcnt);

    for (GList *l = src->hub->ports; l; l = l->next) {
        QnicHubPort *p = l->data;
        if (p != src) {
            qnic_net_send_iov(p->nc, iov, iovcnt, NULL);
        }
    }
    return len;
}

static bool hub_port_can_receive(QnicNetClient *nc)
{
    QnicHubPort *src = nc->opaque;

    /* Take the frame when anyone can: a busy port then queues its copy
     * (bounded) while the others get theirs now. */
    for (GList *l = src->hub->ports; l; l = l->next) {
        QnicHubPort *p = l->data;
        if (p != src && qnic_net_can_send(p->nc)) {
            return true;
        }
    }
    return false;
}

/* The receiver behind this port can take frames again: what waits for
 * it sits on the other ports' queues (frames they could not forward). */
static void hub_port_peer_flushed(QnicNetClient *nc)
{
    QnicHubPort *src = nc->opaque;

    for (GList *l = src->hub->ports; l; l = l->next) {
        QnicHubPort *p = l->data;
        if (p != src) {
            qnic_net_queue_flush(p->nc->incoming);
        }
    }
}

static const QnicNetClientOps hub_port_ops = {
    .kind = QNIC_NET_CLIENT_HUBPORT,
    .receive_iov = hub_port_receive_iov,
    .can_receive = hub_port_can_receive,
    .peer_flushed = hub_port_peer_flushed,
};


int qnic_net_hub_port_count(QnicBackends *be, int hubid)
{
    QnicHub *h = hub_find(be, hubid);
    return h ? (int)g_list_length(h->ports) : 0;
}

void qnic_net_hub_walk(QnicBackends *be, QnicNetHubWalkFunc *fn, void *opaque)
{
    for (GList *l = g_list_last(be->hubs); l; l = l->prev) {
        QnicHub *h = l->data;
        fn(opaque, h->id, NULL);
        for (GList *p = g_list_last(h->ports); p; p = p->prev) {
            fn(opaque, h->id, ((QnicHubPort *)p->data)->nc);
        }
    }
}

/* The netdev plugged into the port is deleted before the port. */
static void hubport_plugged_gone(QnicNetdevNotifier *n, QnicNetdev *nd)
{
    QnicHubPort *port = qnic_container_of(n, QnicHubPort, plugged_gone);

    port->plugged = NULL;
}

static bool hubport_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    int64_t hubid = qnic_opts_get_int(opts, "hubid", 0);
    const char *plug = qnic_opts_get(opts, "netdev");
    QnicNetdev *peer_nd = NULL;
    QnicHubPort *port;

    if (hubid < 0 || hubid > INT32_MAX) {
        qnic_error_setg_invalid(errp, "Parameter 'hubid' expects a valid hub number");
        return false;
    }
    if (plug) {
        peer_nd = qnic_netdev_find(nd->be, plug);
        if (!peer_nd) {
            qnic_error_setg_invalid(errp, "netdev '%s' not found", plug);
            return false;
        }
        if (peer_nd->in_use || (peer_nd->ncs && peer_nd->ncs[0]->peer)) {
            qnic_error_setg_invalid(errp, "netdev '%s' is already in use", plug);
            return false;
        }
    }

    QnicHub *hub = hub_get(nd->be, (int)hubid);
    port = g_new0(QnicHubPort, 1);
    port->hub = hub;
    port->index = hub->next_port++;
    port->nc = qnic_net_client_new(nd->be, &hub_port_ops, "hubport", nd->id, port);
    g_snprintf(port->nc->info_str, sizeof(port->nc->info_str), "hub %d port %d",
               hub->id, port->index);
    hub->ports = g_list_append(hub->ports, port);

    nd->queues = 1;
    nd->ncs = g_new0(QnicNetClient *, 1);
    nd->ncs[0] = port->nc;
    nd->state = port;
    if (peer_nd) {
        qnic_net_client_set_peer(port->nc, peer_nd->ncs[0]);
        peer_nd->in_use = true;
        port->plugged = peer_nd;
        port->plugged_gone.gone = hubport_plugged_gone;
        qnic_netdev_add_gone_notifier(peer_nd, &port->plugged_gone);
        /* Nobody else may claim the port: its peer is fixed. */
        nd->in_use = true;
    }
    return true;
}

static void hubport_cleanup(QnicNetdev *nd)
{
    QnicHubPort *port = nd->state;
    QnicHub *hub;

    if (!port) {
        return;
    }
    hub = port->hub;
    hub->ports = g_list_remove(hub->ports, port);
    if (port->plugged) {
        qnic_netdev_remove_gone_notifier(port->plugged, &port->plugged_gone);
        port->plugged->in_use = false;
    }
    if (!hub->ports) {
        nd->be->hubs = g_list_remove(nd->be->hubs, hub);
        g_free(hub);
    }
    g_free(port);
    nd->state = NULL;
}

static const QnicNetdevClass hubport_class = {
    .type = "hubport",
    .init = hubport_init,
    .cleanup = hubport_cleanup,
};
QNIC_NETDEV_REGISTER(hubport_class)
