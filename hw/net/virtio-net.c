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
 */
#include "qnic/virtio-net.h"
#include "qnic/schema.h"
#include "qnic/net.h"
#include "qnic/device.h"
#include "qnic/mainloop.h"
#include "qnic/clock.h"
#include "qnic/log.h"
#include "qnic/vhost.h"
#include <linux/virtio_net.h>

#define MAC_TABLE_ENTRIES 64
#define MAX_VLAN 4096
#define RSS_MAX_KEY 40
#define RSS_MAX_TABLE 128
#define CTRL_BUF_MAX (8 + 2 * (4 + 6 * 1024))
#define ETH_HLEN 14

typedef struct VirtioNet VirtioNet;

typedef struct VirtioNetQueue {
    VirtioNet *n;
    unsigned index;
    QnicVirtQueue *rx, *tx;
    QnicNetClient *nc;
    QnicBH *tx_bh;
    QnicTimer *tx_timer;
    bool tx_waiting;            /* timer armed / bh scheduled */
    bool tx_async;              /* backend queued a frame: wait for sent cb */
    QnicVqElem tx_elem;
    struct iovec tx_iov[QNIC_VQ_MAX_SG];
    struct iovec tx_send[QNIC_VQ_MAX_SG];
    uint8_t tx_hdr[sizeof(struct virtio_net_hdr_mrg_rxbuf)];
    QnicVqElem rx_elem;
    struct iovec rx_iov[QNIC_VQ_MAX_SG];
} VirtioNetQueue;

struct VirtioNet {
    QnicVirtioDevice vdev;
    QnicDevice *dev;
    QnicNic *nic;
    unsigned max_pairs, curr_pairs;
    VirtioNetQueue *q;
    QnicVirtQueue *ctrl;
    unsigned ctrl_index;
    QnicVqElem ctrl_elem;
    struct iovec ctrl_iov[64];
    uint8_t ctrl_buf[CTRL_BUF_MAX];

    uint8_t perm_mac[6], mac[6];
    uint16_t status;
    bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
    struct {
        unsigned in_use, first_multi;
        bool uni_overflow, multi_overflow;
        uint8_t macs[MAC_TABLE_ENTRIES][6];
    } mac_table;
    uint32_t vlans[MAX_VLAN / 32];

    /* configuration */
    uint16_t host_mtu;
    int32_t speed;
    uint8_t duplex;
    uint16_t rx_queue_size, tx_queue_size;
    bool tx_timer_mode;
    uint32_t tx_timeout;
    int32_t tx_burst;

    /* negotiated */
    bool has_vnet_hdr;          /* the peer takes/gives vnet headers */
    bool mergeable;
    unsigned guest_hdr_len, host_hdr_len;
    uint64_t curr_guest_offloads;

    /* RSS / hash report */
    bool rss_enabled, hash_report;
    uint32_t rss_hash_types;
    uint16_t rss_table_len, rss_default;
    uint16_t rss_table[RSS_MAX_TABLE];
    uint8_t rss_key_len;
    uint8_t rss_key[RSS_MAX_KEY];

    uint64_t stat_rx_dropped, stat_rx_filtered;

    /* vhost peer: the data plane is elsewhere while vhost_started */
    QnicVhostDev *vhost;
    bool vhost_started;
};

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

