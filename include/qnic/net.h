/*
 * Net clients: the one narrow interface between a NIC frontend and a netdev
 * backend. Every client has at most one peer; a frame sent by a client is
 * delivered to its peer's receive callback. A receiver that cannot take a
 * frame now returns 0: the frame is queued on the receiver's incoming queue
 * and the sender's completion callback runs when the receiver calls
 * qnic_net_flush_queued(). Nothing is dropped silently.
 *
 * A multiqueue NIC has one client per queue pair; a netdev (QnicNetdev) has
 * one client per queue, and queue i of the NIC peers with queue i of the
 * netdev. Frames may carry a virtio-net header prefix when both ends agreed
 * on one (qnic_net_using_vnet_hdr); otherwise they are plain Ethernet frames.
 */
#ifndef QNIC_NET_H
#define QNIC_NET_H

#include "qnic/common.h"
#include "qnic/opts.h"
#include "qnic/backends.h"

typedef struct QnicNetClient QnicNetClient;
typedef struct QnicNetQueue QnicNetQueue;
typedef struct QnicVhostDev QnicVhostDev;   /* qnic/vhost.h */
typedef struct QnicNetFilter QnicNetFilter;     /* qnic/net-filter.h */

/* Completion of an asynchronous send that was queued (ret = bytes or <0). */
typedef void QnicNetSentFunc(QnicNetClient *sender, ssize_t ret);

typedef enum {
    QNIC_NET_CLIENT_NIC,
    QNIC_NET_CLIENT_HUBPORT,
    QNIC_NET_CLIENT_USER,
    QNIC_NET_CLIENT_TAP,
    QNIC_NET_CLIENT_SOCKET,
    QNIC_NET_CLIENT_STREAM,
    QNIC_NET_CLIENT_DGRAM,
    QNIC_NET_CLIENT_VDE,
    QNIC_NET_CLIENT_L2TPV3,
    QNIC_NET_CLIENT_VHOST_USER,
    QNIC_NET_CLIENT_VHOST_VDPA,
    QNIC_NET_CLIENT_OTHER,
} QnicNetClientKind;

/* What a NIC receives, as QMP's query-rx-filter reports it. */
typedef enum {
    QNIC_RX_STATE_NORMAL,       /* by the tables */
    QNIC_RX_STATE_NONE,
    QNIC_RX_STATE_ALL,
} QnicRxState;

typedef struct QnicRxFilterInfo {
    char *path;                 /* the device's QOM path (events name it) */
    bool promiscuous, broadcast_allowed, multicast_overflow, unicast_overflow;
    QnicRxState unicast, multicast, vlan;
    uint8_t main_mac[6];
    GArray *unicast_table, *multicast_table;   /* uint8_t[6] each */
    GArray *vlan_table;                        /* uint16_t */
} QnicRxFilterInfo;

void qnic_rx_filter_info_clear(QnicRxFilterInfo *info);

typedef struct QnicNetClientOps {
    QnicNetClientKind kind;
    /* A frame from the peer: >0 consumed (its length), 0 = cannot take it
     * now (queue it; the receiver calls qnic_net_flush_queued later),
     * <0 = dropped with an error (the sender is not retried). */
    ssize_t (*receive_iov)(QnicNetClient *nc, const struct iovec *iov, int iovcnt);
    /* Optional: false makes senders queue instead of calling receive_iov. */
    bool (*can_receive)(QnicNetClient *nc);
    void (*cleanup)(QnicNetClient *nc);
    /* Optional: nc's peer flushed (it can take frames again). A client
     * that holds frames for the peer elsewhere (a hub port: on its other
     * ports' queues) delivers them now; its own incoming queue follows. */
    void (*peer_flushed)(QnicNetClient *nc);
    void (*link_status_changed)(QnicNetClient *nc);
    /* vnet header capabilities (backends: tap) */
    bool (*has_vnet_hdr)(QnicNetClient *nc);
    bool (*has_vnet_hdr_len)(QnicNetClient *nc, int len);
    bool (*has_ufo)(QnicNetClient *nc);
    bool (*has_uso)(QnicNetClient *nc);
    void (*using_vnet_hdr)(QnicNetClient *nc, bool enable);
    void (*set_vnet_hdr_len)(QnicNetClient *nc, int len);
    /* Multiqueue backends: take queue nc in or out of service (a tap
     * detaches the queue so the kernel steers no flow to it). 0 or -errno. */
    int (*set_queue_enabled)(QnicNetClient *nc, bool enable);
    /* Tell the backend which offloads the guest accepts on receive. */
    void (*set_offload)(QnicNetClient *nc, bool csum, bool tso4, bool tso6,
                        bool ecn, bool ufo, bool uso4, bool uso6);
    /* NICs with receive filters: fill info (zeroed by the caller; free it
     * with qnic_rx_filter_info_clear). */
    void (*query_rx_filter)(QnicNetClient *nc, QnicRxFilterInfo *info);
    /* NICs that announce themselves their own way as well (virtio-net:
     * asks a driver with GUEST_ANNOUNCE to do it); qnic_net_announce_self
     * calls it after the RARP. Absent: the RARP only. */
    void (*announce)(QnicNetClient *nc);
    /* Backends whose data plane can run elsewhere (vhost-user, a tap with
     * vhost=on, vhost-vdpa): the vhost device standing behind nc, or NULL
     * when there is none now. Absent: never one. */
    QnicVhostDev *(*get_vhost)(QnicNetClient *nc);
    /* Backends that steer frames among their queues in the kernel (a
     * multiqueue tap): run the BPF socket-filter program prog_fd on each
     * frame to pick its queue (TUNSETSTEERINGEBPF); -1 takes it off. One
     * program for the whole backend, set through any of its queues.
     * 0 or -errno. Absent: the backend cannot. */
    int (*set_steering_ebpf)(QnicNetClient *nc, int prog_fd);
} QnicNetClientOps;

