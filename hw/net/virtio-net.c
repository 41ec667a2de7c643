/*
 * virtio-net (virtio 1.2 section 5.1) with QEMU 7.2's properties, feature
 * set and configuration layout, on the PCI transport (virtio-net-pci and its
 * transitional / non-transitional variants) and on virtio-mmio
 * (virtio-net-device). One queue pair per netdev queue plus the control
 * queue; RX filtering (promiscuous/multicast/unicast modes, MAC table, VLAN
 * filter), mergeable RX buffers, RSS with Toeplitz hashing and hash reports,
 * link status, guest announce, and backpressure both ways: a backend that
 * returns 0 stops TX until its completion callback, and a guest with no RX
 * buffers makes can_receive false until it kicks the RX queue. The per-packet
 * path uses preallocated iovec arrays and maps guest buffers directly.
 * On a vhost peer (-netdev vhost-user) the data queues go to the backend
 * at DRIVER_OK (qnic/vhost.h) while the control queue, the configuration
 * space and link status stay here, as in QEMU.
 *
 * This file is the device itself: configuration space, feature
 * negotiation, queue layout, status and reset, the vhost hand-over,
 * realize from the properties, and the bus types. The ring <-> netdev data
 * plane is hw/net/virtio-net-dataplane.c, the control queue with the
 * receive filter and RSS is hw/net/virtio-net-ctrl.c; the state they share
 * is in hw/net/virtio-net-internal.h.
 */
#include "virtio-net-internal.h"
#include "qnic/schema.h"
#include "qnic/device.h"
#include "qnic/log.h"
#include "qnic/state.h"

/* Features that describe the data path, so a vhost backend must implement
 * them before the device offers them (the control queue's are qnic's). */
static const int vhost_net_feature_bits[] = {
    VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_F_ANY_LAYOUT, VIRTIO_F_VERSION_1, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM,
    VIRTIO_NET_F_GSO, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_HOST_TSO4,
    VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_UFO,
    VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_RING_PACKED,
    VIRTIO_F_IN_ORDER, VIRTIO_F_RING_RESET, VIRTIO_NET_F_RSS, VIRTIO_NET_F_HASH_REPORT,
    -1
};

/* ---- config space ---- */

static unsigned config_size(uint64_t f)
{
    unsigned s = 6;
    if (f & (1ull << VIRTIO_NET_F_STATUS)) s = MAX(s, 8);
    if (f & (1ull << VIRTIO_NET_F_MQ)) s = MAX(s, 10);
    if (f & (1ull << VIRTIO_NET_F_MTU)) s = MAX(s, 12);
    if (f & (1ull << VIRTIO_NET_F_SPEED_DUPLEX)) s = MAX(s, 17);
    if (f & ((1ull << VIRTIO_NET_F_RSS) | (1ull << VIRTIO_NET_F_HASH_REPORT))) s = MAX(s, 24);
    return s;
}

static void vn_get_config(QnicVirtioDevice *vdev)
{
    VirtioNet *n = vdev->opaque;
    uint8_t c[24] = { 0 };

    memcpy(c, n->mac, 6);
    qnic_st16(c + 6, n->status);
    qnic_st16(c + 8, n->max_pairs);
    qnic_st16(c + 10, n->host_mtu);
    qnic_st32(c + 12, (uint32_t)n->speed);
    c[16] = n->duplex;
    if (qnic_virtio_host_has_feature(vdev, VIRTIO_NET_F_RSS) ||
        qnic_virtio_host_has_feature(vdev, VIRTIO_NET_F_HASH_REPORT)) {
        c[17] = QNIC_RSS_MAX_KEY;
        qnic_st16(c + 18, qnic_virtio_host_has_feature(vdev, VIRTIO_NET_F_RSS) ? QNIC_RSS_MAX_TABLE : 1);
        qnic_st32(c + 20, QNIC_RSS_HASH_TYPES);
    }
    memcpy(vdev->config, c, MIN(vdev->config_len, sizeof(c)));
}

static void vn_set_config(QnicVirtioDevice *vdev, unsigned off, unsigned len)
{
    VirtioNet *n = vdev->opaque;

    /* Only a legacy driver without CTRL_MAC_ADDR may change the MAC here. */
    if (off < 6 && !has_f(n, VIRTIO_NET_F_CTRL_MAC_ADDR) && !has_f(n, VIRTIO_F_VERSION_1)) {
        memcpy(n->mac, vdev->config, 6);
        return;
    }
    qnic_guest_error("virtio-net: write to read-only config offset %u", off);
}

/* ---- link status ---- */

static void vn_link_status_changed(QnicNetClient *nc)
{
    VirtioNet *n = nc->opaque;
    uint16_t old = n->status;

    if (nc->link_down) {
        n->status &= ~VIRTIO_NET_S_LINK_UP;
    } else {
        n->status |= VIRTIO_NET_S_LINK_UP;
    }
    if (n->status != old && has_f(n, VIRTIO_NET_F_STATUS)) {
        qnic_virtio_notify_config(&n->vdev);
    }
}

/* ---- vhost: the data queues in a backend process ---- */

static uint64_t vhost_data_features(uint64_t f)
{
    uint64_t mask = 0;

    for (const int *b = vhost_net_feature_bits; *b >= 0; b++) {
        mask |= 1ull << *b;
    }
    return f & mask;
}