static const uint64_t guest_offload_bits =
    (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |
    (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN) |
    (1ull << VIRTIO_NET_F_GUEST_UFO);

static inline bool has_f(VirtioNet *n, unsigned bit)
{
    return qnic_virtio_has_feature(&n->vdev, bit);
}

/* ---- copying between iovec lists without allocation ---- */

static size_t iov_copy_from(const struct iovec *dst, unsigned dn, size_t doff,
                            const struct iovec *src, unsigned sn, size_t soff, size_t len)
{
    unsigned di = 0, si = 0;
    size_t done = 0;

    while (di < dn && doff >= dst[di].iov_len) {
        doff -= dst[di++].iov_len;
    }
    while (si < sn && soff >= src[si].iov_len) {
        soff -= src[si++].iov_len;
    }
    while (done < len && di < dn && si < sn) {
        size_t c = MIN(dst[di].iov_len - doff, src[si].iov_len - soff);
        c = MIN(c, len - done);
        memcpy((uint8_t *)dst[di].iov_base + doff, (const uint8_t *)src[si].iov_base + soff, c);
        done += c;
        doff += c;
        soff += c;
        if (doff == dst[di].iov_len) {
            di++;
            doff = 0;
        }
        if (soff == src[si].iov_len) {
            si++;
            soff = 0;
        }
    }
    return done;
}

/* Make dst describe src minus its first `skip` bytes; returns entries. */
static unsigned iov_skip(struct iovec *dst, unsigned cap, const struct iovec *src, unsigned sn,
                         size_t skip)
{
    unsigned n = 0;

    for (unsigned i = 0; i < sn && n < cap; i++) {
        if (skip >= src[i].iov_len) {
            skip -= src[i].iov_len;
            continue;
        }
        dst[n].iov_base = (uint8_t *)src[i].iov_base + skip;
        dst[n].iov_len = src[i].iov_len - skip;
        skip = 0;
        n++;
    }
    return n;
}

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

#define SUPPORTED_HASH_TYPES                                                    \
    (VIRTIO_NET_RSS_HASH_TYPE_IPv4 | VIRTIO_NET_RSS_HASH_TYPE_TCPv4 |            \
     VIRTIO_NET_RSS_HASH_TYPE_UDPv4 | VIRTIO_NET_RSS_HASH_TYPE_IPv6 |            \
     VIRTIO_NET_RSS_HASH_TYPE_TCPv6 | VIRTIO_NET_RSS_HASH_TYPE_UDPv6)

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
        c[17] = RSS_MAX_KEY;
        qnic_st16(c + 18, qnic_virtio_host_has_feature(vdev, VIRTIO_NET_F_RSS) ? RSS_MAX_TABLE : 1);
        qnic_st32(c + 20, SUPPORTED_HASH_TYPES);
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

/* ---- RX filter ---- */

static bool receive_filter(VirtioNet *n, const uint8_t *eth, size_t len)
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

/* ---- RSS: Toeplitz hash over the flow's addresses and ports ---- */

static uint32_t toeplitz(const uint8_t *key, unsigned key_len, const uint8_t *in, unsigned len)
{
    uint32_t result = 0, v = 0;
    unsigned kbit = 0;

    if (key_len < 4) {
        return 0;
    }
    v = qnic_ld32be(key);
    for (unsigned i = 0; i < len; i++) {
        for (int b = 7; b >= 0; b--) {
            if (in[i] & (1u << b)) {
                result ^= v;
            }
            /* shift the 32-bit key window left by one bit */
            unsigned next = kbit + 32;
            uint8_t nb = next / 8 < key_len ? (key[next / 8] >> (7 - next % 8)) & 1 : 0;
            v = (v << 1) | nb;
            kbit++;
        }
    }
    return result;
}

/* Compute the hash of a frame; returns the report type (0 = none). */
static unsigned rss_hash(VirtioNet *n, const uint8_t *eth, size_t len, uint32_t *hash)
{
    uint8_t in[36];
    unsigned l3 = ETH_HLEN, inlen = 0, report = VIRTIO_NET_HASH_REPORT_NONE;
    uint16_t type;
    uint32_t types = n->rss_hash_types;

    if (len < ETH_HLEN) {
        return 0;
    }
    type = qnic_ld16be(eth + 12);
    if (type == 0x8100 && len >= ETH_HLEN + 4) {
        type = qnic_ld16be(eth + 16);
        l3 += 4;
    }
    if (type == 0x0800 && len >= l3 + 20) {
        const uint8_t *ip = eth + l3;
        unsigned ihl = (ip[0] & 0xf) * 4, proto = ip[9];
        bool frag = qnic_ld16be(ip + 6) & 0x3fff;
        memcpy(in, ip + 12, 8);
        inlen = 8;
        if (!frag && ihl >= 20 && len >= l3 + ihl + 4 &&
            ((proto == 6 && (types & VIRTIO_NET_RSS_HASH_TYPE_TCPv4)) ||
             (proto == 17 && (types & VIRTIO_NET_RSS_HASH_TYPE_UDPv4)))) {
            memcpy(in + 8, ip + ihl, 4);
            inlen = 12;
            report = proto == 6 ? VIRTIO_NET_HASH_REPORT_TCPv4 : VIRTIO_NET_HASH_REPORT_UDPv4;
        } else if (types & VIRTIO_NET_RSS_HASH_TYPE_IPv4) {
            report = VIRTIO_NET_HASH_REPORT_IPv4;
        } else {
            return 0;
        }
    } else if (type == 0x86dd && len >= l3 + 40) {
        const uint8_t *ip = eth + l3;
        unsigned proto = ip[6];
        memcpy(in, ip + 8, 32);
        inlen = 32;
        if (len >= l3 + 44 &&
            ((proto == 6 && (types & VIRTIO_NET_RSS_HASH_TYPE_TCPv6)) ||
             (proto == 17 && (types & VIRTIO_NET_RSS_HASH_TYPE_UDPv6)))) {
            memcpy(in + 32, ip + 40, 4);
            inlen = 36;
            report = proto == 6 ? VIRTIO_NET_HASH_REPORT_TCPv6 : VIRTIO_NET_HASH_REPORT_UDPv6;
        } else if (types & VIRTIO_NET_RSS_HASH_TYPE_IPv6) {
            report = VIRTIO_NET_HASH_REPORT_IPv6;
        } else {
            return 0;
        }
    } else {
        return 0;
    }
    *hash = toeplitz(n->rss_key, n->rss_key_len, in, inlen);
    return report;
}

/* ---- RX ---- */

static bool rx_ready(VirtioNetQueue *q)
{
    VirtioNet *n = q->n;

    return qnic_virtio_driver_ok(&n->vdev) && q->index < n->curr_pairs &&
           q->rx->enabled && qnic_vq_ready(q->rx);
}

static bool vn_can_receive(QnicNetClient *nc)
{
    VirtioNet *n = nc->opaque;
    VirtioNetQueue *q;

    if ((unsigned)nc->queue_index >= n->max_pairs) {
        return false;
    }
    q = &n->q[nc->queue_index];
    if (!rx_ready(q)) {
        return false;
    }
    if (qnic_vq_empty(q->rx)) {
        /* Ask for a kick when buffers arrive, then look once more. */
        qnic_vq_set_notification(q->rx, true);
        return !qnic_vq_empty(q->rx);
    }
    return true;
}

static ssize_t rx_deliver(VirtioNetQueue *q, const struct iovec *iov, int iovcnt, size_t size,
                          const uint8_t *eth, size_t eth_len, uint32_t hash, unsigned report)
{
    VirtioNet *n = q->n;
    QnicVirtQueue *vq = q->rx;
    uint8_t hdr[sizeof(struct virtio_net_hdr_v1_hash)] = { 0 };
    struct iovec hdr_iov[4];
    unsigned hdr_n = 0, i = 0;
    size_t payload = size - n->host_hdr_len;
    size_t total = n->guest_hdr_len + payload, off = 0;
    QnicVqMark mark = qnic_vq_mark(vq);

    if (n->host_hdr_len) {
        qnic_iov_to_buf(iov, iovcnt, 0, hdr, MIN(n->host_hdr_len, sizeof(struct virtio_net_hdr)));
    }
    if (n->hash_report && n->guest_hdr_len >= sizeof(struct virtio_net_hdr_v1_hash)) {
        qnic_st32(hdr + 12, hash);
        qnic_st16(hdr + 16, report);
    }
    while (off < total) {
        QnicVqElem *e = &q->rx_elem;
        QnicVqPopResult r = qnic_vq_pop(vq, e);
        size_t len, c;

        if (r != QNIC_VQ_POP_OK) {
            qnic_vq_rollback(vq, mark);
            if (r == QNIC_VQ_POP_EMPTY) {
                if (i && !n->mergeable) {
                    break;
                }
                /* Not enough buffers for the whole frame: wait for more. */
                qnic_vq_set_notification(vq, true);
                return 0;
            }
            return size;
        }
        if (e->in_num == 0 || e->out_num) {
            qnic_vq_rollback(vq, mark);
            qnic_virtio_error(&n->vdev, "RX buffer with device-readable descriptors");
            return size;
        }
        if (i == 0) {
            if (e->in_len < n->guest_hdr_len) {
                qnic_vq_rollback(vq, mark);
                qnic_virtio_error(&n->vdev, "RX buffer smaller than the vnet header");
                return size;
            }
            hdr_n = MIN(e->in_num, 4u);
            memcpy(hdr_iov, e->iov, hdr_n * sizeof(struct iovec));
        }
        len = MIN(e->in_len, total - off);
        /* header part */
        c = 0;
        if (off < n->guest_hdr_len) {
            struct iovec h = { hdr + off, n->guest_hdr_len - off };
            c = iov_copy_from(qnic_vq_elem_in(e), e->in_num, 0, &h, 1, 0, MIN(len, h.iov_len));
        }
        /* payload part */
        if (len > c) {
            size_t poff = off + c - n->guest_hdr_len;
            iov_copy_from(qnic_vq_elem_in(e), e->in_num, c, iov, iovcnt,
                          n->host_hdr_len + poff, len - c);
        }
        qnic_vq_fill(vq, e, len, i);
        i++;
        off += len;
        if (!n->mergeable) {
            break;
        }
    }
    if (off < total) {
        /* Without mergeable buffers a frame must fit one buffer. */
        qnic_vq_rollback(vq, mark);
        n->stat_rx_dropped++;
        qnic_guest_error("virtio-net: %zu-byte frame does not fit the RX buffer", total);
        return size;
    }
    if (n->mergeable) {
        uint8_t nb[2];
        qnic_st16(nb, i);
        struct iovec src = { nb, 2 };
        iov_copy_from(hdr_iov, hdr_n, 10, &src, 1, 0, 2);
    }
    qnic_vq_flush(vq, i);
    qnic_virtio_notify(&n->vdev, vq);
    (void)eth;
    (void)eth_len;
    return size;
}

static ssize_t vn_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    VirtioNet *n = nc->opaque;
    VirtioNetQueue *q;
    size_t size = qnic_iov_size(iov, iovcnt);
    uint8_t eth[ETH_HLEN + 4 + 40 + 4];
    size_t eth_len;
    uint32_t hash = 0;
    unsigned report = 0;
    ssize_t ret;

    if ((unsigned)nc->queue_index >= n->max_pairs) {
        return size;
    }
    q = &n->q[nc->queue_index];
    if (!rx_ready(q)) {
        return 0;
    }
    if (size < n->host_hdr_len) {
        return size;
    }
    eth_len = qnic_iov_to_buf(iov, iovcnt, n->host_hdr_len, eth, sizeof(eth));
    if (!receive_filter(n, eth, eth_len)) {
        n->stat_rx_filtered++;
        return size;
    }
    if (n->rss_enabled || n->hash_report) {
        report = rss_hash(n, eth, eth_len, &hash);
        if (n->rss_enabled) {
            unsigned target = report ? n->rss_table[hash & (n->rss_table_len - 1)] : n->rss_default;
            if (target < n->curr_pairs && target != q->index && rx_ready(&n->q[target])) {
                q = &n->q[target];
            }
        }
    }
    qnic_device_enter(n->dev);
    ret = rx_deliver(q, iov, iovcnt, size, eth, eth_len, hash, report);
    qnic_device_leave(n->dev);
    return ret;
}

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