/* What a client sent through qnic_net_send*(), counted in place on the send
 * path (no allocation): frames and bytes handed to the peer (delivered or
 * queued), frames dropped there (no peer, link down, over
 * QNIC_NET_MAX_FRAME), and backpressure events (the peer was busy, so the
 * frame was queued and the sender waits for its completion). */
typedef struct QnicNetClientStats {
    uint64_t frames, bytes, drops, backpressure;
} QnicNetClientStats;

struct QnicNetClient {
    const QnicNetClientOps *ops;
    QnicBackends *be;           /* the machine's backends it is listed in */
    char *name;                 /* netdev id, or device id / model for NICs */
    char *model;                /* "tap", "user", "virtio-net-pci", ... */
    QnicNetClient *peer;
    QnicNetQueue *incoming;     /* frames waiting for this client */
    int queue_index;
    bool link_down;
    bool receive_disabled;      /* set when receive_iov returned 0 */
    void *opaque;               /* the owner (device / backend state) */
    char info_str[256];         /* for `info network`-style listings */
    /* Bytes of virtio-net header in front of each frame on this link, as
     * agreed through qnic_net_peer_using_vnet_hdr/_set_vnet_hdr_len (kept
     * on both ends; 0 = plain Ethernet). Filters skip it. */
    int vnet_hdr_len;
    /* the next qnic_net_rx_filter_changed() is reported (QEMU reports
     * one change, then none until the filter is queried) */
    bool rx_filter_notify;
    /* QnicNetFilter *: the filters that see the frames this client sends
     * and receives, in attach order (net/filter.c keeps it). */
    GList *filters;
    QnicNetClientStats tx;      /* what it sent (see QnicNetClientStats) */
    uint8_t conf_mac[6];        /* NICs: the MAC they were given (mac= or default) */
};

/* Create/destroy a client of be (listed there until freed); the caller
 * owns it. Destroying purges queued frames in both directions and detaches
 * the peer. */
QnicNetClient *qnic_net_client_new(QnicBackends *be, const QnicNetClientOps *ops,
                                   const char *model, const char *name, void *opaque);
void qnic_net_client_free(QnicNetClient *nc);
void qnic_net_client_set_peer(QnicNetClient *a, QnicNetClient *b);

/* The largest frame the net core carries, vnet header included: QEMU's
 * NET_BUFSIZE, room for a 64 KiB GSO frame and its headers. The send path
 * drops anything longer (reported sent, as QEMU does), so no NIC model,
 * device side, hub or filter hands a backend a frame whose size a guest or
 * peer chose, and nothing downstream allocates in proportion to one. */
#define QNIC_NET_MAX_FRAME (4096 + 65536)

/* Send a frame to the peer. Returns bytes, or 0 if queued (sent_cb, if
 * given, runs on completion). Frames with no peer or on a down link are
 * discarded as on a cable-less NIC and count as sent (len is returned), as
 * in QEMU; so are frames longer than QNIC_NET_MAX_FRAME (counted by
 * qnic_net_oversize_drops). A backend that reads from a file descriptor reads, sends, and on
 * 0 stops reading until sent_cb: it must not pause on qnic_net_can_send()
 * alone, since only a queued frame's completion wakes it again. */
ssize_t qnic_net_send(QnicNetClient *sender, const void *buf, size_t len);
/* be's frames dropped on the send path for exceeding QNIC_NET_MAX_FRAME. */
uint64_t qnic_net_oversize_drops(QnicBackends *be);
ssize_t qnic_net_send_iov(QnicNetClient *sender, const struct iovec *iov, int iovcnt,
                          QnicNetSentFunc *sent_cb);