/* Rings of the pairs the driver uses run, the others are disabled (the
 * VIRTIO_NET_CTRL_MQ command moves the line). */
static void vhost_apply_pairs(VirtioNet *n)
{
    GError *err = NULL;

    for (unsigned i = 0; n->vhost_started && i < n->max_pairs; i++) {
        bool on = i < n->curr_pairs;
        if (!qnic_vhost_set_vring_enable(n->vhost, 2 * i, on, &err) ||
            !qnic_vhost_set_vring_enable(n->vhost, 2 * i + 1, on, &err)) {
            qnic_warn("virtio-net: vhost: %s", err->message);
            g_clear_error(&err);
            return;
        }
    }
}

void virtio_net_vhost_start(VirtioNet *n)
{
    GError *err = NULL;
    uint64_t acked = vhost_data_features(n->vdev.guest_features);

    n->vhost_held = false;
    if (!n->vhost || n->vhost_started || !qnic_virtio_driver_ok(&n->vdev) ||
        !n->vhost->connected) {
        return;
    }
    if (acked & ~n->vhost->backend_features) {
        qnic_report("virtio-net: the vhost backend lacks features 0x%" PRIx64 " the driver "
                    "accepted; link stays down", acked & ~n->vhost->backend_features);
        if (n->q[0].nc && n->q[0].nc->peer) {
            qnic_net_set_link(n->q[0].nc->peer, false);
        }
        return;
    }
    /* The backend owns the rings now: nothing of qnic's may touch them. */
    for (unsigned i = 0; i < n->max_pairs; i++) {
        virtio_net_tx_stop(&n->q[i]);
    }
    if (!qnic_vhost_dev_start(n->vhost, &n->vdev, n->ctrl_index, acked, &err)) {
        qnic_report("virtio-net: starting the vhost backend: %s", err->message);
        g_error_free(err);
        return;
    }
    if (n->host_mtu && n->vhost->ops->set_mtu &&
        !n->vhost->ops->set_mtu(n->vhost, n->host_mtu, &err)) {
        qnic_report("virtio-net: vhost backend refused MTU %u: %s", n->host_mtu, err->message);
        g_clear_error(&err);
    }
    n->vhost_started = true;
    vhost_apply_pairs(n);
    virtio_net_vhost_ctrl_replay(n);
}

void virtio_net_vhost_stop(VirtioNet *n)
{
    n->vhost_held = false;
    if (n->vhost && n->vhost_started) {
        qnic_vhost_dev_stop(n->vhost);
        n->vhost_started = false;
    }
}

/* A backend came or went (see backends/vhost-user-netdev.c). */
static void vhost_event(void *opaque, bool connected)
{
    VirtioNet *n = opaque;

    if (!connected) {
        /* the vhost layer already took the rings back */
        n->vhost_started = false;
        return;
    }
    if (qnic_virtio_driver_ok(&n->vdev)) {
        /* As QEMU after a backend crash: the rings restart from what the
         * last backend completed. */
        virtio_net_vhost_start(n);
    }
}

void virtio_net_set_pairs(VirtioNet *n, unsigned pairs)
{
    n->curr_pairs = pairs;
    vhost_apply_pairs(n);
    /* Queues the driver does not use leave the backend's steering, as in
     * QEMU (a multiqueue tap detaches them). */
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (n->q[i].nc) {
            qnic_net_peer_set_queue_enabled(n->q[i].nc, i < pairs);
        }
    }
    for (unsigned i = 0; i < pairs && i < n->max_pairs; i++) {
        if (n->q[i].nc) {
            qnic_net_flush_queued(n->q[i].nc);
        }
    }
}

/* ---- virtio device ops ---- */

/* Queue layout for N active-capable pairs: rx0 tx0 ... rxN-1 txN-1 ctrl.
 * N is 1 until MQ or RSS is negotiated, so the control queue sits at index
 * 2 for drivers without them (virtio 1.2 5.1.2) and QEMU's num_queues
 * matches. */
/* The pairs the layout has with `features`. */
static unsigned layout_pairs(VirtioNet *n, uint64_t features)
{
    return features & ((1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_RSS)) ? n->max_pairs : 1;
}

/* Queue count and sizes for `pairs` pairs and the control queue. */
static unsigned layout_sizes(VirtioNet *n, unsigned pairs, uint16_t *sizes)
{
    for (unsigned i = 0; i < pairs; i++) {
        sizes[2 * i] = n->rx_queue_size;
        sizes[2 * i + 1] = n->tx_queue_size;
    }
    sizes[2 * pairs] = 64;
    return 2 * pairs + 1;
}

void virtio_net_layout(VirtioNet *n, unsigned pairs)
{
    uint16_t sizes[QNIC_VIRTIO_MAX_QUEUES];
    unsigned nq = layout_sizes(n, pairs, sizes);

    if (nq == n->vdev.num_queues && n->ctrl == &n->vdev.vqs[nq - 1]) {
        return;
    }
    qnic_virtio_set_num_queues(&n->vdev, nq, sizes);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        /* Pairs beyond the layout keep pointing at unconfigured queues
         * past num_queues; they are never enabled. */
        n->q[i].rx = &n->vdev.vqs[2 * i];
        n->q[i].tx = &n->vdev.vqs[2 * i + 1];
    }
    n->ctrl = &n->vdev.vqs[nq - 1];
    n->ctrl_index = nq - 1;
}

