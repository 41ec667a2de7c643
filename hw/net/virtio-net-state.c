/*
 * virtio-net's device state (qnic/state.h): the section "virtio-net" that
 * follows the transport's and the virtio core's, and the order in which a
 * loaded state is put into a running device. Apart from the device
 * (virtio-net.c) because loading checks hostile input against the
 * device's own limits (MAC table entries, queue pairs, RSS table and key,
 * offloads the driver may switch) and because taking a vhost backend's
 * rings back on save and handing the loaded bases over on load is a
 * sequence of its own.
 *
 * Saved: the MAC, the status field (link as the guest sees it, ANNOUNCE),
 * the queue pairs (maximum, which must match, and in use), the receive
 * modes, the MAC table with its overflow flags, the VLAN filter, the guest
 * offloads in force, and, in the subsection "virtio-net-rss" while RSS or
 * hash reports are on, the RSS configuration. Derived on load: the queue
 * layout and header lengths from the features, the NIC's link from the
 * status (as QEMU), the peer's offloads and steering.
 */
#include "virtio-net-internal.h"
#include "qnic/state.h"
#include "qnic/log.h"

#define VN_STATE_VERSION 1
#define VN_STATUS_BITS (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE)

typedef struct VnState {
    uint8_t mac[6];
    uint16_t status;
    uint32_t max_pairs, curr_pairs;
    bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
    uint32_t mac_in_use, mac_first_multi;
    bool uni_overflow, multi_overflow;
    uint8_t macs[MAC_TABLE_ENTRIES * 6];
    uint32_t vlans[MAX_VLAN / 32];
    uint64_t curr_guest_offloads;
    /* subsection virtio-net-rss */
    bool rss_enabled, hash_report;
    uint32_t rss_hash_types;
    uint16_t rss_table_len, rss_unclassified_queue, rss_max_tx_vq;
    uint8_t rss_key_len;
    uint8_t rss_key[QNIC_RSS_MAX_KEY];
    uint16_t rss_table[QNIC_RSS_MAX_TABLE];
} VnState;