/* ---- TX ---- */

static void tx_schedule(VirtioNetQueue *q);

static void tx_complete(QnicNetClient *nc, ssize_t ret)
{
    VirtioNet *n = nc->opaque;
    VirtioNetQueue *q;

    if ((unsigned)nc->queue_index >= n->max_pairs) {
        return;
    }
    q = &n->q[nc->queue_index];
    if (!q->tx_async) {
        return;
    }
    q->tx_async = false;
    qnic_device_enter(n->dev);
    qnic_vq_push(q->tx, &q->tx_elem, 0);
    qnic_virtio_notify(&n->vdev, q->tx);
    qnic_device_leave(n->dev);
    tx_schedule(q);
}

/* Send up to tx_burst frames; returns how many, or -1 when the backend
 * queued one (wait for tx_complete). */
static int tx_flush(VirtioNetQueue *q)
{
    VirtioNet *n = q->n;
    int count = 0;

    if (q->tx_async || !qnic_virtio_driver_ok(&n->vdev) || !q->tx->enabled) {
        return 0;
    }
    while (count < n->tx_burst) {
        QnicVqElem *e = &q->tx_elem;
        QnicVqPopResult r = qnic_vq_pop(q->tx, e);
        unsigned sn;
        ssize_t ret;

        if (r != QNIC_VQ_POP_OK) {
            break;
        }
        if (e->out_num == 0 || e->out_len < n->guest_hdr_len) {
            qnic_virtio_error(&n->vdev, "TX buffer without a vnet header");
            break;
        }
        if (n->host_hdr_len == n->guest_hdr_len) {
            sn = iov_skip(q->tx_send, QNIC_VQ_MAX_SG, qnic_vq_elem_out(e), e->out_num, 0);
        } else {
            /* The peer takes plain frames or a shorter header: send its
             * part of the header, then the frame. */
            sn = 0;
            if (n->host_hdr_len) {
                qnic_iov_to_buf(qnic_vq_elem_out(e), e->out_num, 0, q->tx_hdr, n->host_hdr_len);
                q->tx_send[0].iov_base = q->tx_hdr;
                q->tx_send[0].iov_len = n->host_hdr_len;
                sn = 1;
            }
            sn += iov_skip(q->tx_send + sn, QNIC_VQ_MAX_SG - sn, qnic_vq_elem_out(e), e->out_num,
                           n->guest_hdr_len);
        }
        if (q->index >= n->curr_pairs) {
            ret = 1;    /* a queue the driver did not enable: drop */
        } else {
            ret = qnic_net_send_iov(q->nc, q->tx_send, sn, tx_complete);
        }
        if (ret == 0) {
            q->tx_async = true;
            qnic_vq_set_notification(q->tx, false);
            qnic_virtio_notify(&n->vdev, q->tx);
            return -1;
        }
        qnic_vq_push(q->tx, e, 0);
        count++;
    }
    if (count) {
        qnic_virtio_notify(&n->vdev, q->tx);
    }
    return count;
}