void virtio_net_layout_for(VirtioNet *n, uint64_t features)
{
    virtio_net_layout(n, layout_pairs(n, features));
}

static unsigned vn_queue_layout(QnicVirtioDevice *vdev, uint64_t features, uint16_t *sizes)
{
    VirtioNet *n = vdev->opaque;

    return layout_sizes(n, layout_pairs(n, features), sizes);
}

static void vn_handle_queue(QnicVirtioDevice *vdev, unsigned idx)
{
    VirtioNet *n = vdev->opaque;

    if (idx == n->ctrl_index) {
        qnic_device_enter(n->dev);
        virtio_net_handle_ctrl(n);
        qnic_device_leave(n->dev);
        return;
    }
    if (idx > n->ctrl_index || idx / 2 >= n->max_pairs) {
        return;
    }
    if (n->vhost_held) {
        /* The rings were taken back for a save and the VM runs again. */
        virtio_net_vhost_start(n);
    }
    if (n->vhost_started) {
        qnic_vhost_kick(n->vhost, idx);
        return;
    }
    if (idx % 2 == 0) {
        /* New RX buffers: deliver what the backend queued for us. */
        if (n->q[idx / 2].nc) {
            qnic_net_flush_queued(n->q[idx / 2].nc);
        }
    } else {
        virtio_net_handle_tx(n, &n->q[idx / 2]);
    }
}

void virtio_net_update_hdr_len(VirtioNet *n)
{
    bool v1 = has_f(n, VIRTIO_F_VERSION_1);

    n->mergeable = has_f(n, VIRTIO_NET_F_MRG_RXBUF);
    if (has_f(n, VIRTIO_NET_F_HASH_REPORT)) {
        n->guest_hdr_len = sizeof(struct virtio_net_hdr_v1_hash);
    } else if (n->mergeable || v1) {
        n->guest_hdr_len = sizeof(struct virtio_net_hdr_mrg_rxbuf);
    } else {
        n->guest_hdr_len = sizeof(struct virtio_net_hdr);
    }
    n->host_hdr_len = 0;
    if (n->has_vnet_hdr) {
        unsigned want = MIN(n->guest_hdr_len, (unsigned)sizeof(struct virtio_net_hdr_mrg_rxbuf));
        QnicNetClient *nc = n->q[0].nc;
        if (nc && qnic_net_peer_has_vnet_hdr_len(nc, want)) {
            n->host_hdr_len = want;
        } else {
            n->host_hdr_len = sizeof(struct virtio_net_hdr);
        }
        for (unsigned i = 0; i < n->max_pairs; i++) {
            if (n->q[i].nc && n->q[i].nc->peer) {
                qnic_net_peer_set_vnet_hdr_len(n->q[i].nc, n->host_hdr_len);
            }
        }
    }
}

/* Features that need another (virtio 1.2 5.1.3.1): a driver may not accept
 * one without the other. The `prop` ones are also rules on the properties
 * ("Property 'mq' requires 'ctrl_vq=on'"), as QEMU checks them. */
static const struct {
    unsigned feature, needs;
    const char *name, *needs_name;
    bool prop;
} feature_deps[] = {
#define DEP(a, b, prop) { a, b, #a, #b, prop }
    DEP(VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VQ, true),
    DEP(VIRTIO_NET_F_CTRL_VLAN, VIRTIO_NET_F_CTRL_VQ, true),
    DEP(VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_F_CTRL_VQ, true),
    DEP(VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_VQ, true),
    DEP(VIRTIO_NET_F_RSS, VIRTIO_NET_F_CTRL_VQ, true),
    DEP(VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_CTRL_VQ, true),
    DEP(VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_RX, true),
    DEP(VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_CSUM, false),
    DEP(VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_CSUM, false),
    DEP(VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_CSUM, false),
    DEP(VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_CSUM, false),
#undef DEP
};

static bool vn_validate_features(QnicVirtioDevice *vdev, uint64_t f)
{
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(feature_deps); i++) {
        if ((f & (1ull << feature_deps[i].feature)) && !(f & (1ull << feature_deps[i].needs))) {
            qnic_guest_error("virtio-net: feature %s without %s", feature_deps[i].name,
                             feature_deps[i].needs_name);
            return false;
        }
    }
    {
        VirtioNet *n = vdev->opaque;
        uint64_t lack = n->vhost ? vhost_data_features(f) & ~n->vhost->backend_features : 0;
        if (lack && n->vhost->connected) {
            /* Offered by the transport (VERSION_1) but not by the backend. */
            qnic_guest_error("virtio-net: features 0x%" PRIx64 " are not implemented by the "
                             "vhost backend", lack);
            return false;
        }
    }
    return true;
}

