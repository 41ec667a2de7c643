/*
 * virtio-net's control queue (virtio 1.2 5.1.6.5) and the state it
 * programs: receive modes, the MAC table and the VLAN filter that decide
 * which frames the data plane delivers, the number of queue pairs, guest
 * offloads, and RSS (Toeplitz hash over addresses and ports, indirection
 * table, hash reports). It is apart from the device and the data plane
 * because it is a parser of guest-written commands with rules of its own:
 * every length is checked against the command's layout before a field is
 * read, and a command either applies whole or answers VIRTIO_NET_ERR with
 * no state changed. The same state answers QMP's query-rx-filter.
 */
#include "virtio-net-internal.h"
#include "qnic/device.h"
#include "qnic/log.h"
#include "qnic/rss-ebpf.h"
#include <fcntl.h>

/* ---- RX filter ---- */

bool virtio_net_rx_filter(VirtioNet *n, const uint8_t *eth, size_t len)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

    if (n->promisc) {
        return true;
    }
    if (len < ETH_HLEN) {
        return false;
    }
    if (qnic_ld16be(eth + 12) == 0x8100 && len >= ETH_HLEN + 4) {
        uint16_t vid = qnic_ld16be(eth + 14) & 0xfff;
        if (!(n->vlans[vid >> 5] & (1u << (vid & 31)))) {
            return false;
        }
    }
    if (eth[0] & 1) {
        if (!memcmp(eth, bcast, 6)) {
            return !n->nobcast;
        }
        if (n->nomulti) {
            return false;
        }
        if (n->allmulti || n->mac_table.multi_overflow) {
            return true;
        }
        for (unsigned i = n->mac_table.first_multi; i < n->mac_table.in_use; i++) {
            if (!memcmp(eth, n->mac_table.macs[i], 6)) {
                return true;
            }
        }
        return false;
    }
    if (n->nouni) {
        return false;
    }
    if (n->alluni || n->mac_table.uni_overflow || !memcmp(eth, n->mac, 6)) {
        return true;
    }
    for (unsigned i = 0; i < n->mac_table.first_multi; i++) {
        if (!memcmp(eth, n->mac_table.macs[i], 6)) {
            return true;
        }
    }
    return false;
}

/* ---- control queue ---- */

static uint8_t ctrl_rx(VirtioNet *n, uint8_t cmd, const uint8_t *d, size_t len)
{
    bool on;

    if (len != 1) {
        return VIRTIO_NET_ERR;
    }
    on = d[0];
    if (cmd > VIRTIO_NET_CTRL_RX_ALLMULTI && !has_f(n, VIRTIO_NET_F_CTRL_RX_EXTRA)) {
        return VIRTIO_NET_ERR;
    }
    switch (cmd) {
    case VIRTIO_NET_CTRL_RX_PROMISC: n->promisc = on; break;
    case VIRTIO_NET_CTRL_RX_ALLMULTI: n->allmulti = on; break;
    case VIRTIO_NET_CTRL_RX_ALLUNI: n->alluni = on; break;
    case VIRTIO_NET_CTRL_RX_NOMULTI: n->nomulti = on; break;
    case VIRTIO_NET_CTRL_RX_NOUNI: n->nouni = on; break;
    case VIRTIO_NET_CTRL_RX_NOBCAST: n->nobcast = on; break;
    default: return VIRTIO_NET_ERR;
    }
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_mac(VirtioNet *n, uint8_t cmd, const uint8_t *d, size_t len)
{
    if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
        if (len != 6 || !has_f(n, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
            return VIRTIO_NET_ERR;
        }
        memcpy(n->mac, d, 6);
        return VIRTIO_NET_OK;
    }
    if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET) {
        size_t off = 0;
        uint32_t uni, multi;
        unsigned in_use = 0, first_multi;
        bool uni_over = false, multi_over = false;
        uint8_t macs[MAC_TABLE_ENTRIES][6];

        if (len < 4) {
            return VIRTIO_NET_ERR;
        }
        uni = qnic_ld32(d);
        off = 4;
        if ((uint64_t)uni * 6 > len - off) {
            return VIRTIO_NET_ERR;
        }
        if (uni <= MAC_TABLE_ENTRIES) {
            memcpy(macs, d + off, uni * 6);
            in_use = uni;
        } else {
            uni_over = true;
        }
        off += (size_t)uni * 6;
        first_multi = in_use;
        if (len - off < 4) {
            return VIRTIO_NET_ERR;
        }
        multi = qnic_ld32(d + off);
        off += 4;
        if ((uint64_t)multi * 6 != len - off) {
            return VIRTIO_NET_ERR;
        }
        if (multi <= MAC_TABLE_ENTRIES - in_use) {
            memcpy(macs[in_use], d + off, multi * 6);
            in_use += multi;
        } else {
            multi_over = true;
        }
        memcpy(n->mac_table.macs, macs, in_use * 6);
        n->mac_table.in_use = in_use;
        n->mac_table.first_multi = first_multi;
        n->mac_table.uni_overflow = uni_over;
        n->mac_table.multi_overflow = multi_over;
        return VIRTIO_NET_OK;
    }
    return VIRTIO_NET_ERR;
}

