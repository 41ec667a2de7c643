/*
 * The NIC side of a netdev: a frontend device asks for its clients here.
 * This reads `netdev=` and `mac=` from the device's checked options, claims
 * the netdev (one NIC per netdev), peers queue i of the NIC with queue i of
 * the netdev, and assigns QEMU's default MACs (52:54:00:12:34:56 and up,
 * the lowest one free in the machine) so guests see the addresses they
 * would under QEMU, also after NICs were unplugged and plugged again.
 */
#include "net-internal.h"
#include "qnic/log.h"

int qnic_nic_netdev_queues(QnicBackends *be, QnicOpts *dev_opts)
{
    const char *id = qnic_opts_get(dev_opts, "netdev");
    QnicNetdev *nd = id && be ? qnic_netdev_find(be, id) : NULL;
    return nd ? nd->queues : 1;
}

#define DEFAULT_MAC_FIRST 0x56
static const uint8_t default_mac_base[5] = { 0x52, 0x54, 0x00, 0x12, 0x34 };

static bool in_default_range(const uint8_t mac[6])
{
    return memcmp(mac, default_mac_base, sizeof(default_mac_base)) == 0;
}

/* QEMU 7.2's rule: the lowest last byte from 0x56 that no NIC holds (a
 * MAC given in the range counts as held); 0xff when all are. */
static void default_mac(QnicBackends *be, uint8_t mac[6])
{
    unsigned last = DEFAULT_MAC_FIRST;

    while (last < 0xff && be->mac_users[last]) {
        last++;
    }
    memcpy(mac, default_mac_base, sizeof(default_mac_base));
    mac[5] = (uint8_t)last;
}

static void mac_hold(QnicBackends *be, const uint8_t mac[6], int delta)
{
    if (in_default_range(mac)) {
        be->mac_users[mac[5]] += delta;
    }
}

/* The netdev is deleted before the NIC: the NIC goes on without one. */
static void nic_netdev_gone(QnicNetdevNotifier *n, QnicNetdev *nd)
{
    QnicNic *nic = qnic_container_of(n, QnicNic, netdev_gone);

    nic->netdev = NULL;
}

QnicNic *qnic_nic_new(QnicBackends *be, const QnicNetClientOps *ops, QnicOpts *dev_opts,
                      const char *model, int queues, void *opaque, GError **errp)
{
    const char *netdev_id = qnic_opts_get(dev_opts, "netdev");
    const char *mac = qnic_opts_get(dev_opts, "mac");
    const char *dev_id = qnic_opts_get(dev_opts, "id");
    QnicNetdev *nd = NULL;
    QnicNic *nic;

    if (!be) {
        qnic_error_setg_invalid(errp, "%s: the machine has no backends to find a netdev in",
                                model);
        return NULL;
    }
    if (queues < 1) {
        queues = 1;
    }
    if (netdev_id) {
        nd = qnic_netdev_find(be, netdev_id);
        if (!nd) {
            qnic_error_setg_invalid(errp, "Property '%s.netdev' can't find value '%s'",
                                    model, netdev_id);
            return NULL;
        }
        if (nd->in_use) {
            qnic_error_setg_invalid(errp, "Property '%s.netdev' can't take value '%s', "
                                    "it's in use", model, netdev_id);
            return NULL;
        }
    }
    nic = g_new0(QnicNic, 1);
    if (mac && qnic_opts_is_set(dev_opts, "mac")) {
        if (!qnic_parse_mac(mac, nic->mac, errp)) {
            g_free(nic);
            return NULL;
        }
    } else {
        default_mac(be, nic->mac);
    }
    nic->be = be;
    mac_hold(be, nic->mac, 1);
    nic->netdev = nd;
    nic->queues = queues;
    nic->ncs = g_new0(QnicNetClient *, queues);
    for (int i = 0; i < queues; i++) {
        nic->ncs[i] = qnic_net_client_new(be, ops, model, dev_id ? dev_id : model, opaque);
        nic->ncs[i]->queue_index = i;
        memcpy(nic->ncs[i]->conf_mac, nic->mac, 6);
        g_autofree char *m = qnic_format_mac(nic->mac);
        g_snprintf(nic->ncs[i]->info_str, sizeof(nic->ncs[i]->info_str),
                   "model=%s,macaddr=%s", model, m);
        if (nd && i < nd->queues) {
            qnic_net_client_set_peer(nic->ncs[i], nd->ncs[i]);
        }
    }
    if (nd) {
        nd->in_use = true;
        nic->netdev_gone.gone = nic_netdev_gone;
        qnic_netdev_add_gone_notifier(nd, &nic->netdev_gone);
    }
    return nic;
}

void qnic_nic_free(QnicNic *nic)
{
    if (!nic) {
        return;
    }
    for (int i = 0; i < nic->queues; i++) {
        qnic_net_client_free(nic->ncs[i]);
    }
    mac_hold(nic->be, nic->mac, -1);
    if (nic->netdev) {
        qnic_netdev_remove_gone_notifier(nic->netdev, &nic->netdev_gone);
        nic->netdev->in_use = false;
    }
    g_free(nic->ncs);
    g_free(nic);
}

/* the longest vnet header a link carries (virtio_net_hdr_v1_hash) */
#define ANNOUNCE_HDR_MAX 20

void qnic_net_rarp_frame(uint8_t f[60], const uint8_t mac[6])
{
    memset(f, 0, 60);
    memset(f, 0xff, 6);
    memcpy(f + 6, mac, 6);
    qnic_st16be(f + 12, 0x8035);    /* RARP */
    qnic_st16be(f + 14, 1);         /* Ethernet */
    qnic_st16be(f + 16, 0x0800);    /* IPv4 */
    f[18] = 6;
    f[19] = 4;
    qnic_st16be(f + 20, 3);         /* reverse request */
    memcpy(f + 22, mac, 6);
    memcpy(f + 32, mac, 6);
}

void qnic_net_announce_self(QnicNetClient *nic)
{
    uint8_t buf[ANNOUNCE_HDR_MAX + 60] = { 0 };
    unsigned hdr = MIN((unsigned)MAX(nic->vnet_hdr_len, 0), (unsigned)ANNOUNCE_HDR_MAX);

    qnic_net_rarp_frame(buf + hdr, nic->conf_mac);
    qnic_net_send(nic, buf, hdr + 60);
    if (nic->ops->announce) {
        nic->ops->announce(nic);
    }
}