static void vn_set_features(QnicVirtioDevice *vdev, uint64_t f)
{
    VirtioNet *n = vdev->opaque;

    virtio_net_layout_for(n, f);
    virtio_net_update_hdr_len(n);
    n->curr_guest_offloads = f & VIRTIO_NET_GUEST_OFFLOADS;
    virtio_net_apply_offloads(n);
    if (f & (1ull << VIRTIO_NET_F_CTRL_VLAN)) {
        memset(n->vlans, 0, sizeof(n->vlans));
    } else {
        memset(n->vlans, 0xff, sizeof(n->vlans));
    }
    virtio_net_set_pairs(n, 1);
    n->rss_enabled = false;
    n->hash_report = false;
    virtio_net_rss_steering_update(n);
}

static void vn_set_status(QnicVirtioDevice *vdev, uint8_t old, uint8_t status)
{
    VirtioNet *n = vdev->opaque;

    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
        for (unsigned i = 0; i < n->max_pairs; i++) {
            if (n->q[i].nc) {
                qnic_net_flush_queued(n->q[i].nc);
            }
            /* Frames the driver queued before DRIVER_OK go out now. */
            if (i < n->curr_pairs && qnic_vq_ready(n->q[i].tx) && !qnic_vq_empty(n->q[i].tx)) {
                virtio_net_tx_schedule(&n->q[i]);
            }
        }
        virtio_net_vhost_start(n);
    } else if (!(status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        virtio_net_vhost_stop(n);
    }
}

static void vn_reset(QnicVirtioDevice *vdev)
{
    VirtioNet *n = vdev->opaque;

    /* GET_VRING_BASE before the core forgets the rings */
    virtio_net_vhost_stop(n);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        virtio_net_tx_stop(&n->q[i]);
    }
    n->promisc = true;     /* QEMU's power-on receive mode */
    n->allmulti = n->alluni = n->nomulti = n->nouni = n->nobcast = false;
    memset(&n->mac_table, 0, sizeof(n->mac_table));
    memset(n->vlans, 0, sizeof(n->vlans));
    memcpy(n->mac, n->perm_mac, 6);
    n->status &= ~VIRTIO_NET_S_ANNOUNCE;
    n->curr_pairs = 1;
    n->curr_guest_offloads = 0;
    n->rss_enabled = n->hash_report = false;
    virtio_net_rss_steering_update(n);
    n->guest_hdr_len = sizeof(struct virtio_net_hdr);
    n->mergeable = false;
}

static void vn_reset_layout(QnicVirtioDevice *vdev)
{
    VirtioNet *n = vdev->opaque;

    vn_reset(vdev);
    n->ctrl = NULL;
    virtio_net_layout(n, 1);
}

static void vn_queue_reset(QnicVirtioDevice *vdev, unsigned idx)
{
    VirtioNet *n = vdev->opaque;

    if (n->vhost_started && idx < n->ctrl_index) {
        qnic_vhost_vq_stop(n->vhost, idx);
    }
    if (idx < n->ctrl_index && idx % 2 == 1) {
        virtio_net_tx_stop(&n->q[idx / 2]);
    }
}

static void vn_queue_enable(QnicVirtioDevice *vdev, unsigned idx)
{
    VirtioNet *n = vdev->opaque;

    if (n->vhost_started && idx < n->ctrl_index) {
        GError *err = NULL;
        if (!qnic_vhost_vq_start(n->vhost, idx, &err) ||
            !qnic_vhost_set_vring_enable(n->vhost, idx, idx / 2 < n->curr_pairs, &err)) {
            qnic_warn("virtio-net: vhost: re-enabling queue %u: %s", idx, err->message);
            g_error_free(err);
        }
        return;
    }
    if (idx < n->ctrl_index && idx % 2 == 0 && n->q[idx / 2].nc) {
        qnic_net_flush_queued(n->q[idx / 2].nc);
    }
}

/* A data ring with the backend follows its vector (mask, reprogramming). */
static void vn_guest_notifier_changed(QnicVirtioDevice *vdev, unsigned idx)
{
    VirtioNet *n = vdev->opaque;

    if (n->vhost_started && idx < n->ctrl_index) {
        qnic_vhost_vq_update_call(n->vhost, idx);
    }
}

static const QnicVirtioDeviceOps vn_ops = {
    .get_config = vn_get_config,
    .set_config = vn_set_config,
    .validate_features = vn_validate_features,
    .set_features = vn_set_features,
    .set_status = vn_set_status,
    .reset = vn_reset_layout,
    .handle_queue = vn_handle_queue,
    .queue_reset = vn_queue_reset,
    .queue_enable = vn_queue_enable,
    .guest_notifier_changed = vn_guest_notifier_changed,
    .queue_layout = vn_queue_layout,
};

/* announce-self: a driver that offered to announce (GUEST_ANNOUNCE, which
 * needs the control queue) is asked to, through the status field's
 * ANNOUNCE bit and a configuration interrupt; it acks on the control
 * queue (virtio-net-ctrl.c). */
static void vn_announce(QnicNetClient *nc)
{
    virtio_net_guest_announce(nc->opaque);
}

static const QnicNetClientOps vn_client_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = virtio_net_receive_iov,
    .can_receive = virtio_net_can_receive,
    .link_status_changed = vn_link_status_changed,
    .query_rx_filter = virtio_net_query_rx_filter,
    .announce = vn_announce,
};

/* ---- realize: properties -> features, queues, config ---- */

/* The property that offers feature bit `bit` (the schema's "feature"),
 * NULL if none does. */