static uint8_t ctrl_vlan(VirtioNet *n, uint8_t cmd, const uint8_t *d, size_t len)
{
    uint16_t vid;

    if (len != 2) {
        return VIRTIO_NET_ERR;
    }
    vid = qnic_ld16(d);
    if (vid >= MAX_VLAN) {
        return VIRTIO_NET_ERR;
    }
    if (cmd == VIRTIO_NET_CTRL_VLAN_ADD) {
        n->vlans[vid >> 5] |= 1u << (vid & 31);
    } else if (cmd == VIRTIO_NET_CTRL_VLAN_DEL) {
        n->vlans[vid >> 5] &= ~(1u << (vid & 31));
    } else {
        return VIRTIO_NET_ERR;
    }
    return VIRTIO_NET_OK;
}

/* ---- RSS in the tap: the eBPF steering program ---- */

/* ebpf-rss-fds=PROG:CONFIG:KEY:TABLE, each an open descriptor number. */
static bool parse_rss_fds(const char *s, int *fds, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(s, ":", -1);
    guint n = g_strv_length(parts);

    if (n != QNIC_RSS_EBPF_NFDS) {
        qnic_error_setg_invalid(errp, "ebpf-rss-fds: expected %d file descriptors "
                                "(PROG:CONFIG:KEY:TABLE) but got %u", QNIC_RSS_EBPF_NFDS, n);
        return false;
    }
    for (guint i = 0; i < n; i++) {
        uint64_t v;

        if (!qnic_parse_uint(parts[i], &v, NULL) || v > INT_MAX || fcntl((int)v, F_GETFD) < 0) {
            qnic_error_setg_invalid(errp, "ebpf-rss-fds: '%s' is not an open file descriptor",
                                    parts[i]);
            return false;
        }
        fds[i] = (int)v;
    }
    return true;
}

bool virtio_net_rss_ebpf_init(VirtioNet *n, QnicOpts *opts, uint64_t features, GError **errp)
{
    const char *fds_opt = qnic_opts_get(opts, "ebpf-rss-fds");
    int mode = qnic_opts_get_onoffauto(opts, "x-ebpf-rss", -1);
    g_autoptr(GError) err = NULL;
    int fds[QNIC_RSS_EBPF_NFDS];

    if (!(features & (1ull << VIRTIO_NET_F_RSS))) {
        return true;
    }
    n->rss_ebpf_forced = fds_opt || mode == 1;
    if (mode == 0) {
        if (fds_opt) {
            qnic_error_setg_invalid(errp, "ebpf-rss-fds= asks for eBPF RSS, x-ebpf-rss=off for none");
            return false;
        }
        return true;
    }
    if (qnic_net_peer_set_steering_ebpf(n->nic->ncs[0], -1) == -ENOTSUP) {
        if (n->rss_ebpf_forced) {
            qnic_error_setg_invalid(errp, "eBPF RSS needs a netdev that takes a steering program "
                                    "(a tap with queues=2 or more)");
            return false;
        }
        return true;
    }
    if (fds_opt) {
        if (!parse_rss_fds(fds_opt, fds, errp)) {
            return false;
        }
        n->rss_ebpf = qnic_rss_ebpf_from_fds(fds, &err);
    } else {
        n->rss_ebpf = qnic_rss_ebpf_load(&err);
    }
    if (!n->rss_ebpf) {
        if (n->rss_ebpf_forced) {
            g_propagate_error(errp, g_steal_pointer(&err));
            return false;
        }
        /* as QEMU: software RSS, said only when tracing */
        qnic_log(QNIC_LOG_TRACE_NET, "virtio-net: %s; RSS in software", err->message);
    }
    return true;
}