static const QnicStateField vn_rss_fields[] = {
    QNIC_STATE_BOOL(VnState, rss_enabled, 0),
    QNIC_STATE_BOOL(VnState, hash_report, 0),
    QNIC_STATE_UINT(VnState, rss_hash_types, 0),
    QNIC_STATE_UINT_RANGE(VnState, rss_table_len, 0, 0, QNIC_RSS_MAX_TABLE),
    QNIC_STATE_UINT(VnState, rss_unclassified_queue, 0),
    QNIC_STATE_UINT(VnState, rss_max_tx_vq, 0),
    QNIC_STATE_UINT_RANGE(VnState, rss_key_len, 0, 0, QNIC_RSS_MAX_KEY),
    QNIC_STATE_BYTES(VnState, rss_key, 0),
    QNIC_STATE_UINT_ARRAY(VnState, rss_table, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc vn_rss_desc = {
    .name = "virtio-net-rss", .version = 1, .min_version = 1,
    .size = sizeof(VnState), .fields = vn_rss_fields,
};

static bool vn_rss_needed(const void *snap)
{
    const VnState *s = snap;

    return s->rss_enabled || s->hash_report;
}

static const QnicStateField vn_fields[] = {
    QNIC_STATE_BYTES(VnState, mac, 0),
    QNIC_STATE_UINT(VnState, status, 0),
    QNIC_STATE_UINT_RANGE(VnState, max_pairs, 0, 1, (QNIC_VIRTIO_MAX_QUEUES - 1) / 2),
    QNIC_STATE_UINT(VnState, curr_pairs, 0),
    QNIC_STATE_BOOL(VnState, promisc, 0),
    QNIC_STATE_BOOL(VnState, allmulti, 0),
    QNIC_STATE_BOOL(VnState, alluni, 0),
    QNIC_STATE_BOOL(VnState, nomulti, 0),
    QNIC_STATE_BOOL(VnState, nouni, 0),
    QNIC_STATE_BOOL(VnState, nobcast, 0),
    QNIC_STATE_UINT_RANGE(VnState, mac_in_use, 0, 0, MAC_TABLE_ENTRIES),
    QNIC_STATE_UINT(VnState, mac_first_multi, 0),
    QNIC_STATE_BOOL(VnState, uni_overflow, 0),
    QNIC_STATE_BOOL(VnState, multi_overflow, 0),
    QNIC_STATE_BYTES(VnState, macs, 0),
    QNIC_STATE_UINT_ARRAY(VnState, vlans, 0),
    QNIC_STATE_UINT(VnState, curr_guest_offloads, 0),
    QNIC_STATE_SUBSECTION(vn_rss_desc, vn_rss_needed),
    QNIC_STATE_END,
};

static const QnicStateDesc vn_desc = {
    .name = "virtio-net", .version = VN_STATE_VERSION, .min_version = 1,
    .size = sizeof(VnState), .fields = vn_fields,
};

struct VirtioNetLoad {
    QnicVirtioState *core;
    VnState net;
};

static void vn_fill(VirtioNet *n, VnState *s)
{
    memcpy(s->mac, n->mac, 6);
    s->status = n->status;
    s->max_pairs = n->max_pairs;
    s->curr_pairs = n->curr_pairs;
    s->promisc = n->promisc;
    s->allmulti = n->allmulti;
    s->alluni = n->alluni;
    s->nomulti = n->nomulti;
    s->nouni = n->nouni;
    s->nobcast = n->nobcast;
    s->mac_in_use = n->mac_table.in_use;
    s->mac_first_multi = n->mac_table.first_multi;
    s->uni_overflow = n->mac_table.uni_overflow;
    s->multi_overflow = n->mac_table.multi_overflow;
    memcpy(s->macs, n->mac_table.macs, sizeof(s->macs));
    memcpy(s->vlans, n->vlans, sizeof(s->vlans));
    s->curr_guest_offloads = n->curr_guest_offloads;
    s->rss_enabled = n->rss_enabled;
    s->hash_report = n->hash_report;
    if (vn_rss_needed(s)) {
        s->rss_hash_types = n->rss.hash_types;
        s->rss_table_len = n->rss.table_len;
        s->rss_unclassified_queue = n->rss.unclassified_queue;
        s->rss_max_tx_vq = n->rss.max_tx_vq;
        s->rss_key_len = n->rss.key_len;
        memcpy(s->rss_key, n->rss.key, sizeof(s->rss_key));
        memcpy(s->rss_table, n->rss.table, sizeof(s->rss_table));
    }
}

void virtio_net_state_save(VirtioNet *n, GByteArray *out)
{
    g_autofree VnState *s = g_new0(VnState, 1);

    if (n->vhost_started) {
        /* GET_VRING_BASE: the indices are the backend's */
        virtio_net_vhost_stop(n);
        n->vhost_held = true;
    }
    qnic_virtio_state_save(&n->vdev, out);
    vn_fill(n, s);
    qnic_state_write(out, &vn_desc, s);
}

/* RSS against the device: a table and key the data plane can index. */
static const char *vn_check_rss(VirtioNet *n, const VnState *s, uint64_t f)
{
    if ((s->rss_enabled && !(f & (1ull << VIRTIO_NET_F_RSS))) ||
        (s->hash_report && !(f & (1ull << VIRTIO_NET_F_HASH_REPORT)))) {
        return "RSS or hash reports on without the feature";
    }
    if (s->rss_hash_types & ~QNIC_RSS_HASH_TYPES) {
        return "unknown RSS hash types";
    }
    if (s->rss_table_len && !QNIC_IS_POW2(s->rss_table_len)) {
        return "RSS indirection table length is not a power of two";
    }
    if (s->rss_enabled && (s->rss_table_len == 0 || s->rss_max_tx_vq == 0)) {
        return "RSS on with no indirection table";
    }
    if (s->rss_max_tx_vq > n->max_pairs || s->rss_unclassified_queue >= n->max_pairs) {
        return "RSS queue beyond the queue pairs";
    }
    for (unsigned i = 0; i < s->rss_table_len; i++) {
        if (s->rss_table[i] >= n->max_pairs) {
            return "RSS indirection table entry beyond the queue pairs";
        }
    }
    return NULL;
}

static bool vn_check(VirtioNet *n, const VnState *s, uint64_t f, GError **errp)
{
    bool mq = f & ((1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_RSS));
    const char *why = NULL;

    if (s->max_pairs != n->max_pairs) {
        qnic_error_setg(errp, "virtio-net: the stream's device has %u queue pairs, this one "
                        "%u", s->max_pairs, n->max_pairs);
        return false;
    }
    if (s->curr_pairs < 1 || s->curr_pairs > (mq ? n->max_pairs : 1)) {
        why = "queue pairs in use out of range";
    } else if (s->mac_first_multi > s->mac_in_use) {
        why = "MAC table's first multicast entry beyond its entries";
    } else if (s->status & ~VN_STATUS_BITS) {
        why = "unknown status bits";
    } else if (s->curr_guest_offloads & ~(f & VIRTIO_NET_GUEST_OFFLOADS)) {
        why = "guest offloads the driver did not accept";
    } else {
        why = vn_check_rss(n, s, f);
    }
    if (why) {
        qnic_error_setg(errp, "virtio-net: %s (pairs %u of %u, MAC table %u/%u, status 0x%x)",
                        why, s->curr_pairs, n->max_pairs, s->mac_first_multi, s->mac_in_use,
                        s->status);
        return false;
    }
    return true;
}

VirtioNetLoad *virtio_net_state_read(VirtioNet *n, QnicStateReader *r, unsigned nvectors,
                                     GError **errp)
{
    g_autoptr(VirtioNetLoad) ld = g_new0(VirtioNetLoad, 1);

    ld->core = qnic_virtio_state_read(&n->vdev, r, nvectors, errp);
    if (!ld->core || !qnic_state_read(r, &vn_desc, &ld->net, errp) ||
        !vn_check(n, &ld->net, qnic_virtio_state_features(ld->core), errp)) {
        return NULL;
    }
    return g_steal_pointer(&ld);
}

void virtio_net_state_quiesce(VirtioNet *n)
{
    virtio_net_vhost_stop(n);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        virtio_net_tx_stop(&n->q[i]);
    }
}

static void vn_apply_filters(VirtioNet *n, const VnState *s)
{
    memcpy(n->mac, s->mac, 6);
    n->promisc = s->promisc;
    n->allmulti = s->allmulti;
    n->alluni = s->alluni;
    n->nomulti = s->nomulti;
    n->nouni = s->nouni;
    n->nobcast = s->nobcast;
    n->mac_table.in_use = s->mac_in_use;
    n->mac_table.first_multi = s->mac_first_multi;
    n->mac_table.uni_overflow = s->uni_overflow;
    n->mac_table.multi_overflow = s->multi_overflow;
    memcpy(n->mac_table.macs, s->macs, sizeof(s->macs));
    memcpy(n->vlans, s->vlans, sizeof(s->vlans));
}

static void vn_apply_rss(VirtioNet *n, const VnState *s)
{
    memset(&n->rss, 0, sizeof(n->rss));
    n->rss.hash_types = s->rss_hash_types;
    n->rss.table_len = s->rss_table_len;
    n->rss.unclassified_queue = s->rss_unclassified_queue;
    n->rss.max_tx_vq = s->rss_max_tx_vq;
    n->rss.key_len = s->rss_key_len;
    memcpy(n->rss.key, s->rss_key, sizeof(n->rss.key));
    memcpy(n->rss.table, s->rss_table, sizeof(n->rss.table));
    n->rss_enabled = s->rss_enabled;
    n->hash_report = s->hash_report;
    virtio_net_rss_steering_update(n);
}

void virtio_net_state_apply(VirtioNet *n, const VirtioNetLoad *ld)
{
    const VnState *s = &ld->net;

    virtio_net_layout_for(n, qnic_virtio_state_features(ld->core));
    qnic_virtio_state_apply(&n->vdev, ld->core);
    vn_apply_filters(n, s);
    n->status = s->status;
    /* The link as the guest last saw it, as QEMU loads it. */
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (n->q[i].nc) {
            n->q[i].nc->link_down = !(s->status & VIRTIO_NET_S_LINK_UP);
        }
    }
    virtio_net_update_hdr_len(n);
    n->curr_guest_offloads = s->curr_guest_offloads;
    virtio_net_apply_offloads(n);
    vn_apply_rss(n, s);
    virtio_net_set_pairs(n, s->curr_pairs);
}

void virtio_net_state_resume(VirtioNet *n)
{
    if (!qnic_virtio_driver_ok(&n->vdev)) {
        return;
    }
    virtio_net_vhost_start(n);
    if (n->vhost_started) {
        return;
    }
    for (unsigned i = 0; i < n->curr_pairs; i++) {
        /* Buffers given back in flight, or queued before the save. */
        if (qnic_vq_ready(n->q[i].tx)) {
            virtio_net_tx_schedule(&n->q[i]);
        }
        if (n->q[i].nc) {
            qnic_net_flush_queued(n->q[i].nc);
        }
    }
}

void virtio_net_state_free(VirtioNetLoad *ld)
{
    if (ld) {
        qnic_virtio_state_free(ld->core);
        g_free(ld);
    }
}

bool virtio_net_guest_announce(VirtioNet *n)
{
    if (!qnic_virtio_has_feature(&n->vdev, VIRTIO_NET_F_GUEST_ANNOUNCE) ||
        !qnic_virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_VQ)) {
        return false;
    }
    n->status |= VIRTIO_NET_S_ANNOUNCE;
    qnic_virtio_notify_config(&n->vdev);
    return true;
}