static const char *feature_prop(QnicOpts *opts, unsigned bit)
{
    for (const QnicPropDesc *p = opts->schema->props; p->name; p++) {
        if (p->has_feature && p->feature == bit) {
            return p->name;
        }
    }
    return NULL;
}

/* A feature property set on whose feature needs one set off. */
static bool prop_deps(QnicOpts *opts, GError **errp)
{
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(feature_deps); i++) {
        const char *a, *b;

        if (!feature_deps[i].prop) {
            continue;
        }
        a = feature_prop(opts, feature_deps[i].feature);
        b = feature_prop(opts, feature_deps[i].needs);
        if (a && b && qnic_opts_is_set(opts, a) && qnic_opts_get_bool(opts, a, false) &&
            !qnic_opts_get_bool(opts, b, true)) {
            qnic_error_setg_invalid(errp, "Property '%s' requires '%s=on'", a, b);
            return false;
        }
    }
    return true;
}

/* The feature bits the properties offer: each bool property with a
 * "feature" in qapi/device-virtio.json offers that bit when on. */
static uint64_t prop_features(QnicOpts *opts)
{
    uint64_t f = 1ull << VIRTIO_NET_F_MAC;

    for (const QnicPropDesc *p = opts->schema->props; p->name; p++) {
        if (p->has_feature && qnic_opts_get_bool(opts, p->name, false)) {
            f |= 1ull << p->feature;
        }
    }
    return f;
}

/* speed, duplex and host_mtu: the link as the configuration space tells it. */
static bool realize_link_props(VirtioNet *n, QnicOpts *opts, uint64_t *f, GError **errp)
{
    const char *duplex = qnic_opts_get(opts, "duplex");

    n->speed = qnic_opts_get_int(opts, "speed", -1);
    if (n->speed < -1) {
        qnic_error_setg_invalid(errp, "'speed' must be between 0 and INT_MAX");
        return false;
    }
    n->duplex = 0xff;   /* DUPLEX_UNKNOWN */
    if (duplex) {
        if (!strcmp(duplex, "half")) {
            n->duplex = 0;
        } else if (!strcmp(duplex, "full")) {
            n->duplex = 1;
        } else {
            qnic_error_setg_invalid(errp, "'duplex' must be 'half' or 'full'");
            return false;
        }
        *f |= 1ull << VIRTIO_NET_F_SPEED_DUPLEX;
    }
    if (n->speed >= 0) {
        *f |= 1ull << VIRTIO_NET_F_SPEED_DUPLEX;
    }
    n->host_mtu = qnic_opts_get_uint(opts, "host_mtu", 0);
    if (n->host_mtu) {
        *f |= 1ull << VIRTIO_NET_F_MTU;
    }
    return true;
}

/* Ring sizes, TX mitigation and the number of queue pairs. */
static bool realize_queue_props(VirtioNet *n, QnicOpts *opts, GError **errp)
{
    const char *tx = qnic_opts_get(opts, "tx");
    int netdev_queues = qnic_nic_netdev_queues(n->dev->machine->cfg.backends, opts);

    n->rx_queue_size = qnic_opts_get_uint(opts, "rx_queue_size", 256);
    if (n->rx_queue_size < 256 || n->rx_queue_size > QNIC_VQ_MAX_SIZE ||
        !QNIC_IS_POW2(n->rx_queue_size)) {
        qnic_error_setg_invalid(errp, "Invalid rx_queue_size (= %u), must be a power of 2 "
                                "between 256 and 1024.", n->rx_queue_size);
        return false;
    }
    n->tx_queue_size = qnic_opts_get_uint(opts, "tx_queue_size", 256);
    if (n->tx_queue_size < 256 || n->tx_queue_size > QNIC_VQ_MAX_SIZE ||
        !QNIC_IS_POW2(n->tx_queue_size)) {
        qnic_error_setg_invalid(errp, "Invalid tx_queue_size (= %u), must be a power of 2 "
                                "between 256 and 1024.", n->tx_queue_size);
        return false;
    }
    /* QEMU caps TX at 256 entries unless the vhost backend takes more; so
     * do we (realize_peer, once the peer is known). */
    n->tx_timer_mode = tx && !strcmp(tx, "timer");
    if (tx && !n->tx_timer_mode && strcmp(tx, "bh")) {
        qnic_warn("virtio-net: Unknown option tx=%s, valid options: \"timer\" \"bh\"", tx);
        qnic_warn("Defaulting to \"bh\"");
    }
    n->tx_timeout = qnic_opts_get_uint(opts, "x-txtimer", 150000);
    n->tx_burst = qnic_opts_get_int(opts, "x-txburst", 256);
    if (n->tx_burst <= 0) {
        qnic_error_setg_invalid(errp, "Invalid x-txburst (= %d), must be positive", n->tx_burst);
        return false;
    }
    n->max_pairs = MAX(netdev_queues, 1);
    if (n->max_pairs * 2 + 1 > QNIC_VIRTIO_MAX_QUEUES) {
        qnic_error_setg_invalid(errp, "Invalid number of queue pairs (= %u). Must be a positive "
                                "integer less than %d.", n->max_pairs,
                                (QNIC_VIRTIO_MAX_QUEUES - 1) / 2);
        return false;
    }
    return true;
}