bool virtio_net_rss_steering_update(VirtioNet *n)
{
    g_autoptr(GError) err = NULL;
    QnicNetClient *nc = n->nic ? n->nic->ncs[0] : NULL;
    bool want = n->rss_enabled && n->rss_ebpf && nc;
    int ret = 0;

    if (want && qnic_rss_ebpf_set_config(n->rss_ebpf, &n->rss, &err)) {
        ret = qnic_net_peer_set_steering_ebpf(nc, qnic_rss_ebpf_fd(n->rss_ebpf, QNIC_RSS_EBPF_PROG));
    }
    if (want && (err || ret < 0)) {
        qnic_warn("virtio-net: cannot steer with eBPF RSS (%s); RSS in software",
                  err ? err->message : g_strerror(-ret));
        want = false;
    }
    if (!want && n->rss_ebpf_steering) {
        qnic_net_peer_set_steering_ebpf(nc, -1);
    }
    n->rss_ebpf_steering = want;
    return !(n->rss_enabled && n->rss_ebpf) || want;
}

void virtio_net_rss_ebpf_cleanup(VirtioNet *n)
{
    n->rss_enabled = false;
    virtio_net_rss_steering_update(n);
    g_clear_pointer(&n->rss_ebpf, qnic_rss_ebpf_free);
}

/* RSS_CONFIG (do_rss) or HASH_CONFIG: parsed whole by net/rss.c, applied
 * only when valid. Which receive queue a frame takes follows from it in
 * the data plane (software RSS) or in the tap's eBPF program; where eBPF
 * was asked for (ebpf-rss-fds=, x-ebpf-rss=on) and the program cannot
 * steer, the command is refused and the old state stays. */