static void tx_run(VirtioNetQueue *q)
{
    VirtioNet *n = q->n;
    int ret;

    q->tx_waiting = false;
    qnic_device_enter(n->dev);
    ret = tx_flush(q);
    if (ret >= 0) {
        if (ret >= n->tx_burst) {
            tx_schedule(q);       /* more to do: yield to the loop first */
        } else {
            qnic_vq_set_notification(q->tx, true);
            if (!qnic_vq_empty(q->tx) && qnic_virtio_driver_ok(&n->vdev)) {
                qnic_vq_set_notification(q->tx, false);
                tx_schedule(q);
            }
        }
    }
    qnic_device_leave(n->dev);
}

static void tx_bh_cb(void *opaque)
{
    tx_run(opaque);
}

static void tx_schedule(VirtioNetQueue *q)
{
    if (q->tx_waiting) {
        return;
    }
    q->tx_waiting = true;
    if (q->n->tx_timer_mode) {
        qnic_timer_mod(q->tx_timer, qnic_clock_ns() + q->n->tx_timeout);
    } else {
        qnic_bh_schedule(q->tx_bh);
    }
}

static void handle_tx(VirtioNet *n, VirtioNetQueue *q)
{
    if (q->tx_async) {
        return;
    }
    if (n->tx_timer_mode && q->tx_waiting) {
        /* A second kick while the timer runs: flush now, as QEMU does. */
        qnic_timer_del(q->tx_timer);
        tx_run(q);
        return;
    }
    qnic_vq_set_notification(q->tx, false);
    tx_schedule(q);
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

/* ---- vhost: the data queues in a backend process ---- */

static void tx_stop(VirtioNetQueue *q);

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

static void vhost_start(VirtioNet *n)
{
    GError *err = NULL;
    uint64_t acked = vhost_data_features(n->vdev.guest_features);

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
        tx_stop(&n->q[i]);
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
}

static void vhost_stop(VirtioNet *n)
{
    if (n->vhost && n->vhost_started) {
        qnic_vhost_dev_stop(n->vhost);
        n->vhost_started = false;
    }
}

/* A backend came or went (see backends/vhost-user.c). */
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
        vhost_start(n);
    }
}