/* What the netdev (the NIC's peer) can take decides the rest: vnet
 * headers for the offloads, UFO, and a vhost backend's features. */
static uint64_t realize_peer(VirtioNet *n, uint64_t f)
{
    n->vhost = qnic_vhost_net_get(n->nic->ncs[0]->peer);
    n->tx_queue_size = MIN(n->tx_queue_size, qnic_vhost_max_tx_queue_size(n->vhost));
    n->has_vnet_hdr = n->nic->ncs[0]->peer && qnic_net_peer_has_vnet_hdr(n->nic->ncs[0]);
    if (!n->has_vnet_hdr) {
        /* Offloads need a peer that speaks vnet headers, as in QEMU. */
        f &= ~((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4) |
               (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN) |
               (1ull << VIRTIO_NET_F_HOST_UFO) | VIRTIO_NET_GUEST_OFFLOADS);
    } else {
        if (!qnic_net_peer_has_ufo(n->nic->ncs[0])) {
            f &= ~((1ull << VIRTIO_NET_F_HOST_UFO) | (1ull << VIRTIO_NET_F_GUEST_UFO));
        }
        for (unsigned i = 0; i < n->max_pairs; i++) {
            if (n->nic->ncs[i]->peer) {
                qnic_net_peer_using_vnet_hdr(n->nic->ncs[i], true);
            }
        }
    }

    if (n->vhost) {
        f = qnic_vhost_get_features(n->vhost, vhost_net_feature_bits, f);
        qnic_vhost_set_event_handler(n->vhost, vhost_event, n);
    }
    return f;
}

/* The virtio device with its queues, link status and queue pairs. */
static void realize_device(VirtioNet *n, QnicDevice *dev, uint64_t f)
{
    unsigned nq = 2 * n->max_pairs + 1;
    uint16_t *sizes = g_new(uint16_t, nq);

    for (unsigned i = 0; i < n->max_pairs; i++) {
        sizes[2 * i] = n->rx_queue_size;
        sizes[2 * i + 1] = n->tx_queue_size;
    }
    sizes[nq - 1] = 64;
    qnic_virtio_init(&n->vdev, dev, VIRTIO_ID_NET, config_size(f), nq, sizes, &vn_ops, n);
    g_free(sizes);
    n->vdev.host_features = f;
    n->vdev.legacy_features = (1ull << VIRTIO_NET_F_GSO) | (1ull << VIRTIO_F_NOTIFY_ON_EMPTY) |
                              (1ull << VIRTIO_F_ANY_LAYOUT);
    n->status = VIRTIO_NET_S_LINK_UP;
    /* A backend whose link went down before this NIC was plugged in
     * shows as a missing cable from the start. */
    if (n->nic->ncs[0]->peer && n->nic->ncs[0]->peer->link_down) {
        /* the NIC's clients follow, so that the link coming up later is
         * seen as a change */
        for (unsigned i = 0; i < n->max_pairs; i++) {
            n->nic->ncs[i]->link_down = true;
        }
    }
    if (n->nic->ncs[0]->link_down) {
        n->status = 0;
    }

    n->q = g_new0(VirtioNetQueue, n->max_pairs);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        virtio_net_queue_init(n, i);
    }
    n->ctrl_elem.iov = n->ctrl_iov;
    n->ctrl_elem.iov_cap = QNIC_ARRAY_SIZE(n->ctrl_iov);
    vn_reset_layout(&n->vdev);
}

static void virtio_net_unrealize(VirtioNet *n);

static bool virtio_net_realize(VirtioNet *n, QnicDevice *dev, QnicOpts *opts, const char *model,
                               GError **errp)
{
    uint64_t f = prop_features(opts);

    n->dev = dev;
    if (!prop_deps(opts, errp) || !realize_link_props(n, opts, &f, errp) ||
        !realize_queue_props(n, opts, errp)) {
        return false;
    }
    n->nic = qnic_nic_new(dev->machine->cfg.backends, &vn_client_ops, opts, model, n->max_pairs, n, errp);
    if (!n->nic) {
        return false;
    }
    memcpy(n->perm_mac, n->nic->mac, 6);
    memcpy(n->mac, n->nic->mac, 6);
    f = realize_peer(n, f);
    realize_device(n, dev, f);
    if (!virtio_net_rss_ebpf_init(n, opts, f, errp)) {
        virtio_net_unrealize(n);
        return false;
    }
    return true;
}

static void virtio_net_unrealize(VirtioNet *n)
{
    virtio_net_rss_ebpf_cleanup(n);
    if (n->vhost) {
        virtio_net_vhost_stop(n);
        qnic_vhost_set_event_handler(n->vhost, NULL, NULL);
        n->vhost = NULL;
    }
    if (n->q) {
        for (unsigned i = 0; i < n->max_pairs; i++) {
            virtio_net_queue_cleanup(&n->q[i]);
        }
        g_clear_pointer(&n->q, g_free);
    }
    if (n->nic) {
        qnic_nic_free(n->nic);
        n->nic = NULL;
    }
    qnic_virtio_cleanup(&n->vdev);
}

/* ---- virtio-net-pci and its variants ---- */

typedef struct VirtioNetPci {
    QnicVirtioPci pci;
    VirtioNet net;
} VirtioNetPci;