/* Can the peer take a frame now? (senders use this to pause reading) */
bool qnic_net_can_send(QnicNetClient *sender);
/* The embedder's VM stopped / runs again (QMP stop/cont, -S): while it is
 * stopped no frame is delivered to or from be's clients, every sender
 * queues, as in QEMU; running again delivers what waited. Running by
 * default. Other machines' backends are not affected. */
void qnic_net_set_vm_running(QnicBackends *be, bool running);
bool qnic_net_vm_running(QnicBackends *be);
/* The receiver can take frames again: deliver what was queued for it. */
void qnic_net_flush_queued(QnicNetClient *receiver);
void qnic_net_purge_queued(QnicNetClient *nc);
void qnic_net_set_link(QnicNetClient *nc, bool up);
/* The client QMP's set_link means by name: a netdev's first queue, else a
 * NIC's (its device id, or its model when it has none); NULL if none. */
QnicNetClient *qnic_net_client_find_link(QnicBackends *be, const char *name);

/* A NIC's receive filter changed (the driver set a mode, a MAC, a VLAN):
 * the hook hears of it once, then not again until
 * qnic_net_rx_filter_notify_enable() (after a query), as QEMU's
 * NIC_RX_FILTER_CHANGED event. */
typedef void QnicNetRxFilterHook(QnicNetClient *nic, void *opaque);
void qnic_net_set_rx_filter_hook(QnicBackends *be, QnicNetRxFilterHook *hook, void *opaque);
void qnic_net_rx_filter_changed(QnicNetClient *nic);
void qnic_net_rx_filter_notify_enable(QnicNetClient *nic);
/* A stream netdev's peer came (peer: the address to report, the peer's for
 * inet, the socket's path for unix) or went (peer NULL): what QEMU 7.2
 * reports as NETDEV_STREAM_CONNECTED / NETDEV_STREAM_DISCONNECTED. The
 * embedder's hook hears each change (one hook per be). */
struct sockaddr_storage;
typedef void QnicNetStreamHook(const char *netdev_id, const struct sockaddr_storage *peer,
                               void *opaque);
void qnic_net_set_stream_hook(QnicBackends *be, QnicNetStreamHook *hook, void *opaque);
void qnic_net_stream_changed(QnicBackends *be, const char *netdev_id,
                             const struct sockaddr_storage *peer);
/* Every live client of be, in creation order (the list is the core's own). */
GList *qnic_net_clients(QnicBackends *be);
/* The hubs and their ports in the order QEMU's 'info network' lists them
 * (the newest hub first, each hub's newest port first): fn(opaque, id,
 * NULL) for a hub, then fn(opaque, id, port) for each of its ports. */
typedef void QnicNetHubWalkFunc(void *opaque, int hub_id, QnicNetClient *port);
void qnic_net_hub_walk(QnicBackends *be, QnicNetHubWalkFunc *fn, void *opaque);

/* vnet header negotiation with the peer. */
bool qnic_net_peer_has_vnet_hdr(QnicNetClient *nc);
bool qnic_net_peer_has_ufo(QnicNetClient *nc);
bool qnic_net_peer_has_uso(QnicNetClient *nc);
bool qnic_net_peer_has_vnet_hdr_len(QnicNetClient *nc, int len);
void qnic_net_peer_using_vnet_hdr(QnicNetClient *nc, bool enable);
void qnic_net_peer_set_vnet_hdr_len(QnicNetClient *nc, int len);
/* The NIC enables/disables its queue pair nc; 0 when the peer has no such
 * notion (single queue backends). */
int qnic_net_peer_set_queue_enabled(QnicNetClient *nc, bool enable);
void qnic_net_peer_set_offload(QnicNetClient *nc, bool csum, bool tso4, bool tso6,
                               bool ecn, bool ufo, bool uso4, bool uso6);
/* The NIC asks its peer to steer with an eBPF program (set_steering_ebpf;
 * prog_fd -1 detaches): 0, -errno, or -ENOTSUP when the peer has no such
 * op (or there is no peer). */
int qnic_net_peer_set_steering_ebpf(QnicNetClient *nc, int prog_fd);

/* ---- netdevs (backends) and their registry ---- */

typedef struct QnicNetdev QnicNetdev;
typedef struct QnicNetdevClass {
    const char *type;           /* "tap", "user", ... (schema type name) */
    /* Create the backend's clients (nd->ncs, nd->queues) from checked opts. */
    bool (*init)(QnicNetdev *nd, QnicOpts *opts, GError **errp);
    void (*cleanup)(QnicNetdev *nd);   /* close fds, run downscripts, unlink */
} QnicNetdevClass;