static void set_pairs(VirtioNet *n, unsigned pairs)
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

static uint8_t ctrl_rss(VirtioNet *n, bool do_rss, const uint8_t *d, size_t len)
{
    uint32_t types;
    uint16_t mask = 0, deflt = 0, table_len = 1, max_tx;
    size_t off;
    uint8_t key_len;

    if (len < 4) {
        return VIRTIO_NET_ERR;
    }
    types = qnic_ld32(d);
    if (do_rss) {
        if (len < 8) {
            return VIRTIO_NET_ERR;
        }
        mask = qnic_ld16(d + 4);
        deflt = qnic_ld16(d + 6);
        table_len = mask + 1;
        if (!QNIC_IS_POW2(table_len) || table_len > RSS_MAX_TABLE) {
            return VIRTIO_NET_ERR;
        }
        off = 8 + 2u * table_len;
        if (len < off + 3) {
            return VIRTIO_NET_ERR;
        }
        max_tx = qnic_ld16(d + off);
        if (max_tx == 0 || max_tx > n->max_pairs || deflt >= n->max_pairs) {
            return VIRTIO_NET_ERR;
        }
        for (unsigned i = 0; i < table_len; i++) {
            uint16_t t = qnic_ld16(d + 8 + 2 * i);
            if (t >= n->max_pairs) {
                return VIRTIO_NET_ERR;
            }
            n->rss_table[i] = t;
        }
        off += 2;
    } else {
        /* hash config: hash_types, reserved[4] (le16), key length, key */
        off = 12;
        if (len < off + 1) {
            return VIRTIO_NET_ERR;
        }
        max_tx = n->curr_pairs;
    }
    key_len = d[off];
    off++;
    if (key_len > RSS_MAX_KEY || len - off < key_len) {
        return VIRTIO_NET_ERR;
    }
    memcpy(n->rss_key, d + off, key_len);
    n->rss_key_len = key_len;
    n->rss_hash_types = types & SUPPORTED_HASH_TYPES;
    n->rss_table_len = table_len;
    n->rss_default = deflt;
    n->rss_enabled = do_rss && types != 0;
    n->hash_report = has_f(n, VIRTIO_NET_F_HASH_REPORT) && types != 0;
    if (do_rss) {
        set_pairs(n, max_tx);
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
        set_pairs(n, pairs);
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

static void apply_offloads(VirtioNet *n)
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
    if (o & ~(n->vdev.guest_features & guest_offload_bits)) {
        return VIRTIO_NET_ERR;
    }
    n->curr_guest_offloads = o;
    apply_offloads(n);
    return VIRTIO_NET_OK;
}

static void handle_ctrl(VirtioNet *n)
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

/* ---- virtio device ops ---- */

/* Queue layout for N active-capable pairs: rx0 tx0 ... rxN-1 txN-1 ctrl.
 * N is 1 until MQ or RSS is negotiated, so the control queue sits at index
 * 2 for drivers without them (virtio 1.2 5.1.2) and QEMU's num_queues
 * matches. */
static void vn_layout(VirtioNet *n, unsigned pairs)
{
    uint16_t sizes[QNIC_VIRTIO_MAX_QUEUES];
    unsigned nq = 2 * pairs + 1;

    if (nq == n->vdev.num_queues && n->ctrl == &n->vdev.vqs[nq - 1]) {
        return;
    }
    for (unsigned i = 0; i < pairs; i++) {
        sizes[2 * i] = n->rx_queue_size;
        sizes[2 * i + 1] = n->tx_queue_size;
    }
    sizes[nq - 1] = 64;
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

static void vn_handle_queue(QnicVirtioDevice *vdev, unsigned idx)
{
    VirtioNet *n = vdev->opaque;

    if (idx == n->ctrl_index) {
        qnic_device_enter(n->dev);
        handle_ctrl(n);
        qnic_device_leave(n->dev);
        return;
    }
    if (idx > n->ctrl_index || idx / 2 >= n->max_pairs) {
        return;
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
        handle_tx(n, &n->q[idx / 2]);
    }
}

static void update_hdr_len(VirtioNet *n)
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

static bool vn_validate_features(QnicVirtioDevice *vdev, uint64_t f)
{
#define NEEDS(a, b) \
    if ((f & (1ull << (a))) && !(f & (1ull << (b)))) { \
        qnic_guest_error("virtio-net: feature %s without %s", #a, #b); return false; }
    NEEDS(VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VQ)
    NEEDS(VIRTIO_NET_F_CTRL_VLAN, VIRTIO_NET_F_CTRL_VQ)
    NEEDS(VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_F_CTRL_VQ)
    NEEDS(VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_VQ)
    NEEDS(VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_CTRL_VQ)
    NEEDS(VIRTIO_NET_F_RSS, VIRTIO_NET_F_CTRL_VQ)
    NEEDS(VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_RX)
    NEEDS(VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_CSUM)
    NEEDS(VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_CSUM)
    NEEDS(VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_CSUM)
    NEEDS(VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_CSUM)
#undef NEEDS
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

    vn_layout(n, (f & ((1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_RSS))) ? n->max_pairs : 1);
    update_hdr_len(n);
    n->curr_guest_offloads = f & guest_offload_bits;
    apply_offloads(n);
    if (f & (1ull << VIRTIO_NET_F_CTRL_VLAN)) {
        memset(n->vlans, 0, sizeof(n->vlans));
    } else {
        memset(n->vlans, 0xff, sizeof(n->vlans));
    }
    set_pairs(n, 1);
    n->rss_enabled = false;
    n->hash_report = false;
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
                tx_schedule(&n->q[i]);
            }
        }
        vhost_start(n);
    } else if (!(status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        vhost_stop(n);
    }
}

static void tx_stop(VirtioNetQueue *q)
{
    q->tx_waiting = false;
    qnic_bh_cancel(q->tx_bh);
    qnic_timer_del(q->tx_timer);
    if (q->tx_async && q->nc) {
        /* Drop what the backend still holds from us: its ring is gone. */
        qnic_net_purge_queued(q->nc);
    }
    q->tx_async = false;
}

static void vn_reset(QnicVirtioDevice *vdev)
{
    VirtioNet *n = vdev->opaque;

    /* GET_VRING_BASE before the core forgets the rings */
    vhost_stop(n);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        tx_stop(&n->q[i]);
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
    n->guest_hdr_len = sizeof(struct virtio_net_hdr);
    n->mergeable = false;
}

static void vn_reset_layout(QnicVirtioDevice *vdev)
{
    VirtioNet *n = vdev->opaque;

    vn_reset(vdev);
    n->ctrl = NULL;
    vn_layout(n, 1);
}

static void vn_queue_reset(QnicVirtioDevice *vdev, unsigned idx)
{
    VirtioNet *n = vdev->opaque;

    if (n->vhost_started && idx < n->ctrl_index) {
        qnic_vhost_vq_stop(n->vhost, idx);
    }
    if (idx < n->ctrl_index && idx % 2 == 1) {
        tx_stop(&n->q[idx / 2]);
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
};

static QnicRxState rx_state(bool none, bool all)
{
    return none ? QNIC_RX_STATE_NONE : all ? QNIC_RX_STATE_ALL : QNIC_RX_STATE_NORMAL;
}

static void vn_query_rx_filter(QnicNetClient *nc, QnicRxFilterInfo *info)
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

static const QnicNetClientOps vn_client_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = vn_receive_iov,
    .can_receive = vn_can_receive,
    .link_status_changed = vn_link_status_changed,
    .query_rx_filter = vn_query_rx_filter,
};

static void tx_timer_cb(void *opaque)
{
    tx_run(opaque);
}

/* ---- realize: properties -> features, queues, config ---- */

static bool prop_dep(QnicOpts *opts, const char *a, const char *b, GError **errp)
{
    if (qnic_opts_is_set(opts, a) && qnic_opts_get_bool(opts, a, false) &&
        !qnic_opts_get_bool(opts, b, true)) {
        qnic_error_setg_invalid(errp, "Property '%s' requires '%s=on'", a, b);
        return false;
    }
    return true;
}

static bool virtio_net_realize(VirtioNet *n, QnicDevice *dev, QnicOpts *opts, const char *model,
                               GError **errp)
{
    static const struct { const char *prop; unsigned bit; } bits[] = {
        { "csum", VIRTIO_NET_F_CSUM },
        { "guest_csum", VIRTIO_NET_F_GUEST_CSUM },
        { "gso", VIRTIO_NET_F_GSO },
        { "guest_tso4", VIRTIO_NET_F_GUEST_TSO4 },
        { "guest_tso6", VIRTIO_NET_F_GUEST_TSO6 },
        { "guest_ecn", VIRTIO_NET_F_GUEST_ECN },
        { "guest_ufo", VIRTIO_NET_F_GUEST_UFO },
        { "guest_announce", VIRTIO_NET_F_GUEST_ANNOUNCE },
        { "host_tso4", VIRTIO_NET_F_HOST_TSO4 },
        { "host_tso6", VIRTIO_NET_F_HOST_TSO6 },
        { "host_ecn", VIRTIO_NET_F_HOST_ECN },
        { "host_ufo", VIRTIO_NET_F_HOST_UFO },
        { "mrg_rxbuf", VIRTIO_NET_F_MRG_RXBUF },
        { "status", VIRTIO_NET_F_STATUS },
        { "ctrl_vq", VIRTIO_NET_F_CTRL_VQ },
        { "ctrl_rx", VIRTIO_NET_F_CTRL_RX },
        { "ctrl_vlan", VIRTIO_NET_F_CTRL_VLAN },
        { "ctrl_rx_extra", VIRTIO_NET_F_CTRL_RX_EXTRA },
        { "ctrl_mac_addr", VIRTIO_NET_F_CTRL_MAC_ADDR },
        { "ctrl_guest_offloads", VIRTIO_NET_F_CTRL_GUEST_OFFLOADS },
        { "mq", VIRTIO_NET_F_MQ },
        { "rss", VIRTIO_NET_F_RSS },
        { "hash", VIRTIO_NET_F_HASH_REPORT },
        { "notify_on_empty", VIRTIO_F_NOTIFY_ON_EMPTY },
        { "any_layout", VIRTIO_F_ANY_LAYOUT },
        { "indirect_desc", VIRTIO_RING_F_INDIRECT_DESC },
        { "event_idx", VIRTIO_RING_F_EVENT_IDX },
        { "packed", VIRTIO_F_RING_PACKED },
        { "queue_reset", VIRTIO_F_RING_RESET },
    };
    const char *duplex = qnic_opts_get(opts, "duplex");
    const char *tx = qnic_opts_get(opts, "tx");
    uint64_t f = 1ull << VIRTIO_NET_F_MAC;
    int netdev_queues = qnic_nic_netdev_queues(opts);
    unsigned nq;
    uint16_t *sizes;

    n->dev = dev;
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(bits); i++) {
        if (qnic_opts_get_bool(opts, bits[i].prop, false)) {
            f |= 1ull << bits[i].bit;
        }
    }
    if (!prop_dep(opts, "ctrl_rx", "ctrl_vq", errp) || !prop_dep(opts, "ctrl_vlan", "ctrl_vq", errp) ||
        !prop_dep(opts, "guest_announce", "ctrl_vq", errp) || !prop_dep(opts, "mq", "ctrl_vq", errp) ||
        !prop_dep(opts, "rss", "ctrl_vq", errp) || !prop_dep(opts, "ctrl_mac_addr", "ctrl_vq", errp) ||
        !prop_dep(opts, "ctrl_rx_extra", "ctrl_rx", errp)) {
        return false;
    }
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
        f |= 1ull << VIRTIO_NET_F_SPEED_DUPLEX;
    }
    if (n->speed >= 0) {
        f |= 1ull << VIRTIO_NET_F_SPEED_DUPLEX;
    }
    n->host_mtu = qnic_opts_get_uint(opts, "host_mtu", 0);
    if (n->host_mtu) {
        f |= 1ull << VIRTIO_NET_F_MTU;
    }
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
    /* Without vhost-user QEMU caps TX at 256 entries; so do we (the cap is
     * lifted below for a vhost-user peer). */
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

    n->nic = qnic_nic_new(&vn_client_ops, opts, model, n->max_pairs, n, errp);
    if (!n->nic) {
        return false;
    }
    memcpy(n->perm_mac, n->nic->mac, 6);
    memcpy(n->mac, n->nic->mac, 6);
    n->vhost = qnic_vhost_net_get(n->nic->ncs[0]->peer);
    if (!n->vhost || n->nic->ncs[0]->peer->ops->kind != QNIC_NET_CLIENT_VHOST_USER) {
        n->tx_queue_size = MIN(n->tx_queue_size, 256);
    }
    n->has_vnet_hdr = n->nic->ncs[0]->peer && qnic_net_peer_has_vnet_hdr(n->nic->ncs[0]);
    if (!n->has_vnet_hdr) {
        /* Offloads need a peer that speaks vnet headers, as in QEMU. */
        f &= ~((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4) |
               (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN) |
               (1ull << VIRTIO_NET_F_HOST_UFO) | guest_offload_bits);
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

    nq = 2 * n->max_pairs + 1;
    sizes = g_new(uint16_t, nq);
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
        VirtioNetQueue *q = &n->q[i];
        q->n = n;
        q->index = i;
        q->rx = &n->vdev.vqs[2 * i];
        q->tx = &n->vdev.vqs[2 * i + 1];
        q->nc = n->nic->ncs[i];
        q->tx_bh = qnic_bh_new(tx_bh_cb, q);
        q->tx_timer = qnic_timer_new(tx_timer_cb, q);
        q->tx_elem.iov = q->tx_iov;
        q->tx_elem.iov_cap = QNIC_VQ_MAX_SG;
        q->rx_elem.iov = q->rx_iov;
        q->rx_elem.iov_cap = QNIC_VQ_MAX_SG;
    }
    n->ctrl_elem.iov = n->ctrl_iov;
    n->ctrl_elem.iov_cap = QNIC_ARRAY_SIZE(n->ctrl_iov);
    vn_reset_layout(&n->vdev);
    return true;
}