static const QnicVirtioPciInfo vn_pci_info = {
    .legacy_device_id = 0x1000,
    .class_code = 0x020000,
    .default_rom = "efi-virtio.rom",
};

static bool vn_pci_realize_kind(QnicDevice *dev, QnicOpts *opts, QnicVirtioPciKind kind,
                                GError **errp)
{
    VirtioNetPci *s = (VirtioNetPci *)dev;
    uint64_t vectors;

    if (!virtio_net_realize(&s->net, dev, opts, dev->cls->name, errp)) {
        return false;
    }
    vectors = qnic_opts_get_uint(opts, "vectors", 0xffffffffu);
    if (vectors == 0xffffffffu) {
        vectors = 2 * s->net.max_pairs + 2;
    }
    if (vectors > 2048) {
        qnic_error_setg_invalid(errp, "Property '%s.vectors' doesn't take value '%" PRIu64 "'",
                                dev->cls->name, vectors);
        virtio_net_unrealize(&s->net);
        return false;
    }
    if (!qnic_virtio_pci_realize(&s->pci, &s->net.vdev, opts, kind, &vn_pci_info, vectors, errp)) {
        virtio_net_unrealize(&s->net);
        return false;
    }
    return true;
}

static bool vn_pci_realize(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    return vn_pci_realize_kind(dev, opts, QNIC_VIRTIO_PCI_AUTO, errp);
}

static bool vn_pci_realize_transitional(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    return vn_pci_realize_kind(dev, opts, QNIC_VIRTIO_PCI_TRANSITIONAL, errp);
}

static bool vn_pci_realize_non_transitional(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    return vn_pci_realize_kind(dev, opts, QNIC_VIRTIO_PCI_NON_TRANSITIONAL, errp);
}

static void vn_pci_reset(QnicDevice *dev)
{
    VirtioNetPci *s = (VirtioNetPci *)dev;

    qnic_virtio_pci_reset(&s->pci);
    qnic_pci_device_reset(&s->pci.pci);
}

static void vn_pci_unrealize(QnicDevice *dev)
{
    VirtioNetPci *s = (VirtioNetPci *)dev;

    qnic_virtio_pci_unrealize(&s->pci);
    virtio_net_unrealize(&s->net);
}

/* Sections: pci (the function), virtio-pci, virtio, virtio-net
 * (virtio-net-state.c). */
static bool vn_pci_save_state(QnicDevice *dev, GByteArray *out, GError **errp)
{
    VirtioNetPci *s = (VirtioNetPci *)dev;

    qnic_pci_state_save(&s->pci.pci, out);
    qnic_virtio_pci_state_save(&s->pci, out);
    virtio_net_state_save(&s->net, out);
    return true;
}

static bool vn_pci_load_state(QnicDevice *dev, QnicStateReader *r, GError **errp)
{
    VirtioNetPci *s = (VirtioNetPci *)dev;
    g_autoptr(QnicPciState) pci = qnic_pci_state_read(&s->pci.pci, r, errp);
    g_autoptr(QnicVirtioPciState) vp = NULL;
    g_autoptr(VirtioNetLoad) ld = NULL;

    if (!pci || !(vp = qnic_virtio_pci_state_read(&s->pci, r, errp)) ||
        !(ld = virtio_net_state_read(&s->net, r, s->pci.nvectors, errp)) ||
        !qnic_state_reader_done(r, errp)) {
        return false;
    }
    virtio_net_state_quiesce(&s->net);
    qnic_virtio_pci_state_begin(&s->pci);
    qnic_pci_state_apply(&s->pci.pci, pci);
    virtio_net_state_apply(&s->net, ld);
    qnic_virtio_pci_state_apply(&s->pci, vp);
    virtio_net_state_resume(&s->net);
    return true;
}

static const QnicDeviceClass virtio_net_pci_class = {
    .name = "virtio-net-pci",
    .bus = "pci",
    .instance_size = sizeof(VirtioNetPci),
    .realize = vn_pci_realize,
    .reset = vn_pci_reset,
    .unrealize = vn_pci_unrealize,
    .save_state = vn_pci_save_state,
    .load_state = vn_pci_load_state,
};
QNIC_DEVICE_REGISTER(virtio_net_pci_class)

static const QnicDeviceClass virtio_net_pci_transitional_class = {
    .name = "virtio-net-pci-transitional",
    .bus = "pci",
    .instance_size = sizeof(VirtioNetPci),
    .realize = vn_pci_realize_transitional,
    .reset = vn_pci_reset,
    .unrealize = vn_pci_unrealize,
    .save_state = vn_pci_save_state,
    .load_state = vn_pci_load_state,
};
QNIC_DEVICE_REGISTER(virtio_net_pci_transitional_class)

static const QnicDeviceClass virtio_net_pci_non_transitional_class = {
    .name = "virtio-net-pci-non-transitional",
    .bus = "pci",
    .instance_size = sizeof(VirtioNetPci),
    .realize = vn_pci_realize_non_transitional,
    .reset = vn_pci_reset,
    .unrealize = vn_pci_unrealize,
    .save_state = vn_pci_save_state,
    .load_state = vn_pci_load_state,
};
QNIC_DEVICE_REGISTER(virtio_net_pci_non_transitional_class)