struct QnicNetdev {
    const QnicNetdevClass *cls;
    QnicBackends *be;           /* where it is found by id; its clients' too */
    char *id;
    QnicOpts *opts;
    int queues;
    QnicNetClient **ncs;        /* [queues] */
    void *state;                /* backend private */
    bool in_use;                /* claimed by a NIC */
    GList *gone_notifiers;      /* QnicNetdevNotifier *, see below */
};

/* Whoever keeps a pointer to a netdev it does not own (the NIC that
 * claimed it, a hub port plugged into it) adds a notifier and hears when
 * the netdev is deleted, before its clients go, so it drops the pointer.
 * Remove the notifier when the holder goes first. */
typedef struct QnicNetdevNotifier QnicNetdevNotifier;
struct QnicNetdevNotifier {
    void (*gone)(QnicNetdevNotifier *n, QnicNetdev *nd);
};
void qnic_netdev_add_gone_notifier(QnicNetdev *nd, QnicNetdevNotifier *n);
void qnic_netdev_remove_gone_notifier(QnicNetdev *nd, QnicNetdevNotifier *n);

#define QNIC_NETDEV_REGISTER(cls_var) \
    static void __attribute__((constructor)) qnic_register_netdev_##cls_var(void) \
    { qnic_netdev_class_register(&cls_var); }

void qnic_netdev_class_register(const QnicNetdevClass *cls);
const QnicNetdevClass *qnic_netdev_class_find(const char *type);

/* `-netdev TYPE,id=ID,...` in be: checks against the schema, rejects ids
 * be already has. */
QnicNetdev *qnic_netdev_add_str(QnicBackends *be, const char *str, GError **errp);
QnicNetdev *qnic_netdev_add(QnicBackends *be, QnicOpts *opts, GError **errp);
QnicNetdev *qnic_netdev_find(QnicBackends *be, const char *id);
void qnic_netdev_del(QnicNetdev *nd);
void qnic_netdev_del_all(QnicBackends *be);

/* ---- NIC side helpers ---- */

typedef struct QnicNic {
    QnicBackends *be;
    QnicNetdev *netdev;         /* may be NULL: a NIC with no backend */
    int queues;
    QnicNetClient **ncs;        /* [queues] */
    uint8_t mac[6];
    QnicNetdevNotifier netdev_gone;   /* clears netdev when it is deleted */
} QnicNic;

/* Create a NIC's clients for a frontend in be (its machine's backends):
 * reads `netdev=` and `mac=` from checked device opts (mac unset:
 * the lowest 52:54:00:12:34:XX from XX = 0x56 up that no NIC of be holds,
 * as QEMU 7.2 assigns; a NIC that goes frees its address), claims the
 * netdev (error if missing or already in use) and
 * peers queue i with the netdev's queue i. `queues` is the number the NIC
 * wants (capped by the caller to the netdev's). */
QnicNic *qnic_nic_new(QnicBackends *be, const QnicNetClientOps *ops, QnicOpts *dev_opts,
                      const char *model, int queues, void *opaque, GError **errp);
void qnic_nic_free(QnicNic *nic);
/* Number of queues of be's netdev named by opts `netdev=` (1 if none). */
int qnic_nic_netdev_queues(QnicBackends *be, QnicOpts *dev_opts);

/* QEMU's self-announce of a NIC (after migration; QMP announce-self):
 * a broadcast RARP request "who am I" for its configured MAC from queue 0
 * (behind a zeroed vnet header when the link carries one), then its own
 * announce op. */
void qnic_net_announce_self(QnicNetClient *nic);
/* That RARP request for mac: the 60-byte minimum frame, into f[60]. */
void qnic_net_rarp_frame(uint8_t f[60], const uint8_t mac[6]);

/* ---- helpers for frames ---- */
size_t qnic_iov_size(const struct iovec *iov, int iovcnt);
size_t qnic_iov_to_buf(const struct iovec *iov, int iovcnt, size_t offset, void *buf, size_t len);
size_t qnic_iov_from_buf(const struct iovec *iov, int iovcnt, size_t offset, const void *buf, size_t len);
/* Copy up to len bytes from src (from byte src_off) to dst (from byte
 * dst_off); returns the bytes copied, bounded by both. */
size_t qnic_iov_copy(const struct iovec *dst, int dst_cnt, size_t dst_off,
                     const struct iovec *src, int src_cnt, size_t src_off, size_t len);
/* Fill dst (at most dst_cap entries) with src minus its first skip bytes,
 * pointing into src's buffers (no copy); returns the entries used. */
int qnic_iov_tail(struct iovec *dst, int dst_cap, const struct iovec *src, int src_cnt,
                  size_t skip);

#endif