static uint8_t ctrl_rss(VirtioNet *n, bool do_rss, const uint8_t *d, size_t len)
{
    QnicRssConfig c, old = n->rss;
    bool old_rss = n->rss_enabled, old_report = n->hash_report;
    const char *why = NULL;

    if (!qnic_rss_parse_config(d, len, do_rss, n->max_pairs, &c, &why)) {
        qnic_guest_error("virtio-net: %s refused: %s", do_rss ? "RSS config" : "hash config", why);
        return VIRTIO_NET_ERR;
    }
    n->rss = c;
    n->rss_enabled = do_rss && c.hash_types != 0;
    n->hash_report = has_f(n, VIRTIO_NET_F_HASH_REPORT) && c.hash_types != 0;
    if (!virtio_net_rss_steering_update(n) && n->rss_ebpf_forced) {
        n->rss = old;
        n->rss_enabled = old_rss;
        n->hash_report = old_report;
        virtio_net_rss_steering_update(n);
        return VIRTIO_NET_ERR;
    }
    if (do_rss) {
        virtio_net_set_pairs(n, c.max_tx_vq);
    }
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_mq(VirtioNet *n, uint8_t cmd, const uint8_t *d, size_t len)
{
    switch (cmd) {
    case VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: {
        uint16_t pairs;
        if (len != 2 || !has_f(n, VIRTIO_NET_F_MQ)) {
            return VIRTIO_NET_ERR;
        }
        pairs = qnic_ld16(d);
        if (pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > n->max_pairs) {
            return VIRTIO_NET_ERR;
        }
        n->rss_enabled = false;
        virtio_net_rss_steering_update(n);
        virtio_net_set_pairs(n, pairs);
        return VIRTIO_NET_OK;
    }
    case VIRTIO_NET_CTRL_MQ_RSS_CONFIG:
        if (!has_f(n, VIRTIO_NET_F_RSS)) {
            return VIRTIO_NET_ERR;
        }
        return ctrl_rss(n, true, d, len);
    case VIRTIO_NET_CTRL_MQ_HASH_CONFIG:
        if (!has_f(n, VIRTIO_NET_F_HASH_REPORT)) {
            return VIRTIO_NET_ERR;
        }
        return ctrl_rss(n, false, d, len);
    }
    return VIRTIO_NET_ERR;
}

void virtio_net_apply_offloads(VirtioNet *n)
{
    uint64_t o = n->curr_guest_offloads;

    if (!n->has_vnet_hdr) {
        return;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (n->q[i].nc && n->q[i].nc->peer) {
            qnic_net_peer_set_offload(n->q[i].nc,
                                      o & (1ull << VIRTIO_NET_F_GUEST_CSUM),
                                      o & (1ull << VIRTIO_NET_F_GUEST_TSO4),
                                      o & (1ull << VIRTIO_NET_F_GUEST_TSO6),
                                      o & (1ull << VIRTIO_NET_F_GUEST_ECN),
                                      o & (1ull << VIRTIO_NET_F_GUEST_UFO), false, false);
        }
    }
}

static uint8_t ctrl_offloads(VirtioNet *n, uint8_t cmd, const uint8_t *d, size_t len)
{
    uint64_t o;

    if (cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || len != 8 ||
        !has_f(n, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || !n->has_vnet_hdr) {
        /* Without a vnet-header peer there is nothing to switch (QEMU
         * answers ERR too). */
        return VIRTIO_NET_ERR;
    }
    o = qnic_ld64(d);
    if (o & ~(n->vdev.guest_features & VIRTIO_NET_GUEST_OFFLOADS)) {
        return VIRTIO_NET_ERR;
    }
    n->curr_guest_offloads = o;
    virtio_net_apply_offloads(n);
    return VIRTIO_NET_OK;
}

/* A command qnic applied also reaches a backend whose device keeps that
 * state itself (vhost-vdpa); its answer comes later and is the backend's
 * to log, since the driver already has qnic's. */
static void vhost_forward(VirtioNet *n, uint8_t cls, uint8_t cmd, const void *d, size_t len)
{
    GError *err = NULL;

    if (n->vhost_started && !qnic_vhost_send_ctrl(n->vhost, cls, cmd, d, len, &err)) {
        qnic_report_ratelimited("virtio-net: control command %u/%u to the vhost backend: %s",
                                cls, cmd, err->message);
        g_error_free(err);
    }
}

/* The MAC table and the VLAN filter, for a backend started after the
 * driver programmed them (a loaded device, a reconnected backend). */
static void vhost_replay_filters(VirtioNet *n)
{
    unsigned uni = n->mac_table.first_multi, multi = n->mac_table.in_use - uni;
    uint8_t table[4 + MAC_TABLE_ENTRIES * 6 + 4];

    if (n->mac_table.in_use) {
        qnic_st32(table, uni);
        memcpy(table + 4, n->mac_table.macs, uni * 6);
        qnic_st32(table + 4 + uni * 6, multi);
        memcpy(table + 8 + uni * 6, &n->mac_table.macs[0][0] + uni * 6, multi * 6);
        vhost_forward(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
                      8 + n->mac_table.in_use * 6);
    }
    for (unsigned vid = 0; has_f(n, VIRTIO_NET_F_CTRL_VLAN) && vid < MAX_VLAN; vid++) {
        if (n->vlans[vid >> 5] & (1u << (vid & 31))) {
            uint8_t v[2];
            qnic_st16(v, vid);
            vhost_forward(n, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, v, 2);
        }
    }
}

void virtio_net_vhost_ctrl_replay(VirtioNet *n)
{
    static const uint8_t rx_cmds[] = {
        VIRTIO_NET_CTRL_RX_PROMISC, VIRTIO_NET_CTRL_RX_ALLMULTI, VIRTIO_NET_CTRL_RX_ALLUNI,
        VIRTIO_NET_CTRL_RX_NOMULTI, VIRTIO_NET_CTRL_RX_NOUNI, VIRTIO_NET_CTRL_RX_NOBCAST,
    };
    const bool rx_on[] = { n->promisc, n->allmulti, n->alluni, n->nomulti, n->nouni,
                           n->nobcast };
    uint8_t pairs[2];

    if (!n->vhost_started || !qnic_vhost_takes_ctrl(n->vhost)) {
        return;
    }
    vhost_forward(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, n->mac, 6);
    qnic_st16(pairs, (uint16_t)n->curr_pairs);
    vhost_forward(n, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, pairs, 2);
    for (unsigned i = 0; i < QNIC_ARRAY_SIZE(rx_cmds); i++) {
        uint8_t on = rx_on[i];
        /* the device's power-on modes: only what differs, PROMISC always */
        if (on || i == 0) {
            vhost_forward(n, VIRTIO_NET_CTRL_RX, rx_cmds[i], &on, 1);
        }
    }
    vhost_replay_filters(n);
}

void virtio_net_handle_ctrl(VirtioNet *n)
{
    QnicVqElem *e = &n->ctrl_elem;
    unsigned done = 0;

    while (done < n->ctrl->num) {
        QnicVqPopResult r = qnic_vq_pop(n->ctrl, e);
        uint8_t hdr[2], status = VIRTIO_NET_ERR;
        size_t len;

        if (r != QNIC_VQ_POP_OK) {
            break;
        }
        done++;
        if (e->out_len < 2 || e->in_len < 1) {
            qnic_virtio_error(&n->vdev, "control queue request without headers");
            break;
        }
        qnic_iov_to_buf(qnic_vq_elem_out(e), e->out_num, 0, hdr, 2);
        len = e->out_len - 2;
        if (len <= sizeof(n->ctrl_buf)) {
            qnic_iov_to_buf(qnic_vq_elem_out(e), e->out_num, 2, n->ctrl_buf, len);
            switch (hdr[0]) {
            case VIRTIO_NET_CTRL_RX:
                status = has_f(n, VIRTIO_NET_F_CTRL_RX) ? ctrl_rx(n, hdr[1], n->ctrl_buf, len)
                                                        : VIRTIO_NET_ERR;
                break;
            case VIRTIO_NET_CTRL_MAC:
                status = ctrl_mac(n, hdr[1], n->ctrl_buf, len);
                break;
            case VIRTIO_NET_CTRL_VLAN:
                status = has_f(n, VIRTIO_NET_F_CTRL_VLAN) ? ctrl_vlan(n, hdr[1], n->ctrl_buf, len)
                                                          : VIRTIO_NET_ERR;
                break;
            case VIRTIO_NET_CTRL_ANNOUNCE:
                if (hdr[1] == VIRTIO_NET_CTRL_ANNOUNCE_ACK && (n->status & VIRTIO_NET_S_ANNOUNCE)) {
                    n->status &= ~VIRTIO_NET_S_ANNOUNCE;
                    status = VIRTIO_NET_OK;
                }
                break;
            case VIRTIO_NET_CTRL_MQ:
                status = ctrl_mq(n, hdr[1], n->ctrl_buf, len);
                break;
            case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
                status = ctrl_offloads(n, hdr[1], n->ctrl_buf, len);
                break;
            }
            if (status == VIRTIO_NET_OK) {
                vhost_forward(n, hdr[0], hdr[1], n->ctrl_buf, len);
            }
            /* QMP's NIC_RX_FILTER_CHANGED, as QEMU reports it */
            if (status == VIRTIO_NET_OK && (hdr[0] == VIRTIO_NET_CTRL_RX ||
                                            hdr[0] == VIRTIO_NET_CTRL_MAC ||
                                            hdr[0] == VIRTIO_NET_CTRL_VLAN)) {
                qnic_net_rx_filter_changed(n->nic->ncs[0]);
            }
        }
        qnic_iov_from_buf(qnic_vq_elem_in(e), e->in_num, 0, &status, 1);
        qnic_vq_push(n->ctrl, e, 1);
    }
    if (done) {
        qnic_virtio_notify(&n->vdev, n->ctrl);
    }
}

static QnicRxState rx_state(bool none, bool all)
{
    return none ? QNIC_RX_STATE_NONE : all ? QNIC_RX_STATE_ALL : QNIC_RX_STATE_NORMAL;
}

void virtio_net_query_rx_filter(QnicNetClient *nc, QnicRxFilterInfo *info)
{
    VirtioNet *n = nc->opaque;
    char *dev_path = qnic_device_path(n->vdev.dev);

    info->path = g_strconcat(dev_path, "/virtio-backend", NULL);
    g_free(dev_path);
    info->promiscuous = n->promisc;
    info->unicast = rx_state(n->nouni, n->alluni);
    info->multicast = rx_state(n->nomulti, n->allmulti);
    /* QEMU 7.2 reports its nobcast flag here (true = broadcast refused);
     * clients written against it read it that way. */
    info->broadcast_allowed = n->nobcast;
    info->unicast_overflow = n->mac_table.uni_overflow;
    info->multicast_overflow = n->mac_table.multi_overflow;
    memcpy(info->main_mac, n->mac, 6);
    info->unicast_table = g_array_new(FALSE, FALSE, 6);
    info->multicast_table = g_array_new(FALSE, FALSE, 6);
    info->vlan_table = g_array_new(FALSE, FALSE, sizeof(uint16_t));
    for (unsigned i = 0; i < n->mac_table.in_use; i++) {
        g_array_append_vals(i < n->mac_table.first_multi ? info->unicast_table
                                                           : info->multicast_table,
                            n->mac_table.macs[i], 1);
    }
    /* QEMU lists the VLANs that pass, highest first: all of them while
     * VLAN filtering is not agreed, and calls the state all / none /
     * normal from how many do. */
    unsigned count = 0;
    for (int vid = MAX_VLAN - 1; vid >= 0; vid--) {
        if (!has_f(n, VIRTIO_NET_F_CTRL_VLAN) || (n->vlans[vid >> 5] & (1u << (vid & 31)))) {
            uint16_t v = (uint16_t)vid;
            g_array_append_val(info->vlan_table, v);
            count++;
        }
    }
    info->vlan = count == MAX_VLAN ? QNIC_RX_STATE_ALL :
                 count == 0 ? QNIC_RX_STATE_NONE : QNIC_RX_STATE_NORMAL;
}

