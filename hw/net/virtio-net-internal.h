/*
 * What the three files of the virtio-net model share: the device state
 * (VirtioNet) and its queue pairs (VirtioNetQueue), and the calls each file
 * makes into the others. hw/net/virtio-net.c is the device itself (config
 * space, features, queue layout, vhost hand-over, realize and the bus
 * types), virtio-net-dataplane.c moves frames between the rings and the
 * netdev, and virtio-net-ctrl.c serves the control queue and keeps the
 * receive filter and RSS state it programs. Not a public header: only
 * these files include it; embedders use qnic/virtio-net.h.
 */
#ifndef HW_NET_VIRTIO_NET_INTERNAL_H
#define HW_NET_VIRTIO_NET_INTERNAL_H

#include "qnic/virtio-net.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/clock.h"
#include "qnic/vhost.h"
#include "qnic/rss.h"
#include "qnic/rss-ebpf.h"
#include <linux/virtio_net.h>

#define MAC_TABLE_ENTRIES 64
#define MAX_VLAN 4096
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

    /* RSS / hash report: the driver's last accepted configuration */
    bool rss_enabled, hash_report;
    QnicRssConfig rss;
    /* eBPF RSS (net/rss-ebpf.c): the program, if it loaded; whether the
     * peer runs it now (then no software RSS); whether the options demand
     * it (ebpf-rss-fds=, x-ebpf-rss=on) */
    QnicRssEbpf *rss_ebpf;
    bool rss_ebpf_steering;
    bool rss_ebpf_forced;

    uint64_t stat_rx_dropped, stat_rx_filtered;

    /* vhost peer: the data plane is elsewhere while vhost_started */
    QnicVhostDev *vhost;
    bool vhost_started;
    /* The rings were taken back from the backend to save the device
     * (virtio-net-state.c): they go back at the driver's next
     * notification, once the VM runs again. */
    bool vhost_held;
};

#define VIRTIO_NET_GUEST_OFFLOADS                                               \
    ((1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |     \
     (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN) |      \
     (1ull << VIRTIO_NET_F_GUEST_UFO))

static inline bool has_f(VirtioNet *n, unsigned bit)
{
    return qnic_virtio_has_feature(&n->vdev, bit);
}

/* ---- virtio-net.c: the device ---- */

/* Queue pairs the driver uses (MQ, RSS): the vhost rings and the
 * backend's queues follow. */
void virtio_net_set_pairs(VirtioNet *n, unsigned pairs);
/* The queue layout for `pairs` pairs (rx0 tx0 ... ctrl), or for the pairs
 * a driver with `features` has. */
void virtio_net_layout(VirtioNet *n, unsigned pairs);
void virtio_net_layout_for(VirtioNet *n, uint64_t features);
/* Header lengths (guest's, peer's) from the accepted features. */
void virtio_net_update_hdr_len(VirtioNet *n);
/* Hand the data rings to the vhost backend (when it is there and the
 * driver is ready) / take them back (GET_VRING_BASE). */
void virtio_net_vhost_start(VirtioNet *n);
void virtio_net_vhost_stop(VirtioNet *n);

/* ---- virtio-net-state.c: device state (qnic/state.h) ---- */

typedef struct VirtioNetLoad VirtioNetLoad;
/* The sections "virtio" (the core's) and "virtio-net". A vhost backend's
 * rings are taken back first so the indices are the backend's
 * (GET_VRING_BASE); they stay with qnic until the driver's next
 * notification (vhost_held), so a stopped source sends nothing more. */
void virtio_net_state_save(VirtioNet *n, GByteArray *out);
/* Read and check both sections (nvectors: the transport's MSI-X vectors);
 * nothing changes. */
VirtioNetLoad *virtio_net_state_read(VirtioNet *n, QnicStateReader *r, unsigned nvectors,
                                     GError **errp);
/* Loading, in this order around the transport's own steps: quiesce (TX
 * work and vhost stop), apply (layout, core, device), resume (after the
 * transport applied: vhost starts with the loaded ring bases, TX runs
 * what the driver queued, RX delivers what waited). */
void virtio_net_state_quiesce(VirtioNet *n);
void virtio_net_state_apply(VirtioNet *n, const VirtioNetLoad *ld);
void virtio_net_state_resume(VirtioNet *n);
void virtio_net_state_free(VirtioNetLoad *ld);
/* Ask a driver that accepted GUEST_ANNOUNCE to announce itself (ANNOUNCE
 * and a configuration interrupt); false when it did not accept it. */
bool virtio_net_guest_announce(VirtioNet *n);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VirtioNetLoad, virtio_net_state_free)

/* ---- virtio-net-dataplane.c: rings <-> netdev, one queue pair each ---- */

/* Set up / tear down pair i's TX scheduling (bottom half, timer) and its
 * preallocated element storage. */
void virtio_net_queue_init(VirtioNet *n, unsigned i);
void virtio_net_queue_cleanup(VirtioNetQueue *q);
/* The NIC client's receive side (QnicNetClientOps). */
bool virtio_net_can_receive(QnicNetClient *nc);
ssize_t virtio_net_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt);
/* The guest kicked the pair's TX queue. */
void virtio_net_handle_tx(VirtioNet *n, VirtioNetQueue *q);
/* Run the pair's TX soon (bottom half or timer, per tx=). */
void virtio_net_tx_schedule(VirtioNetQueue *q);
/* Stop TX work in flight and drop what the backend still holds from the
 * ring (reset, queue reset, vhost taking the rings). */
void virtio_net_tx_stop(VirtioNetQueue *q);

/* ---- virtio-net-ctrl.c: control queue, receive filter, RSS ---- */

/* Serve every request on the control queue. */
void virtio_net_handle_ctrl(VirtioNet *n);
/* Tell a backend that takes control commands (qnic_vhost_takes_ctrl) the
 * state qnic keeps: MAC, queue pairs, receive modes; after each start. */
void virtio_net_vhost_ctrl_replay(VirtioNet *n);
/* Whether the rx mode, MAC table and VLAN filter let this frame in. */
bool virtio_net_rx_filter(VirtioNet *n, const uint8_t *eth, size_t len);
/* Realize: with RSS offered, load the eBPF program (or take ebpf-rss-fds=)
 * when the peer can run one; fails only where eBPF was demanded. */
bool virtio_net_rss_ebpf_init(VirtioNet *n, QnicOpts *opts, uint64_t features, GError **errp);
/* Attach the program with the current config while RSS is on, detach it
 * otherwise (call after rss_enabled or the config changed). False when
 * RSS is on with a program that cannot steer (software RSS takes over). */
bool virtio_net_rss_steering_update(VirtioNet *n);
/* Unrealize: detach and free the program. */
void virtio_net_rss_ebpf_cleanup(VirtioNet *n);
/* Tell a vnet-header peer the guest offloads now in force. */
void virtio_net_apply_offloads(VirtioNet *n);
/* QMP query-rx-filter (QnicNetClientOps). */
void virtio_net_query_rx_filter(QnicNetClient *nc, QnicRxFilterInfo *info);

#endif