static void virtio_net_unrealize(VirtioNet *n)
{
    if (n->vhost) {
        vhost_stop(n);
        qnic_vhost_set_event_handler(n->vhost, NULL, NULL);
        n->vhost = NULL;
    }
    if (n->q) {
        for (unsigned i = 0; i < n->max_pairs; i++) {
            tx_stop(&n->q[i]);
            qnic_bh_free(n->q[i].tx_bh);
            qnic_timer_free(n->q[i].tx_timer);
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

static const QnicDeviceClass virtio_net_pci_class = {
    .name = "virtio-net-pci",
    .bus = "pci",
    .instance_size = sizeof(VirtioNetPci),
    .realize = vn_pci_realize,
    .reset = vn_pci_reset,
    .unrealize = vn_pci_unrealize,
};
QNIC_DEVICE_REGISTER(virtio_net_pci_class)

static const QnicDeviceClass virtio_net_pci_transitional_class = {
    .name = "virtio-net-pci-transitional",
    .bus = "pci",
    .instance_size = sizeof(VirtioNetPci),
    .realize = vn_pci_realize_transitional,
    .reset = vn_pci_reset,
    .unrealize = vn_pci_unrealize,
};
QNIC_DEVICE_REGISTER(virtio_net_pci_transitional_class)

static const QnicDeviceClass virtio_net_pci_non_transitional_class = {
    .name = "virtio-net-pci-non-transitional",
    .bus = "pci",
    .instance_size = sizeof(VirtioNetPci),
    .realize = vn_pci_realize_non_transitional,
    .reset = vn_pci_reset,
    .unrealize = vn_pci_unrealize,
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

static const QnicDeviceClass virtio_net_device_class = {
    .name = "virtio-net-device",
    .bus = "virtio-mmio",
    .instance_size = sizeof(VirtioNetMmio),
    .realize = vn_mmio_realize,
    .reset = vn_mmio_reset,
    .unrealize = vn_mmio_unrealize,
};
QNIC_DEVICE_REGISTER(virtio_net_device_class)

/* ---- virtio-net with no bus transport (the vhost-user device side) ---- */

typedef struct VirtioNetBare {
    QnicDevice dev;
    VirtioNet net;
} VirtioNetBare;

static void vn_bare_unrealize(QnicDevice *dev)
{
    virtio_net_unrealize(&((VirtioNetBare *)dev)->net);
}

/* Not registered: only qnic_virtio_net_new_bare() creates it. */
static const QnicDeviceClass virtio_net_bare_class = {
    .name = "virtio-net-device",
    .bus = "none",
    .instance_size = sizeof(VirtioNetBare),
    .unrealize = vn_bare_unrealize,
};

QnicVirtioDevice *qnic_virtio_net_new_bare(QnicMachine *m, const char *opts_str, GError **errp)
{
    g_autofree char *full = g_strconcat("virtio-net-device", *opts_str ? "," : "", opts_str, NULL);
    QnicOpts *opts = qnic_opts_parse("device", full, "driver", errp);
    const QnicSchemaType *t = qnic_schema_lookup(QNIC_SCHEMA_DEVICE, "virtio-net-device");
    VirtioNetBare *s;

    if (!opts) {
        return NULL;
    }
    if (!qnic_schema_check(opts, t, errp)) {
        qnic_opts_free(opts);
        return NULL;
    }
    s = g_new0(VirtioNetBare, 1);
    s->dev.cls = &virtio_net_bare_class;
    s->dev.id = g_strdup(qnic_opts_get(opts, "id"));
    s->dev.machine = m;
    s->dev.opts = opts;
    s->dev.dma_enabled = true;
    g_ptr_array_add(m->devices, &s->dev);
    if (!virtio_net_realize(&s->net, &s->dev, opts, "virtio-net-device", errp)) {
        g_ptr_array_remove(m->devices, &s->dev);
        qnic_opts_free(opts);
        g_free(s->dev.id);
        g_free(s);
        return NULL;
    }
    s->dev.realized = true;
    return &s->net.vdev;
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

    set_pairs(n, CLAMP(pairs, 1u, n->max_pairs));
}