/* ---- virtio-net-device on virtio-mmio ---- */

typedef struct VirtioNetMmio {
    QnicVirtioMmio mmio;
    VirtioNet net;
} VirtioNetMmio;

static bool vn_mmio_realize(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    VirtioNetMmio *s = (VirtioNetMmio *)dev;

    if (!virtio_net_realize(&s->net, dev, opts, dev->cls->name, errp)) {
        return false;
    }
    if (!qnic_virtio_mmio_realize(&s->mmio, &s->net.vdev, opts, errp)) {
        virtio_net_unrealize(&s->net);
        return false;
    }
    return true;
}

static void vn_mmio_reset(QnicDevice *dev)
{
    qnic_virtio_mmio_reset(&((VirtioNetMmio *)dev)->mmio);
}

static void vn_mmio_unrealize(QnicDevice *dev)
{
    VirtioNetMmio *s = (VirtioNetMmio *)dev;

    qnic_virtio_mmio_unrealize(&s->mmio);
    virtio_net_unrealize(&s->net);
}

/* Sections: virtio-mmio, virtio, virtio-net (virtio-net-state.c). */
static bool vn_mmio_save_state(QnicDevice *dev, GByteArray *out, GError **errp)
{
    VirtioNetMmio *s = (VirtioNetMmio *)dev;

    qnic_virtio_mmio_state_save(&s->mmio, out);
    virtio_net_state_save(&s->net, out);
    return true;
}

static bool vn_mmio_load_state(QnicDevice *dev, QnicStateReader *r, GError **errp)
{
    VirtioNetMmio *s = (VirtioNetMmio *)dev;
    g_autoptr(QnicVirtioMmioState) vm = qnic_virtio_mmio_state_read(&s->mmio, r, errp);
    g_autoptr(VirtioNetLoad) ld = NULL;

    if (!vm || !(ld = virtio_net_state_read(&s->net, r, 0, errp)) ||
        !qnic_state_reader_done(r, errp)) {
        return false;
    }
    virtio_net_state_quiesce(&s->net);
    virtio_net_state_apply(&s->net, ld);
    qnic_virtio_mmio_state_apply(&s->mmio, vm);
    virtio_net_state_resume(&s->net);
    return true;
}

static const QnicDeviceClass virtio_net_device_class = {
    .name = "virtio-net-device",
    .bus = "virtio-mmio",
    .instance_size = sizeof(VirtioNetMmio),
    .realize = vn_mmio_realize,
    .reset = vn_mmio_reset,
    .unrealize = vn_mmio_unrealize,
    .save_state = vn_mmio_save_state,
    .load_state = vn_mmio_load_state,
};
QNIC_DEVICE_REGISTER(virtio_net_device_class)

/* ---- virtio-net with no bus transport (the vhost-user device side) ---- */

typedef struct VirtioNetBare {
    QnicDevice dev;
    VirtioNet net;
} VirtioNetBare;

static bool vn_bare_realize(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    return virtio_net_realize(&((VirtioNetBare *)dev)->net, dev, opts, dev->cls->name, errp);
}

static void vn_bare_unrealize(QnicDevice *dev)
{
    virtio_net_unrealize(&((VirtioNetBare *)dev)->net);
}

/* Not registered: only qnic_virtio_net_new_bare() creates it, with
 * virtio-net-device's properties. */
static const QnicDeviceClass virtio_net_bare_class = {
    .name = "virtio-net-device",
    .bus = "none",
    .instance_size = sizeof(VirtioNetBare),
    .realize = vn_bare_realize,
    .unrealize = vn_bare_unrealize,
};

QnicVirtioDevice *qnic_virtio_net_new_bare(QnicMachine *m, const char *opts_str, GError **errp)
{
    g_autofree char *full = g_strconcat("virtio-net-device", *opts_str ? "," : "", opts_str, NULL);
    QnicOpts *opts = qnic_schema_parse(QNIC_SCHEMA_DEVICE, full, NULL, errp);
    QnicDevice *dev;

    if (!opts) {
        return NULL;
    }
    dev = qnic_device_create_class(m, &virtio_net_bare_class, opts->schema, opts, errp);
    return dev ? &((VirtioNetBare *)dev)->net.vdev : NULL;
}

void qnic_virtio_net_free_bare(QnicVirtioDevice *vdev)
{
    if (vdev) {
        qnic_device_destroy(vdev->dev);
    }
}

void qnic_virtio_net_bare_set_pairs(QnicVirtioDevice *vdev, unsigned pairs)
{
    VirtioNet *n = vdev->opaque;

    virtio_net_set_pairs(n, CLAMP(pairs, 1u, n->max_pairs));
}


bool qnic_virtio_net_guest_announce(QnicDevice *dev)
{
    const QnicDeviceClass *c = dev->cls;

    if (c == &virtio_net_pci_class || c == &virtio_net_pci_transitional_class ||
        c == &virtio_net_pci_non_transitional_class) {
        return virtio_net_guest_announce(&((VirtioNetPci *)dev)->net);
    }
    if (c == &virtio_net_device_class) {
        return virtio_net_guest_announce(&((VirtioNetMmio *)dev)->net);
    }
    return false;
}
